"""Training whole Keras models: the CNNs, model4 end to end, and fine-tuning model4's backbone.

catdog.training.process runs it for every run but the fast path's head, which needs no TensorFlow.
"""

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catdog.data.scan import Scan
from catdog.fast.head import Head
from catdog.models.architectures import build, unfreeze_top
from catdog.models.model4 import NAMES
from catdog.runs.record import PHASE_FINE_TUNE, PHASE_PHOTOS, PHASE_TRAIN, Run
from catdog.settings import RunConfig
from catdog.storage import replace_file
from catdog.training.callbacks import EpochReporter


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


def first_per_class(labels: np.ndarray, count: int | None) -> np.ndarray:
    """Positions of the first `count` photos of each class, in file order: the same photos for every
    seed, so that seeds differ in initial weights, order and augmentation only."""
    if count is None:
        return np.arange(len(labels))
    return np.sort(np.concatenate([np.flatnonzero(labels == label)[:count] for label in np.unique(labels)]))


def training_arrays(data: Scan, size: tuple[int, int], photos_per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
    pixels, labels = data.arrays("train", size=size)
    kept = first_per_class(labels, photos_per_class)
    return pixels[kept], labels[kept]


# A lesson's runs each train on this many threads, in as many processes as there are cores
# (catdog.training.process.execute_all): TensorFlow splits its sums differently over 2 threads than over 1,
# even with op determinism, so the thread count is part of what fixes a seed's numbers.
LESSON_THREADS = 1


def limit_threads(threads: int = LESSON_THREADS) -> None:
    """TensorFlow's thread pools; only before its first operation in this process can they change."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        print(
            f"TensorFlow already runs on other thread counts than {threads}: this run's numbers may differ "
            "from the same seed's elsewhere",
            file=sys.stderr,
            flush=True,
        )


def make_deterministic(seed: int) -> None:
    """The same seed gives the same weights, photo order and augmentation, so the same history on
    this machine. Other CPUs or library versions may still differ in the last bits of a sum."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class RunRecorder(keras.callbacks.Callback):
    """Hands Keras's batches and epochs to the run's EpochReporter, which may stop fit() on cancel,
    and each better model on."""

    def __init__(self, reporter: EpochReporter, on_best: Callable[[keras.Model], None]):
        super().__init__()
        self.reporter, self.on_best = reporter, on_best

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self.reporter.batch(self.params.get("steps") or 0, batch + 1, time.time() - self._epoch_start)

    def on_test_batch_end(self, batch, logs=None):
        self.reporter.check_cancel()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        metrics = {key: logs.get(key) for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
        if self.reporter.epoch(time.time() - self._epoch_start, metrics):
            self.on_best(self.model)


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """A reader (the Predict page) never loads a half-written model file."""
    partial = path.with_name(f".partial-{os.getpid()}.keras")
    model.save(partial)
    replace_file(partial, path)


def compile_model(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _fit(model, run: Run, train, validation, epochs: int, phase: str, best: float = -1.0) -> float:
    reporter = EpochReporter(run, phase, best)
    recorder = RunRecorder(reporter, lambda trained: save_model_atomic(trained, run.model_path))
    board = keras.callbacks.TensorBoard(str(run.tensorboard_dir), write_graph=False, profile_batch=0)
    model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        callbacks=[recorder, board],
        shuffle=False,
        verbose=0,
    )
    return reporter.best


def precision_policy(mixed: bool) -> str:
    """Keras's dtype policy for a run: reduced precision only where the hardware computes in it
    (elsewhere bfloat16 is emulated, and slower than float32)."""
    if not mixed:
        return "float32"
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if _cpu_has_bfloat16() else "float32"


def _cpu_has_bfloat16() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy's CPU feature table is not public API: without it, float32
        return False
    return bool(__cpu_features__.get("AVX512BF16"))


def _build(cfg: RunConfig, num_classes: int, size: tuple[int, int]) -> keras.Model:
    """The run's model, its layers made under the run's precision policy (each keeps its own)."""
    keras.mixed_precision.set_dtype_policy(precision_policy(cfg.mixed_precision))
    try:
        return build(cfg.arch, num_classes, cfg.augmentation, size)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def set_head(model: keras.Model, head: Head) -> None:
    """The fast path's trained head into model4."""
    for name, (kernel, bias) in zip(NAMES, (head.weights[:2], head.weights[2:])):
        model.get_layer(name).set_weights([kernel, bias])


def train(run: Run, data: Scan, head: Head | None = None, best: float = -1.0) -> float:
    """Trains the run's model as its config says, or only fine-tunes it on top of a head trained
    on features; returns the best validation accuracy."""
    cfg = run.config
    batch_size, seed, size = cfg.batch_size, cfg.seed, cfg.input_size
    fine_tune = cfg.fine_tune_epochs > 0
    start = time.time()
    data.decode(size, lambda done, total: run.record_progress(PHASE_PHOTOS, 0, done, total, time.time() - start))
    pixels, labels = training_arrays(data, size, cfg.photos_per_class)
    if cfg.experiment:
        limit_threads()
    strategy = distribution_strategy()
    with strategy.scope():
        make_deterministic(seed)
        validation = make_dataset(*data.arrays("validation", size=size), batch_size)
        # Data order from the seed: the head's epochs, then the fine-tuning's, each shuffled its own way.
        training = [make_dataset(pixels, labels, batch_size, shuffle=True, seed=seed + phase) for phase in (0, 1)]
        model = _build(cfg, len(data.classes), size)
        if head is not None:
            set_head(model, head)
        else:
            compile_model(model, cfg.learning_rate)
    with strategy.scope():
        if head is None:
            best = _fit(model, run, training[0], validation, cfg.epochs, PHASE_TRAIN)
        if fine_tune:
            unfreeze_top(model)
            compile_model(model, cfg.learning_rate / 10)
            best = _fit(model, run, training[1], validation, cfg.fine_tune_epochs, PHASE_FINE_TUNE, best)
    return best


def distribution_strategy() -> tf.distribute.Strategy:
    """Several GPUs: mirror the model across them, no code change needed; otherwise the default."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
