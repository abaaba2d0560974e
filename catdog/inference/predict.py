"""Using a trained run: a photo's answer, Grad-CAM and unfamiliarity, many photos' answers as a
table, scores on the held-out test split, TFLite.

The dashboard serves many sessions from one process, as threads. Models, evaluations and TFLite
conversions are therefore kept per saved model version and made once, however many sessions ask
at the same time: the first caller does the work while the others wait for its result.
"""

import csv
import itertools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image

from catdog.data.archives import ArchiveError, Member, is_zip, zip_members
from catdog.data.datasets import as_trained
from catdog.data.folders import Scan
from catdog.data.images import ImageError, data_url, load_image, open_image, read_upload, to_model_input
from catdog.fast import backbone, head
from catdog.fast.features import FeatureCache, extract, model4_with_head
from catdog.inference import familiarity
from catdog.models.model4 import MODEL_NAME as HEAD_MODEL_NAME
from catdog.models.model4 import WeightsUnavailable
from catdog.runs.store import Run, RunError, image_size
from catdog.storage import read_json, write_bytes_atomic, write_json_atomic

if TYPE_CHECKING:
    # Imported where a Keras model is needed: a fast-path run answers without TensorFlow.
    import keras

__all__ = [
    "ClassScores", "DataMap", "Evaluation", "ImageError", "ImageResult", "PhotoAnswer", "Prediction", "Suspect",
    "analyse_photo", "answer_photos", "answered_batch", "class_names", "data_map", "evaluate", "export_tflite",
    "guard", "load_image", "load_model", "model_version", "photos_of", "predict", "predict_photo", "top_losses",
    "unfamiliarity",
    "write_csv",
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
# Per model version, each photo's class probabilities by its content; and the ranked training split.
_photo_scores = _OncePerKey(size=4)
_rankings = _OncePerKey(size=16)
_guards = _OncePerKey(size=4)
_maps = _OncePerKey(size=4)
# Answers to many photos at once (rows only, no pixels), by the caller's digest of the photos.
_batches = _OncePerKey(size=16)
# Photos decoded and answered together: one model call per this many.
ANSWER_BATCH = 32
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


def _model_at(run: Run, version: int) -> "keras.Model":
    """The model of exactly this version, loaded once, and only with safe_mode on.

    Training replaces the file by renaming a complete one over it, so when the version is the
    same before and after the load, the load read that version.
    """

    def load() -> "keras.Model":
        import keras

        model = keras.models.load_model(run.model_path, safe_mode=True, compile=False)
        if model_version(run) != version:
            raise _ModelChanged
        return model4_with_head(model, image_size(run.config)) if model.name == HEAD_MODEL_NAME else model

    return _models.get((str(run.model_path.resolve()), version), load)


def load_model(run: Run) -> "keras.Model":
    """The run's best model as saved now, loaded once per saved version."""
    return _current(run, lambda version: _model_at(run, version))


def class_names(run: Run) -> list[str]:
    classes = run.data().get("classes")
    if not classes:
        raise RunError(f"run {run.id} has no recorded classes (did it start training?)")
    return classes


def probabilities(model: "keras.Model", pixels: np.ndarray, flip_average: bool = False) -> np.ndarray:
    """Softmax of the logits for a batch of model-size images; optionally averaged with mirrors."""
    x = np.asarray(pixels, dtype=np.float32)
    logits = model.predict_on_batch(x) if len(x) <= 64 else model.predict(x, batch_size=64, verbose=0)
    import keras

    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    if flip_average:
        probs = (probs + probabilities(model, x[:, :, ::-1])) / 2
    return probs


def input_size(model: "keras.Model") -> tuple[int, int]:
    """The pixel size a model was trained at; its input shape records it."""
    return tuple(model.input_shape[1:3])


def guard(run: Run, progress: familiarity.Progress | None = None) -> familiarity.Guard:
    """The run's unfamiliarity guard, loaded once per server, and made first for a run that has
    none (see familiarity.ensure); GuardUnavailable, remembered the same way, if it cannot be."""
    path = run.familiarity_path
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None

    def make() -> familiarity.Guard | familiarity.GuardUnavailable:
        size = familiarity.GUARD_IMAGE_SIZE
        try:
            made = familiarity.ensure(run, progress=progress)
            # The extractor is built now, with the guard, not when the first photo is waiting.
            extract(np.zeros((1, *size, 3), np.uint8), size)
        except familiarity.GuardUnavailable as error:
            return error
        except WeightsUnavailable as error:  # a guard saved while the weights were there
            return familiarity.GuardUnavailable(str(error))
        return made

    found = _guards.get((str(path.resolve()), stamp), make)
    if isinstance(found, familiarity.GuardUnavailable):
        raise familiarity.GuardUnavailable(str(found))
    return found


def unfamiliarity(run: Run, images: list[Image.Image | np.ndarray]) -> list[float] | None:
    """Each RGB image's unfamiliarity score (above familiarity.BORDER: unfamiliar); None without a guard."""
    try:
        run_guard = guard(run)
    except familiarity.GuardUnavailable:
        return None
    size = familiarity.GUARD_IMAGE_SIZE
    pixels = np.stack([to_model_input(image, size) for image in images])
    return run_guard.unfamiliarity(extract(pixels, size)).tolist()


def _unfamiliar(score: float | None) -> bool | None:
    return None if score is None else score > familiarity.BORDER


# --- one photo ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """A model's answer for one photo, and where it looked. Shared between sessions: read only."""

    photo: np.ndarray  # the photo as decoded: RGB, upright, at most 1024 px a side
    pixels: np.ndarray  # what the model sees: the photo at the model's input size
    probabilities: dict[str, float]
    label: str
    grad_cam: np.ndarray  # the Grad-CAM heat map for the label over the photo: RGB, the photo's size
    unfamiliarity: float | None  # see catdog.inference.familiarity; None when the run has no guard

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def unfamiliar(self) -> bool | None:
        return _unfamiliar(self.unfamiliarity)


def predict(run: Run, image: np.ndarray, flip_average: bool = False) -> dict[str, float]:
    """Class probabilities for one RGB image of any size, from the run's Keras model."""
    model = load_model(run)
    probs = probabilities(model, to_model_input(image, input_size(model))[None], flip_average)[0]
    return {name: float(p) for name, p in zip(class_names(run), probs)}


def predict_photo(run: Run, data: bytes, flip_average: bool = False) -> dict[str, float]:
    """Class probabilities for a photo's bytes (any supported format), decoded no larger than the
    model needs: a 12-megapixel JPEG at an eighth of its size, ten times faster. ImageError if unusable."""
    size, classify = _classifier(run, flip_average)
    pixels = to_model_input(open_image(data, draft=size[::-1]), size)[None]
    return dict(zip(class_names(run), classify(pixels)[0].tolist()))


def _classifier(run: Run, flip_average: bool) -> tuple[tuple[int, int], Callable[[np.ndarray], np.ndarray]]:
    """The run's input size, and pixels (N, H, W, 3) → class probabilities (N, classes).

    A fast-path run's head answers on ONNX Runtime's backbone features (catdog.fast.backbone), which
    agree with Keras's: a third of Keras's time for one photo. Any other run: its Keras model.
    """
    size = image_size(run.config)
    extract_features = backbone.extractor(size)
    trained = _current(run, lambda version: _head_at(run, version))
    if trained is None or extract_features is None:
        model = load_model(run)
        return input_size(model), lambda pixels: probabilities(model, pixels, flip_average)

    def classify(pixels: np.ndarray) -> np.ndarray:
        views = (pixels, pixels[:, :, ::-1]) if flip_average else (pixels,)
        return np.mean([_softmax(trained.logits(extract_features(view))) for view in views], axis=0)

    return size, classify


def _softmax(logits: np.ndarray) -> np.ndarray:
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def _head_at(run: Run, version: int) -> head.Head | None:
    """The fast path's head of exactly this model version, read once; None for a whole Keras model."""

    def load() -> head.Head | None:
        trained = head.load(run.model_path)
        if model_version(run) != version:
            raise _ModelChanged
        return trained

    return _heads.get((str(run.model_path.resolve()), version), load)


def analyse_photo(run: Run, data: bytes, flip_average: bool = False) -> Prediction:
    """A photo's bytes (any supported format) answered and explained; ImageError if unusable."""
    photo = load_image(data)
    # Decoded and answered as answer_photos does (a big JPEG at a fraction of its scale; a fast-path
    # run's head on ONNX Runtime's features), so that this answer and the same photo's row in a
    # table or line from the CLI agree; the Keras model is needed only for Grad-CAM.
    size, classify = _classifier(run, flip_average)
    seen = open_image(data, draft=max(size, familiarity.GUARD_IMAGE_SIZE)[::-1])
    pixels = to_model_input(seen, size)
    probs = dict(zip(class_names(run), classify(pixels[None])[0].tolist()))
    label = max(probs, key=probs.get)
    from catdog.inference import gradcam

    heat = gradcam.grad_cam(load_model(run), pixels, list(probs).index(label))
    score = unfamiliarity(run, [seen])
    return Prediction(photo, pixels, probs, label, gradcam.overlay(photo, heat), score[0] if score else None)


# --- many photos -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoAnswer:
    """One row of a table of many photos' answers: the answer, or why there is none."""

    file: str
    probabilities: dict[str, float] | None = None
    unfamiliarity: float | None = None
    error: str | None = None

    @property
    def label(self) -> str | None:
        return max(self.probabilities, key=self.probabilities.get) if self.probabilities else None

    @property
    def confidence(self) -> float | None:
        return self.probabilities[self.label] if self.probabilities else None

    @property
    def unfamiliar(self) -> bool | None:
        return _unfamiliar(self.unfamiliarity)

    def to_dict(self) -> dict:
        """`catdog predict`'s JSON line."""
        if self.error is not None:
            return {"file": self.file, "error": self.error}
        return {
            "file": self.file, "label": self.label, "probabilities": self.probabilities,
            "unfamiliar": self.unfamiliar, "unfamiliarity": self.unfamiliarity,
        }

    def row(self) -> dict:
        """The table's and the CSV file's row: one per photo, errors included."""
        return {
            "file": self.file, "label": self.label, "confidence": self.confidence,
            "unfamiliar": self.unfamiliar, "unfamiliarity": self.unfamiliarity, "error": self.error,
        }


CSV_COLUMNS = tuple(PhotoAnswer("").row())


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(answers: Iterable[PhotoAnswer], out) -> None:
    """Answers as CSV, a header and then one row as each answer comes: what `predict --csv`
    prints and the Predict page downloads. Empty cells where there is no value; text cells that
    a spreadsheet would run as a formula (a file named `=HYPERLINK(...)`) start with a quote."""
    # CSV's own line end, CRLF: the writer then quotes a cell with a CR in it, which would otherwise
    # end the row early and start a forged one.
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for answer in answers:
        writer.writerow({key: _cell(value) for key, value in answer.row().items()})
        out.flush()


def _cell(value: object) -> object:
    """A value as a spreadsheet must read it: text as text, numbers (negative ones too) as numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


Photo = tuple[str, Callable[[], bytes]]


def photos_of(name: str, source: bytes | os.PathLike) -> Iterator[Photo]:
    """An upload's bytes or a file, or each file of a zip (known by its content), as the
    (name, read) pairs answer_photos takes; a zip's files are named NAME/PATH. A zip is read
    through archives.zip_members, member by member, never unpacked: read() raises ImageError for
    its skipped entries and for a zip refused as a whole, so each is a row with the reason."""
    if not _is_zip(source):
        yield name, (lambda: source) if isinstance(source, bytes) else (lambda: read_upload(Path(source)))
        return
    try:
        members = zip_members(source)
    except ArchiveError as error:
        yield name, _refused(str(error))
        return
    for entry in members:
        if isinstance(entry, Member):
            yield f"{name}/{entry.path}", lambda data=entry.data: data
        else:
            yield f"{name}/{entry.name}", _refused(entry.reason)


def _is_zip(source: bytes | os.PathLike) -> bool:
    if isinstance(source, bytes):
        return is_zip(source)
    try:
        with open(source, "rb") as file:
            return is_zip(file.read(4))
    except OSError:  # reading it as a photo then says why, in its row
        return False


def _refused(reason: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise ImageError(reason)

    return read


def _read_photo(read: Callable[[], bytes], size: tuple[int, int]) -> Image.Image | str:
    """The photo decoded no smaller than size (a big JPEG at a fraction of its scale), or the
    one-line reason it cannot be used."""
    try:
        return open_image(read(), draft=size[::-1])
    except ImageError as error:
        return str(error)
    except OSError as error:
        return error.strerror or str(error)


def answer_photos(
    run: Run, photos: Iterable[tuple[str, Callable[[], bytes]]], flip_average: bool = False
) -> Iterator[PhotoAnswer]:
    """An answer for each (name, read) in order, read() giving the photo's bytes; a photo that
    cannot be read or decoded answers with the reason. Photos are answered ANSWER_BATCH at a time,
    each read and decoded (reduced as it is) before the next is read, so only one photo's bytes
    are ever held: a long list, or a zip of big photos, needs little memory."""
    (size, classify), classes = _classifier(run, flip_average), class_names(run)
    # Decoded large enough for the guard's features too.
    decode_size = max(size, familiarity.GUARD_IMAGE_SIZE)
    photos = iter(photos)
    while decoded := [(name, _read_photo(read, decode_size)) for name, read in itertools.islice(photos, ANSWER_BATCH)]:
        images = [image for _, image in decoded if not isinstance(image, str)]
        if images:
            probs = classify(np.stack([to_model_input(image, size) for image in images]))
            scores = unfamiliarity(run, images) or [None] * len(images)
            answered = iter(zip(probs, scores))
        for name, image in decoded:
            if isinstance(image, str):
                yield PhotoAnswer(name, error=image)
                continue
            p, score = next(answered)
            yield PhotoAnswer(name, {c: float(v) for c, v in zip(classes, p)}, score)


def answered_batch(
    run: Run,
    digest: str,
    photos: Iterable[tuple[str, Callable[[], bytes]]],
    flip_average: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[PhotoAnswer, ...]:
    """answer_photos's answers, kept per server under the caller's digest of the photos and the
    model version: a page rerun, or another session with the same photos, is answered at once.
    progress(done) follows the first asker's work."""

    def answer() -> tuple[PhotoAnswer, ...]:
        answers = []
        for answer in answer_photos(run, photos, flip_average):
            answers.append(answer)
            if progress:
                progress(len(answers))
        return tuple(answers)

    return _batches.get((str(run.path.resolve()), model_version(run), flip_average, digest), answer)


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
    test_key: str = ""  # the scored test photos' content (Scan.content_key)
    gone: int = 0  # the run's test photos no longer in its data folder, so not scored

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
            "test_key": self.test_key,
            "gone": self.gone,
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
            test_key=str(data.get("test_key", "")),
            gone=int(data.get("gone", 0)),
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


def evaluate(run: Run, flip_average: bool = False, data: Scan | None = None) -> Evaluation:
    """Accuracy, per-class scores, confusion matrix and per-photo answers on the test split.

    The test split is the one the run recorded when it trained (see `as_trained`), so its files
    are disjoint from the ones the run trained and validated on, whatever changed since. Made once
    per saved model version, setting and test photos, for every session, and kept on disk beside
    the model. `data`: the run's data folder as scanned now, if the caller has it.
    """
    path = run.evaluation_path(flip_average)
    trained, gone = as_trained(run, data)
    test_key = trained.content_key("test")

    def saved_or_scored(version: int) -> Evaluation:
        saved = Evaluation.load(path)
        if saved is not None and (saved.model_mtime_ns, saved.test_key) == (version, test_key):
            return saved
        evaluation = _score(run, version, flip_average, trained, gone["test"])
        evaluation.save(path)
        return evaluation

    key = (str(path.resolve()), test_key)
    return _current(run, lambda version: _evaluations.get((*key, version), lambda: saved_or_scored(version)))


def _score(run: Run, version: int, flip_average: bool, data: Scan, gone: int) -> Evaluation:
    start = time.perf_counter()
    classes = class_names(run)
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
        test_key=data.content_key("test"),
        gone=gone,
    )


# --- the training photos the model disputes ---------------------------------------------------


@dataclass(frozen=True)
class Suspect:
    """A training photo and how strongly the model disagrees with its label."""

    file: str
    label: str
    predicted: str
    confidence: float  # the model's probability for `predicted`
    loss: float  # the label's cross-entropy: high when the model is sure of another class


def top_losses(run: Run, data: Scan, count: int) -> list[Suspect]:
    """The run's training photos still in `data` (its data folder as scanned now) ranked by the
    model's loss on their labels, highest first: mislabeled photos rise to the top (the model
    learned their class from all the others). A fast-path run's photos are scored out of fold
    (see `_out_of_fold`); any other run's by its own model, which has seen them.

    Ranked once per model version and training-split content, for every session. Each photo's
    probabilities are kept per model version and photo content, in memory and beside the model,
    so after a photo is moved or removed only photos new to the split are scored again.
    """
    classes = class_names(run)
    if data.classes != classes:
        raise RunError(f"run {run.id} knows the classes {', '.join(classes)}; this data set has {', '.join(data.classes)}")
    data, _ = as_trained(run, data)
    key = (str(run.photo_scores_path.resolve()), data.content_key("train"))
    ranked = _current(run, lambda version: _rankings.get((*key, version), lambda: _rank(run, version, data)))
    return ranked[:count]


def _rank(run: Run, version: int, data: Scan) -> list[Suspect]:
    classes, scores = list(data.classes), _scores_at(run, version)
    train = data.files["train"]
    missing = [i for i, (name, _) in enumerate(train) if data.digests[name] not in scores]
    if missing:
        if _head_at(run, version) is not None and backbone.available():
            missing, answered = range(len(train)), _out_of_fold(run, data)
        else:
            model = _model_at(run, version)
            answered = probabilities(model, data.arrays("train", missing, size=input_size(model))[0])
        for i, probs in zip(missing, answered):
            scores[data.digests[train[i][0]]] = [float(p) for p in probs]
        write_json_atomic(run.photo_scores_path, {"model_mtime_ns": version, "probabilities": dict(scores)})
        log.info("run %s: scored %d training photos for top losses", run.id, len(missing))
    suspects = []
    for name, label in train:
        probs = np.asarray(scores[data.digests[name]])
        guess = int(probs.argmax())
        loss = max(0.0, float(-np.log(max(probs[label], 1e-7))))  # never shown as -0.00
        suspects.append(Suspect(name, classes[label], classes[guess], float(probs[guess]), loss))
    return sorted(suspects, key=lambda suspect: -suspect.loss)


# Heads trained to score each training photo without it: 4/5 of the photos teach each one.
FOLDS = 5


def _out_of_fold(run: Run, data: Scan) -> np.ndarray:
    """Each training photo's probabilities from a head trained as the run's was, on the other
    folds only. The run's own head learns its training photos by heart (training accuracy 1.0),
    a planted dog in cats/ included, so its loss there says nothing; a head that never saw the
    photo answers from what the rest of the class looks like. Cheap on the cached features."""
    cfg = run.config
    cache = FeatureCache(data, image_size(cfg))
    (x, y), (x_val, y_val) = cache.features("train"), cache.features("validation")
    fold = np.random.default_rng(int(cfg["seed"])).permutation(len(y)) % FOLDS
    probs = np.zeros((len(y), len(data.classes)), np.float32)
    for k in range(FOLDS):
        held = fold == k
        if held.any():
            trained, _ = head.train(
                x[~held], y[~held], x_val, y_val, len(data.classes), int(cfg["epochs"]), int(cfg["batch_size"]),
                float(cfg["learning_rate"]), int(cfg["seed"]) + k, lambda *_: None, lambda *_: None,
            )
            probs[held] = _softmax(trained.logits(x[held]))
    return probs


def _scores_at(run: Run, version: int) -> dict[str, list[float]]:
    """Photo content digest → class probabilities for this model version (saved ones, if current)."""

    def saved() -> dict[str, list[float]]:
        recorded = read_json(run.photo_scores_path)
        current = isinstance(recorded, dict) and recorded.get("model_mtime_ns") == version
        return dict(recorded.get("probabilities") or {}) if current else {}

    return _photo_scores.get((str(run.photo_scores_path.resolve()), version), saved)


# --- a map of the data ------------------------------------------------------------------------

MAP_SPLITS = ("test", "train")
# The side of the photos a map shows on hover: a few kB each, as every browser that draws it gets them all.
MAP_THUMBNAIL_SIDE = 64


@dataclass(frozen=True, eq=False)
class DataMap:
    """The test and training photos placed by their MobileNetV2 features, projected onto the
    plane of the training features' two largest variations (PCA), with the run's answers.
    Shared between sessions: read only."""

    photos: tuple[ImageResult, ...]
    splits: tuple[str, ...]
    xy: np.ndarray  # (photos, 2)
    explained: tuple[float, float]  # the share of the features' variance along each axis
    thumbnails: tuple[str, ...]  # each photo as a small JPEG data URL (MAP_THUMBNAIL_SIDE px)


def pca_plane(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """The mean, the two principal axes (rows) and the share of the variance each explains."""
    mean = features.mean(axis=0)
    _, singular, axes = np.linalg.svd(features - mean, full_matrices=False)
    variance = singular**2 / max(float((singular**2).sum()), 1e-12)
    return mean, axes[:2], (float(variance[0]), float(variance[1]))


def data_map(run: Run, progress: familiarity.Progress | None = None, data: Scan | None = None) -> DataMap:
    """The map, made once per saved model version and photos for every session: the test answers
    come from `evaluate`, the training answers from the per-photo scores `top_losses` keeps, the
    features from the shared feature cache (the guard's), the plane from the training features.
    The photos are the run's own (see `as_trained`); `data`: its data folder as scanned now, if
    the caller has it."""
    data, _ = as_trained(run, data)

    def make() -> DataMap:
        cache = FeatureCache(data, familiarity.GUARD_IMAGE_SIZE, progress)
        features = {split: cache.features(split)[0] for split in MAP_SPLITS}
        mean, axes, explained = pca_plane(features["train"])
        photos, splits, blocks = [], [], []
        for split in MAP_SPLITS:
            answered = _answers(run, data, split)
            photos += answered
            splits += [split] * len(answered)
            blocks.append(features[split])
        xy = (np.concatenate(blocks) - mean) @ axes.T
        # Decoded at the thumbnail's size (a JPEG at the smallest DCT scale that covers it), on every core.
        side = (MAP_THUMBNAIL_SIDE, MAP_THUMBNAIL_SIDE)
        small = np.concatenate([data.arrays(split, size=side)[0] for split in MAP_SPLITS])
        thumbnails = tuple(data_url(pixels, MAP_THUMBNAIL_SIDE) for pixels in small)
        return DataMap(tuple(photos), tuple(splits), xy, explained, thumbnails)

    key = (str(run.path.resolve()), *(data.content_key(split) for split in MAP_SPLITS))
    return _current(run, lambda version: _maps.get((*key, version), make))


def _answers(run: Run, data: Scan, split: str) -> list[ImageResult]:
    """The run's answers on a split, in the split's order. Training photos are answered from the
    same per-photo scores as top losses, so a fix to the data set rescores only new photos."""
    if split == "test":
        return list(evaluate(run, data=data).images)
    train = data.files["train"]
    by_file = {suspect.file: suspect for suspect in top_losses(run, data, len(train))}
    return [ImageResult(s.file, s.label, s.predicted, s.confidence) for s in (by_file[name] for name, _ in train)]


# --- export --------------------------------------------------------------------------------


def _float32_twin(model: "keras.Model") -> "keras.Model":
    """The model computing in float32: TensorFlow Lite has no bfloat16 kernels, and a model trained
    in mixed precision keeps float32 weights, so the twin takes them as they are."""
    config = model.get_config()
    if "mixed_" not in json.dumps(config):
        return model

    def float32(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy":
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {key: float32(value) for key, value in node.items()}
        return [float32(value) for value in node] if isinstance(node, list) else node

    twin = model.__class__.from_config(float32(config))
    twin.set_weights(model.get_weights())
    return twin


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

        converted = tf.lite.TFLiteConverter.from_keras_model(_float32_twin(_model_at(run, version))).convert()
        write_bytes_atomic(path, converted, mtime_ns=version)
        log.info("run %s: converted to TensorFlow Lite (%d bytes)", run.id, len(converted))
        return converted

    key = str(path.resolve())
    return _current(run, lambda version: _tflite.get((key, version), lambda: saved_or_converted(version)))
