"""A run's answers: class probabilities for pixels, for a photo's bytes, and a photo answered and
explained (Grad-CAM, unfamiliarity)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from catdog.data.images import load_image, open_image, to_model_input
from catdog.fast import backbone
from catdog.fast.features import extract
from catdog.inference import familiarity
from catdog.inference.loading import at_current_version, guard, head_at, load_model
from catdog.messages import Message
from catdog.runs.record import Run
from catdog.runs.states import RunError

if TYPE_CHECKING:
    import keras


def class_names(run: Run) -> list[str]:
    classes = run.data().get("classes")
    if not classes:
        raise RunError(Message("run {id} has no recorded classes (did it start training?)", id=run.id))
    return classes


def probabilities(model: "keras.Model", pixels: np.ndarray, flip_average: bool = False) -> np.ndarray:
    """Softmax of the logits for a batch of model-size images; optionally averaged with mirrors."""
    x = np.asarray(pixels, dtype=np.float32)
    logits = model.predict_on_batch(x) if len(x) <= 64 else model.predict(x, batch_size=64, verbose=0)
    import keras

    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    if flip_average:
        probs = (probs + probabilities(model, x[:, :, ::-1])) / 2
    return probs


def input_size(model: "keras.Model") -> tuple[int, int]:
    """The pixel size a model was trained at; its input shape records it."""
    return tuple(model.input_shape[1:3])


def unfamiliarity(run: Run, images: list[Image.Image | np.ndarray]) -> list[float] | None:
    """Each RGB image's unfamiliarity score (above familiarity.BORDER: unfamiliar); None without a guard."""
    try:
        run_guard = guard(run)
    except familiarity.GuardUnavailable:
        return None
    size = familiarity.GUARD_IMAGE_SIZE
    pixels = np.stack([to_model_input(image, size) for image in images])
    return run_guard.unfamiliarity(extract(pixels, size)).tolist()


def is_unfamiliar(score: float | None) -> bool | None:
    return None if score is None else score > familiarity.BORDER


@dataclass(frozen=True)
class Prediction:
    """A model's answer for one photo, and where it looked. Shared between sessions: read only."""

    photo: np.ndarray  # the photo as decoded: RGB, upright, at most 1024 px a side
    pixels: np.ndarray  # what the model sees: the photo at the model's input size
    probabilities: dict[str, float]
    label: str
    grad_cam: np.ndarray  # the Grad-CAM heat map for the label over the photo: RGB, the photo's size
    unfamiliarity: float | None  # see catdog.inference.familiarity; None when the run has no guard

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def unfamiliar(self) -> bool | None:
        return is_unfamiliar(self.unfamiliarity)


def predict(run: Run, image: np.ndarray, flip_average: bool = False) -> dict[str, float]:
    """Class probabilities for one RGB image of any size, from the run's Keras model."""
    model = load_model(run)
    probs = probabilities(model, to_model_input(image, input_size(model))[None], flip_average)[0]
    return {name: float(p) for name, p in zip(class_names(run), probs)}


def predict_photo(run: Run, data: bytes, flip_average: bool = False) -> dict[str, float]:
    """Class probabilities for a photo's bytes (any supported format), decoded no larger than the
    model needs: a 12-megapixel JPEG at an eighth of its size, ten times faster. ImageError if unusable."""
    size, classify = classifier(run, flip_average)
    pixels = to_model_input(open_image(data, draft=size[::-1]), size)[None]
    return dict(zip(class_names(run), classify(pixels)[0].tolist()))


def classifier(run: Run, flip_average: bool) -> tuple[tuple[int, int], Callable[[np.ndarray], np.ndarray]]:
    """The run's input size, and pixels (N, H, W, 3) → class probabilities (N, classes).

    A fast-path run's head answers on ONNX Runtime's backbone features (catdog.fast.backbone), which
    agree with Keras's: a third of Keras's time for one photo. Any other run: its Keras model.
    """
    size = run.config.input_size
    extract_features = backbone.extractor(size)
    trained = at_current_version(run, lambda version: head_at(run, version))
    if trained is None or extract_features is None:
        model = load_model(run)
        return input_size(model), lambda pixels: probabilities(model, pixels, flip_average)

    def classify(pixels: np.ndarray) -> np.ndarray:
        views = (pixels, pixels[:, :, ::-1]) if flip_average else (pixels,)
        return np.mean([softmax(trained.logits(extract_features(view))) for view in views], axis=0)

    return size, classify


def softmax(logits: np.ndarray) -> np.ndarray:
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def analyse_photo(run: Run, data: bytes, flip_average: bool = False) -> Prediction:
    """A photo's bytes (any supported format) answered and explained; ImageError if unusable."""
    photo = load_image(data)
    # Decoded and answered as answer_photos does (a big JPEG at a fraction of its scale; a fast-path
    # run's head on ONNX Runtime's features), so that this answer and the same photo's row in a
    # table or line from the CLI agree; the Keras model is needed only for Grad-CAM.
    size, classify = classifier(run, flip_average)
    seen = open_image(data, draft=max(size, familiarity.GUARD_IMAGE_SIZE)[::-1])
    pixels = to_model_input(seen, size)
    probs = dict(zip(class_names(run), classify(pixels[None])[0].tolist()))
    label = max(probs, key=probs.get)
    from catdog.inference import gradcam

    heat = gradcam.grad_cam(load_model(run), pixels, list(probs).index(label))
    score = unfamiliarity(run, [seen])
    return Prediction(photo, pixels, probs, label, gradcam.overlay(photo, heat), score[0] if score else None)
