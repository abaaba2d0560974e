"""The teacher's class settings: what students may start, and what they see of each other.

One JSON file in the class folder (`config.class_dir()`), read by the library's checks on every
action (so a forged message meets the same limits as a widget) and written only by the teacher.

The default limits keep a class of 30 within a period on a 2-core server. The quick augmentation
lesson (model2, 10 epochs at 64 px, 3 seeds per arm: 6 runs, 156 CPU seconds measured) and the
fast path's model4 (20 head epochs at 160 px, seconds each) fit them; fine-tuning MobileNetV2 (minutes
an epoch on a CPU) and more than one lesson queued at once do not. The queue trains one run at a
time and identical runs once (catdog.runs.store): 30 students pressing the quick lesson, half of
them with its own augmentation and half each with one of their own, train the arm without
augmentation once (it is the same for all), the lesson's own arm once, and 15 arms of their own:
51 runs of about 26 CPU seconds, some 22 minutes of one core, where 180 runs would take 78.
"""

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from catdog import config
from catdog.access import Action, Actor, Role, authorize
from catdog.messages import N_, Message
from catdog.settings import ARCHITECTURES, EPOCHS_RANGE, RunConfig, SettingsError
from catdog.storage import read_json, write_json_atomic

SETTINGS_FILE = "settings.json"
# What the teacher's form offers for "runs queued per student".
QUEUED_RANGE = (1, 100)
# And for "data sets per student" (MB).
DATASET_MB_RANGE = (10, 100_000)


class LimitExceeded(ValueError):
    """A student's run outside the teacher's limits; the message is one line, shown as it is."""


@dataclass(frozen=True)
class ClassSettings:
    # Whether students see classmates' runs and experiments (read-only); their own they always see.
    show_classmates_runs: bool = False
    # What students may start; the teacher and the owner are never limited.
    architectures: tuple[str, ...] = ("model1", "model2", "model3", "model4")
    max_epochs: int = 20  # fine-tuning epochs count too; the fast path's default is 20 head epochs
    max_image_size: int = 160  # the posts' size, and model4's default
    max_queued_per_student: int = 6  # one quick lesson: 3 seeds × 2 arms
    # What a student brings in, data sets and opened project files: a copy of the default set (68 MB)
    # and a few of their own, such as the class builder's 40 phone photos (about 160 MB). 30 of them
    # fill 9 GB at most.
    max_dataset_mb_per_student: int = 300

    def __post_init__(self) -> None:
        if not self.architectures or any(name not in ARCHITECTURES for name in self.architectures):
            raise SettingsError(
                Message("allowed architectures must be some of {names}", names=", ".join(ARCHITECTURES))
            )
        object.__setattr__(self, "architectures", tuple(self.architectures))
        checks = {
            N_("max epochs must be a whole number from {low} to {high}; got {value}"): (self.max_epochs, EPOCHS_RANGE),
            N_("runs queued per student must be a whole number from {low} to {high}; got {value}"): (
                self.max_queued_per_student,
                QUEUED_RANGE,
            ),
            N_("room per student must be a whole number of MB from {low} to {high}; got {value}"): (
                self.max_dataset_mb_per_student,
                DATASET_MB_RANGE,
            ),
        }
        for template, (value, (low, high)) in checks.items():
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise SettingsError(Message(template, low=low, high=high, value=repr(value)))
        if self.max_image_size not in config.IMAGE_SIDES:
            raise SettingsError(
                Message("max image size must be one of {sides}", sides=", ".join(map(str, config.IMAGE_SIDES)))
            )

    def image_sides(self) -> tuple[int, ...]:
        """The image sizes a student may choose."""
        return tuple(side for side in config.IMAGE_SIDES if side <= self.max_image_size)


def settings_path() -> Path:
    return config.class_dir() / SETTINGS_FILE


def load() -> ClassSettings:
    """The teacher's settings; the defaults for any field missing or damaged."""
    recorded = read_json(settings_path(), default={})
    if not isinstance(recorded, dict):
        return ClassSettings()
    settings = ClassSettings()
    for field in fields(ClassSettings):
        if field.name not in recorded:
            continue
        try:
            settings = replace(settings, **{field.name: _typed(recorded[field.name], getattr(settings, field.name))})
        except (SettingsError, TypeError):
            continue
    return settings


def _typed(value, default):
    """A recorded value as its field's type (JSON has lists for tuples), or a TypeError."""
    if isinstance(default, tuple) and isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    if type(value) is not type(default):
        raise TypeError(f"expected {type(default).__name__}")
    return value


def save(settings: ClassSettings, *, actor: Actor) -> None:
    authorize(actor, Action.SET_CLASS)
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_path(), asdict(settings))


def limited(actor: Actor) -> bool:
    """Whether the teacher's limits apply to `actor`: to students only."""
    return actor.role == Role.STUDENT


def dataset_share(actor: Actor) -> int | None:
    """The bytes of data sets `actor` may keep, or None where unlimited: a student's share, so that
    one student's imports never leave the class without room for theirs."""
    return load().max_dataset_mb_per_student * 2**20 if limited(actor) else None


def check_limits(actor: Actor, run_configs: list[RunConfig], active: int) -> None:
    """Raises LimitExceeded unless a student may start these runs, with `active` of their own
    runs already queued or running; the teacher and the owner are never limited."""
    if not limited(actor):
        return
    settings = load()
    for run_config in run_configs:
        if run_config.arch not in settings.architectures:
            raise LimitExceeded(
                Message(
                    "Your teacher allows {allowed} in this class; not {arch}.",
                    allowed=", ".join(settings.architectures),
                    arch=run_config.arch,
                )
            )
        if run_config.planned_epochs > settings.max_epochs:
            raise LimitExceeded(
                Message(
                    "Your teacher allows at most {most} epochs a run; this one has {epochs}.",
                    most=settings.max_epochs,
                    epochs=run_config.planned_epochs,
                )
            )
        if run_config.image_size > settings.max_image_size:
            raise LimitExceeded(
                Message(
                    "Your teacher allows images of at most {most} px; this run asks for {size}.",
                    most=settings.max_image_size,
                    size=run_config.image_size,
                )
            )
    if active + len(run_configs) > settings.max_queued_per_student:
        raise LimitExceeded(
            Message(
                "Your teacher allows {most} runs queued or training per student; you have {active}, and {more} more "
                "would be too many: wait for them, or cancel some.",
                most=settings.max_queued_per_student,
                active=active,
                more=len(run_configs),
            )
        )
