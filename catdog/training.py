"""The training process: `python -m catdog.training RUN_DIR` trains one run and records it.

It runs at low priority in its own process (see runs.py), so the dashboard keeps a core.
"""

import functools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import psutil
import tensorflow as tf

from catdog import familiarity
from catdog.data import Scan, scan
from catdog.features import FeatureCache, build_head_model, copy_head_weights
from catdog.models import build, unfreeze_top
from catdog.runs import (
    PHASE_FEATURES,
    PHASE_FINE_TUNE,
    PHASE_HEAD,
    PHASE_TRAIN,
    Run,
    image_size,
    process_identity,
)
from catdog.settings import AugmentConfig, get_architecture

# Batch progress is written at most this often: a file replace per batch would slow small models.
PROGRESS_INTERVAL_S = 1.0


class RunCancelled(Exception):
    """Raised from a callback to leave fit() at once when the user cancels."""


def make_dataset(
    pixels: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """Already-decoded pixels, so an epoch costs no JPEG decoding: shuffle, batch, prefetch."""
    dataset = tf.data.Dataset.from_tensor_slices((pixels, labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


class RunRecorder(keras.callbacks.Callback):
    """Records epochs and progress, hands on the best model, and stops at the next batch on cancel."""

    def __init__(self, run: Run, phase: str, on_best: Callable[[keras.Model], None], best: float, epoch_offset: int):
        super().__init__()
        self.run, self.phase, self.on_best = run, phase, on_best
        self.best, self.epoch_offset = best, epoch_offset
        self._last_write = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_start = epoch, time.time()

    def _check_cancel(self) -> None:
        if self.run.cancel_requested:
            raise RunCancelled()

    def on_train_batch_end(self, batch, logs=None):
        self._check_cancel()
        now = time.time()
        steps = self.params.get("steps") or 0
        if now - self._last_write >= PROGRESS_INTERVAL_S or batch + 1 == steps:
            self._last_write = now
            self.run.record_progress(self.phase, self._epoch_number(self._epoch), batch + 1, steps, now - self._epoch_start)

    def on_test_batch_end(self, batch, logs=None):
        self._check_cancel()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        metrics = {key: _round(logs.get(key)) for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
        self.run.record_epoch(self._epoch_number(epoch), self.phase, time.time() - self._epoch_start, metrics)
        if metrics["val_accuracy"] is not None and metrics["val_accuracy"] > self.best:
            self.best = metrics["val_accuracy"]
            self.on_best(self.model)

    def _epoch_number(self, epoch: int) -> int:
        return self.epoch_offset + epoch + 1


def _round(value) -> float | None:
    return None if value is None else round(float(value), 5)


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """A reader (the Predict page) never loads a half-written model file."""
    partial = path.with_name(f".partial-{os.getpid()}.keras")
    model.save(partial)
    partial.replace(path)


def compile_model(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _fit(model, run: Run, train, validation, epochs: int, phase: str, on_best, best: float = -1.0) -> float:
    recorder = RunRecorder(run, phase, on_best, best, epoch_offset=len(run.history()))
    board = keras.callbacks.TensorBoard(str(run.tensorboard_dir), write_graph=False, profile_batch=0)
    model.fit(
        train, validation_data=validation, epochs=epochs, callbacks=[recorder, board], shuffle=False, verbose=0
    )
    return recorder.best


def _train_head_on_features(run: Run, data: Scan, model: keras.Model, cfg: dict) -> float:
    """The fast path: model4's head on cached backbone features; model gets the best head."""
    start = time.time()
    cache = FeatureCache(
        data, image_size(cfg), lambda done, total: run.record_progress(PHASE_FEATURES, 0, done, total, time.time() - start)
    )
    augmentation = AugmentConfig.from_dict(cfg["augmentation"])
    x_train, y_train = cache.features("train", int(cfg["feature_copies"]), augmentation)
    x_val, y_val = cache.features("validation")
    run.record_features(time.time() - start)
    head = build_head_model(x_train.shape[1], len(data.classes))
    compile_model(head, float(cfg["learning_rate"]))
    best_weights: dict = {}
    batch_size, seed = int(cfg["batch_size"]), int(cfg["seed"])
    best = _fit(
        head,
        run,
        make_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed),
        make_dataset(x_val, y_val, batch_size),
        int(cfg["epochs"]),
        PHASE_HEAD,
        lambda trained: best_weights.update(weights=trained.get_weights()),
    )
    head.set_weights(best_weights["weights"])
    copy_head_weights(head, model)
    save_model_atomic(model, run.model_path)
    return best


def train(run: Run) -> dict:
    """Trains one run as its config says; returns the final status fields."""
    cfg = run.config
    architecture = get_architecture(cfg["arch"])
    keras.utils.set_random_seed(int(cfg["seed"]))
    data = scan(cfg["data_dir"], int(cfg["split_seed"]))
    run.record_data(data)
    data.check_trainable()
    save_best = lambda trained: save_model_atomic(trained, run.model_path)
    batch_size, seed, size = int(cfg["batch_size"]), int(cfg["seed"]), image_size(cfg)
    # Built when a phase first needs it: the fast path trains on features and needs no pixels.
    validation = functools.cache(lambda: make_dataset(*data.arrays("validation", size=size), batch_size))
    training = lambda shuffle_seed: make_dataset(*data.arrays("train", size=size), batch_size, shuffle=True, seed=shuffle_seed)
    with distribution_strategy().scope():
        model = build(cfg["arch"], len(data.classes), AugmentConfig.from_dict(cfg["augmentation"]), size)
        if cfg["fast"]:
            best = _train_head_on_features(run, data, model, cfg)
        else:
            compile_model(model, float(cfg["learning_rate"]))
            best = _fit(model, run, training(seed), validation(), int(cfg["epochs"]), PHASE_TRAIN, save_best)
        if architecture.fine_tune and int(cfg["fine_tune_epochs"]) > 0:
            unfreeze_top(model)
            compile_model(model, float(cfg["learning_rate"]) / 10)
            best = _fit(model, run, training(seed + 1), validation(), int(cfg["fine_tune_epochs"]), PHASE_FINE_TUNE, save_best, best)
    _make_guard(run, data)
    return {"best_val_accuracy": best}


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


def distribution_strategy() -> tf.distribute.Strategy:
    """Several GPUs: mirror the model across them, no code change needed; otherwise the default."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def main(run_dir: str) -> int:
    run = Run(Path(run_dir))
    # A run started by a Ray cluster has no local queue to record its process; the queue, when
    # there is one, records the same identity.
    run.mark("running", started=time.time(), **process_identity(os.getpid()))
    _lower_priority()
    try:
        result = train(run)
    except RunCancelled:
        run.mark("cancelled")
        return 0
    except Exception as error:  # noqa: BLE001 -- any failure must end as a recorded status
        traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        run.mark("failed", error=message)
        return 1
    run.mark("finished", **result)
    print(json.dumps({"run": run.id, **result}), flush=True)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
