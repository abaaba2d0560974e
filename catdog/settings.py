"""What a run can be asked to do: the architectures, every setting, its default, range and choices.

The one place for these facts: the command line builds its options from them, the dashboard its
widgets, and `RunConfig` checks a run against them before it is recorded. No TensorFlow here, so
checking settings, listing runs and `--help` stay instant.
"""

import numbers
import platform
from dataclasses import asdict, dataclass, fields
from importlib import metadata

from catdog import config
from catdog.messages import N_, Message, Messages


class SettingsError(ValueError):
    """A setting outside its range or choices; the message names the value received."""


def _refused(template: str, label: str, **values: object) -> SettingsError:
    """A setting's refusal, its label (marked with N_ by the caller) translated with the template."""
    return SettingsError(Message(template, label=Message(label), **values))


def _plain(bound: float) -> float:
    """A bound as people write it: 0 and 0.5, not 0.0 and 0.5."""
    return int(bound) if float(bound).is_integer() else bound


def _check_choice(label: str, value, choices):
    if value not in choices:
        raise _refused(
            N_("{label} must be one of {choices}; got {value}"),
            label,
            choices=Messages([Message(str(choice)) for choice in choices]),
            value=repr(value),
        )
    return value


def _whole(label: str, value, bounds: tuple[int, int] | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _refused(N_("{label} must be a whole number; got {value}"), label, value=repr(value))
    number = int(value)
    if bounds and not bounds[0] <= number <= bounds[1]:
        raise _refused(
            N_("{label} must be between {low} and {high}; got {value}"),
            label,
            low=bounds[0],
            high=bounds[1],
            value=number,
        )
    return number


def _learning_rate(value) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise SettingsError(Message("learning rate must be a number; got {value}", value=repr(value))) from None
    if not 0 < rate <= 1:
        raise SettingsError(Message("learning rate must be in (0, 1]; got {value}", value=repr(value)))
    return rate


# --- augmentation ------------------------------------------------------------------------

# Choice -> keras.layers.RandomFlip mode.
FLIP_MODES = {
    N_("off"): None,
    N_("horizontal"): "horizontal",
    N_("vertical"): "vertical",
    N_("both"): "horizontal_and_vertical",
}
FILL_MODES = (N_("reflect"), N_("wrap"), N_("constant"), N_("nearest"))
# Rotations are fractions of a full turn, at most one turn either way.
ROTATION_RANGE = (-1.0, 1.0)
# Settings that are off at 0, in the order their layers run, with what their amount means.
ZOOM_RANGE = (0.0, 0.5)
TRANSLATION_RANGE = (0.0, 0.5)
GRAYSCALE_RANGE = (0.0, 1.0)
CONTRAST_RANGE = (0.0, 1.0)
BRIGHTNESS_RANGE = (0.0, 1.0)
AMOUNT_RANGES = {
    N_("zoom"): ZOOM_RANGE,
    N_("translation"): TRANSLATION_RANGE,
    N_("grayscale"): GRAYSCALE_RANGE,
    N_("contrast"): CONTRAST_RANGE,
    N_("brightness"): BRIGHTNESS_RANGE,
}
AMOUNT_MEANINGS = {
    "zoom": N_("each copy is zoomed in or out by up to this fraction of its size"),
    "translation": N_("each copy is shifted by up to this fraction of its width and of its height"),
    "grayscale": N_("this share of the copies lose their colour: a cat is a cat in any colour"),
    "contrast": N_("each copy's contrast is multiplied by 1 ± up to this much"),
    "brightness": N_("each copy is made brighter or darker by up to this fraction of the 0..255 range"),
}


def _amount(label: str, value, bounds: tuple[float, float]) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _refused(N_("{label} must be a number; got {value}"), label, value=repr(value))
    if not bounds[0] <= value <= bounds[1]:
        raise _refused(
            N_("{label} must be between {low} and {high}; got {value}"),
            label,
            low=_plain(bounds[0]),
            high=_plain(bounds[1]),
            value=repr(value),
        )
    return float(value)


@dataclass(frozen=True)
class AugmentConfig:
    """Flip and rotation as in the reference posts, and optional zoom, shift, grey, contrast and brightness.

    Rotation is a fraction of a full turn; AMOUNT_MEANINGS says what the other amounts mean. Each
    is off at 0, so a config.json from before they existed reads the same.
    """

    flip: str = "horizontal"
    rotation: tuple[float, float] = (-0.2, 0.2)
    fill_mode: str = "reflect"
    seed: int | None = None
    zoom: float = 0.0
    translation: float = 0.0
    grayscale: float = 0.0
    contrast: float = 0.0
    brightness: float = 0.0

    def __post_init__(self) -> None:
        _check_choice(N_("flip"), self.flip, FLIP_MODES)
        _check_choice(N_("fill mode"), self.fill_mode, FILL_MODES)
        low, high = self.rotation
        lowest, highest = ROTATION_RANGE
        if not lowest <= low <= high <= highest:
            raise SettingsError(
                Message(
                    "rotation range must satisfy {lowest} <= low <= high <= {highest}; got {value}",
                    lowest=_plain(lowest),
                    highest=_plain(highest),
                    value=str(self.rotation),
                )
            )
        object.__setattr__(self, "rotation", (float(low), float(high)))
        for name, bounds in AMOUNT_RANGES.items():
            object.__setattr__(self, name, _amount(name, getattr(self, name), bounds))

    @property
    def is_identity(self) -> bool:
        return (
            self.flip == "off"
            and self.rotation == (0.0, 0.0)
            and not any(getattr(self, name) for name in AMOUNT_RANGES)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for people: the chosen transformations in the order the layers apply them."""
        low, high = self.rotation
        parts = [
            Message("flip {mode}", mode=Message(self.flip)) if FLIP_MODES[self.flip] else "",
            Message("rotation {low}° … {high}°", low=f"{low * 360:+.0f}", high=f"{high * 360:+.0f}")
            if self.rotation != (0.0, 0.0)
            else "",
            *(
                Message(
                    "{name} {sign}{amount}",
                    name=Message(name),
                    sign="" if name == "grayscale" else "±",
                    amount=f"{getattr(self, name):.0%}",
                )
                for name in AMOUNT_RANGES
                if getattr(self, name)
            ),
        ]
        chosen = Messages([part for part in parts if part])
        geometric = self.rotation != (0.0, 0.0) or self.zoom or self.translation
        if geometric:
            return Message("{chosen}, fill {fill}", chosen=chosen, fill=Message(self.fill_mode))
        return chosen or Message(N_("none"))

    @classmethod
    def from_dict(cls, data: dict | None) -> "AugmentConfig":
        """A recorded augmentation: settings it lacks take their defaults, names it has that this
        version does not know are ignored."""
        known = {field.name for field in fields(cls)}
        data = {name: value for name, value in (data or {}).items() if name in known}
        if "rotation" in data:
            data["rotation"] = tuple(data["rotation"])
        return cls(**data)


# Starting points for a lesson; the dashboard's preset selector and `catdog train --augmentation-preset`.
PRESETS: dict[str, AugmentConfig] = {
    N_("none"): AugmentConfig(flip="off", rotation=(0.0, 0.0)),
    N_("posts"): AugmentConfig(),
    N_("light"): AugmentConfig(rotation=(-0.05, 0.05), zoom=0.1, contrast=0.1),
    N_("heavy"): AugmentConfig(
        rotation=(-0.25, 0.25), zoom=0.3, translation=0.2, grayscale=0.2, contrast=0.5, brightness=0.3
    ),
}
PRESET_DESCRIPTIONS = {
    "none": N_("no augmentation: every epoch sees the same pixels"),
    "posts": N_("as in the reference posts: horizontal flips and small turns"),
    "light": N_("small turns, zooms and contrast changes"),
    "heavy": N_("large turns, zooms and shifts, some grey copies, contrast and brightness changes"),
}


# --- architectures -----------------------------------------------------------------------

# As in TensorFlow's transfer-learning tutorial: MobileNetV2's layers from here up are unfrozen to fine-tune.
FINE_TUNE_AT = 100


@dataclass(frozen=True)
class Architecture:
    """What a learner and a run need to know of an architecture; catdog.models.architectures builds it."""

    name: str
    title: str
    description: str
    # What catdog.models.architectures.build makes of it: the flags below, in the order its layers run.
    scales_inputs: bool = False  # MobileNetV2's preprocess_input first
    augments: bool = True  # then the run's augmentation layers (training only)
    uses_backbone: bool = False  # then frozen MobileNetV2 and model4's head, else the small CNN
    fine_tune: bool = False
    learning_rate: float = 1e-3
    # Computing in bfloat16 (CPUs with AVX512_BF16) or float16 (GPUs), weights kept in float32:
    # measured 1.7x faster a model1 epoch on the 2-core CPU, with the same accuracy.
    mixed_precision: bool = False
    # On by default only where accuracy held: model2 with the posts' augmentation in bfloat16 stalled
    # at 50 % for four epochs and ended the quick lesson at 56 % validation (66 % in float32).
    mixed_precision_by_default: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            "model1",
            N_("Plain CNN"),
            N_(
                "Three convolution and pooling blocks learn edges, textures and shapes from scratch, "
                "then a small dense layer decides. With only 2000 training photos it memorises them: "
                "training accuracy climbs towards 100 % while validation accuracy stalls around 70 %."
            ),
            # Trained on the same pixels every epoch, to show overfitting.
            augments=False,
            mixed_precision=True,
            mixed_precision_by_default=True,
        ),
        Architecture(
            "model2",
            N_("CNN + augmentation"),
            N_(
                "The same CNN, but every training photo is randomly flipped and rotated each time it "
                "is seen, so the network cannot memorise exact pixels. It learns more slowly, "
                "overfits less, and validation accuracy keeps rising for longer."
            ),
            mixed_precision=True,
        ),
        Architecture(
            "model3",
            N_("CNN + augmentation + scaling"),
            N_(
                "Adds MobileNetV2's preprocess_input, which scales pixels from 0..255 to -1..1 before "
                "augmentation. Inputs centred near zero keep the first layers' activations in a good "
                "range, so training is steadier."
            ),
            scales_inputs=True,
            mixed_precision=True,
        ),
        Architecture(
            "model4",
            N_("Transfer learning (frozen MobileNetV2)"),
            N_(
                "Reuses MobileNetV2, already trained on 1.4 million ImageNet photos, as a frozen "
                "feature extractor, and trains only a small head on top (max pooling, dropout, two "
                "dense layers). It reaches about 97 % validation accuracy within a few epochs."
            ),
            scales_inputs=True,
            uses_backbone=True,
        ),
        Architecture(
            "model4-finetune",
            N_("Transfer learning + fine-tuning"),
            Message(
                "Trains model4's head first, then unfreezes the top of MobileNetV2 and keeps training "
                "at a tenth of the learning rate (layers from {layer} up), adapting ImageNet "
                "features to cats and dogs without destroying them.",
                layer=FINE_TUNE_AT,
            ),
            scales_inputs=True,
            uses_backbone=True,
            fine_tune=True,
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise SettingsError(
            Message(
                "unknown architecture {name}; choose one of {names}", name=repr(name), names=", ".join(ARCHITECTURES)
            )
        ) from None


# --- runs --------------------------------------------------------------------------------

EPOCHS_RANGE = (1, 500)
FINE_TUNE_EPOCHS_RANGE = (0, 500)
BATCH_SIZE_RANGE = (1, 1024)
# Steps the dashboard offers; any value in range is valid.
BATCH_SIZE_CHOICES = (8, 16, 32, 64, 128)
LEARNING_RATE_CHOICES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
SEED_RANGE = (0, 2**31 - 1)  # accepted by every random generator training seeds
FEATURE_COPIES_RANGE = (0, 16)
# Training photos a run may keep of each class (None: all), the first of the split in file order.
PHOTOS_PER_CLASS_RANGE = (1, 1_000_000)
# A lesson trains each of its arms once per seed, and states the seeds' spread (catdog.runs.lessons):
# three seeds are the fewest that give a spread, and the quick lesson's six runs fit in 90 s.
LESSON_SEEDS = 3
LESSON_SEEDS_RANGE = (1, 10)


def check_lesson_seeds(seeds) -> int:
    return _whole(N_("seeds"), seeds, LESSON_SEEDS_RANGE)


# Fine-tuning archs train this many epochs with the backbone's top unfrozen, after the head.
FINE_TUNE_EPOCHS = 2


MIXED_PRECISION_MEANING = N_(
    "compute in bfloat16 on CPUs that have it (AVX512_BF16) or float16 on GPUs, weights kept in float32; "
    "float32 where the hardware has neither"
)


def mixed_precision_archs() -> list[str]:
    return [arch.name for arch in ARCHITECTURES.values() if arch.mixed_precision]


# Small-photo copies: each training photo's thumbnail has its long side drawn from this range. Chosen
# on the 800 validation photos shrunk to 200 and 128 px (benchmarks/README.md, issue #25).
SMALL_PHOTO_SIDES = (96, 256)
SMALL_PHOTO_COPIES_MEANING = N_(
    "the head also learns from one thumbnail of each training photo (its long side {low} to {high} px, "
    "saved as JPEG), as thumbnails, screenshots and messenger photos arrive: more often right on small "
    "photos, for one more MobileNetV2 pass over the training photos on a cold start"
)


def default_epochs(fast: bool) -> int:
    """Head epochs on cached features take a few hundredths of a second each, so the fast path
    trains more: under its decaying learning rate (catdog.fast.head) 20 epochs settled the head at
    least as well as 10 at every image size, and kept it at 97 % at 160 px for every seed tried."""
    return 20 if fast else 5


@dataclass(frozen=True)
class RunConfig:
    """A complete, checked run config; `to_dict` is what `RunStore.submit` records as config.json.

    epochs, fine_tune_epochs and learning_rate left as None take the defaults of the path
    (`default_epochs`) and of the architecture.
    """

    arch: str
    epochs: int | None = None
    fine_tune_epochs: int | None = None
    batch_size: int = config.BATCH_SIZE
    image_size: int = config.IMAGE_SIZE[0]
    learning_rate: float | None = None
    augmentation: AugmentConfig = AugmentConfig()
    seed: int = 0
    data_dir: str | None = None
    split_seed: int = config.SPLIT_SEED
    fast: bool = False
    # Measured on cats_and_dogs_filtered: augmented copies did not raise validation
    # accuracy and each costs a backbone pass over the training set on a cold cache.
    feature_copies: int = 0
    # The fast path also learns from a thumbnail-sized copy of each training photo, as small uploads
    # are: right more often on small photos for a longer cold start (SMALL_PHOTO_COPIES_MEANING).
    small_photo_copies: bool = False
    # None: the architecture's default (Architecture.mixed_precision_by_default).
    mixed_precision: bool | None = None
    # An experiment is a set of runs that differ in one setting, named here (catdog.runs.lessons).
    experiment: str | None = None
    varied: str | None = None
    # Fewer training photos make a quicker lesson (catdog.runs.lessons); validation keeps all of its own.
    photos_per_class: int | None = None
    # When the run was recorded (RunStore.create); None until then.
    created: float | None = None

    def __post_init__(self) -> None:
        architecture = get_architecture(self.arch)
        if self.fast and not architecture.uses_backbone:
            raise SettingsError(Message("the fast path needs a frozen backbone; {arch} has none", arch=self.arch))
        if not isinstance(self.augmentation, AugmentConfig):
            raise SettingsError(
                Message("augmentation must be an AugmentConfig; got {value}", value=repr(self.augmentation))
            )
        if self.small_photo_copies and not self.fast:
            raise SettingsError(Message(N_("small-photo copies are made on the fast path only")))
        epochs = default_epochs(self.fast) if self.epochs is None else self.epochs
        fine_tune_epochs = self.fine_tune_epochs
        if fine_tune_epochs is None:
            fine_tune_epochs = FINE_TUNE_EPOCHS if architecture.fine_tune else 0
        elif fine_tune_epochs and not architecture.fine_tune:
            raise SettingsError(
                Message(
                    "{arch} does not fine-tune; got {count} fine-tune epochs", arch=self.arch, count=fine_tune_epochs
                )
            )
        learning_rate = architecture.learning_rate if self.learning_rate is None else self.learning_rate
        mixed_precision = self.mixed_precision
        if mixed_precision is None:
            mixed_precision = architecture.mixed_precision_by_default
        if mixed_precision and not architecture.mixed_precision:
            raise SettingsError(
                Message(
                    "mixed precision is offered for {names}; not {arch}",
                    names=", ".join(mixed_precision_archs()),
                    arch=self.arch,
                )
            )
        checked = {
            "epochs": _whole(N_("epochs"), epochs, EPOCHS_RANGE),
            "fine_tune_epochs": _whole(N_("fine-tune epochs"), fine_tune_epochs, FINE_TUNE_EPOCHS_RANGE),
            "batch_size": _whole(N_("batch size"), self.batch_size, BATCH_SIZE_RANGE),
            "image_size": _check_choice(
                N_("image size"), _whole(N_("image size"), self.image_size), config.IMAGE_SIDES
            ),
            "learning_rate": _learning_rate(learning_rate),
            "seed": _whole(N_("seed"), self.seed, SEED_RANGE),
            "split_seed": _whole(N_("split seed"), self.split_seed),
            "feature_copies": _whole(N_("augmented copies"), self.feature_copies, FEATURE_COPIES_RANGE),
            "fast": bool(self.fast),
            "small_photo_copies": bool(self.small_photo_copies),
            "mixed_precision": bool(mixed_precision),
            "data_dir": None if self.data_dir is None else str(self.data_dir),
            "photos_per_class": None
            if self.photos_per_class is None
            else _whole(N_("photos per class"), self.photos_per_class, PHOTOS_PER_CLASS_RANGE),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the photos the run trains on and its model takes."""
        return (self.image_size, self.image_size)

    @property
    def planned_epochs(self) -> int:
        """Epochs the run trains in all, fine-tuning included."""
        return self.epochs + self.fine_tune_epochs

    def to_dict(self) -> dict:
        """The config.json record: these settings and the library versions they train with."""
        return {**asdict(self), "versions": library_versions()}

    @classmethod
    def from_dict(cls, record) -> "RunConfig":
        """A recorded config.json, checked as at submission. Settings a run recorded before they
        existed take their defaults; names this version does not know (id, versions) are ignored."""
        if not isinstance(record, dict) or "arch" not in record:
            raise SettingsError(Message(N_("a run config must be a JSON object with an architecture")))
        known = {field.name for field in fields(cls)}
        settings = {name: value for name, value in record.items() if name in known}
        augmentation = settings.get("augmentation")
        if augmentation is not None and not isinstance(augmentation, dict):
            raise SettingsError(
                Message("a recorded augmentation must be a JSON object; got {value}", value=repr(augmentation))
            )
        settings["augmentation"] = AugmentConfig.from_dict(augmentation)
        # Runs recorded before mixed precision was offered trained in float32.
        settings.setdefault("mixed_precision", False)
        return cls(**settings)


def library_versions() -> dict[str, str | None]:
    """Read from installed package metadata, so recording a run never waits for TensorFlow to import."""
    return {
        "python": platform.python_version(),
        **{name: _installed(name) for name in ("tensorflow", "keras", "numpy")},
    }


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
