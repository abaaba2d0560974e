"""The command line: the same library the dashboard uses, from a terminal.

`catdog VERB …` once installed, or `python -m catdog VERB …`. Machine-readable results go to
stdout (JSON with --json); progress and errors go to stderr, each error as one line. Exit
status: 0 done, 1 failed, 2 wrong usage. Verbs that need no model never import TensorFlow. It
acts as the owner of the files it is given (access.OWNER), or with `--as NAME` as that student of
the class (their code in CATDOG_SECRET) or `--as teacher` (the teacher's password in
CATDOG_TEACHER_PASSWORD): then it sees and changes what they may (catdog.roster, catdog.access).
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from catdog import __version__, config, roster
from catdog.access import Forbidden
from catdog.data.datasets import DatasetStore
from catdog.data.errors import DataError
from catdog.data.images import ImageError
from catdog.data.scan import scan
from catdog.runs import lessons
from catdog.runs.record import PREPARING
from catdog.runs.states import ACTIVE, RunError
from catdog.runs.store import RunStore
from catdog.settings import (
    AMOUNT_MEANINGS,
    AMOUNT_RANGES,
    ARCHITECTURES,
    BATCH_SIZE_RANGE,
    EPOCHS_RANGE,
    FEATURE_COPIES_RANGE,
    FILL_MODES,
    FINE_TUNE_EPOCHS,
    FLIP_MODES,
    LESSON_SEEDS,
    LESSON_SEEDS_RANGE,
    MIXED_PRECISION_MEANING,
    PRESETS,
    SEED_RANGE,
    SMALL_PHOTO_COPIES_MEANING,
    SMALL_PHOTO_SIDES,
    AugmentConfig,
    RunConfig,
    SettingsError,
    default_epochs,
    mixed_precision_archs,
)

FOLLOW_INTERVAL_S = 0.5
# Without a terminal, progress is one plain line per new stage, else one at most this often.
PLAIN_PROGRESS_INTERVAL_S = 5.0
FLIP_TTA_HELP = "average each answer with the mirror image's (test-time augmentation)"
# What a verb can run into at run time: exit status 1 and the message as one line.
FAILURES = (DataError, RunError, ImageError, Forbidden, roster.RosterError, OSError)


class BarProgress:
    """Progress on a terminal: one rich bar, redrawn in place."""

    def __init__(self, label: str):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(label, total=None, note="")
        self._bar.start()

    def __call__(self, done: float, total: float, stage: str = "", note: str = "") -> None:
        self._bar.update(self._task, completed=done, total=total or None, note=note)

    def close(self) -> None:
        self._bar.stop()


class LineProgress:
    """Progress into a log or a pipe: plain lines, never redrawn, so logs stay readable."""

    def __init__(self, label: str):
        self.label, self._shown_state, self._shown_at = label, None, -math.inf

    def __call__(self, done: float, total: float, stage: str = "", note: str = "") -> None:
        # A new stage, or the end of one, is always shown; the rest at most every few seconds.
        state, now = (stage, bool(total) and done >= total), time.monotonic()
        if state == self._shown_state and now - self._shown_at < PLAIN_PROGRESS_INTERVAL_S:
            return
        self._shown_state, self._shown_at = state, now
        share = f" {min(done / total, 1):.0%}" if total else ""
        print(f"{self.label}{share} {note}".rstrip(), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def progress(label: str) -> Iterator[BarProgress | LineProgress]:
    reporter = BarProgress(label) if sys.stderr.isatty() else LineProgress(label)
    try:
        yield reporter
    finally:
        reporter.close()


@contextlib.contextmanager
def native_logs_silenced() -> Iterator[None]:
    """TensorFlow's C++ libraries write start-up chatter (CPU features, missing CUDA) straight to
    file descriptor 2, partly before TF_CPP_MIN_LOG_LEVEL applies. That descriptor goes to the null
    device meanwhile; Python's sys.stderr keeps the real one, so catdog's messages still show."""
    sys.stderr.flush()
    original = sys.stderr
    with (
        open(os.dup(2), "w", encoding=original.encoding, errors=original.errors, buffering=1) as real,
        open(os.devnull, "wb") as null,
    ):
        os.dup2(null.fileno(), 2)
        sys.stderr = real
        try:
            yield
        finally:
            real.flush()
            os.dup2(real.fileno(), 2)
            sys.stderr = original


def _print_json(data) -> None:
    print(json.dumps(data), flush=True)


def _print_table(header: Sequence[str], rows: list[Sequence[str]]) -> None:
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def chosen_data_dir(args) -> str | None:
    """--dataset's folder, --data-dir resolved, else $CATDOG_DATA_DIR (None: the default set)."""
    if args.dataset:
        return str(DatasetStore(viewer=args.actor).get(args.dataset).root)
    return str(Path(args.data_dir).expanduser().resolve()) if args.data_dir else config.data_dir()


def cmd_data(args) -> int:
    with progress("scanning") as report:
        data = scan(chosen_data_dir(args), progress=report)
    result = {"root": str(data.root), "classes": data.classes, "splits": data.counts(), "skipped": data.skipped}
    if args.json:
        _print_json(result)
        return 0
    print(f"{data.root}\nclasses: {', '.join(data.classes)}")
    for split, counts in result["splits"].items():
        print(f"  {split:<10} " + "  ".join(f"{name}: {n}" for name, n in counts.items()))
    for item in data.skipped:
        print(f"  skipped {item['file']}: {item['reason']}")
    return 0


def cmd_archs(args) -> int:
    from catdog.models.architectures import architectures_table

    table = architectures_table()
    if args.json:
        _print_json(table)
        return 0
    for arch in table:
        print(f"{arch['name']:<16} {arch['title']:<40} {arch['total']:>9,} params ({arch['trainable']:,} trainable)")
    return 0


def chosen_augmentation(args) -> AugmentConfig:
    """The preset, with each augmentation flag given on the command line in its place."""
    given = {name: getattr(args, name) for name in ("flip", "rotation", "fill_mode", *AMOUNT_RANGES)}
    given = {name: tuple(value) if name == "rotation" else value for name, value in given.items() if value is not None}
    return dataclasses.replace(PRESETS[args.augmentation_preset], **given)


def cmd_train(args) -> int:
    run_config = RunConfig(
        args.arch,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        learning_rate=args.learning_rate,
        augmentation=chosen_augmentation(args),
        seed=args.seed,
        data_dir=chosen_data_dir(args),
        fast=args.fast,
        feature_copies=args.feature_copies,
        small_photo_copies=args.small_photo_copies,
        mixed_precision=args.mixed_precision,
    )
    # A data set training cannot use is refused here, in one line, not minutes later in the run.
    # A command that waits will most likely train right here: its photos are decoded for it while
    # they are checked, rather than checked first and decoded again.
    keep = (run_config.image_size, run_config.image_size) if args.wait else None
    with progress("checking the data") as report:
        data = scan(run_config.data_dir, run_config.split_seed, progress=report, keep=keep)
    data.check_trainable()
    store = RunStore(args.runs_dir, viewer=args.actor)
    if args.wait:
        with store.queue_free() as free:
            if free:
                return _train_here(store.create(run_config.to_dict(), owner=args.actor), data)
    run = store.submit(run_config.to_dict(), actor=args.actor)
    if not args.wait:
        print(run.id)
        return 0
    print(f"run {run.id}", file=sys.stderr)
    return _follow(run)


def _train_here(run, data) -> int:
    """Trains the run in this process, which waits for it anyway, on the data it has just
    checked, while showing its progress."""
    from catdog.training import process

    print(f"run {run.id}", file=sys.stderr)
    worker, done = _in_background(lambda: process.execute(run, data))
    try:
        return _follow(run, done, worker)
    except KeyboardInterrupt:
        run.request_cancel()
        worker.join()
        raise


def _in_background(train: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    """Starts training in a thread while the command shows its progress; the event is set when it
    ends. What training prints (Keras announcing a download) goes to stderr: stdout carries only
    the command's result, printed once the thread has been joined (until then stdout is stderr)."""
    done = threading.Event()

    def work() -> None:
        try:
            with contextlib.redirect_stdout(sys.stderr):
                train()
        finally:
            done.set()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    return worker, done


def _follow(run, done: threading.Event | None = None, worker: threading.Thread | None = None) -> int:
    """Shows a run's progress until it ends; one JSON summary line on stdout, once the `worker`
    training it here has ended."""
    summary = _watch(run, done=done)
    if worker is not None:
        worker.join()
    _print_json(summary)
    return 0 if summary["status"] == "finished" else 1


def _watch(run, label: str = "training", done: threading.Event | None = None) -> dict:
    """Shows a run's progress until it ends (or `done` is set, when it trains in this process);
    returns what `_follow` prints of it."""
    planned = run.config.planned_epochs
    done = done or threading.Event()
    with progress(label) as report:
        while (status := run.status())["state"] in ACTIVE:
            step = run.progress()
            if status["state"] == "queued":
                report(0, planned, "queued", "queued behind other runs")
            elif step and step["phase"] in PREPARING:
                report(
                    step["batch"], step["batches"], step["phase"], f"{PREPARING[step['phase']]} (cached for next time)"
                )
            elif step:
                history = run.history()
                val = history[-1].get("val_accuracy") if history else None
                note = f"epoch {step['epoch']}/{planned}" + (f" · val_acc {val:.3f}" if val is not None else "")
                share = step["epoch"] - 1 + step["batch"] / (step["batches"] or 1)
                report(share, planned, f"epoch {step['epoch']}", note)
            done.wait(FOLLOW_INTERVAL_S)
        summary = run.summary()
        # The last stage may pass between two looks: the end is always said.
        report(summary["epochs"], planned, "ended", f"{summary['status']} after {summary['epochs']}/{planned} epochs")
    return {
        "run": run.id,
        "status": summary["status"],
        "epochs": summary["epochs"],
        "accuracy": summary["accuracy"],
        "val_accuracy": summary["best_val_accuracy"],
        "seconds": summary["seconds"],
        **({"error": summary["error"]} if summary["error"] else {}),
    }


def cmd_lesson(args) -> int:
    varied = lessons.TOPICS[args.topic]
    quick = lessons.QUICK_SETTINGS[varied] if args.quick else {}
    make = lessons.augmentation_experiment if varied == lessons.AUGMENTATION else lessons.architecture_experiment
    given = {"epochs": args.epochs, "image_size": args.image_size, "learning_rate": args.learning_rate}
    run_configs = make(
        PRESETS[args.augmentation_preset],
        seed=args.seed,
        data_dir=chosen_data_dir(args),
        seeds=args.seeds,
        **{**quick, **{name: value for name, value in given.items() if value}},
    )
    # Waiting, it most likely trains here: the photos are decoded once, while they are checked, for every run.
    keep = (run_configs[0].image_size,) * 2 if args.wait else None
    with progress("checking the data") as report:
        data = scan(run_configs[0].data_dir, run_configs[0].split_seed, progress=report, keep=keep)
    data.check_trainable()
    store = RunStore(args.runs_dir, viewer=args.actor)
    experiment = run_configs[0].experiment
    if args.wait:
        with store.queue_free() as free:
            if free:
                _train_lesson_here(lessons.record_experiment(store, run_configs, actor=args.actor), data)
    if not lessons.find_experiment(store, experiment):
        runs = lessons.submit_experiment(store, run_configs, actor=args.actor)
        if not args.wait:
            if args.json:
                _print_json({"experiment": experiment, "runs": [run.id for run in runs]})
            else:
                print("\n".join(run.id for run in runs))
            return 0
        for run in runs:
            _watch(run, f"{lessons.run_label(run)}, seed {run.config.seed}")
    result = lessons.find_experiment(store, experiment).summary()
    if args.json:
        _print_json(result)
    else:
        print(result["conclusion"] or "A run did not finish: no conclusion.")
    return 0 if result["status"] == "finished" else 1


def _train_lesson_here(runs, data) -> None:
    """Trains a lesson's runs from this process, which waits for them anyway, in worker processes
    that take them in order (catdog.training.process.execute_all), while showing their progress;
    Ctrl+C cancels those left."""
    from catdog.training import process

    worker, done = _in_background(lambda: process.execute_all(runs, data))
    try:
        for run in runs:
            _watch(run, f"{lessons.run_label(run)}, seed {run.config.seed}", done)
        worker.join()
    except KeyboardInterrupt:
        for run in runs:
            run.request_cancel()
            if run.state == "queued":
                run.mark("cancelled")
        worker.join()
        raise


def cmd_experiments(args) -> int:
    store = RunStore(args.runs_dir, viewer=args.actor)
    store.resume()
    listed = [experiment.summary() for experiment in lessons.experiments(store)]
    if args.json:
        _print_json(listed)
        return 0
    if not listed:
        print(f"no experiments in {store.root}")
        return 0
    _print_table(
        ("EXPERIMENT", "VARIES", "STATUS", "EPOCHS", "PX", "RUNS: BEST VAL ACC / FINAL GAP"),
        [
            (
                row["experiment"],
                row["varied"],
                row["status"],
                str(row["epochs"]),
                str(row["image_size"]),
                "  ".join(
                    f"{run['label']}: {_fraction(run['best_val_accuracy'])} / {_fraction(run['final_gap'])}"
                    for run in row["runs"]
                ),
            )
            for row in listed
        ],
    )
    return 0


def cmd_delete_experiment(args) -> int:
    deleted = lessons.delete_experiment(RunStore(args.runs_dir, viewer=args.actor), args.experiment, actor=args.actor)
    print(f"{args.experiment}: deleted with its runs {', '.join(deleted)}")
    return 0


def _fraction(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def cmd_runs(args) -> int:
    store = RunStore(args.runs_dir, viewer=args.actor)
    store.resume()
    rows = [run.summary() for run in store.runs()]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"no runs in {store.root}")
        return 0
    _print_table(
        ("RUN", "ARCH", "STATUS", "EPOCHS", "BEST VAL ACC", "SECONDS", "ERROR"),
        [
            (
                row["id"],
                str(row["arch"]),
                row["status"],
                f"{row['epochs']}/{row['planned_epochs']}",
                _fraction(row["best_val_accuracy"]),
                "–" if row["seconds"] is None else f"{row['seconds']:.0f}",
                row["error"] or "",
            )
            for row in rows
        ],
    )
    return 0


def cmd_cancel(args) -> int:
    status = RunStore(args.runs_dir, viewer=args.actor).cancel(args.run, actor=args.actor)
    print(f"{args.run}: {'cancelled' if status['state'] == 'cancelled' else 'stopping at the next batch'}")
    return 0


def cmd_delete(args) -> int:
    RunStore(args.runs_dir, viewer=args.actor).delete(args.run, actor=args.actor)
    print(f"{args.run}: deleted")
    return 0


def cmd_predict(args) -> int:
    from catdog.inference.batches import answer_photos, photos_in, write_csv
    from catdog.inference.familiarity import GuardUnavailable
    from catdog.inference.loading import guard

    run = RunStore(args.runs_dir, viewer=args.actor).get(args.run)
    with progress("preparing the unfamiliarity guard (once per run)") as report:
        try:
            guard(run, report)
        except GuardUnavailable as error:
            print(f"warning: no unfamiliarity scores: {error}", file=sys.stderr)
    failed = []

    def noted(answers):
        for answer in answers:
            if answer.error is not None:
                failed.append(answer.file)
            yield answer

    photos = photos_in((name, Path(name)) for name in args.images)
    answers = noted(answer_photos(run, photos, args.flip_tta))
    if args.csv:
        # CSV ends its rows with CR LF itself: a Windows console or pipe in text mode would make them
        # CR CR LF, and write a photo named in another script in its code page, or fail.
        if reconfigure := getattr(sys.stdout, "reconfigure", None):
            reconfigure(newline="", encoding="utf-8")
        write_csv(answers, sys.stdout)
    else:
        for answer in answers:
            _print_json(answer.to_dict())
    return 1 if failed else 0


def cmd_evaluate(args) -> int:
    from catdog.inference.evaluation import evaluate

    result = evaluate(RunStore(args.runs_dir, viewer=args.actor).get(args.run), args.flip_tta).to_dict()
    summary = {
        key: result[key]
        for key in ("run", "flip_average", "test_accuracy", "n", "gone", "classes", "per_class", "confusion_matrix")
    }
    if args.json:
        _print_json(summary)
        return 0
    print(f"test accuracy {summary['test_accuracy']:.4f} on {summary['n']} held-out images")
    if summary["gone"]:
        print(f"  {summary['gone']} of the run's test images are no longer in its data folder")
    score = lambda value: "-" if value is None else f"{value:.4f}"
    for name, scores in summary["per_class"].items():
        print(
            f"  {name:<12} precision {score(scores['precision'])}  recall {score(scores['recall'])}  "
            f"f1 {score(scores['f1'])}  support {scores['support']}"
        )
    return 0


def cmd_export(args) -> int:
    from catdog.inference import web

    run = RunStore(args.runs_dir, viewer=args.actor).get(args.run)
    with progress("exporting (the guard is made first if the run has none)"):
        written = web.write(run, Path(args.out), args.format, args.precision)
    for path in written:
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


def cmd_dataset(args) -> int:
    return args.dataset_handler(args, DatasetStore(viewer=args.actor))


def dataset_list(args, store: DatasetStore) -> int:
    rows = [store.get(name).summary() for name in store.names()]
    if args.json:
        _print_json(rows)
    elif not rows:
        print(f"no data sets in {store.root}")
    else:
        _print_table(
            ("DATA SET", "CLASSES", "FILES", "IN TRASH"),
            [(row["name"], ", ".join(row["classes"]), str(row["files"]), str(row["trash"])) for row in rows],
        )
    return 0


def _print_made(made) -> int:
    for item in made.skipped:
        print(f"skipped {item['file']}: {item['reason']}", file=sys.stderr)
    print(made.dataset.name)
    return 0


def dataset_import(args, store: DatasetStore) -> int:
    with progress("unpacking") as report:
        return _print_made(store.import_zip(Path(args.zip), args.name, report, actor=args.actor))


def dataset_copy(args, store: DatasetStore) -> int:
    with progress("copying") as report:
        return _print_made(store.copy(args.source, args.name, report, actor=args.actor))


def dataset_rename(args, store: DatasetStore) -> int:
    print(store.rename(args.old, args.new, actor=args.actor).name)
    return 0


def dataset_delete(args, store: DatasetStore) -> int:
    store.delete(args.name, actor=args.actor)
    print(f"{args.name}: deleted")
    return 0


def dataset_remove(args, store: DatasetStore) -> int:
    dataset = store.get(args.name)
    for file in args.files:
        print(dataset.remove(file, actor=args.actor).describe())
    return 0


def dataset_move(args, store: DatasetStore) -> int:
    print(store.get(args.name).move(args.file, args.to_class, actor=args.actor).describe())
    return 0


def dataset_trash(args, store: DatasetStore) -> int:
    removed = store.get(args.name).trash()
    if args.json:
        _print_json([{"file": change.file, "removed": change.time} for change in removed])
        return 0
    for change in removed:
        print(f"{change.file}  (removed {time.strftime('%Y-%m-%d %H:%M', time.localtime(change.time))})")
    return 0


def dataset_restore(args, store: DatasetStore) -> int:
    for change in store.get(args.name).restore(args.files, actor=args.actor):
        print(f"restored {change.file}")
    return 0


def cmd_project(args) -> int:
    return args.project_handler(args, RunStore(args.runs_dir, viewer=args.actor), DatasetStore(viewer=args.actor))


def project_export(args, store: RunStore, datasets: DatasetStore) -> int:
    from catdog import project

    with progress("packing") as report:
        data = project.export_project(args.actor, store, datasets, args.run or (), report)
    out = Path(args.out)
    out.write_bytes(data)
    print(f"{out}  {len(data) / 1e6:.1f} MB")
    return 0


def project_open(args, store: RunStore, datasets: DatasetStore) -> int:
    from catdog import project  # here: checking a model loads it, which the other verbs never need

    with open(args.file, "rb") as file:
        data = file.read(config.PROJECT_MAX_BYTES + 1)  # one byte over the limit is enough to refuse it
    with progress("checking and opening (each model is loaded once to check it)") as report:
        opened = project.open_project(data, actor=args.actor, store=store, datasets=datasets, progress=report)
    for item in opened.skipped:
        print(f"skipped {item['file']}: {item['reason']}", file=sys.stderr)
    for run_id in opened.runs:
        print(run_id)
    print(project.describe(opened), file=sys.stderr)
    return 0


def dashboard_script() -> Path | None:
    """dashboard.py beside the catdog package: there in a checkout (installed editable or not),
    absent from a wheel, which holds the library alone."""
    script = Path(__file__).resolve().parent.parent / "dashboard.py"
    return script if script.is_file() else None


def cmd_dashboard(args) -> int:
    script = dashboard_script()
    if script is None:
        print("error: the dashboard runs from a checkout of catdog; run `catdog dashboard` there", file=sys.stderr)
        return 1
    with subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), *args.streamlit_args]) as server:
        try:
            return server.wait()
        except KeyboardInterrupt:  # the server got the same Ctrl-C and is shutting down
            return server.wait()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where it has none of its own (its help says what decides)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catdog",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
        epilog="exit status: 0 done, 1 failed, 2 wrong usage",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="VERB")

    def command(name: str, handler, help_text: str, runs: bool = False, json_flag: bool = False):
        sub = commands.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        sub.set_defaults(handler=handler)
        if runs:
            sub.add_argument("--runs-dir", help="where runs live (default: $CATDOG_RUNS_DIR, else ./runs)")
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print JSON")
        if name != "dashboard":
            sub.add_argument(
                "--as",
                dest="as_name",
                metavar="NAME",
                help=f"act as this student of the class, their code in ${config.STUDENT_CODE_VAR}; "
                "or as the teacher (`--as teacher`, the password in $CATDOG_TEACHER_PASSWORD)",
            )
        return sub

    def data_source(sub: argparse.ArgumentParser) -> None:
        source = sub.add_mutually_exclusive_group()
        source.add_argument(
            "--data-dir", help="a folder of class folders (default: $CATDOG_DATA_DIR, else cats_and_dogs_filtered)"
        )
        source.add_argument(
            "--dataset", metavar="NAME", help="one of the app's own data sets (see `catdog dataset list`)"
        )

    data = command("data", cmd_data, "scan a data set: classes, counts per split, skipped files", json_flag=True)
    data_source(data)
    command("archs", cmd_archs, "list the architectures", json_flag=True)

    train = command("train", cmd_train, "start a training run in the background", runs=True)
    run_defaults = {field.name: field.default for field in dataclasses.fields(RunConfig)}
    learning_rates = ", ".join(f"{arch.name} {arch.learning_rate:g}" for arch in ARCHITECTURES.values())
    train.add_argument("--arch", required=True, choices=ARCHITECTURES, help="the architecture (see `catdog archs`)")
    train.add_argument(
        "--epochs",
        type=int,
        help=f"{EPOCHS_RANGE[0]} to {EPOCHS_RANGE[1]} "
        f"(default: {default_epochs(fast=False)}, or {default_epochs(fast=True)} with --fast)",
    )
    train.add_argument(
        "--fine-tune-epochs",
        type=int,
        help=f"model4-finetune: epochs with the backbone's top unfrozen (default: {FINE_TUNE_EPOCHS})",
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=run_defaults["batch_size"],
        help=f"images per step, {BATCH_SIZE_RANGE[0]} to {BATCH_SIZE_RANGE[1]}",
    )
    train.add_argument(
        "--image-size",
        type=int,
        choices=config.IMAGE_SIDES,
        default=run_defaults["image_size"],
        help=f"square side in pixels; 224 is MobileNetV2's own, {config.IMAGE_SIDES[-1]} the most accurate",
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        help=f"Adam's, in (0, 1]; fine-tuning uses a tenth (default: the architecture's: {learning_rates})",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=run_defaults["seed"],
        help=f"{SEED_RANGE[0]} to {SEED_RANGE[1]}; same seed, same run",
    )
    train.add_argument(
        "--augmentation-preset",
        choices=PRESETS,
        default="posts",
        help="the augmentation to start from; the flags below change single settings of it",
    )
    train.add_argument("--flip", choices=FLIP_MODES, help="random flips while training")
    train.add_argument(
        "--rotation",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="random rotation range, in fractions of a full turn",
    )
    train.add_argument(
        "--fill-mode", choices=FILL_MODES, help="how corners uncovered by a rotation, zoom or shift are filled"
    )
    for name, (low, high) in AMOUNT_RANGES.items():
        train.add_argument(f"--{name}", type=float, help=f"{AMOUNT_MEANINGS[name]}; {low:g} to {high:g}, 0 is off")
    data_source(train)
    train.add_argument("--fast", action="store_true", help="model4 family: train the head on cached backbone features")
    train.add_argument(
        "--feature-copies",
        type=int,
        default=run_defaults["feature_copies"],
        help=f"fast path: cached augmented copies of the training set, {FEATURE_COPIES_RANGE[0]} to "
        f"{FEATURE_COPIES_RANGE[1]}",
    )
    train.add_argument(
        "--small-photo-copies",
        action="store_true",
        help=f"fast path: {SMALL_PHOTO_COPIES_MEANING.format(low=SMALL_PHOTO_SIDES[0], high=SMALL_PHOTO_SIDES[1])}",
    )
    train.add_argument(
        "--mixed-precision",
        action=argparse.BooleanOptionalAction,
        help=f"{', '.join(mixed_precision_archs())}: {MIXED_PRECISION_MEANING} (default: on for "
        f"{', '.join(arch.name for arch in ARCHITECTURES.values() if arch.mixed_precision_by_default)})",
    )
    train.add_argument("--wait", action="store_true", help="follow the run; exit 0 only if it finishes")

    lesson_parser = command(
        "lesson",
        cmd_lesson,
        "a lesson as an experiment, runs alike but for one setting: `lesson augmentation` trains model2 without "
        "and with augmentation, `lesson architectures` model1 to model4",
        runs=True,
        json_flag=True,
    )
    quick = {topic: lessons.QUICK_SETTINGS[varied] for topic, varied in lessons.TOPICS.items()}
    quick_epochs = " or ".join(f"{q['epochs']} ({topic})" for topic, q in quick.items())
    quick_sizes = " or ".join(f"{q['image_size']} ({topic})" for topic, q in quick.items())
    lesson_parser.add_argument(
        "topic", choices=lessons.TOPICS, help="does augmentation help? or: how do the four architectures compare?"
    )
    lesson_parser.add_argument(
        "--quick", action="store_true", help="fewer epochs on smaller photos: the lesson within a class period"
    )
    lesson_parser.add_argument(
        "--epochs", type=int, help=f"epochs of each run (default: {lessons.LESSON_EPOCHS}, with --quick {quick_epochs})"
    )
    lesson_parser.add_argument(
        "--image-size",
        type=int,
        choices=config.IMAGE_SIDES,
        help=f"square side in pixels (default: {lessons.LESSON_IMAGE_SIZE}, with --quick {quick_sizes})",
    )
    lesson_parser.add_argument(
        "--augmentation-preset",
        choices=PRESETS,
        default="posts",
        help="augmentation: the one compared with none; architectures: the one model2 to model4 train with",
    )
    lesson_parser.add_argument(
        "--seed",
        type=int,
        default=run_defaults["seed"],
        help="the first seed; each arm trains with seeds SEED, SEED + 1, ...",
    )
    lesson_parser.add_argument(
        "--seeds",
        type=int,
        default=LESSON_SEEDS,
        help=f"runs per arm, each with its own seed, {LESSON_SEEDS_RANGE[0]} to {LESSON_SEEDS_RANGE[1]}: the verdict "
        "gives their mean and spread",
    )
    lesson_parser.add_argument(
        "--learning-rate",
        type=float,
        help="Adam's, in (0, 1] (default: with --quick the quick lesson's, else each architecture's)",
    )
    data_source(lesson_parser)
    lesson_parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the runs, then print each one's best validation accuracy and final gap, and what they show",
    )
    command(
        "experiments", cmd_experiments, "list experiments: runs that differ in one setting", runs=True, json_flag=True
    )
    delete_experiment = command(
        "delete-experiment",
        cmd_delete_experiment,
        "delete an experiment's runs, with their files; refused while any is queued or running",
        runs=True,
    )
    delete_experiment.add_argument("experiment", help="the experiment's id (see `catdog experiments`)")

    dataset_verbs(command("dataset", cmd_dataset, "the app's own data sets: list, import a zip, copy, rename, fix"))
    project_verbs(
        command(
            "project",
            cmd_project,
            "project files: your finished runs with their photos as one file, opened on another catdog",
        )
    )
    command("runs", cmd_runs, "list runs", runs=True, json_flag=True)
    cancel = command("cancel", cmd_cancel, "cancel a queued or running run", runs=True)
    cancel.add_argument("run", help="the run's id")
    delete = command("delete", cmd_delete, "delete a run that is not queued or running, with its files", runs=True)
    delete.add_argument("run", help="the run's id")
    predict = command("predict", cmd_predict, "classify images with a finished run", runs=True)
    predict.add_argument("--run", required=True, help="the run's id")
    predict.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, or zips of them: each image of a zip is a row named ZIP/PATH, each entry left out one with the reason",
    )
    predict.add_argument("--flip-tta", action="store_true", help=FLIP_TTA_HELP)
    predict.add_argument(
        "--csv",
        action="store_true",
        help="print CSV instead of JSON lines: a header, then one row per image, those that failed with the reason",
    )
    evaluate = command("evaluate", cmd_evaluate, "score a run on its held-out test split", runs=True, json_flag=True)
    evaluate.add_argument("--run", required=True, help="the run's id")
    evaluate.add_argument("--flip-tta", action="store_true", help=FLIP_TTA_HELP)
    export = command(
        "export",
        cmd_export,
        "a run for the browser: a folder (model.onnx, model.json) for ONNX Runtime Web, or one offline HTML "
        "page with the camera",
        runs=True,
    )
    export.add_argument("--run", required=True, help="the run's id")
    export.add_argument(
        "--format",
        choices=config.WEB_FORMATS,
        default=config.WEB_FORMATS[0],
        help="web: a folder for a web page of your own; html: one self-contained page that works from a file, offline",
    )
    export.add_argument(
        "--precision",
        choices=config.WEB_PRECISIONS,
        default=config.WEB_PRECISIONS[0],
        help="float16 halves the weights (computing still in float32); see README for the measured accuracy",
    )
    export.add_argument("out", metavar="OUT", help="the folder (web) or the .html file to write")
    command(
        "dashboard",
        cmd_dashboard,
        "start the dashboard from a checkout; other arguments go to `streamlit run` (e.g. --server.port 8502)",
    )
    return parser


def dataset_verbs(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="dataset_verb", required=True, metavar="VERB", help="what to do")

    def verb(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        sub.set_defaults(dataset_handler=handler)
        return sub

    verb("list", dataset_list, "list the data sets").add_argument("--json", action="store_true", help="print JSON")
    imported = verb("import", dataset_import, "a new data set from a zip of class folders (either layout)")
    imported.add_argument("zip", metavar="ZIP", help="the zip file")
    imported.add_argument("--name", required=True, help="the new data set's name")
    copied = verb("copy", dataset_copy, "a new data set, an editable copy of a data folder")
    copied.add_argument(
        "--from",
        dest="source",
        metavar="DIR",
        help="the folder (default: $CATDOG_DATA_DIR, else cats_and_dogs_filtered)",
    )
    copied.add_argument("--name", required=True, help="the new data set's name")
    renamed = verb("rename", dataset_rename, "rename a data set no queued or running run uses")
    renamed.add_argument("old", metavar="OLD", help="its name now")
    renamed.add_argument("new", metavar="NEW", help="its new name")
    name_help = "the data set's name"
    deleted = verb("delete", dataset_delete, "delete a data set no queued or running run uses, photos and trash")
    deleted.add_argument("name", metavar="NAME", help=name_help)
    removed = verb("remove", dataset_remove, "move photos into the data set's trash (see `restore`)")
    removed.add_argument("name", metavar="NAME", help=name_help)
    file_help = "a photo as `catdog data --dataset NAME --json` names it, e.g. cats/cat.1.jpg"
    removed.add_argument("files", nargs="+", metavar="FILE", help=file_help)
    moved = verb("move", dataset_move, "move a photo to another class of the same split")
    moved.add_argument("name", metavar="NAME", help=name_help)
    moved.add_argument("file", metavar="FILE", help=file_help)
    moved.add_argument("to_class", metavar="CLASS", help="the class it belongs to")
    trash = verb("trash", dataset_trash, "list the photos in a data set's trash")
    trash.add_argument("name", metavar="NAME", help=name_help)
    trash.add_argument("--json", action="store_true", help="print JSON")
    restored = verb("restore", dataset_restore, "bring photos back from the trash to where they were")
    restored.add_argument("name", metavar="NAME", help=name_help)
    restored.add_argument("files", nargs="*", metavar="FILE", help="the photos to restore (default: all)")


def project_verbs(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="project_verb", required=True, metavar="VERB", help="what to do")

    def verb(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        sub.set_defaults(project_handler=handler)
        sub.add_argument("--runs-dir", help="where runs live (default: $CATDOG_RUNS_DIR, else ./runs)")
        return sub

    exported = verb("export", project_export, "write a project file of finished runs and the photos they trained on")
    exported.add_argument(
        "--run", action="append", metavar="ID", help="a run to take (repeat it for more; default: every finished run)"
    )
    exported.add_argument("out", metavar="OUT", help=f"the file to write, e.g. my-work{config.PROJECT_SUFFIX}")
    opened = verb("open", project_open, "add a project file's runs and data sets here, each checked first")
    opened.add_argument("file", metavar="FILE", help="the project file")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "dashboard":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.streamlit_args = extra
    # The dashboard's server keeps the real stderr: its logs are what a user reads there.
    quiet = contextlib.nullcontext() if args.command == "dashboard" else native_logs_silenced()
    try:
        with quiet:
            args.actor = roster.cli_actor(getattr(args, "as_name", None), os.environ.get(config.STUDENT_CODE_VAR))
            return args.handler(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FAILURES as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
