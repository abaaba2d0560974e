"""The training process: `python -m catdog.training RUN_DIR` trains one run and records it.

It runs at low priority in its own process (see runs.py), so the dashboard keeps a core;
`catdog train --wait` runs the same `execute` in its own process when the queue is free.
The fast path for model4 (features from catdog.fast.features, the head from catdog.fast.head) needs no
TensorFlow, whose import alone takes seconds; everything else trains in Keras (catdog.training.keras_loop).
"""

import dataclasses
import json
import os
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import psutil

from catdog.data.datasets import DatasetStore
from catdog.data.scan import Scan, scan
from catdog.fast import head
from catdog.fast.features import FeatureCache
from catdog.inference import familiarity
from catdog.runs.collapse import collapse_reason
from catdog.runs.record import PHASE_FEATURES, PHASE_HEAD, Run, process_identity
from catdog.runs.states import ACTIVE, RunCancelled
from catdog.settings import RunConfig
from catdog.training.callbacks import EpochReporter


def _train_head_on_features(run: Run, data: Scan, cfg: RunConfig) -> tuple[head.Head, float]:
    """The fast path: model4's head on cached backbone features, saved as the run's model."""
    start = time.time()

    def progress(done: int, total: int) -> None:
        if run.cancel_requested:
            raise RunCancelled()
        run.record_progress(PHASE_FEATURES, 0, done, total, time.time() - start)

    cache = FeatureCache(data, cfg.input_size, progress)
    x_train, y_train = cache.features("train", cfg.feature_copies, cfg.augmentation, cfg.small_photo_copies)
    x_val, y_val = cache.features("validation")
    run.record_features(time.time() - start)
    reporter = EpochReporter(run, PHASE_HEAD)
    trained, best = head.train(
        x_train,
        y_train,
        x_val,
        y_val,
        len(data.classes),
        head.Schedule.of(cfg),
        on_batch=lambda epoch, done, batches, seconds: reporter.batch(batches, done, seconds),
        on_epoch=lambda epoch, seconds, metrics: reporter.epoch(seconds, metrics),
    )
    head.save(trained, run.model_path)
    return trained, best


def train(run: Run, data: Scan | None = None) -> dict:
    """Trains one run as its config says, on `data` if the caller has scanned its folder just
    now; returns the final status fields."""
    cfg = run.config
    data = data or scan(cfg.data_dir, cfg.split_seed)
    managed = DatasetStore().find(data.root)
    run.record_data(data, managed.id if managed else None)
    data.check_trainable()
    trained, best = _train_head_on_features(run, data, cfg) if cfg.fast else (None, -1.0)
    if not cfg.fast or cfg.fine_tune_epochs > 0:
        from catdog.training import keras_loop

        best = keras_loop.train(run, data, trained, best)
    _make_guard(run, data)
    return {"best_val_accuracy": best, "collapsed": collapse_reason(run.history(), len(data.classes))}


def _make_guard(run: Run, data: Scan) -> None:
    """The unfamiliarity guard, saved with the run so that its first prediction need not wait.
    Without it (no backbone weights) the run still finishes; predictions then say it is missing."""
    start = time.time()
    try:
        familiarity.ensure(
            run, data, lambda done, total: run.record_progress(PHASE_FEATURES, 0, done, total, time.time() - start)
        )
    except familiarity.GuardUnavailable as error:
        print(f"no unfamiliarity guard: {error}", file=sys.stderr, flush=True)


def execute(run: Run, data: Scan | None = None) -> bool:
    """Trains the run in this process, recording its status from running to its end; whether it finished."""
    # A run started by a Ray cluster has no local queue to record its process; the queue, when
    # there is one, records the same identity.
    run.mark("running", started=time.time(), **process_identity(os.getpid()))
    try:
        result = train(run, data)
    except RunCancelled:
        run.mark("cancelled")
        return False
    except Exception as error:  # noqa: BLE001 -- any failure must end as a recorded status
        traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        run.mark("failed", error=message)
        return False
    run.mark("finished", **result)
    return True


def execute_all(runs: list[Run], data: Scan) -> list[bool]:
    """Trains runs in worker processes, one per core and at most one per run, each taking the next
    run in order when it is free: TensorFlow is imported once per worker and the photos are decoded
    once for all (the pixel cache on disk). Not threads of this process: Keras and TensorFlow keep
    their random state per process, so runs side by side in one process changed each other's
    numbers. A lesson's runs train on keras_loop.LESSON_THREADS threads each, so that a seed gives the
    same history alone or beside others, on any number of cores."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    workers = max(1, min(len(runs), os.cpu_count() or 1))
    # Spawned, never forked: a fork copies TensorFlow's or the caller's threads in whatever state they are.
    context = multiprocessing.get_context("spawn")
    shared = dataclasses.replace(data, _pixels={})  # workers map the cached pixels, not a pickled copy
    order = _worker_order(runs)
    try:
        with ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=(shared,)) as pool:
            done = dict(zip(order, pool.map(_execute_in_worker, [str(runs[i].path) for i in order]), strict=True))
        return [done[i] for i in range(len(runs))]
    except BrokenProcessPool:
        for run in runs:
            if run.state in ACTIVE:
                run.mark("failed", error="its training process ended unexpectedly (out of memory?)")
        return [run.state == "finished" for run in runs]


def _worker_order(runs: list[Run]) -> list[int]:
    """Owners in turn, as the queue takes them, and each owner's dearest runs first (augmentation
    makes each step dearer), the cheap ones filling the end: fewer seconds with one worker idle
    than in a lesson's own order."""
    dearest_first = sorted(range(len(runs)), key=lambda i: runs[i].config.augmentation.is_identity)
    turns, turn = Counter(), {}
    for i in dearest_first:
        owner = runs[i].owner.id
        turn[i], turns[owner] = turns[owner], turns[owner] + 1
    return sorted(dearest_first, key=lambda i: turn[i])


_worker_data: Scan | None = None


def _start_worker(data: Scan) -> None:
    """A worker of execute_all: Ctrl+C belongs to the process that waits, which cancels the runs;
    stdout carries that process's JSON, so what training prints (Keras announcing a download) goes
    to stderr."""
    global _worker_data
    _worker_data = data
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout = sys.stderr


def _execute_in_worker(run_dir: str) -> bool:
    run = Run(Path(run_dir))
    if run.cancel_requested:
        run.mark("cancelled")
        return False
    try:
        return execute(run, _worker_data)
    finally:
        if "keras" in sys.modules:
            sys.modules["keras"].backend.clear_session()  # the next run's model starts from nothing


def main(run_dir: str) -> int:
    run = Run(Path(run_dir))
    _lower_priority()
    if not execute(run):
        return 0 if run.state == "cancelled" else 1
    print(json.dumps({"run": run.id, "best_val_accuracy": run.status().get("best_val_accuracy")}), flush=True)
    return 0


def _lower_priority() -> None:
    """Training yields the CPU to the dashboard and the rest of the computer."""
    try:
        if hasattr(os, "nice"):
            os.nice(10)
        else:
            psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
    except (OSError, psutil.Error):
        pass
