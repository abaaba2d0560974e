"""A training run's folder: `Run` is the one reader and writer of its files.

    config.json     what to train (architecture, hyperparameters, data, seed, versions): a RunConfig
    status.json     queued | running | finished | failed | cancelled, with pid, times, error, and
                    why the run did not learn, if it did not (catdog.runs.collapse)
    history.jsonl   one line per epoch (and one for the fast path's feature caching)
    progress.json   where a live run is within its epoch, rewritten in place about every second
    data.json       what training found in the data folder: classes, counts, skipped files, and
                    each split's files with their labels (kept when the data set changes later);
                    for a data set of the app's own, its id, which stays when it is renamed
    note.json       the user's note about the run
    owner.json      who started the run (an access.Actor: id, name, role); runs from before
                    workspaces have none and belong to the owner
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

A run identical to another (same settings, seed and data: catdog.runs.store) trains nothing: its
status.json records "same_as", the run that trains for it, and while that one is queued or running
the share reads its state, history, progress and data through; once it has finished the share
takes hard links to its files (copies where links are refused), so that deleting either leaves
the other whole. Its own config, owner, note and status stay its own.

A run sent to a Ray cluster records "ray_address" in status.json, and its status is the job's
(cluster.py). Nothing here imports TensorFlow: reading runs stays instant.
"""

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import filelock
import psutil

from catdog.access import Action, Actor, actor_record, authorize, recorded_actor
from catdog.messages import N_, Message
from catdog.runs import cluster
from catdog.runs.states import ACTIVE, FINAL, STATES, RunError
from catdog.settings import RunConfig, SettingsError
from catdog.storage import append_jsonl, read_json, read_jsonl, write_json_atomic

if TYPE_CHECKING:
    from catdog.data.scan import Scan

# Kinds of history.jsonl records.
RECORD_EPOCH, RECORD_FEATURES = "epoch", "features"
# Phases of epoch records and progress. Epochs are numbered from 1 across phases; the preparing
# phases (epoch 0, their batches counting images) come first, each said in a few words:
# the fast path computing backbone features, or pixels decoded once for training on them.
PHASE_TRAIN, PHASE_HEAD, PHASE_FINE_TUNE, PHASE_FEATURES, PHASE_PHOTOS = (
    N_("train"),
    N_("head"),
    N_("fine-tune"),
    N_("features"),
    N_("photos"),
)
PREPARING = {
    PHASE_FEATURES: N_("computing MobileNetV2 features once"),
    PHASE_PHOTOS: N_("decoding the photos once"),
}
NOTE_MAX_CHARS = 500
# What a share keeps of its own; every other file it takes from the run that trained for it.
OWN_FILES = {"config.json", "owner.json", "status.json", "note.json", "cancel", ".status.lock"}
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
    def config(self) -> RunConfig:
        """What the run trains with, as recorded in config.json; a RunError if the file is damaged."""
        try:
            return RunConfig.from_dict(read_json(self.path / "config.json"))
        except (SettingsError, TypeError, ValueError) as error:
            reason = error.args[0] if isinstance(error, SettingsError) else str(error)
            raise RunError(Message("run {id} has a damaged config.json ({error})", id=self.id, error=reason)) from None

    def write_config(self, run_config: RunConfig) -> None:
        write_json_atomic(self.path / "config.json", {**run_config.to_dict(), "id": self.id})

    @property
    def owner(self) -> Actor:
        """Who started the run: what authorization and the fair queue judge it by. A run without
        a readable owner.json (older runs) is the owner's, shared with the class: others may see
        it, and only the teacher change it, so damage never hands it to a student."""
        return recorded_actor(read_json(self.path / "owner.json"))

    def record_owner(self, owner: Actor) -> None:
        write_json_atomic(self.path / "owner.json", actor_record(owner))

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
        """What training found in the data folder: root, classes, counts, skipped files, the
        files of each split as [name, label] pairs, and the content they train on (Scan.content)."""
        return read_json(self._results_dir() / "data.json") or {}

    def record_data(self, scan: "Scan", dataset: str | None = None) -> None:
        """Kept with the run: a data set fixed later does not change what this run trained on.
        `dataset`: the id of the app's own data set it is (catdog.data.datasets), to follow a rename."""
        write_json_atomic(
            self.path / "data.json",
            {
                "root": str(scan.root),
                "classes": scan.classes,
                "counts": scan.counts(),
                "skipped": scan.skipped,
                "files": {split: [list(item) for item in items] for split, items in scan.files.items()},
                "content": scan.content(),
                **({"dataset": dataset} if dataset else {}),
            },
        )

    def recorded_status(self) -> dict:
        """status.json as last written, without the corrections `status` makes ({} if unreadable)."""
        recorded = read_json(self.path / "status.json")
        return recorded if isinstance(recorded, dict) else {}

    @property
    def same_as(self) -> str | None:
        """The run that trains (or trained) for this one, if it is a share of it."""
        return _source_id(self.recorded_status())

    def _results_dir(self) -> Path:
        """Where training writes this run's files: a waiting share's source's folder, else its own."""
        status = self.recorded_status()
        same = _source_id(status)
        return self.path.parent / same if same and status.get("state") in ACTIVE else self.path

    def status(self) -> dict:
        """The recorded status, corrected when the training process has died without saying so;
        a waiting share's follows the run it shares."""
        status = self.recorded_status()
        if status.get("state") not in STATES:
            status = {"state": "failed", "error": "status.json is damaged or missing"}
        if _source_id(status) and status["state"] in ACTIVE:
            return self._follow(status)
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

    def _follow(self, status: dict) -> dict:
        """A waiting share's status: its source's while that trains; once it has ended, the
        share's own, recorded: finished with the source's files and results, else failed."""
        source = Run(self.path.parent / _source_id(status))
        if not (source.path / "config.json").is_file():
            return self.mark("failed", error=f"the identical run it shared, {source.id}, is gone")
        theirs = source.status()
        if theirs["state"] in ACTIVE:
            return {**status, "state": theirs["state"], "started": theirs.get("started")}
        if theirs["state"] != "finished":
            return self.mark(
                "failed", error=f"the identical run it shared, {source.id}, {theirs['state']}: {theirs.get('error')}"
            )
        self._adopt(source)
        results = ("started", "ended", "best_val_accuracy", "collapsed")
        return self.mark("finished", **{name: theirs.get(name) for name in results})

    def _adopt(self, source: "Run") -> None:
        """Takes the finished source's files as its own: hard links, which cost no space."""
        for item in source.path.iterdir():
            if item.name in OWN_FILES or item.name.startswith(".") or (self.path / item.name).exists():
                continue
            if item.is_dir():
                shutil.copytree(item, self.path / item.name, copy_function=_link_or_copy, dirs_exist_ok=True)
            else:
                _link_or_copy(item, self.path / item.name)

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
        return [r for r in read_jsonl(self._results_dir() / "history.jsonl") if r.get("type") == RECORD_EPOCH]

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
        progress = read_json(self._results_dir() / "progress.json")
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
        authorize(actor, Action.NOTE_RUN, owner=self.owner)
        text = text.strip()
        if len(text) > NOTE_MAX_CHARS:
            raise RunError(
                Message(
                    "a note can be at most {limit} characters; this one has {count}",
                    limit=NOTE_MAX_CHARS,
                    count=len(text),
                )
            )
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
            "arch": cfg.arch,
            "status": status["state"],
            "fast": cfg.fast,
            "epochs": len(history),
            "planned_epochs": cfg.planned_epochs,
            "batch_size": cfg.batch_size,
            "image_size": cfg.image_size,
            "learning_rate": cfg.learning_rate,
            # The saved model's, as training reported it: a fast-path head keeps its last epoch.
            "best_val_accuracy": status.get("best_val_accuracy", max(val) if val else None),
            "last_val_accuracy": val[-1] if val else None,
            "accuracy": history[-1].get("accuracy") if history else None,
            "seconds": _duration(status),
            "created": cfg.created,
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


def _source_id(status: dict) -> str | None:
    """A share's source's run id: a name in the same runs folder, never a path elsewhere."""
    same = status.get("same_as")
    return same if isinstance(same, str) and same and Path(same).name == same and same not in (".", "..") else None


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system makes one, else a copy; one already there is kept
    (two readers may settle a share at once)."""
    try:
        os.link(source, target)
    except FileExistsError:
        pass
    except OSError:
        shutil.copy2(source, target)


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
