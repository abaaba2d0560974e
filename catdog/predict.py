"""Using a trained run: a photo's answer and Grad-CAM, scores on the held-out test split, TFLite.

The dashboard serves many sessions from one process, as threads. Models, evaluations and TFLite
conversions are therefore kept per saved model version and made once, however many sessions ask
at the same time: the first caller does the work while the others wait for its result.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import keras
import numpy as np

from catdog import backbone, explain, head
from catdog.data import scan
from catdog.features import model4_with_head
from catdog.head import MODEL_NAME as HEAD_MODEL_NAME
from catdog.images import ImageError, load_image, open_image, to_model_input
from catdog.runs import Run, RunError, image_size
from catdog.storage import read_json, write_bytes_atomic, write_json_atomic

__all__ = [
    "ClassScores", "Evaluation", "ImageError", "ImageResult", "Prediction", "analyse_photo", "class_names",
    "evaluate", "export_tflite", "load_image", "load_model", "model_version", "predict", "predict_photo",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class _OncePerKey:
    """Values made once per key, however many threads ask at the same time: the first caller
    makes the value while the others wait for it. The `size` most recently used are kept."""

    def __init__(self, size: int):
        self._size = size
        self._values: OrderedDict[Hashable, object] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            key_lock = self._making.setdefault(key, threading.Lock())
        with key_lock:
            try:
                with self._lock:
                    if key in self._values:
                        return self._values[key]
                value = make()
                with self._lock:
                    self._values[key] = value
                    while len(self._values) > self._size:
                        self._values.popitem(last=False)
                return value
            finally:
                with self._lock:
                    if self._making.get(key) is key_lock:
                        del self._making[key]


# A few models stay loaded (about 10 MB each); the least recently used goes first.
_models = _OncePerKey(size=4)
_evaluations = _OncePerKey(size=16)
_tflite = _OncePerKey(size=2)
_heads = _OncePerKey(size=16)


class _ModelChanged(Exception):
    """Training saved a newer model while an older version was being read."""


def model_version(run: Run) -> int:
    """The saved model's version: its file's modification time, which every save changes."""
    path = run.model_path
    if path.is_symlink():
        raise RunError(f"run {run.id}'s model is a link; only model files the app saved are loaded")
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        raise RunError(f"run {run.id} has no saved model yet") from None


def _current(run: Run, use: Callable[[int], T]) -> T:
    """use(version) for the model version saved now; again if training replaces it meanwhile."""
    while True:
        try:
            return use(model_version(run))
        except _ModelChanged:
            log.info("run %s saved a newer model while it was being read; reading that one", run.id)


def _model_at(run: Run, version: int) -> keras.Model:
    """The model of exactly this version, loaded once, and only with safe_mode on.

    Training replaces the file by renaming a complete one over it, so when the version is the
    same before and after the load, the load read that version.
    """

    def load() -> keras.Model:
        model = keras.models.load_model(run.model_path, safe_mode=True, compile=False)
        if model_version(run) != version:
            raise _ModelChanged
        return model4_with_head(model, image_size(run.config)) if model.name == HEAD_MODEL_NAME else model

    return _models.get((str(run.model_path.resolve()), version), load)


def load_model(run: Run) -> keras.Model:
    """The run's best model as saved now, loaded once per saved version."""
    return _current(run, lambda version: _model_at(run, version))


def class_names(run: Run) -> list[str]:
    classes = run.data().get("classes")
    if not classes:
        raise RunError(f"run {run.id} has no recorded classes (did it start training?)")
    return classes


def probabilities(model: keras.Model, pixels: np.ndarray, flip_average: bool = False) -> np.ndarray:
    """Softmax of the logits for a batch of model-size images; optionally averaged with mirrors."""
    x = np.asarray(pixels, dtype=np.float32)
    logits = model.predict_on_batch(x) if len(x) <= 64 else model.predict(x, batch_size=64, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    if flip_average:
        probs = (probs + probabilities(model, x[:, :, ::-1])) / 2
    return probs


def input_size(model: keras.Model) -> tuple[int, int]:
    """The pixel size a model was trained at; its input shape records it."""
    return tuple(model.input_shape[1:3])


# --- one photo ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """A model's answer for one photo, and where it looked. Shared between sessions: read only."""

    photo: np.ndarray  # the photo as decoded: RGB, upright, at most 1024 px a side
    pixels: np.ndarray  # what the model sees: the photo at the model's input size
    probabilities: dict[str, float]
    label: str
    grad_cam: np.ndarray  # the Grad-CAM heat map for the label over the photo: RGB, the photo's size

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


def _answer(
    run: Run, model: keras.Model, image: np.ndarray, flip_average: bool
) -> tuple[np.ndarray, dict[str, float]]:
    """The model-size pixels of an RGB image of any size, and the class probabilities for them."""
    pixels = to_model_input(image, input_size(model))
    probs = probabilities(model, pixels[None], flip_average)[0]
    return pixels, {name: float(p) for name, p in zip(class_names(run), probs)}


def predict(run: Run, image: np.ndarray, flip_average: bool = False) -> dict[str, float]:
    """Class probabilities for one RGB image of any size."""
    return _answer(run, load_model(run), image, flip_average)[1]


def predict_photo(run: Run, data: bytes, flip_average: bool = False) -> dict[str, float]:
    """Class probabilities for a photo's bytes (any supported format), decoded no larger than the
    model needs: a 12-megapixel JPEG at an eighth of its size, ten times faster. ImageError if unusable.

    A fast-path run's head answers on ONNX Runtime's backbone features (catdog.backbone), which
    agree with Keras's: a third of Keras's time for one photo.
    """
    size = image_size(run.config)
    extract = backbone.extractor(size)
    trained = _current(run, lambda version: _heads.get((str(run.model_path.resolve()), version), lambda: _head_at(run, version)))
    if trained is None or extract is None:
        model = load_model(run)
        return _answer(run, model, open_image(data, draft=input_size(model)[::-1]), flip_average)[1]
    pixels = to_model_input(open_image(data, draft=size[::-1]), size)[None]
    views = np.concatenate([pixels, pixels[:, :, ::-1]]) if flip_average else pixels
    logits = trained.logits(extract(views))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).mean(axis=0)
    return {name: float(p) for name, p in zip(class_names(run), probs)}


def _head_at(run: Run, version: int) -> head.Head | None:
    """The fast path's head of exactly this model version, or None for a whole Keras model."""
    trained = head.load(run.model_path)
    if model_version(run) != version:
        raise _ModelChanged
    return trained


def analyse_photo(run: Run, data: bytes, flip_average: bool = False) -> Prediction:
    """A photo's bytes (any supported format) answered and explained; ImageError if unusable."""
    photo = load_image(data)
    model = load_model(run)
    pixels, probs = _answer(run, model, photo, flip_average)
    label = max(probs, key=probs.get)
    heat = explain.grad_cam(model, pixels, list(probs).index(label))
    return Prediction(photo, pixels, probs, label, explain.overlay(photo, heat))


# --- the held-out test split ---------------------------------------------------------------


@dataclass(frozen=True)
class ClassScores:
    """How a model does on one class; None where there is nothing to divide by."""

    recall: float | None  # of the class's test photos, the share the model recognised
    precision: float | None  # of the photos the model called this class, the share that are
    f1: float | None  # the harmonic mean of the two
    support: int  # the class's test photos


@dataclass(frozen=True)
class ImageResult:
    file: str
    label: str
    predicted: str
    confidence: float

    @property
    def correct(self) -> bool:
        return self.predicted == self.label


def _ratio(part: int, whole: int) -> float | None:
    return float(part / whole) if whole else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass(frozen=True)
class Evaluation:
    """A model version's answers on the held-out test split. Shared between sessions: read only.

    The scores derive from the confusion matrix (rows: true class, columns: predicted class).
    """

    run: str
    flip_average: bool
    classes: tuple[str, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    images: tuple[ImageResult, ...]
    data_root: str
    model_mtime_ns: int

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def test_accuracy(self) -> float:
        return float(np.trace(self.confusion_matrix) / self.n)

    @property
    def per_class(self) -> dict[str, ClassScores]:
        matrix = np.array(self.confusion_matrix)
        scores = {}
        for i, name in enumerate(self.classes):
            recall = _ratio(matrix[i, i], matrix[i].sum())
            precision = _ratio(matrix[i, i], matrix[:, i].sum())
            scores[name] = ClassScores(recall, precision, _f1(precision, recall), int(matrix[i].sum()))
        return scores

    def confident_mistakes(self, count: int) -> list[ImageResult]:
        """The wrong answers the model was surest of, surest first."""
        wrong = [image for image in self.images if not image.correct]
        return sorted(wrong, key=lambda image: -image.confidence)[:count]

    def to_dict(self) -> dict:
        """The evaluation and its scores as JSON data: the cache file's and `catdog evaluate --json`'s."""
        return {
            "run": self.run,
            "flip_average": self.flip_average,
            "test_accuracy": self.test_accuracy,
            "n": self.n,
            "classes": list(self.classes),
            "per_class": {name: vars(scores) for name, scores in self.per_class.items()},
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "data_root": self.data_root,
            "images": [{**vars(image), "correct": image.correct} for image in self.images],
            "model_mtime_ns": self.model_mtime_ns,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Evaluation":
        """Reads to_dict's data back; the scores are derived again, not read."""
        fields = ("file", "label", "predicted", "confidence")
        images = [{field: image[field] for field in fields} for image in data["images"]]
        return cls(
            run=data["run"],
            flip_average=bool(data["flip_average"]),
            classes=tuple(data["classes"]),
            confusion_matrix=tuple(tuple(int(n) for n in row) for row in data["confusion_matrix"]),
            images=tuple(ImageResult(**image) for image in images),
            data_root=data["data_root"],
            model_mtime_ns=int(data["model_mtime_ns"]),
        )

    @classmethod
    def load(cls, path: Path) -> "Evaluation | None":
        """The saved evaluation, or None when it is missing or damaged."""
        try:
            return cls.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())


def evaluate(run: Run, flip_average: bool = False) -> Evaluation:
    """Accuracy, per-class scores, confusion matrix and per-photo answers on the test split.

    The test split comes from the run's own data folder and split seed, so its files are
    disjoint from the ones the run trained and validated on. Made once per saved model version
    and setting, for every session, and kept on disk beside the model.
    """
    path = run.evaluation_path(flip_average)

    def saved_or_scored(version: int) -> Evaluation:
        saved = Evaluation.load(path)
        if saved is not None and saved.model_mtime_ns == version:
            return saved
        evaluation = _score(run, version, flip_average)
        evaluation.save(path)
        return evaluation

    key = str(path.resolve())
    return _current(run, lambda version: _evaluations.get((key, version), lambda: saved_or_scored(version)))


def _score(run: Run, version: int, flip_average: bool) -> Evaluation:
    start = time.perf_counter()
    cfg, classes = run.config, class_names(run)
    data = scan(cfg.get("data_dir"), cfg.get("split_seed"))
    if data.classes != classes:
        raise RunError(f"the data folder's classes changed since run {run.id} trained: {data.classes}")
    model = _model_at(run, version)
    pixels, labels = data.arrays("test", size=input_size(model))
    if not len(labels):
        raise RunError("the test split is empty")
    probs = probabilities(model, pixels, flip_average)
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    log.info("run %s: scored %d test photos in %.1f s", run.id, len(labels), time.perf_counter() - start)
    return Evaluation(
        run=run.id,
        flip_average=flip_average,
        classes=tuple(classes),
        confusion_matrix=tuple(map(tuple, confusion.tolist())),
        images=tuple(
            ImageResult(file=name, label=classes[label], predicted=classes[guess], confidence=float(p[guess]))
            for (name, label), guess, p in zip(data.files["test"], predicted, probs)
        ),
        data_root=str(data.root),
        model_mtime_ns=version,
    )


# --- export --------------------------------------------------------------------------------


def export_tflite(run: Run) -> bytes:
    """The run's best model as TensorFlow Lite, converted once per saved model (it takes seconds).

    The converted file's modification time is set to the model version it came from, so it is
    known to be current without a second file.
    """
    path = run.tflite_path

    def saved_or_converted(version: int) -> bytes:
        if path.is_file() and path.stat().st_mtime_ns == version:
            return path.read_bytes()
        import tensorflow as tf

        converted = tf.lite.TFLiteConverter.from_keras_model(_model_at(run, version)).convert()
        write_bytes_atomic(path, converted, mtime_ns=version)
        log.info("run %s: converted to TensorFlow Lite (%d bytes)", run.id, len(converted))
        return converted

    key = str(path.resolve())
    return _current(run, lambda version: _tflite.get((key, version), lambda: saved_or_converted(version)))
