"""A map of the data: the run's test and training photos placed by their features, with its answers."""

from dataclasses import dataclass

import numpy as np

from catdog.data.images import data_url
from catdog.data.scan import Scan
from catdog.fast.features import FeatureCache
from catdog.inference import familiarity
from catdog.inference.evaluation import ImageResult, evaluate
from catdog.inference.lineage import as_trained
from catdog.inference.loading import at_current_version
from catdog.inference.once import OncePerKey
from catdog.inference.top_losses import top_losses
from catdog.runs.record import Run

_maps = OncePerKey(size=4)


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
    return at_current_version(run, lambda version: _maps.get((*key, version), make))


def _answers(run: Run, data: Scan, split: str) -> list[ImageResult]:
    """The run's answers on a split, in the split's order. Training photos are answered from the
    same per-photo scores as top losses, so a fix to the data set rescores only new photos."""
    if split == "test":
        return list(evaluate(run, data=data).images)
    train = data.files["train"]
    by_file = {suspect.file: suspect for suspect in top_losses(run, data, len(train))}
    return [ImageResult(s.file, s.label, s.predicted, s.confidence) for s in (by_file[name] for name, _ in train)]
