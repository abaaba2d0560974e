"""Data augmentation: the Keras layers an AugmentConfig (catdog.settings) trains with, and previews made by them."""

import keras
import numpy as np

from catdog.settings import FLIP_MODES, AugmentConfig


def build_augmentation(config: AugmentConfig = AugmentConfig()) -> keras.Sequential:
    """The augmentation block models train with; active only when called with training=True."""
    steps: list[keras.layers.Layer] = []
    if FLIP_MODES[config.flip]:
        steps.append(keras.layers.RandomFlip(FLIP_MODES[config.flip], seed=config.seed, name="flip"))
    if config.rotation != (0.0, 0.0):
        steps.append(
            keras.layers.RandomRotation(config.rotation, fill_mode=config.fill_mode, seed=config.seed, name="rotation")
        )
    return keras.Sequential(steps or [keras.layers.Identity()], name="augmentation")


def preview(
    image: np.ndarray, config: AugmentConfig, n: int = 8, seed: int = 0, repeated: bool = False
) -> np.ndarray:
    """n augmented copies (uint8), the same for the same seed.

    With repeated=True each copy is the layers applied to the previous copy, as the reference
    posts show it; otherwise each copy is an independent draw from the original.
    """
    layers = build_augmentation(AugmentConfig(config.flip, config.rotation, config.fill_mode, seed))
    image = np.asarray(image, dtype=np.float32)
    if repeated:
        copies, current = [], image[None]
        for _ in range(n):
            current = layers(current, training=True)
            copies.append(keras.ops.convert_to_numpy(current)[0])
        batch = np.stack(copies)
    else:
        batch = keras.ops.convert_to_numpy(layers(np.repeat(image[None], n, axis=0), training=True))
    return np.clip(batch, 0, 255).astype(np.uint8)


def augmentation_code(config: AugmentConfig) -> str:
    """Python that builds exactly this augmentation, for learners to copy."""
    lines = ["import keras", "", "augmentation = keras.Sequential(["]
    if FLIP_MODES[config.flip]:
        lines.append(f'    keras.layers.RandomFlip("{FLIP_MODES[config.flip]}"),')
    if config.rotation != (0.0, 0.0):
        low, high = config.rotation
        lines.append(f'    keras.layers.RandomRotation(({low:g}, {high:g}), fill_mode="{config.fill_mode}"),')
    if config.is_identity:
        lines.append("    keras.layers.Identity(),")
    lines.append('], name="augmentation")')
    return "\n".join(lines)
