"""Data augmentation: the Keras layers an AugmentConfig (catdog.settings) trains with, and previews made by them."""

import dataclasses
import math

import keras
import numpy as np

from catdog.config import BATCH_SIZE
from catdog.data.scan import Scan
from catdog.messages import N_, Message, Messages
from catdog.settings import FLIP_MODES, AugmentConfig

PIXEL_RANGE = (0, 255)


def _layer_specs(config: AugmentConfig, value_range: tuple[float, float]) -> list[tuple[str, str, dict]]:
    """(name, keras.layers class, arguments) of each chosen layer, in the one order they run.

    Geometry, then colour; one list, so the built block and the code shown to learners cannot
    disagree.
    """
    zoom, shift, fill = config.zoom, config.translation, {"fill_mode": config.fill_mode}
    chosen = [
        ("flip", "RandomFlip", {"mode": FLIP_MODES[config.flip]}, FLIP_MODES[config.flip]),
        ("rotation", "RandomRotation", {"factor": config.rotation, **fill}, config.rotation != (0.0, 0.0)),
        ("zoom", "RandomZoom", {"height_factor": (-zoom, zoom), **fill}, zoom),
        ("translation", "RandomTranslation", {"height_factor": shift, "width_factor": shift, **fill}, shift),
        ("grayscale", "RandomGrayscale", {"factor": config.grayscale}, config.grayscale),
        # As a pair: Keras 3 reads a single contrast factor f as 1 .. 1 + f, never lowering the contrast.
        ("contrast", "RandomContrast", {"factor": (config.contrast,) * 2, "value_range": value_range}, config.contrast),
        (
            "brightness",
            "RandomBrightness",
            {"factor": config.brightness, "value_range": value_range},
            config.brightness,
        ),
    ]
    return [(name, cls, kwargs) for name, cls, kwargs, on in chosen if on]


def build_augmentation(
    config: AugmentConfig = AugmentConfig(), value_range: tuple[float, float] = PIXEL_RANGE
) -> keras.Sequential:
    """The augmentation block models train with; active only when called with training=True.

    value_range is the range of the pixels it gets: colour layers clip to it.
    """
    # One seed per layer: layers seeded alike draw alike, and every flipped copy would turn the same way.
    steps = [
        getattr(keras.layers, cls)(**kwargs, seed=None if config.seed is None else config.seed + 1000 * i, name=name)
        for i, (name, cls, kwargs) in enumerate(_layer_specs(config, value_range))
    ]
    return keras.Sequential(steps or [keras.layers.Identity()], name="augmentation")


def augmentation_code(config: AugmentConfig) -> str:
    """Python that builds exactly this augmentation, for learners to copy."""
    lines = ["import keras", "", "augmentation = keras.Sequential(["]
    for _, cls, kwargs in _layer_specs(config, PIXEL_RANGE):
        # 0..255 is Keras' own default: learners augment photos as loaded.
        kwargs = {key: value for key, value in kwargs.items() if key != "value_range"}
        lines.append(f"    keras.layers.{cls}({', '.join(_argument(key, value) for key, value in kwargs.items())}),")
    if config.is_identity:
        lines.append("    keras.layers.Identity(),")
    lines.append('], name="augmentation")')
    return "\n".join(lines)


def _argument(key: str, value) -> str:
    if isinstance(value, tuple):
        text = f"({value[0]:g}, {value[1]:g})"
    else:
        text = f'"{value}"' if isinstance(value, str) else f"{value:g}"
    # The first argument reads best positionally, as the Keras docs write it.
    return text if key in ("mode", "factor", "height_factor") else f"{key}={text}"


# --- what each tile went through ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Draw:
    """What the layers did to one tile, read from the very transformation they applied.

    Geometry is about the photo's centre in pixels (x right, y down); after "apply again" it is
    the total, as one flip, turn, zoom and shift in the layers' order.
    """

    flip_horizontal: bool = False
    flip_vertical: bool = False
    angle: float = 0.0  # degrees, anticlockwise
    scale: float = 1.0  # the photo's apparent size: RandomZoom's factor z shows it at 1 / z
    shift: tuple[float, float] = (0.0, 0.0)  # pixels right and down
    grey: bool = False
    contrast: float = 1.0  # spread of the pixel values about their mean
    brightness: float = 0.0  # added to every 0..255 value

    def then(self, step: "Draw") -> "Draw":
        """This draw followed by step: a flip mirrors the turn and shift before it, a turn and zoom move the shift."""
        mirror = (-1 if step.flip_horizontal else 1, -1 if step.flip_vertical else 1)
        angle = self.angle if mirror[0] == mirror[1] else -self.angle
        x, y = self.shift[0] * mirror[0], self.shift[1] * mirror[1]
        turn = math.radians(step.angle)
        x, y = x * math.cos(turn) + y * math.sin(turn), -x * math.sin(turn) + y * math.cos(turn)
        return Draw(
            flip_horizontal=self.flip_horizontal != step.flip_horizontal,
            flip_vertical=self.flip_vertical != step.flip_vertical,
            angle=(angle + step.angle + 180) % 360 - 180,
            scale=self.scale * step.scale,
            shift=(x * step.scale + step.shift[0], y * step.scale + step.shift[1]),
            grey=self.grey or step.grey,
            contrast=self.contrast * step.contrast,
            brightness=self.brightness + step.brightness,
        )

    def describe(self) -> str:
        """A tile's caption; only what changed, in the layers' order."""
        flips = "↔" * self.flip_horizontal + "↕" * self.flip_vertical
        parts = [
            Message("flipped {arrows}", arrows=flips) if flips else "",
            Message("turned {angle}°", angle=f"{self.angle:+.0f}") if round(self.angle) else "",
            Message("size ×{scale}", scale=f"{self.scale:.2f}") if round(self.scale, 2) != 1 else "",
            Message("shifted {arrows}", arrows=self._arrows()) if any(map(round, self.shift)) else "",
            Message(N_("grey")) if self.grey else "",
            Message("contrast ×{factor}", factor=f"{self.contrast:.2f}") if round(self.contrast, 2) != 1 else "",
            Message("brightness {change}", change=f"{self.brightness:+.0f}") if round(self.brightness) else "",
        ]
        return Messages([part for part in parts if part], " · ") or Message(N_("unchanged"))

    def _arrows(self) -> str:
        """A shift as a learner reads it: "→31 ↑14 px" rather than signs of axes that point down."""
        x, y = map(round, self.shift)
        steps = [f"{'→' if x > 0 else '←'}{abs(x)}" if x else "", f"{'↓' if y > 0 else '↑'}{abs(y)}" if y else ""]
        return " ".join(step for step in steps if step) + " px"


def _draws(layer: keras.layers.Layer, transformation, n: int) -> list[Draw]:
    """One Draw per image from a layer's transformation, keyed by the layer's name in the block."""
    if layer.name == "grayscale":  # its transformation is the bare per-image choice
        return [Draw(grey=bool(g)) for g in keras.ops.convert_to_numpy(transformation).reshape(n)]
    values = {
        key: keras.ops.convert_to_numpy(value)
        for key, value in transformation.items()
        if key in ("flips", "angle", "height_zoom", "translations", "contrast_factor", "rgb_delta")
    }
    if layer.name == "flip":
        horizontal, vertical = "horizontal" in layer.mode, "vertical" in layer.mode
        return [
            Draw(flip_horizontal=bool(f) and horizontal, flip_vertical=bool(f) and vertical)
            for f in values["flips"].reshape(n)
        ]
    if layer.name == "rotation":
        return [Draw(angle=float(a)) for a in values["angle"].reshape(n)]
    if layer.name == "zoom":
        return [Draw(scale=1 / float(z)) for z in values["height_zoom"].reshape(n)]
    if layer.name == "translation":
        return [Draw(shift=(float(x), float(y))) for x, y in values["translations"].reshape(n, 2)]
    if layer.name == "contrast":
        return [Draw(contrast=float(c)) for c in values["contrast_factor"].reshape(n)]
    return [Draw(brightness=float(b)) for b in values["rgb_delta"].reshape(n)]


def augment_with_draws(layers: keras.Sequential, images: np.ndarray) -> tuple[np.ndarray, list[Draw]]:
    """What calling the block with training=True gives, with what each layer drew for each image.

    Each layer draws its transformation from its own seed generator, as its call does, then
    applies exactly that one, so the pixels and the Draws cannot disagree.
    """
    batch, draws = keras.ops.convert_to_tensor(images, dtype="float32"), [Draw()] * len(images)
    for layer in layers.layers:
        if isinstance(layer, keras.layers.Identity):
            continue
        transformation = layer.get_random_transformation(batch, training=True)
        batch = layer.transform_images(batch, transformation, training=True)
        draws = [draw.then(step) for draw, step in zip(draws, _draws(layer, transformation, len(images)))]
    return keras.ops.convert_to_numpy(batch), draws


def preview(
    image: np.ndarray, config: AugmentConfig, n: int = 8, seed: int = 0, repeated: bool = False
) -> tuple[np.ndarray, list[Draw]]:
    """n augmented copies (uint8), the same for the same seed, and what each went through.

    With repeated=True each copy is the layers applied to the previous copy, as the reference
    posts show it, and its Draw is the total so far; otherwise each copy is an independent draw
    from the original.
    """
    layers = build_augmentation(dataclasses.replace(config, seed=seed))
    image = np.asarray(image, dtype=np.float32)
    if repeated:
        copies, draws, current, total = [], [], image[None], Draw()
        for _ in range(n):
            current, [step] = augment_with_draws(layers, current)
            total = total.then(step)
            copies.append(current[0])
            draws.append(total)
        batch = np.stack(copies)
    else:
        batch, draws = augment_with_draws(layers, np.repeat(image[None], n, axis=0))
    return np.clip(batch, 0, 255).astype(np.uint8), draws


def augmented_batch(
    data: Scan, config: AugmentConfig, seed: int, size: int = BATCH_SIZE
) -> tuple[np.ndarray, list[str]]:
    """One shuffled training batch (uint8) after augmentation, as training would draw it, and each photo's class."""
    picks = np.random.default_rng(seed).permutation(len(data.files["train"]))[:size]
    pixels, labels = data.arrays("train", picks)
    layers = build_augmentation(dataclasses.replace(config, seed=seed))
    batch = keras.ops.convert_to_numpy(layers(pixels.astype(np.float32), training=True))
    return np.clip(batch, 0, 255).astype(np.uint8), [data.classes[label] for label in labels]
