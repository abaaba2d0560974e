"""Grad-CAM: which parts of the photo pushed the model towards a class."""

import threading

import keras
import numpy as np
import tensorflow as tf
from PIL import Image


def _feature_layer(model: keras.Model) -> keras.layers.Layer:
    """The last layer with a spatial output: MobileNetV2 in model4, the last pooling in the CNNs."""
    spatial = [layer for layer in model.layers[1:] if len(layer.output.shape) == 4 and layer.output.shape[1] > 1]
    return spatial[-1]


# One compiled function per loaded model, kept on the model so that it goes when the model does.
# Run eagerly, layer by layer, a Grad-CAM took ~0.15 s of CPU, most of a photo's answer: thirty
# students uploading at once waited for thirty of them. Traced, it takes ~0.01 s.
_HEAT_ATTRIBUTE = "_catdog_grad_cam"
_heat_functions_lock = threading.Lock()


def _heat_function(model: keras.Model):
    """Grad-CAM's graph for one model, traced on its first use.

    The models are chains of layers, so walking model.layers reproduces the forward pass while
    exposing the feature map, even inside the nested MobileNetV2.
    """
    with _heat_functions_lock:
        if not hasattr(model, _HEAT_ATTRIBUTE):
            target = _feature_layer(model)

            @tf.function(reduce_retracing=True)
            def heat(x: tf.Tensor, class_index: tf.Tensor) -> tf.Tensor:
                with tf.GradientTape() as tape:
                    for layer in model.layers[1:]:
                        x = layer(x, training=False)
                        if layer is target:
                            feature_map = x
                            tape.watch(feature_map)
                    score = tf.gather(x[0], class_index)
                gradients = tape.gradient(score, feature_map)[0]
                weights = tf.reduce_mean(gradients, axis=(0, 1))
                return tf.nn.relu(tf.reduce_sum(feature_map[0] * weights, axis=-1))

            setattr(model, _HEAT_ATTRIBUTE, heat)
        return getattr(model, _HEAT_ATTRIBUTE)


def grad_cam(model: keras.Model, pixels: np.ndarray, class_index: int) -> np.ndarray:
    """A heat map in 0..1 over the model's feature grid for one model-size image."""
    x = tf.convert_to_tensor(np.asarray(pixels, dtype=np.float32)[None])
    cam = _heat_function(model)(x, tf.constant(class_index)).numpy()
    return cam / cam.max() if cam.max() > 0 else cam


def _colormap(values: np.ndarray) -> np.ndarray:
    """Blue (cold) through green and yellow to red (hot), like the familiar 'jet' map."""
    v = np.clip(values, 0, 1)[..., None]
    red = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([red, green, blue], axis=-1) * 255).astype(np.uint8)


def overlay(photo: np.ndarray, heat: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """The heat map stretched over the photo, as RGB uint8 of the photo's size."""
    height, width = photo.shape[:2]
    heat_image = Image.fromarray((heat * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    colours = _colormap(np.asarray(heat_image, dtype=np.float32) / 255)
    blended = (1 - opacity) * photo.astype(np.float32) + opacity * colours.astype(np.float32)
    return blended.astype(np.uint8)
