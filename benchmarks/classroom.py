"""A class at once: N sessions open Home, then Predict, and each uploads a photo of its own.

    python -m benchmarks.classroom --sessions 30                   # real data, a model4 --fast run
    python -m benchmarks.classroom --sessions 30 --while-training  # the same while model4 trains
    python -m benchmarks.classroom --sessions 10 --browser 2       # 2 of the 10 in Chromium, to compare
    python -m benchmarks.classroom --smoke --sessions 3            # tiny synthetic data, model1: CI
    python -m benchmarks.classroom --students 30 --each-lesson     # each student a lesson (class_lesson.py)

The goal, for 30 sessions on a 2-core server: p95 page ready ≤ 5 s and p95 photo answer ≤ 3 s,
both ≤ 10 s while model4 trains, and no session errors.

The script trains one run into a private runs folder (real data: `catdog train --arch model4
--fast`; smoke: model1 on synthetic photos), starts `streamlit run dashboard.py` on a free
127.0.0.1 port, opens Home and Predict once unmeasured (a teacher checking the page: TensorFlow
imported, model loaded, test set scored), optionally starts a model4 run and waits for its
training epochs, then lets N sessions in at once. Each:

- opens Home and waits until its script run has finished;
- opens Predict: "page ready" is the time until that run has finished with the file uploader shown;
- uploads a photo (a different one per session, as pupils' photos are): "photo answered" is the
  time from asking for an upload URL until the rerun has finished showing the predicted label.

The sessions are protocol clients (tests/helpers/protocol.py): Streamlit's websocket protocol, the
fragments' timed reruns and the image fetches a tab makes, without a browser's rendering, so the
clients' own CPU time stays small beside the server's (both are reported). `--browser K` runs K of
the sessions in Chromium instead, to check that both clients measure the same thing. Appends the
measurement to a JSON file (default benchmarks/classroom.json) under `--label` and prints a table.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from benchmarks.responsiveness import in_training_epoch, training_state
from catdog.access import OWNER
from catdog.runs.store import RunStore
from catdog.settings import RunConfig

ROOT = Path(__file__).resolve().parent.parent
# The tests' helpers are the one way this project drives the dashboard; reuse them.
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, IDLE, Dashboard
from tests.helpers.protocol import Visit, visit, xsrf_token
from tests.helpers.support import make_dataset, synthetic_photos, wait_for

GOALS_S = {"page_ready": 5.0, "answer": 3.0}
GOALS_WHILE_TRAINING_S = {"page_ready": 10.0, "answer": 10.0}
PAGE = "predict"
STEP_TIMEOUT_S = 300


def train_served_run(work: Path, smoke: bool, env: dict[str, str]) -> None:
    """The run the class predicts with, trained by the command line into the private runs folder."""
    if smoke:
        args = ["--arch", "model1", "--epochs", "1", "--data-dir", env["CATDOG_DATA_DIR"]]
    else:
        args = ["--arch", "model4", "--fast"]
    subprocess.run(
        [sys.executable, "-m", "catdog", "train", *args, "--runs-dir", env["CATDOG_RUNS_DIR"], "--wait"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=1800,
    )


def class_photos(count: int, smoke: bool) -> list[tuple[str, bytes]]:
    """One photo per session, cats and dogs in turn: real validation photos, or synthetic ones."""
    if smoke:
        return synthetic_photos(count)
    from catdog.data.download import default_dataset_dir

    folder = default_dataset_dir() / "validation"
    cats, dogs = sorted((folder / "cats").glob("*.jpg")), sorted((folder / "dogs").glob("*.jpg"))
    files = [(cats if i % 2 == 0 else dogs)[i // 2] for i in range(count)]
    return [(file.name, file.read_bytes()) for file in files]


async def browser_visit(
    browser, url: str, photo: tuple[str, bytes], labels: list[str], timeout: float, together: asyncio.Barrier
) -> Visit:
    """The same visit as protocol.visit, clicked through in Chromium."""
    from playwright.async_api import Error as PlaywrightError

    result = Visit()
    page = await browser.new_page(viewport={"width": 1400, "height": 1600})
    page.set_default_timeout(timeout * 1000)
    try:
        start = time.perf_counter()
        await page.goto(url)
        await page.get_by_role("heading", name="catdog", exact=True, level=1).wait_for()
        await page.wait_for_selector(IDLE)
        result.home_s = time.perf_counter() - start
        start = time.perf_counter()
        await page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Predict", exact=True).click()
        await page.locator('[data-testid="stFileUploader"]').wait_for()
        await page.wait_for_selector(IDLE)
        result.page_ready_s = time.perf_counter() - start
        start = time.perf_counter()
        name, data = photo
        await page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}]
        )
        label = page.get_by_role("heading", name=re.compile(f"^({'|'.join(labels)})$"), level=3)
        await label.wait_for()
        await page.wait_for_selector(IDLE)
        result.answer_s = time.perf_counter() - start
        result.answer = (await label.inner_text()).strip()
        if await page.locator('[data-testid="stException"]').count():
            result.errors.append("the page shows an exception")
    except PlaywrightError as error:
        result.errors.append(f"chromium: {str(error).splitlines()[0]}")
    finally:
        await together.wait()
        await page.context.close()
    return result


async def lesson(
    url: str, photos: list[tuple[str, bytes]], labels: list[str], browsers: int, timeout: float
) -> tuple[list[Visit], float | None]:
    """All sessions at once, the first `browsers` of them in Chromium; returns the visits and
    the CPU seconds Chromium used (None without it)."""
    xsrf = await asyncio.to_thread(xsrf_token, url)
    together = asyncio.Barrier(len(photos))
    if not browsers:
        return list(await asyncio.gather(*(visit(url, xsrf, PAGE, p, labels, timeout, together) for p in photos))), None
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        visits = await asyncio.gather(
            *(browser_visit(chromium, url, p, labels, timeout, together) for p in photos[:browsers]),
            *(visit(url, xsrf, PAGE, p, labels, timeout, together) for p in photos[browsers:]),
        )
        chromium_cpu = cpu_seconds(psutil.Process().children(recursive=True))
        await chromium.close()
    return list(visits), chromium_cpu


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def figures(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50_s": round(float(np.percentile(samples, 50)), 2),
        "p95_s": round(float(np.percentile(samples, 95)), 2),
        "max_s": round(max(samples), 2),
    }


def summarize(visits: list[Visit], browsers: int) -> dict:
    per_session = [
        {
            "client": "chromium" if i < browsers else "protocol",
            "home_s": rounded(v.home_s),
            "page_ready_s": rounded(v.page_ready_s),
            "answer_s": rounded(v.answer_s),
            "answer": v.answer,
            "errors": v.errors,
        }
        for i, v in enumerate(visits)
    ]
    result = {
        step: figures([v[step] for v in per_session if v[step] is not None])
        for step in ("home_s", "page_ready_s", "answer_s")
    }
    for client in ("protocol", "chromium"):
        mine = [v for v in per_session if v["client"] == client]
        if mine and browsers:
            result[f"{client}_only"] = {
                step: figures([v[step] for v in mine if v[step] is not None]) for step in ("page_ready_s", "answer_s")
            }
    result["answered"] = sum(v.answer is not None for v in visits)
    result["sessions_with_errors"] = sum(bool(v.errors) for v in visits)
    result["missing_images"] = sum(v.missing_images for v in visits)
    result["per_session"] = per_session
    return result


def rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--while-training", action="store_true", help="a model4 run (smoke: model1) trains meanwhile")
    parser.add_argument("--browser", type=int, default=0, metavar="K", help="K of the sessions in Chromium")
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic data and a model1 run")
    parser.add_argument("--timeout", type=float, default=STEP_TIMEOUT_S, help="seconds each step may take")
    parser.add_argument("--label", help="the measurement's name in the JSON file (default from the options)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "classroom.json")
    parser.add_argument("--students", type=int, default=0, help="N students join, with --each-lesson")
    parser.add_argument(
        "--each-lesson", action="store_true", help="each student starts the quick augmentation lesson (class_lesson.py)"
    )
    args = parser.parse_args()
    if args.students or args.each_lesson:
        if not (args.students and args.each_lesson):
            sys.exit("--students N goes with --each-lesson")
        each_lesson(args)
        return
    if args.browser and not CHROMIUM.exists():
        sys.exit(f"--browser needs Debian's Chromium at {CHROMIUM}")

    work = Path(tempfile.mkdtemp(prefix="catdog-classroom-"))
    env = {"CATDOG_RUNS_DIR": str(work / "runs"), "CATDOG_CACHE_DIR": str(work / "cache")}
    if args.smoke:
        env["CATDOG_DATA_DIR"] = str(make_dataset(work / "data", per_split=(("train", 24), ("validation", 20))))
    os.environ.update(env)  # the training run's queue process inherits them, as the server does
    print("training the run the class will use …", file=sys.stderr)
    train_served_run(work, args.smoke, env)
    store = RunStore()
    labels = store.runs()[0].data()["classes"]
    photos = class_photos(args.sessions, args.smoke)
    training = None

    with Dashboard(env, work / "streamlit.log") as server:
        warm_up = asyncio.run(lesson(server.url, class_photos(1, args.smoke), labels, 0, args.timeout))[0][0]
        if warm_up.errors:
            sys.exit(f"the warm-up visit failed: {warm_up.errors}; see {work / 'streamlit.log'}")
        if args.while_training:
            arch, epochs = ("model1", 500) if args.smoke else ("model4", 20)
            training = store.submit(
                RunConfig(arch, epochs=epochs, data_dir=env.get("CATDOG_DATA_DIR")).to_dict(), actor=OWNER
            )
            print(f"{arch} run {training.id}: waiting for its training epochs …", file=sys.stderr)
            wait_for(
                lambda: in_training_epoch(training, 1) or training.state not in ("queued", "running"),
                timeout=900,
                interval=1,
                message="the run to train",
            )
        try:
            print(f"{args.sessions} sessions …", file=sys.stderr)
            server_process = psutil.Process(server.process.pid)
            load_before, server_cpu, client_cpu = os.getloadavg(), cpu_seconds([server_process]), time.process_time()
            training_before = training_state(training) if training else None
            start = time.perf_counter()
            visits, chromium_cpu = asyncio.run(lesson(server.url, photos, labels, args.browser, args.timeout))
            wall = time.perf_counter() - start
            measured = {
                "server_cpu_s": round(cpu_seconds([server_process]) - server_cpu, 1),
                "client_cpu_s": round(time.process_time() - client_cpu, 1),
                "chromium_cpu_s": None if chromium_cpu is None else round(chromium_cpu, 1),
                "wall_s": round(wall, 1),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
            training_after = training_state(training) if training else None
        finally:
            if training and training.state in ("queued", "running"):
                store.cancel(training.id, actor=OWNER)
                wait_for(lambda: training.state not in ("queued", "running"), timeout=120, message="the run to stop")

    results = {
        "sessions": args.sessions,
        "browser_sessions": args.browser,
        "while_training": (
            {"arch": training.config.arch, "before": training_before, "after": training_after} if training else None
        ),
        "goals_s": GOALS_WHILE_TRAINING_S if training else GOALS_S,
        "data": "synthetic (smoke)" if args.smoke else "cats_and_dogs_filtered",
        "served_run": store.runs()[0].config.arch,
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "warm_up": {
            "home_s": rounded(warm_up.home_s),
            "page_ready_s": rounded(warm_up.page_ready_s),
            "answer_s": rounded(warm_up.answer_s),
        },
        **measured,
        **summarize(visits, args.browser),
    }
    label = args.label or f"{args.sessions} sessions{' while training' if training else ''}"
    saved = json.loads(args.out.read_text()) if args.out.exists() else {}
    saved[label] = results
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(saved, indent=1) + "\n")
    print_table(label, results)


def each_lesson(args: argparse.Namespace) -> None:
    """The class each starting a lesson: benchmarks/class_lesson.py, on a run trained first for Predict."""
    from benchmarks import class_lesson

    work = Path(tempfile.mkdtemp(prefix="catdog-class-lesson-"))
    env = {"CATDOG_RUNS_DIR": str(work / "runs"), "CATDOG_CACHE_DIR": str(work / "cache")}
    if args.smoke:
        env["CATDOG_DATA_DIR"] = str(make_dataset(work / "data", per_split=(("train", 24), ("validation", 20))))
    else:  # what a teacher serving a class sets (README): students may not choose a folder
        from catdog.data.download import default_dataset_dir

        env["CATDOG_DATA_DIR"] = str(default_dataset_dir())
    os.environ.update(env)
    print("training the run the class will use …", file=sys.stderr)
    train_served_run(work, args.smoke, env)
    labels = RunStore().runs()[0].data()["classes"]
    results = {
        **class_lesson.measure(args, env, work, class_photos(args.students, args.smoke), labels),
        "data": "synthetic (smoke)" if args.smoke else "cats_and_dogs_filtered",
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    label = args.label or f"{args.students} students, each a lesson{' (smoke)' if args.smoke else ''}"
    saved = json.loads(args.out.read_text()) if args.out.exists() else {}
    saved[label] = results
    args.out.write_text(json.dumps(saved, indent=1) + "\n")
    class_lesson.print_table(label, results)


def print_table(label: str, results: dict) -> None:
    print(
        f"{label}: {results['answered']} of {results['sessions']} answered, "
        f"{results['sessions_with_errors']} sessions with errors, {results['missing_images']} images missing, "
        f"wall {results['wall_s']} s"
    )
    for step in ("home_s", "page_ready_s", "answer_s"):
        f = results[step]
        if f["n"]:
            print(f"  {step:<13} p50 {f['p50_s']:>7} s  p95 {f['p95_s']:>7} s  max {f['max_s']:>7} s  (n {f['n']})")
    for client in ("protocol_only", "chromium_only"):
        if client in results:
            print(f"  {client}: {results[client]}")
    chromium = "" if results["chromium_cpu_s"] is None else f", chromium {results['chromium_cpu_s']} s"
    print(
        f"  CPU: server {results['server_cpu_s']} s, clients {results['client_cpu_s']} s{chromium}; "
        f"load average {results['load_average_before']} → {results['load_average_after']}"
    )
    errors = [e for s in results["per_session"] for e in s["errors"]]
    for error in dict.fromkeys(errors):
        print(f"  error ×{errors.count(error)}: {error}")


if __name__ == "__main__":
    main()
