"""The fast path for frozen-backbone models: compute MobileNetV2 features once, train the head.

With the backbone frozen, model4's output depends on an image only through the backbone's
pooled features, so the head can train on cached features instead of pushing every image
through MobileNetV2 each epoch. Augmentation cannot then happen per epoch; instead a few
augmented copies of each training image are made with the very same layers and their features
cached too. Features are cached on disk, keyed by the images' content, the backbone, the
image size and (for copies) the augmentation, so they are shared across runs and processes.
"""

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog import config
from catdog.data.scan import Scan
from catdog.fast import backbone
from catdog.models.model4 import MODEL_NAME, NAMES
from catdog.progress import Progress
from catdog.settings import SMALL_PHOTO_SIDES, AugmentConfig
from catdog.storage import save_npy_atomic

if TYPE_CHECKING:
    import keras

ImageSize = tuple[int, int]
BATCH = 32
# Photos decoded at a time for features: a few batches, so the progress bar moves while pixels
# that nothing else needs are never all held (or written) at once.
DECODE_CHUNK = 256
# Bump when the extractor changes, so stale features are never reused.
EXTRACTOR_VERSION = 1
# The draw of the small-photo copies' sides (RunConfig.small_photo_copies): the same for every run,
# so runs share the copies' cached features.
SMALL_COPY_SEED = 0


def build_extractor(image_size: ImageSize = config.IMAGE_SIZE) -> "keras.Model":
    """Pixels in, model4's pooled backbone features out: everything below its trainable head."""
    import keras

    from catdog.models.architectures import pooled_features, preprocess_input

    inputs = keras.Input(shape=(*image_size, 3))
    return keras.Model(inputs, pooled_features(preprocess_input()(inputs), image_size), name="extractor")


def build_head_model(num_features: int, num_classes: int) -> "keras.Model":
    """model4's head alone, with the same layer names, so its weights drop into model4."""
    import keras

    from catdog.models.architectures import build_head

    inputs = keras.Input(shape=(num_features,), name="features")
    return keras.Model(inputs, build_head(inputs, num_classes), name=MODEL_NAME)


def copy_head_weights(head: "keras.Model", model: "keras.Model") -> None:
    for name in NAMES:
        model.get_layer(name).set_weights(head.get_layer(name).get_weights())


def model4_with_head(head: "keras.Model", image_size: ImageSize) -> "keras.Model":
    """model4 around a head the fast path saved alone (catdog.fast.head): the frozen ImageNet backbone
    is the same for every run, so its 9 MB are not written with each."""
    from catdog.models.architectures import build

    model = build("model4", head.output_shape[-1], image_size=image_size)
    copy_head_weights(head, model)
    return model


def extract(
    pixels: np.ndarray,
    image_size: ImageSize = config.IMAGE_SIZE,
    progress: Progress | None = None,
    augmentation: AugmentConfig | None = None,
    int8: bool = False,
) -> np.ndarray:
    """Pooled backbone features (N, 1280) of 0..255 pixels (N, H, W, 3): the one way to get them.

    ONNX Runtime where it is installed (catdog.fast.backbone: no TensorFlow import, and about twice
    Keras's speed here), in int8 where asked (small-photo copies); Keras in float32 otherwise,
    and for augmented copies, whose random layers are Keras's.
    """
    run = None if augmentation else backbone.extractor(tuple(image_size), int8)
    layers = None
    if run is None:
        run, layers = _keras_extractor(tuple(image_size)), augmentation and _augmentation_layers(augmentation)
    out = []
    for start in range(0, len(pixels), BATCH):
        batch = np.asarray(pixels[start : start + BATCH], dtype=np.float32)
        if layers is not None:
            batch = layers(batch, training=True)
        out.append(np.asarray(run(batch)))
        if progress:
            progress(min(start + BATCH, len(pixels)), len(pixels))
    return np.concatenate(out) if out else np.zeros((0, backbone.FEATURES), np.float32)


_keras_extractors: dict[ImageSize, Callable] = {}
_keras_extractors_lock = threading.Lock()


def _keras_extractor(image_size: ImageSize) -> Callable:
    """The Keras extractor, built and traced once per size and process: sessions asking at once
    wait for the first one's, rather than each building MobileNetV2."""
    with _keras_extractors_lock:
        if image_size not in _keras_extractors:
            import tensorflow as tf

            model = build_extractor(image_size)
            _keras_extractors[image_size] = tf.function(lambda x: model(x, training=False))
        return _keras_extractors[image_size]


def _augmentation_layers(augmentation: AugmentConfig):
    from catdog.models.augmentation import build_augmentation

    return build_augmentation(augmentation)


class FeatureCache:
    """Backbone features of a data set's splits, computed at most once per content."""

    def __init__(self, data: Scan, image_size: ImageSize = config.IMAGE_SIZE, progress: Progress | None = None):
        self.data, self.image_size, self.progress = data, tuple(image_size), progress
        self.root = config.cache_dir() / "features"

    def _path(self, split: str, *variant) -> Path:
        key = json.dumps([EXTRACTOR_VERSION, self.data.content_key(split), self.image_size, *variant])
        return self.root / f"{split}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"

    def features(
        self, split: str, copies: int = 0, augmentation: AugmentConfig | None = None, small_copies: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features of a split's images, then of `copies` augmented versions, then (small_copies) of
        a small-upload version of each, with their labels. Pixels are decoded only for features not
        cached yet: that is most of a cold start."""
        blocks = []
        for copy in range(copies + 1):
            aug = dataclasses.replace(augmentation, seed=1000 + copy) if copy and augmentation else None
            path = self._path(split, copy, augmentation.to_dict() if copy and augmentation else None)
            if not path.exists():
                save_npy_atomic(path, self._extract(split, aug))
            blocks.append(np.load(path))
        if small_copies:
            # From the int8 backbone where ONNX Runtime is installed: half the time, and heads learnt
            # as well from them (catdog.fast.backbone._Int8Graph).
            int8 = backbone.available()
            path = self._path(split, "small", int8, SMALL_PHOTO_SIDES, SMALL_COPY_SEED)
            if not path.exists():
                save_npy_atomic(path, self._extract_small(split, int8))
            blocks.append(np.load(path))
        return np.concatenate(blocks), np.tile(self.data.labels(split), len(blocks))

    def _extract(self, split: str, augmentation: AugmentConfig | None) -> np.ndarray:
        if augmentation:
            # One pass, so the augmentation layers' random draws run on across batches.
            return extract(
                self.data.arrays(split, size=self.image_size)[0], self.image_size, self.progress, augmentation
            )
        return self._in_chunks(
            split, lambda picks: extract(self.data.arrays(split, picks, self.image_size)[0], self.image_size)
        )

    def _extract_small(self, split: str, int8: bool) -> np.ndarray:
        low, high = SMALL_PHOTO_SIDES
        sides = np.random.default_rng(SMALL_COPY_SEED).integers(low, high + 1, len(self.data.files[split])).tolist()
        return self._in_chunks(
            split,
            lambda picks: extract(self.data.shrunk(split, sides, self.image_size, picks), self.image_size, int8=int8),
        )

    def _in_chunks(self, split: str, features_of: Callable[[range], np.ndarray]) -> np.ndarray:
        count = len(self.data.files[split])
        blocks = []
        for start in range(0, count, DECODE_CHUNK):
            picks = range(start, min(start + DECODE_CHUNK, count))
            blocks.append(features_of(picks))
            if self.progress:
                self.progress(picks.stop, count)
        return np.concatenate(blocks) if blocks else np.zeros((0, backbone.FEATURES), np.float32)
