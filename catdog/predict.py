"""Using a trained run: class probabilities for a photo, and scores on the held-out test split."""

import os
import threading
from collections import OrderedDict

import keras
import numpy as np

from catdog.data import scan
from catdog.images import ImageError, load_image, to_model_input
from catdog.runs import Run, RunError
from catdog.storage import read_json, write_json_atomic

__all__ = ["ImageError", "class_names", "evaluate", "export_tflite", "load_image", "load_model", "predict"]

# A few models stay loaded (about 10 MB each); the least recently used goes first.
MODEL_CACHE_SIZE = 4
_models: OrderedDict[tuple[str, int], keras.Model] = OrderedDict()
_models_lock = threading.Lock()


def load_model(run: Run) -> keras.Model:
    """The run's best model, loaded once per saved version, and only with safe_mode on."""
    path = run.model_path
    if not path.is_file():
        raise RunError(f"run {run.id} has no saved model yet")
    if path.is_symlink():
        raise RunError(f"run {run.id}'s model is a link; only model files the app saved are loaded")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    with _models_lock:
        if key not in _models:
            _models[key] = keras.models.load_model(path, safe_mode=True, compile=False)
            while len(_models) > MODEL_CACHE_SIZE:
                _models.popitem(last=False)
        _models.move_to_end(key)
        return _models[key]


def class_names(run: Run) -> list[str]:
    classes = run.data().get("classes")
    if not classes:
        raise RunError(f"run {run.id} has no recorded classes (did it start training?)")
    return classes


def probabilities(model: keras.Model, pixels: np.ndarray, flip_average: bool = False) -> np.ndarray:
    """Softmax of the logits for a batch of model-size images; optionally averaged with mirrors."""
    x = np.asarray(pixels, dtype=np.float32)
    logits = model.predict_on_batch(x) if len(x) <= 64 else model.predict(x, batch_size=64, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    if flip_average:
        probs = (probs + probabilities(model, x[:, :, ::-1])) / 2
    return probs


def input_size(model: keras.Model) -> tuple[int, int]:
    """The pixel size a model was trained at; its input shape records it."""
    return tuple(model.input_shape[1:3])


def predict(run: Run, image: np.ndarray, flip_average: bool = False) -> dict[str, float]:
    """Class probabilities for one RGB image of any size."""
    model = load_model(run)
    probs = probabilities(model, to_model_input(image, input_size(model))[None], flip_average)[0]
    return {name: float(p) for name, p in zip(class_names(run), probs)}


def evaluate(run: Run, flip_average: bool = False) -> dict:
    """Accuracy, per-class accuracy, confusion matrix and per-image results on the test split.

    The test split comes from the run's own data folder and split seed, so its files are
    disjoint from the ones the run trained and validated on. Cached per saved model and setting.
    """
    model_path = run.model_path
    cache_path = run.path / ("evaluation-flip.json" if flip_average else "evaluation.json")
    cached = read_json(cache_path) or {}
    if model_path.is_file() and cached.get("model_mtime_ns") == model_path.stat().st_mtime_ns:
        return cached
    cfg, classes = run.config, class_names(run)
    data = scan(cfg.get("data_dir"), cfg.get("split_seed"))
    if data.classes != classes:
        raise RunError(f"the data folder's classes changed since run {run.id} trained: {data.classes}")
    model = load_model(run)
    pixels, labels = data.arrays("test", size=input_size(model))
    if not len(labels):
        raise RunError("the test split is empty")
    probs = probabilities(model, pixels, flip_average)
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {
        name: float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None
        for i, name in enumerate(classes)
    }
    result = {
        "run": run.id,
        "flip_average": flip_average,
        "test_accuracy": float((predicted == labels).mean()),
        "n": len(labels),
        "classes": classes,
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "data_root": str(data.root),
        "images": [
            {
                "file": name,
                "label": classes[label],
                "predicted": classes[guess],
                "confidence": float(p[guess]),
                "correct": bool(label == guess),
            }
            for (name, label), guess, p in zip(data.files["test"], predicted, probs)
        ],
        "model_mtime_ns": model_path.stat().st_mtime_ns,
    }
    write_json_atomic(cache_path, result)
    return result


def export_tflite(run: Run) -> bytes:
    """The run's best model as TensorFlow Lite, converted once per saved model (it takes seconds)."""
    import tensorflow as tf

    path = run.path / "model.tflite"
    model = load_model(run)
    if not path.is_file() or path.stat().st_mtime_ns < run.model_path.stat().st_mtime_ns:
        partial = path.with_name(f".partial-{os.getpid()}.tflite")
        partial.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        partial.replace(path)
    return path.read_bytes()
