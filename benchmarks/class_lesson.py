"""A class each starting the quick augmentation lesson: `python -m benchmarks.classroom --students 30 --each-lesson`.

    python -m benchmarks.classroom --students 30 --each-lesson           # real data
    python -m benchmarks.classroom --students 6 --each-lesson --smoke    # tiny synthetic data, 1 epoch

A real server with a teacher password; N students join and each starts the quick augmentation
lesson (3 seeds × without/with augmentation) within the teacher's default limits: the first half
with the lesson's own augmentation (the posts' flip and turn), the second half each a turn of its
own. Identical runs train once (catdog.runs.store): every lesson's arm without augmentation is the
same, and so is the first half's other arm. Meanwhile each student is a protocol-level session
(tests/helpers/protocol.py): Home, Predict with a photo of their own answered by a run trained
beforehand (the answer while the lessons train), then the Train page again every POLL_S until their
lesson has its verdict. Reported: when each student's verdict came (seconds after the lessons were
started), how many runs trained against how many were started, and page/answer p50 and p95 against
the goals (page ≤ 5 s and answer ≤ 3 s, both ≤ 10 s while training).
"""

import asyncio
import os
import time
from pathlib import Path

from catdog import roster
from catdog.access import Actor
from catdog.data.scan import scan
from catdog.runs import lessons
from catdog.runs.store import RunStore
from catdog.settings import PRESETS, AugmentConfig
from tests.helpers.protocol import ProtocolError, Session, visit, xsrf_token

POLL_S = 15.0
# How long the lessons may take in all; each page step has --timeout.
LESSONS_DEADLINE_S = 3 * 3600
PASSWORD = "a-long-teacher-password-for-the-benchmark"
# Tiny synthetic data trains in seconds: one epoch of each run, still 3 seeds per arm.
SMOKE_LESSON = {**lessons.QUICK, "epochs": 1, "photos_per_class": None}


# --- joining: the one place the lead switches to ws-identity's join ------------------------------


def join(index: int) -> Actor:
    """Student `index` joins the class by name, as the sidebar's Join form does (their code is
    what a reload would sign in with; the benchmark keeps the actor)."""
    return roster.join(f"Student {index + 1}", f"benchmark-session-{index}").actor


def lesson_augmentation(index: int, students: int) -> AugmentConfig:
    """The first half press the lesson as it comes; the others each try a turn of their own."""
    half = students // 2
    if index < half:
        return PRESETS["posts"]
    return AugmentConfig(rotation=(-0.02 * (index - half + 1), 0.02 * (index - half + 1)))


def start_lessons(students: list[Actor], data_dir: str | None, smoke: bool) -> dict[str, str]:
    """Each student's lesson, started as they press the button: their experiment ids."""
    store = RunStore()
    content = scan(data_dir).content()
    settings = SMOKE_LESSON if smoke else lessons.QUICK
    started = {}
    for index, student in enumerate(students):
        run_configs = lessons.augmentation_experiment(
            lesson_augmentation(index, len(students)), data_dir=data_dir, **settings
        )
        lessons.submit_experiment(store, run_configs, actor=student, content=content)
        started[student.id] = run_configs[0].experiment
    return started


def verdict_ready(experiment: str) -> bool:
    found = lessons.find_experiment(RunStore(), experiment)
    return found is not None and not found.active


async def student_session(
    url: str, xsrf: str, photo: tuple[str, bytes], labels: list[str], experiment: str, timeout: float, start: float
) -> dict:
    """One student's tab: Predict with their photo, then the Train page until their verdict."""
    result = {"page_ready_s": [], "answer_s": None, "verdict_s": None, "errors": []}
    first = await visit(url, xsrf, "predict", photo, labels, timeout)
    result["errors"].extend(first.errors)
    result["page_ready_s"].append(first.page_ready_s)
    result["answer_s"] = first.answer_s
    session = Session(url, xsrf)
    try:
        await session.open()
        await session.run_page("", timeout)
        while time.perf_counter() - start < LESSONS_DEADLINE_S:
            began = time.perf_counter()
            await session.run_page("train", timeout)
            result["page_ready_s"].append(time.perf_counter() - began)
            if await asyncio.to_thread(verdict_ready, experiment):
                result["verdict_s"] = time.perf_counter() - start
                break
            await asyncio.sleep(POLL_S)
    except (ProtocolError, OSError) as error:
        result["errors"].append(str(error))
    finally:
        await session.close()
    result["errors"].extend(session.errors)
    result["page_ready_s"] = [s for s in result["page_ready_s"] if s is not None]
    return result


async def class_at_work(
    url: str, students: list[Actor], started: dict[str, str], photos, labels, timeout: float, start: float
) -> list[dict]:
    xsrf = await asyncio.to_thread(xsrf_token, url)
    return list(
        await asyncio.gather(
            *(
                student_session(url, xsrf, photo, labels, started[student.id], timeout, start)
                for student, photo in zip(students, photos, strict=True)
            )
        )
    )


def runs_counted(experiments: dict[str, str]) -> dict:
    """Runs the lessons started, and how many of them trained rather than sharing an identical one."""
    mine = [run for run in RunStore().runs() if run.config.experiment in experiments.values()]
    trained = [run for run in mine if not run.same_as]
    return {
        "runs_started": len(mine),
        "runs_trained": len(trained),
        "runs_shared": len(mine) - len(trained),
        "runs_finished": sum(run.state == "finished" for run in mine),
        "trained_seconds": round(sum(run.summary()["seconds"] or 0 for run in trained), 1),
    }


def measure(args, env: dict[str, str], work: Path, photos, labels) -> dict:
    """The server, the students' lessons and tabs; the figures the JSON file keeps."""
    from benchmarks.classroom import figures, rounded
    from tests.helpers.browser import Dashboard

    os.environ.update(env)  # the lessons' queue process inherits them, as the server does
    students = [join(index) for index in range(args.students)]
    with Dashboard({**env, "CATDOG_TEACHER_PASSWORD": PASSWORD}, work / "streamlit.log") as server:
        # A teacher checking the page first, as benchmarks.classroom does: TensorFlow imported, model loaded.
        warm_up = asyncio.run(visit(server.url, xsrf_token(server.url), "predict", photos[0], labels, args.timeout))
        if warm_up.errors:
            raise SystemExit(f"the warm-up visit failed: {warm_up.errors}; see {work / 'streamlit.log'}")
        start = time.perf_counter()
        started = start_lessons(students, env.get("CATDOG_DATA_DIR"), args.smoke)
        submitted_s = time.perf_counter() - start
        sessions = asyncio.run(class_at_work(server.url, students, started, photos, labels, args.timeout, start))
        wall = time.perf_counter() - start
    verdicts = [s["verdict_s"] for s in sessions]
    return {
        "students": args.students,
        "same_settings": args.students // 2,
        "lessons_submitted_s": round(submitted_s, 2),
        "every_verdict_s": None if None in verdicts else round(max(verdicts), 1),
        "verdict_s": figures([v for v in verdicts if v is not None]),
        "verdicts": sum(v is not None for v in verdicts),
        **runs_counted(started),
        "page_ready_s": figures([t for s in sessions for t in s["page_ready_s"]]),
        "answer_s": figures([s["answer_s"] for s in sessions if s["answer_s"] is not None]),
        "goals_s": {"page_ready": 10.0, "answer": 10.0, "while": "training"},
        "sessions_with_errors": sum(bool(s["errors"]) for s in sessions),
        "errors": sorted({e for s in sessions for e in s["errors"]})[:10],
        "wall_s": round(wall, 1),
        "per_student_verdict_s": [rounded(v) for v in verdicts],
    }


def print_table(label: str, results: dict) -> None:
    print(
        f"{label}: {results['verdicts']} of {results['students']} verdicts, every one by "
        f"{results['every_verdict_s']} s; runs trained {results['runs_trained']} of {results['runs_started']} started "
        f"({results['runs_shared']} shared); {results['sessions_with_errors']} sessions with errors"
    )
    for step in ("verdict_s", "page_ready_s", "answer_s"):
        f = results[step]
        if f["n"]:
            print(f"  {step:<13} p50 {f['p50_s']:>7} s  p95 {f['p95_s']:>7} s  max {f['max_s']:>7} s  (n {f['n']})")
    for error in results["errors"]:
        print(f"  error: {error}")
