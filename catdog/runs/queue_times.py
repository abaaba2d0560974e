"""When the running run ends and each queued run starts: estimates from live progress and past runs.

The queue trains one run at a time, in turn across owners (catdog.runs.queue), so a queued run
starts once the running run and every run ahead of it in that order are done. A run's expected duration comes from finished runs
of the same kind (architecture, fast path, image size). Nothing here imports TensorFlow.
"""

import time
from dataclasses import dataclass

import numpy as np

from catdog.runs.queue import fair_order
from catdog.runs.record import PREPARING, Run
from catdog.runs.store import RunStore
from catdog.settings import RunConfig


def preparing(progress: dict) -> bool:
    """Progress before the first epoch: features or pixels made once and cached."""
    return progress.get("phase") in PREPARING


def time_left(run_config: RunConfig, history: list[dict], progress: dict | None) -> float | None:
    """Seconds until a run ends: the rest of this epoch plus the remaining epochs at the pace so far."""
    if not progress or not progress.get("batch"):
        return None
    per_batch = progress["elapsed"] / progress["batch"]
    this_epoch = per_batch * (progress["batches"] - progress["batch"])
    if preparing(progress):
        return this_epoch
    epoch_seconds = [h["seconds"] for h in history if h.get("seconds")]
    per_epoch = float(np.mean(epoch_seconds)) if epoch_seconds else per_batch * progress["batches"]
    later_epochs = max(run_config.planned_epochs - int(progress["epoch"]), 0)
    return this_epoch + later_epochs * per_epoch


def kind(run_config: RunConfig) -> tuple:
    """What a run's speed depends on most: architecture, fast path and image size."""
    return run_config.arch, run_config.fast, run_config.image_size


def expected_seconds(run_config: RunConfig, finished: list[Run]) -> float | None:
    """How long a run of these settings takes, start-up included: the start-up and seconds per
    epoch measured on finished runs of its kind; None when there is no such run yet."""
    start_ups, epochs = [], []
    for run in finished:
        if kind(run.config) != kind(run_config):
            continue
        seconds = [h["seconds"] for h in run.history() if h.get("seconds")]
        total = run.summary()["seconds"]
        if seconds and total:
            epochs.extend(seconds)
            start_ups.append(max(total - sum(seconds), 0.0))
    if not epochs:
        return None
    return float(np.mean(start_ups)) + run_config.planned_epochs * float(np.mean(epochs))


def remaining_seconds(run: Run, finished: list[Run]) -> float | None:
    """The running run's time left: from its progress, else its expected duration less the time so far."""
    left = time_left(run.config, run.history(), run.progress())
    if left is not None:
        return left
    expected, started = expected_seconds(run.config, finished), run.status().get("started")
    if expected is None or not isinstance(started, int | float):
        return None
    return max(expected - (time.time() - started), 0.0)


@dataclass(frozen=True)
class Slot:
    """A queued run, its place in the queue (1 starts next) and seconds until it starts, if known."""

    run: Run
    position: int
    starts_in: float | None


def queue_plan(store: RunStore) -> list[Slot]:
    """Every queued run the store's viewer sees, in training order (the queue's fair order across
    owners), with its place in the whole queue and when it is expected to start; a share waits in
    the place of the run that trains for it."""
    by_state: dict[str, list[Run]] = {}
    for run in store.every_run():
        by_state.setdefault(run.state, []).append(run)
    finished = by_state.get("finished", [])
    running = [run for run in by_state.get("running", []) if not run.same_as]
    queued = by_state.get("queued", [])
    wait = remaining_seconds(running[-1], finished) if running else 0.0
    slots: dict[str, Slot] = {}
    for position, run in enumerate(fair_order([run for run in queued if not run.same_as]), start=1):
        slots[run.id] = Slot(run, position, wait)
        expected = expected_seconds(run.config, finished)
        wait = None if wait is None or expected is None else wait + expected
    shares = [
        Slot(run, source.position, source.starts_in)
        for run in queued
        if run.same_as and (source := slots.get(run.same_as))
    ]
    return sorted(
        (slot for slot in [*slots.values(), *shares] if store.visible(slot.run)), key=lambda slot: slot.position
    )
