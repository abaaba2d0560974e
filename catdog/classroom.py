"""The teacher's class settings: what students may start, and what they see of each other.

One JSON file in the class folder (`config.class_dir()`), read by the library's checks on every
action (so a forged message meets the same limits as a widget) and written only by the teacher.
"""

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from catdog import config
from catdog.access import Action, Actor, authorize
from catdog.storage import read_json, write_json_atomic

SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class ClassSettings:
    # Whether students see classmates' runs and experiments (read-only); their own they always see.
    show_classmates_runs: bool = False


def settings_path() -> Path:
    return config.class_dir() / SETTINGS_FILE


def load() -> ClassSettings:
    """The teacher's settings; the defaults for any field missing or damaged."""
    recorded = read_json(settings_path(), default={})
    if not isinstance(recorded, dict):
        return ClassSettings()
    known = {field.name for field in fields(ClassSettings)}
    settings = ClassSettings()
    for name, value in recorded.items():
        if name in known and isinstance(value, type(getattr(settings, name))):
            settings = replace(settings, **{name: value})
    return settings


def save(settings: ClassSettings, *, actor: Actor) -> None:
    authorize(actor, Action.SET_CLASS)
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_path(), asdict(settings))
