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

import keras
import numpy as np
import tensorflow as tf

from catdog import config
from catdog.augment import AugmentConfig, build_augmentation
from catdog.data import Scan
from catdog.models import ImageSize, build_backbone, build_head, preprocess_input
from catdog.storage import save_npy_atomic

BATCH = 64
# Bump when the extractor changes, so stale features are never reused.
EXTRACTOR_VERSION = 1
Progress = Callable[[int, int], None]


def build_extractor(image_size: ImageSize = config.IMAGE_SIZE) -> keras.Model:
    """Pixels in, model4's pooled backbone features out: everything below its trainable head."""
    inputs = keras.Input(shape=(*image_size, 3))
    x = build_backbone(image_size)(preprocess_input()(inputs), training=False)
    return keras.Model(inputs, keras.layers.GlobalMaxPooling2D(name="pool")(x), name="extractor")


def build_head_model(num_features: int, num_classes: int) -> keras.Model:
    """model4's head alone, with the same layer names, so its weights drop into model4."""
    inputs = keras.Input(shape=(num_features,), name="features")
    return keras.Model(inputs, build_head(inputs, num_classes), name="head")


def copy_head_weights(head: keras.Model, model: keras.Model) -> None:
    for name in ("head_dense", "logits"):
        model.get_layer(name).set_weights(head.get_layer(name).get_weights())


class FeatureCache:
    """Backbone features of a data set's splits, computed at most once per content."""

    def __init__(self, data: Scan, image_size: ImageSize = config.IMAGE_SIZE, progress: Progress | None = None):
        self.data, self.image_size, self.progress = data, tuple(image_size), progress
        self.root = config.cache_dir() / "features"
        self._extractor: keras.Model | None = None
        self._extract = None

    def _path(self, split: str, copy: int, augmentation: AugmentConfig | None) -> Path:
        key = json.dumps(
            [EXTRACTOR_VERSION, self.data.content_key(split), self.image_size, copy, augmentation and augmentation.to_dict()]
        )
        return self.root / f"{split}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"

    def features(
        self, split: str, copies: int = 0, augmentation: AugmentConfig | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features of a split's images, then of `copies` augmented versions, with their labels."""
        pixels, labels = self.data.arrays(split, size=self.image_size)
        blocks = []
        for copy in range(copies + 1):
            aug = augmentation if copy else None
            path = self._path(split, copy, aug)
            if not path.exists():
                self._compute(pixels, path, copy, aug)
            blocks.append(np.load(path))
        return np.concatenate(blocks), np.tile(labels, copies + 1)

    def _compute(self, pixels: np.ndarray, path: Path, copy: int, augmentation: AugmentConfig | None) -> None:
        if self._extractor is None:
            self._extractor = build_extractor(self.image_size)
            self._extract = tf.function(lambda x: self._extractor(x, training=False))
        layers = build_augmentation(dataclasses.replace(augmentation, seed=1000 + copy)) if augmentation else None
        out = []
        for start in range(0, len(pixels), BATCH):
            batch = tf.convert_to_tensor(np.asarray(pixels[start : start + BATCH], dtype=np.float32))
            if layers is not None:
                batch = layers(batch, training=True)
            out.append(self._extract(batch).numpy())
            if self.progress:
                self.progress(min(start + BATCH, len(pixels)), len(pixels))
        save_npy_atomic(path, np.concatenate(out) if out else np.zeros((0, 1280), np.float32))


_extractors: dict[ImageSize, keras.Model] = {}
_extractors_lock = threading.Lock()


def extract(pixels: np.ndarray, image_size: ImageSize = config.IMAGE_SIZE) -> np.ndarray:
    """Pooled backbone features of a non-empty batch of pixel arrays at image_size, as FeatureCache
    makes them for a data set; the extractor is built once per size and process, for every session."""
    with _extractors_lock:
        if image_size not in _extractors:
            _extractors[image_size] = build_extractor(image_size)
        extractor = _extractors[image_size]
    batches = [np.asarray(pixels[start : start + BATCH], np.float32) for start in range(0, len(pixels), BATCH)]
    return np.concatenate([extractor.predict_on_batch(batch) for batch in batches])
