"""A run's saved model, fast-path head and unfamiliarity guard, loaded once per saved version
for every session, and read again when training saves a newer one meanwhile."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from catdog.fast import head
from catdog.fast.features import extract, model4_with_head
from catdog.inference import familiarity
from catdog.inference.once import OncePerKey
from catdog.messages import Message
from catdog.models.model4 import MODEL_NAME as HEAD_MODEL_NAME
from catdog.models.model4 import WeightsUnavailable
from catdog.runs.record import Run
from catdog.runs.states import RunError

if TYPE_CHECKING:
    # Imported where a Keras model is needed: a fast-path run answers without TensorFlow.
    import keras

log = logging.getLogger(__name__)
T = TypeVar("T")

# A few models stay loaded (about 10 MB each); the least recently used goes first.
_models = OncePerKey(size=4)
_heads = OncePerKey(size=16)
_guards = OncePerKey(size=4)


class ModelChanged(Exception):
    """Training saved a newer model while an older version was being read."""


def model_version(run: Run) -> int:
    """The saved model's version: its file's modification time, which every save changes."""
    path = run.model_path
    if path.is_symlink():
        raise RunError(Message("run {id}'s model is a link; only model files the app saved are loaded", id=run.id))
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        raise RunError(Message("run {id} has no saved model yet", id=run.id)) from None


def at_current_version(run: Run, use: Callable[[int], T]) -> T:
    """use(version) for the model version saved now; again if training replaces it meanwhile."""
    while True:
        try:
            return use(model_version(run))
        except ModelChanged:
            log.info("run %s saved a newer model while it was being read; reading that one", run.id)


def load_safely(path: Path) -> "keras.Model":
    """A model file loaded the one way this app loads any: safe_mode on, so a layer that would run
    code of the file's (a Lambda) is refused, not run; uncompiled, as answering needs no optimizer."""
    import keras

    return keras.models.load_model(path, safe_mode=True, compile=False)


def model_at(run: Run, version: int) -> "keras.Model":
    """The model of exactly this version, loaded once, and only with safe_mode on.

    Training replaces the file by renaming a complete one over it, so when the version is the
    same before and after the load, the load read that version.
    """

    def load() -> "keras.Model":
        model = load_safely(run.model_path)
        if model_version(run) != version:
            raise ModelChanged
        return model4_with_head(model, run.config.input_size) if model.name == HEAD_MODEL_NAME else model

    return _models.get((str(run.model_path.resolve()), version), load)


def load_model(run: Run) -> "keras.Model":
    """The run's best model as saved now, loaded once per saved version."""
    return at_current_version(run, lambda version: model_at(run, version))


def head_at(run: Run, version: int) -> head.Head | None:
    """The fast path's head of exactly this model version, read once; None for a whole Keras model."""

    def load() -> head.Head | None:
        trained = head.load(run.model_path)
        if model_version(run) != version:
            raise ModelChanged
        return trained

    return _heads.get((str(run.model_path.resolve()), version), load)


def guard(run: Run, progress: familiarity.Progress | None = None) -> familiarity.Guard:
    """The run's unfamiliarity guard, loaded once per server, and made first for a run that has
    none (see familiarity.ensure); GuardUnavailable, remembered the same way, if it cannot be."""
    path = run.familiarity_path
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None

    def make() -> familiarity.Guard | familiarity.GuardUnavailable:
        size = familiarity.GUARD_IMAGE_SIZE
        try:
            made = familiarity.ensure(run, progress=progress)
            # The extractor is built now, with the guard, not when the first photo is waiting.
            extract(np.zeros((1, *size, 3), np.uint8), size)
        except familiarity.GuardUnavailable as error:
            return error
        except WeightsUnavailable as error:  # a guard saved while the weights were there
            return familiarity.GuardUnavailable(*error.args)
        return made

    found = _guards.get((str(path.resolve()), stamp), make)
    if isinstance(found, familiarity.GuardUnavailable):
        raise familiarity.GuardUnavailable(*found.args)
    return found
