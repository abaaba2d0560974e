"""The unfamiliarity guard: "this doesn't look like anything I was trained on".

A classifier always answers with one of its classes, however unlike its training photos a photo
is. The guard measures that unlikeness apart from the classifier, on MobileNetV2's pooled
ImageNet features, so it works the same for every architecture: a photo's score is the cosine
distance from its features to those of its NEIGHBOURS-th nearest training photo, divided by the
distance that FAMILIAR_SHARE of the validation photos stay within. So 1.0 is the border, as
calibrated on photos the model never trained on: above it, the photo counts as unfamiliar.

Why nearest neighbours: on cats_and_dogs_filtered at 160 px they flagged 3 % of the held-out pet
photos and 94 % of photos that are no pets, where a Mahalanobis distance with a shrunk covariance
flagged 6.5-9 % and 70-75 % (benchmarks/unfamiliar.py).
"""

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np

from catdog import config
from catdog.data import DataError, Scan
from catdog.datasets import as_trained
from catdog.runs import Run
from catdog.storage import write_bytes_atomic

# The scan's own size: its decoded pixels and the fast path's cached features serve the guard.
GUARD_IMAGE_SIZE = config.IMAGE_SIZE
NEIGHBOURS = 5
FAMILIAR_SHARE = 0.95
# Scores above this are unfamiliar: the distance FAMILIAR_SHARE of validation photos stay within.
BORDER = 1.0
# The training photos the guard keeps, drawn at random beyond this: a few MB in the run folder.
MAX_REFERENCE = 5000
# Bump when the guard's features or scores change, so older guard files are made again.
GUARD_VERSION = 1

Progress = Callable[[int, int], None]


class GuardUnavailable(RuntimeError):
    """The guard cannot be made (no backbone weights, no data); the message is one line."""


def unit(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def neighbour_distances(reference: np.ndarray, features: np.ndarray, neighbours: int) -> np.ndarray:
    """Cosine distance from each row of features to its neighbours-th nearest reference row
    (reference rows already of unit length)."""
    k = min(neighbours, len(reference))
    similarity = unit(features) @ np.asarray(reference, np.float32).T
    return 1.0 - np.partition(similarity, -k, axis=1)[:, -k]


@dataclass(frozen=True, eq=False)
class Guard:
    """A run's guard. Shared between sessions: read only."""

    reference: np.ndarray  # the training photos' features at unit length
    threshold: float  # the distance FAMILIAR_SHARE of the validation photos stay within
    neighbours: int
    validation: np.ndarray  # the validation photos' scores, sorted: what the threshold came from

    @classmethod
    def fit(cls, train: np.ndarray, validation: np.ndarray, neighbours: int = NEIGHBOURS, seed: int = 0) -> "Guard":
        """Training features are the reference; validation features, never trained on, set the border."""
        if not len(train) or not len(validation):
            raise GuardUnavailable("the guard needs training and validation photos")
        if len(train) > MAX_REFERENCE:
            train = train[np.sort(np.random.default_rng(seed).choice(len(train), MAX_REFERENCE, replace=False))]
        reference = unit(train)
        distances = neighbour_distances(reference, validation, neighbours)
        threshold = max(float(np.quantile(distances, FAMILIAR_SHARE)), 1e-6)
        return cls(reference, threshold, neighbours, np.sort(distances / threshold))

    def unfamiliarity(self, features: np.ndarray) -> np.ndarray:
        """Each photo's score: above BORDER it lies farther from the training photos than
        FAMILIAR_SHARE of the validation photos do."""
        return neighbour_distances(self.reference, features, self.neighbours) / self.threshold

    def statistics(self) -> dict:
        """What the guard was calibrated on, for people: counts and validation score quantiles."""
        share = lambda q: float(np.quantile(self.validation, q))
        return {
            "training_photos": len(self.reference),
            "validation_photos": len(self.validation),
            "neighbours": self.neighbours,
            "threshold_distance": self.threshold,
            "validation_median": share(0.5),
            "validation_flagged": float(np.mean(self.validation > BORDER)),
        }

    def save(self, path: Path) -> None:
        out = io.BytesIO()
        np.savez(
            # Half precision on disk: half the size, and distances change by under 0.1 %.
            out, version=GUARD_VERSION, reference=self.reference.astype(np.float16), threshold=self.threshold,
            neighbours=self.neighbours, validation=self.validation,
        )
        write_bytes_atomic(path, out.getvalue())

    @classmethod
    def load(cls, path: Path) -> "Guard | None":
        """The saved guard; None when it is missing, damaged or from another guard version."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                if int(saved["version"]) != GUARD_VERSION:
                    return None
                # Single precision in memory: a photo's distances take a quarter of the time.
                reference = saved["reference"].astype(np.float32)
                return cls(reference, float(saved["threshold"]), int(saved["neighbours"]), saved["validation"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None


def fit_on(data: Scan, progress: Progress | None = None) -> Guard:
    """The guard of a data set's training and validation photos; their features come from the
    shared feature cache, computed there first if need be."""
    from catdog.backbone import WeightsUnavailable
    from catdog.features import FeatureCache

    cache = FeatureCache(data, GUARD_IMAGE_SIZE, progress)
    try:
        train, _ = cache.features("train")
        validation, _ = cache.features("validation")
    except WeightsUnavailable as error:
        raise GuardUnavailable(str(error)) from None
    return Guard.fit(train, validation)


def ensure(run: Run, data: Scan | None = None, progress: Progress | None = None) -> Guard:
    """The run's guard, made from the photos it trained and validated on (datasets.as_trained)
    and saved with the run when it has none yet.

    Training makes it at its end; a run trained before the guard existed gets it on first use.
    It depends on the training photos, not the model's weights, so it is made once per run. The
    dashboard, the command line and training may ask at once: a file lock lets one of them make it.
    """
    path = run.familiarity_path
    if guard := Guard.load(path):
        return guard
    with filelock.FileLock(path.with_name(f".{path.name}.lock")):
        if guard := Guard.load(path):
            return guard
        try:
            data = data or as_trained(run)[0]
        except DataError as error:
            raise GuardUnavailable(f"the run's data folder cannot be read: {error}") from None
        guard = fit_on(data, progress)
        guard.save(path)
        return guard

