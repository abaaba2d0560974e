"""A run's best model as TensorFlow Lite, for phones."""

import json
import logging
from typing import TYPE_CHECKING

from catdog.inference.loading import at_current_version, model_at
from catdog.inference.once import OncePerKey
from catdog.runs.record import Run
from catdog.storage import write_bytes_atomic

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)
_tflite = OncePerKey(size=2)


def _float32_twin(model: "keras.Model") -> "keras.Model":
    """The model computing in float32: TensorFlow Lite has no bfloat16 kernels, and a model trained
    in mixed precision keeps float32 weights, so the twin takes them as they are."""
    config = model.get_config()
    if "mixed_" not in json.dumps(config):
        return model

    def float32(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy":
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {key: float32(value) for key, value in node.items()}
        return [float32(value) for value in node] if isinstance(node, list) else node

    twin = model.__class__.from_config(float32(config))
    twin.set_weights(model.get_weights())
    return twin


def export_tflite(run: Run) -> bytes:
    """The run's best model as TensorFlow Lite, converted once per saved model (it takes seconds).

    The converted file's modification time is set to the model version it came from, so it is
    known to be current without a second file.
    """
    path = run.tflite_path

    def saved_or_converted(version: int) -> bytes:
        if path.is_file() and path.stat().st_mtime_ns == version:
            return path.read_bytes()
        import tensorflow as tf

        converted = tf.lite.TFLiteConverter.from_keras_model(_float32_twin(model_at(run, version))).convert()
        write_bytes_atomic(path, converted, mtime_ns=version)
        log.info("run %s: converted to TensorFlow Lite (%d bytes)", run.id, len(converted))
        return converted

    key = str(path.resolve())
    return at_current_version(run, lambda version: _tflite.get((key, version), lambda: saved_or_converted(version)))
