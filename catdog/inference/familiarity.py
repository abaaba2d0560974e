"""The unfamiliarity guard: "this doesn't look like anything I was trained on".

A classifier always answers with one of its classes, however unlike its training photos a photo
is. The guard measures that unlikeness apart from the classifier, on MobileNetV2's pooled
ImageNet features, so it works the same for every architecture. A photo's score is the larger of
two distances to the training photos, each divided by the distance SCALE_SHARE of the validation
photos stay within: the cosine distance to the nearest training photo's features, and the cosine
distance to the NEIGHBOURS-th nearest once all features are centred on the training mean. The
first tells photos whose features barely fire (text, screens, textures); the second photos that
fire like the average pet photo but differ from it as no pet does (people, objects). The border,
1.0, is set on validation photos, never trained on, so that on average at most FALSE_FLAG_SHARE of
ordinary photos of the trained classes score above it (the conformal rank: exact for any score).

Chosen on cats_and_dogs_filtered at 160 px, with non-pets kept apart from the ones
benchmarks/unfamiliar.py reports: at the 1 % border the plain distance alone flagged 84 % of
faces, the centred one alone 5 % of pages of text, the two together 94 % and 100 %; the 5th
neighbour's plain distance (guard version 1) 58 % of faces; whitened distances fewer still.
"""

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np

from catdog import config
from catdog.data.errors import DataError
from catdog.data.scan import Scan
from catdog.inference.lineage import as_trained
from catdog.messages import N_, Message
from catdog.progress import Progress
from catdog.runs.record import Run
from catdog.storage import write_bytes_atomic

# The scan's own size: its decoded pixels and the fast path's cached features serve the guard.
GUARD_IMAGE_SIZE = config.IMAGE_SIZE
# The centred distance's neighbour: a few, so that one odd training photo does not make its
# look familiar; the plain distance takes the nearest, which tells text and textures best.
NEIGHBOURS = 5
# Each distance is divided by the one this share of the validation photos stay within, so that
# the two are on one scale before the larger is taken.
SCALE_SHARE = 0.95
# At most this share of ordinary photos of the trained classes is called unfamiliar, on average.
FALSE_FLAG_SHARE = 0.01
FAMILIAR_SHARE = 1 - FALSE_FLAG_SHARE
# Scores above this are unfamiliar.
BORDER = 1.0
# The training photos the guard keeps, drawn at random beyond this: 5 KB each in the run folder.
MAX_REFERENCE = 5000
# Bump when the guard's features or scores change, so older guard files are made again.
GUARD_VERSION = 2


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


def conformal_border(scores: np.ndarray, share: float) -> float:
    """The score that a new photo from the distribution of `scores` exceeds with probability at
    most `share`: the ceil((n + 1)(1 - share))-th smallest of n, or the largest when n is too few.
    A plain quantile is exceeded a little more often than `share` by photos not among `scores`."""
    ordered = np.sort(np.asarray(scores, np.float64))
    rank = int(np.ceil((len(ordered) + 1) * (1 - share)))
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass(frozen=True, eq=False)
class Guard:
    """A run's guard. Shared between sessions: read only."""

    reference: np.ndarray  # the training photos' features at unit length
    centred: np.ndarray  # the same, centred on their mean, at unit length
    mean: np.ndarray  # the training photos' mean features
    scales: np.ndarray  # the two distances' validation scales (SCALE_SHARE), times the border
    neighbours: int
    validation: np.ndarray  # the validation photos' scores, sorted: what the border came from

    @classmethod
    def fit(cls, train: np.ndarray, validation: np.ndarray, neighbours: int = NEIGHBOURS, seed: int = 0) -> "Guard":
        """Training features are the reference; validation features, never trained on, set the border."""
        if not len(train) or not len(validation):
            raise GuardUnavailable(Message(N_("the guard needs training and validation photos")))
        if len(train) > MAX_REFERENCE:
            train = train[np.sort(np.random.default_rng(seed).choice(len(train), MAX_REFERENCE, replace=False))]
        train = np.asarray(train, np.float32)
        mean = train.mean(axis=0)
        guard = cls(unit(train), unit(train - mean), mean, np.ones(2, np.float32), neighbours, np.zeros(0))
        distances = guard.distances(validation)
        scales = np.maximum(np.quantile(distances, SCALE_SHARE, axis=0), 1e-6)
        scores = np.max(distances / scales, axis=1)
        scales = scales * max(conformal_border(scores, FALSE_FLAG_SHARE), 1e-6)
        return cls(
            guard.reference,
            guard.centred,
            mean,
            scales.astype(np.float32),
            neighbours,
            np.sort(np.max(distances / scales, axis=1)),
        )

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(N, 2): each photo's plain cosine distance to its nearest training photo, and its centred
        one to its neighbours-th nearest."""
        features = np.asarray(features, np.float32)
        return np.stack(
            [
                neighbour_distances(self.reference, features, 1),
                neighbour_distances(self.centred, features - self.mean, self.neighbours),
            ],
            axis=1,
        )

    def unfamiliarity(self, features: np.ndarray) -> np.ndarray:
        """Each photo's score: above BORDER it lies farther from the training photos than all but
        FALSE_FLAG_SHARE of photos like the validation photos do."""
        return np.max(self.distances(features) / self.scales, axis=1)

    def statistics(self) -> dict:
        """What the guard was calibrated on, for people: counts and validation score quantiles."""
        share = lambda q: float(np.quantile(self.validation, q))
        return {
            "training_photos": len(self.reference),
            "validation_photos": len(self.validation),
            "neighbours": self.neighbours,
            "border_distances": self.scales.tolist(),
            "validation_median": share(0.5),
            "validation_flagged": float(np.mean(self.validation > BORDER)),
        }

    def save(self, path: Path) -> None:
        out = io.BytesIO()
        np.savez(
            # Half precision on disk: half the size, and distances change by under 0.1 %.
            out,
            version=GUARD_VERSION,
            reference=self.reference.astype(np.float16),
            centred=self.centred.astype(np.float16),
            mean=self.mean,
            scales=self.scales,
            neighbours=self.neighbours,
            validation=self.validation,
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
                return cls(
                    saved["reference"].astype(np.float32),
                    saved["centred"].astype(np.float32),
                    saved["mean"],
                    saved["scales"],
                    int(saved["neighbours"]),
                    saved["validation"],
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None


def fit_on(data: Scan, progress: Progress | None = None) -> Guard:
    """The guard of a data set's training and validation photos; their features come from the
    shared feature cache, computed there first if need be."""
    from catdog.fast.features import FeatureCache
    from catdog.models.model4 import WeightsUnavailable

    cache = FeatureCache(data, GUARD_IMAGE_SIZE, progress)
    try:
        train, _ = cache.features("train")
        validation, _ = cache.features("validation")
    except WeightsUnavailable as error:
        raise GuardUnavailable(*error.args) from None
    return Guard.fit(train, validation)


def ensure(run: Run, data: Scan | None = None, progress: Progress | None = None) -> Guard:
    """The run's guard, made from the photos it trained and validated on (catdog.inference.lineage.as_trained)
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
            raise GuardUnavailable(
                Message("the run's data folder cannot be read: {error}", error=error.args[0])
            ) from None
        guard = fit_on(data, progress)
        guard.save(path)
        return guard
