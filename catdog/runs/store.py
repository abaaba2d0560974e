"""Training runs: folders on disk, a queue, and the processes that work through it.

A run is a folder under the runs directory, and `Run` is the one reader and writer of its files:

    config.json     what to train (architecture, hyperparameters, data, seed, versions)
    status.json     queued | running | finished | failed | cancelled, with pid, times, error, and
                    why the run did not learn, if it did not (catdog.runs.collapse)
    history.jsonl   one line per epoch (and one for the fast path's feature caching)
    progress.json   where a live run is within its epoch, rewritten in place about every second
    data.json       what training found in the data folder: classes, counts, skipped files, and
                    each split's files with their labels (kept when the data set changes later);
                    for a data set of the app's own, its id, which stays when it is renamed
    note.json       the user's note about the run
    cancel          present once the user asked to cancel
    model.keras     the weights with the best validation accuracy so far; a fast-path head's
                    after its last epoch (catdog.fast.head)
    tensorboard/    TensorBoard event files
    train.log       the training process's output
    evaluation.json, evaluation-flip.json   held-out test scores of the saved model (catdog.inference.evaluation)
    model.tflite    the saved model converted for phones, made on request (catdog.inference.tflite)
    photo-scores.json   the saved model's class probabilities per training photo content, for top
                    losses and the map of the data (catdog.inference.top_losses)
    familiarity.npz the unfamiliarity guard: training photos' backbone features and the border
                    calibrated on validation (catdog.inference.familiarity), made at the end of training

Each submitted run starts a small queue process that waits for the queue lock and then trains
queued runs oldest first, each in a fresh child process. The lock dies with its holder, so a
killed queue process never blocks the ones after it. Nothing here imports TensorFlow: listing
runs stays instant. With CATDOG_RAY_ADDRESS set, runs go to a Ray cluster instead (cluster.py);
such a run records "ray_address" in status.json.
"""

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import filelock
import psutil

from catdog import config
from catdog.access import Action, Actor, authorize
from catdog.runs import cluster
from catdog.runs.states import ACTIVE, FINAL, STATES, RunError
from catdog.storage import append_jsonl, read_json, read_jsonl, write_json_atomic

if TYPE_CHECKING:
    from catdog.data.scan import Scan

# Kinds of history.jsonl records.
RECORD_EPOCH, RECORD_FEATURES = "epoch", "features"
# Phases of epoch records and progress. Epochs are numbered from 1 across phases; the preparing
# phases (epoch 0, their batches counting images) come first, each said in a few words:
# the fast path computing backbone features, or pixels decoded once for training on them.
PHASE_TRAIN, PHASE_HEAD, PHASE_FINE_TUNE, PHASE_FEATURES, PHASE_PHOTOS = "train", "head", "fine-tune", "features", "photos"
PREPARING = {PHASE_FEATURES: "computing MobileNetV2 features once", PHASE_PHOTOS: "decoding the photos once"}
NOTE_MAX_CHARS = 500
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Refuse to start a run with less free space than a few checkpoints and caches need.
MIN_FREE_BYTES = 200 * 2**20
# A cancelled child stops itself at its next batch; one still starting up (TensorFlow import,
# data, backbone features) is terminated after this long, so cancel always lands within seconds.
CANCEL_GRACE_S = 2.0
CANCEL_POLL_S = 0.5
# How often a waiting queue process tries the lock: a run starts this soon after the one before.
QUEUE_POLL_S = 0.5
# A process's creation time is derived from the boot time, which clock adjustments can shift a
# little; a later process reusing the pid was created far later than this.
CREATE_TIME_TOLERANCE_S = 1.0


@dataclass
class Run:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        return read_json(self.path / "config.json", {})

    def write_config(self, run_config: dict) -> None:
        write_json_atomic(self.path / "config.json", run_config)

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def tflite_path(self) -> Path:
        return self.path / "model.tflite"

    @property
    def familiarity_path(self) -> Path:
        return self.path / "familiarity.npz"

    def evaluation_path(self, flip_average: bool) -> Path:
        """The held-out scores of the saved model, one file per test-time setting."""
        return self.path / ("evaluation-flip.json" if flip_average else "evaluation.json")

    @property
    def photo_scores_path(self) -> Path:
        return self.path / "photo-scores.json"

    @property
    def _cancel_flag(self) -> Path:
        return self.path / "cancel"

    def request_cancel(self) -> None:
        """A flag, not a status change: the training process polls it between batches."""
        self._cancel_flag.touch()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_flag.exists()

    def data(self) -> dict:
        """What training found in the data folder: root, classes, counts, skipped files, and the
        files of each split as [name, label] pairs."""
        return read_json(self.path / "data.json") or {}

    def record_data(self, scan: "Scan", dataset: str | None = None) -> None:
        """Kept with the run: a data set fixed later does not change what this run trained on.
        `dataset`: the id of the app's own data set it is (catdog.data.datasets), to follow a rename."""
        write_json_atomic(
            self.path / "data.json",
            {
                "root": str(scan.root), "classes": scan.classes, "counts": scan.counts(), "skipped": scan.skipped,
                "files": {split: [list(item) for item in items] for split, items in scan.files.items()},
                **({"dataset": dataset} if dataset else {}),
            },
        )

    def recorded_status(self) -> dict:
        """status.json as last written, without the corrections `status` makes ({} if unreadable)."""
        recorded = read_json(self.path / "status.json")
        return recorded if isinstance(recorded, dict) else {}

    def status(self) -> dict:
        """The recorded status, corrected when the training process has died without saying so."""
        status = self.recorded_status()
        if status.get("state") not in STATES:
            status = {"state": "failed", "error": "status.json is damaged or missing"}
        if status.get("ray_address") and status["state"] in ACTIVE:
            return cluster.job_status(self, status)
        if status["state"] == "running" and not _alive(status.get("pid"), status.get("create_time")):
            # Not written back: the queue process, if alive, records the exact outcome, which
            # for a cancelled run is "cancelled" (it may have ended the process itself).
            if self.cancel_requested:
                status = {**status, "state": "cancelled"}
            else:
                status = {
                    **status,
                    "state": "failed",
                    "error": "the training process ended without a final status (killed, or out of memory)",
                }
        return status

    @property
    def state(self) -> str:
        return self.status()["state"]

    def mark(self, state: str, **fields) -> dict:
        """Records a new state; a final one is kept, whoever writes after it.

        The queue and the training process both write here, in an order nobody controls: a child
        that ends at once records "finished" before the queue records it as running.
        """
        with filelock.FileLock(self.path / ".status.lock"):
            recorded = self.recorded_status()
            if recorded.get("state") in FINAL:
                return recorded
            status = {**recorded, "state": state, **fields}
            if state in FINAL:
                status["ended"] = status.get("ended") or time.time()
            write_json_atomic(self.path / "status.json", status)
            return status

    def history(self) -> list[dict]:
        """Per-epoch records, in order."""
        return [r for r in read_jsonl(self.path / "history.jsonl") if r.get("type") == RECORD_EPOCH]

    def record_epoch(self, epoch: int, phase: str, seconds: float, metrics: dict[str, float | None]) -> None:
        record = {"epoch": epoch, "phase": phase, "seconds": round(seconds, 2), **metrics}
        append_jsonl(self.path / "history.jsonl", {"type": RECORD_EPOCH, **record, "time": round(time.time(), 3)})

    def record_features(self, seconds: float) -> None:
        """How long the fast path took to get its backbone features (from the cache, or computed)."""
        append_jsonl(self.path / "history.jsonl", {"type": RECORD_FEATURES, "seconds": round(seconds, 2)})

    def progress(self) -> dict | None:
        """The latest batch progress, if any: {epoch, batch, batches, elapsed, phase}.

        A few bytes to read, whatever the run's length: pages poll it every second.
        """
        progress = read_json(self.path / "progress.json")
        return progress if isinstance(progress, dict) else None

    def record_progress(self, phase: str, epoch: int, done: int, total: int, elapsed: float) -> None:
        progress = {"epoch": epoch, "batch": done, "batches": total, "elapsed": round(elapsed, 2), "phase": phase}
        try:
            write_json_atomic(self.path / "progress.json", progress)
        except OSError:
            # Progress is advisory and the next write is a second away; a reader holding the
            # file open (Windows refuses to replace it then) must not fail the training.
            pass

    @property
    def note(self) -> str:
        note = read_json(self.path / "note.json", "")
        return note if isinstance(note, str) else ""

    def set_note(self, text: str, *, actor: Actor) -> None:
        """The user's words about the run; an empty text removes the note."""
        authorize(actor, Action.NOTE_RUN)
        text = text.strip()
        if len(text) > NOTE_MAX_CHARS:
            raise RunError(f"a note can be at most {NOTE_MAX_CHARS} characters; this one has {len(text)}")
        if text:
            write_json_atomic(self.path / "note.json", text)
        else:
            (self.path / "note.json").unlink(missing_ok=True)

    def summary(self) -> dict:
        """What a runs table shows: settings, state and accuracy, one flat dict."""
        cfg, status, history = self.config, self.status(), self.history()
        val = [h["val_accuracy"] for h in history if h.get("val_accuracy") is not None]
        return {
            "id": self.id,
            "arch": cfg.get("arch"),
            "status": status["state"],
            "fast": cfg.get("fast", False),
            "epochs": len(history),
            "planned_epochs": planned_epochs(cfg),
            "batch_size": cfg.get("batch_size"),
            "image_size": image_size(cfg)[0],
            "learning_rate": cfg.get("learning_rate"),
            # The saved model's, as training reported it: a fast-path head keeps its last epoch.
            "best_val_accuracy": status.get("best_val_accuracy", max(val) if val else None),
            "last_val_accuracy": val[-1] if val else None,
            "accuracy": history[-1].get("accuracy") if history else None,
            "seconds": _duration(status),
            "created": cfg.get("created"),
            "error": status.get("error"),
            # Why the run counts as not having learned (catdog.runs.collapse); None when it learned.
            "collapsed": status["collapsed"] if "collapsed" in status else self._collapse(history),
            "note": self.note,
        }


    def _collapse(self, history: list[dict]) -> str | None:
        """For a run whose training did not record it (from before the check, or still in its first epochs)."""
        from catdog.runs.collapse import GRACE_EPOCHS, collapse_reason

        if len(history) < GRACE_EPOCHS:
            return None
        return collapse_reason(history, len(self.data().get("classes") or ()))


def image_size(run_config: dict) -> tuple[int, int]:
    """The pixel size a run trains at; runs from before the setting existed used IMAGE_SIZE."""
    side = run_config.get("image_size")
    return (int(side), int(side)) if side else config.IMAGE_SIZE


def planned_epochs(run_config: dict) -> int:
    """Epochs a run will train in all, fine-tuning included."""
    return int(run_config.get("epochs") or 0) + int(run_config.get("fine_tune_epochs") or 0)


def _duration(status: dict) -> float | None:
    started, ended = status.get("started"), status.get("ended")
    # Times from a damaged or hand-edited status.json may be anything: then there is no duration.
    if not isinstance(started, int | float) or not started:
        return None
    return round((ended if isinstance(ended, int | float) and ended else time.time()) - started, 1)


def _alive(pid: int | None, create_time: float | None) -> bool:
    """Whether the recorded process still runs: not ended, not a zombie, and not a later
    process that was given the same pid (its creation time differs)."""
    if not isinstance(pid, int) or pid <= 0 or not isinstance(create_time, int | float):
        return False
    try:
        process = psutil.Process(pid)
        same = abs(process.create_time() - create_time) < CREATE_TIME_TOLERANCE_S
        return same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_identity(pid: int) -> dict:
    """What status.json records to recognise a process later: its pid and creation time."""
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:  # already gone: then it reads as dead, which it is
        create_time = None
    return {"pid": pid, "create_time": create_time}


class RunStore:
    """The runs directory: create, list, find, queue and cancel runs."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = config.runs_dir(root)

    def runs(self) -> list[Run]:
        """All runs, oldest first."""
        if not self.root.is_dir():
            return []
        # A link could point anywhere: only the folders the app made here are runs.
        runs = [Run(p) for p in self.root.iterdir() if p.is_dir() and not p.is_symlink() and _RUN_ID.match(p.name)]
        return sorted(runs, key=lambda run: (run.config.get("created") or 0, run.id))

    def get(self, run_id: str) -> Run:
        """The run with this id; ids are checked so no path outside the runs directory is reached."""
        if not _RUN_ID.match(run_id or ""):
            raise RunError(f"invalid run id {run_id!r}")
        path = self.root / run_id
        if path.is_symlink() or not (path / "config.json").is_file():
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(path)

    def live(self) -> list[Run]:
        """Every running run (several train at once on a cluster), else the newest alone."""
        runs = self.runs()
        return [run for run in runs if run.state == "running"] or runs[-1:]

    def latest(self) -> Run | None:
        """The run a status badge shows: the running one, else the newest."""
        return (self.live() or [None])[-1]

    def queue(self) -> list[Run]:
        return [run for run in self.runs() if run.state == "queued"]

    def check_writable(self) -> None:
        """A clear error now rather than a crash mid-training."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Unique per call: sessions of one web server are threads of one process, starting at once.
            probe = self.root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise RunError(f"runs directory {self.root} is not writable ({error.strerror or error})") from None
        free = shutil.disk_usage(self.root).free
        if free < MIN_FREE_BYTES:
            raise RunError(
                f"only {free / 2**20:.0f} MB free in {self.root}; training needs at least "
                f"{MIN_FREE_BYTES // 2**20} MB"
            )

    def create(self, run_config: dict, **status) -> Run:
        """Records a queued run, with any further status fields; `submit` also gets it trained."""
        self.check_writable()
        created = time.time()
        run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{run_config['arch']}-{secrets.token_hex(2)}"
        run = Run(self.root / run_id)
        run.path.mkdir()
        run.write_config({**run_config, "id": run_id, "created": created})
        run.mark("queued", pid=None, created=created, started=None, ended=None, error=None, **status)
        return run

    def submit(self, run_config: dict, *, actor: Actor) -> Run:
        """Records a queued run and makes sure a queue process (or a Ray cluster) will train it; returns at once."""
        authorize(actor, Action.START_RUN)
        if config.ray_address():
            return cluster.submit(self, run_config)
        run = self.create(run_config)
        self._start_queue_process()
        return run

    @contextlib.contextmanager
    def queue_free(self) -> Iterator[bool]:
        """Holds this machine's queue when no run is queued or training here (and runs do not go to
        a Ray cluster): yields whether it does. Its holder may then train a run of its own in its
        process, as `catdog train --wait` does, saving a queue process, a training process and
        their imports. Runs submitted meanwhile wait, and get a queue process when it is let go."""
        if config.ray_address():
            yield False
            return
        lock = self._queue_lock()
        try:
            lock.acquire(blocking=False)
        except filelock.Timeout:
            yield False
            return
        try:
            yield not self._local_queue()
        finally:
            lock.release()
            self.resume()

    def resume(self) -> None:
        """Starts a queue process if runs are waiting with none to serve them (after a reboot)."""
        if self._local_queue() and self._queue_is_idle():
            self._start_queue_process()

    def cancel(self, run_id: str, *, actor: Actor) -> dict:
        """A queued run is cancelled now; a running one at its next batch, or within seconds if still starting."""
        authorize(actor, Action.CANCEL_RUN)
        run = self.get(run_id)
        status = run.status()
        if status["state"] not in ACTIVE:
            raise RunError(f"run {run_id} is already {status['state']}")
        run.request_cancel()
        if status.get("ray_address"):
            cluster.stop(run, status)
        if status["state"] == "queued":
            return run.mark("cancelled", error=None)
        return status

    def delete(self, run_id: str, *, actor: Actor) -> None:
        """Removes a run's folder: model, history, logs and all; refused while it is queued or running."""
        authorize(actor, Action.DELETE_RUN)
        run = self.get(run_id)
        state = run.state
        if state in ACTIVE:
            raise RunError(f"run {run_id} is {state}: cancel it before deleting it")
        # Renamed first, at once, to a name that is no run id: no reader ever lists half a run.
        doomed = run.path.with_name(f".deleted-{run_id}-{secrets.token_hex(2)}")
        try:
            run.path.rename(doomed)
        except OSError as error:
            raise RunError(f"run {run_id} could not be deleted ({error.strerror or error})") from None
        shutil.rmtree(doomed, ignore_errors=True)

    def _queue_lock(self) -> filelock.BaseFileLock:
        # flock on POSIX, msvcrt locking on Windows: the OS releases it when its holder dies.
        return filelock.FileLock(self.root / ".queue.lock", poll_interval=QUEUE_POLL_S)

    def _local_queue(self) -> list[Run]:
        """The queued runs this machine trains: not those waiting in a Ray cluster's queue."""
        queued = ((run, run.status()) for run in self.runs())
        return [run for run, status in queued if status["state"] == "queued" and not status.get("ray_address")]

    def _queue_is_idle(self) -> bool:
        try:
            with self._queue_lock().acquire(blocking=False):
                return True
        except filelock.Timeout:
            return False

    def _start_queue_process(self) -> None:
        subprocess.Popen(
            [sys.executable, "-m", "catdog.runs", str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_detached(),
        )

    def serve_queue(self) -> None:
        """Waits for the queue lock, then trains queued runs oldest first until none is left."""
        with self._queue_lock():
            while queued := self._local_queue():
                self._train(queued[0])

    def _train(self, run: Run) -> None:
        if run.cancel_requested:
            run.mark("cancelled")
            return
        with open(run.log_path, "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "catdog.training", str(run.path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **_windowless(),
            )
        # If the child has already ended, its final status stands: mark() keeps it.
        run.mark("running", started=time.time(), **process_identity(child.pid))
        returncode = _wait_or_stop(run, child)
        # Lands only when the child died without recording its outcome.
        if run.cancel_requested:
            run.mark("cancelled")
        else:
            run.mark("failed", error=_exit_reason(returncode))


def _detached() -> dict:
    """Popen options for a queue process that outlives the web server or terminal that started it."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS}
    return {"start_new_session": True}


def _windowless() -> dict:
    """Popen options for the training process: on Windows, a console program started by a
    detached process would open a console window of its own."""
    return {"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32" else {}


def _wait_or_stop(run: Run, child: subprocess.Popen) -> int:
    """The child's exit code, ending the child if it has not acted on a cancel in time."""
    while True:
        try:
            return child.wait(timeout=CANCEL_POLL_S)
        except subprocess.TimeoutExpired:
            if run.cancel_requested and time.time() - run._cancel_flag.stat().st_mtime > CANCEL_GRACE_S:
                child.terminate()


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the training process was killed by {name}{hint}"
    return f"the training process exited with code {returncode} without a final status; see train.log"

