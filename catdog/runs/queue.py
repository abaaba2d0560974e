"""The local queue: one process per machine trains queued runs in turn across owners, each in a child it supervises.

Each submitted run starts a small queue process (`python -m catdog.runs RUNS_DIR`) that waits for
the queue lock and then trains queued runs, each in a fresh child process
(`python -m catdog.training RUN_DIR`). The order is fair: each run is given a round when it is
recorded, one past its owner's last run still waiting or training, and never before the round the
queue is at, so that the queue takes one run of every owner in turn: one student's ten runs never
hold the class back, and nobody saves up turns by waiting. The lock dies with its holder, so a killed queue process
never blocks the ones after it. Runs sent to a Ray cluster wait in Ray's queue instead
(cluster.py). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from catdog.runs.record import Run, process_identity

if TYPE_CHECKING:
    from catdog.runs.store import RunStore

# A cancelled child stops itself at its next batch; one still starting up (TensorFlow import,
# data, backbone features) is terminated after this long, so cancel always lands within seconds.
CANCEL_GRACE_S = 2.0
CANCEL_POLL_S = 0.5
# How often a waiting queue process tries the lock: a run starts this soon after the one before.
QUEUE_POLL_S = 0.5


def lock(root: Path) -> filelock.BaseFileLock:
    """The queue lock of a runs folder: held by the process that trains its queued runs."""
    # flock on POSIX, msvcrt locking on Windows: the OS releases it when its holder dies.
    return filelock.FileLock(root / ".queue.lock", poll_interval=QUEUE_POLL_S)


def is_idle(root: Path) -> bool:
    try:
        with lock(root).acquire(blocking=False):
            return True
    except filelock.Timeout:
        return False


def waiting(runs: list[Run]) -> list[Run]:
    """The queued runs this machine trains: not those waiting in a Ray cluster's queue, nor shares
    of a run that trains for them."""
    queued = ((run, run.status()) for run in runs)
    return [
        run
        for run, status in queued
        if status["state"] == "queued" and not status.get("ray_address") and not status.get("same_as")
    ]


def round_of(run: Run) -> int:
    """The run's turn in the fair order (runs from before it have none: they go first)."""
    recorded = run.recorded_status().get("round")
    return recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else 0


def next_round(owner_id: str, runs: list[Run]) -> int:
    """The round of a new run of this owner's: one past their last run still waiting or
    training, and not before the earliest round still waiting or training."""
    active = [(run.owner.id, round_of(run)) for run in runs if run.state in ("queued", "running") and not run.same_as]
    if not active:
        return 0
    theirs = [turn for owner, turn in active if owner == owner_id]
    return max(theirs) + 1 if theirs else min(turn for _, turn in active)


def fair_order(runs: list[Run]) -> list[Run]:
    """Runs in training order: by round, and within a round in the order they were recorded."""
    return [run for _, run in sorted(enumerate(runs), key=lambda item: (round_of(item[1]), item[0]))]


def start_process(root: Path) -> None:
    """A queue process for this runs folder, detached: it outlives whoever started it."""
    subprocess.Popen(
        [sys.executable, "-m", "catdog.runs", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **_detached(),
    )


def serve(store: RunStore) -> None:
    """Waits for the queue lock, then trains queued runs in the fair order until none is left."""
    with lock(store.root):
        while queued := waiting(store.every_run()):
            train(fair_order(queued)[0])


def train(run: Run) -> None:
    """Trains one run in a child process, recording how the child ended if it could not say."""
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
