"""A run's scores on the held-out test split: accuracy, per-class scores, the confusion matrix
and each test photo's answer, kept beside the model."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.data.scan import Scan
from catdog.inference.answers import class_names, input_size, probabilities
from catdog.inference.lineage import as_trained
from catdog.inference.loading import at_current_version, model_at
from catdog.inference.once import OncePerKey
from catdog.messages import N_, Message
from catdog.runs.record import Run
from catdog.runs.states import RunError
from catdog.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)
_evaluations = OncePerKey(size=16)


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
    return at_current_version(run, lambda version: _evaluations.get((*key, version), lambda: saved_or_scored(version)))


def _score(run: Run, version: int, flip_average: bool, data: Scan, gone: int) -> Evaluation:
    start = time.perf_counter()
    classes = class_names(run)
    if data.classes != classes:
        raise RunError(
            Message(
                "the data folder's classes changed since run {id} trained: {classes}",
                id=run.id,
                classes=", ".join(data.classes),
            )
        )
    model = model_at(run, version)
    pixels, labels = data.arrays("test", size=input_size(model))
    if not len(labels):
        raise RunError(Message(N_("the test split is empty")))
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
