"""Inside the model: what each convolution layer of a trained model makes of one photo.

A convolution layer answers with one map per channel (filter): how strongly each place of the
photo matches what that filter learned to look for. Early layers match edges and colours; later
ones, built on them, match textures and parts. Shown most active channel first, with a sentence
per layer, as CNN Explainer does.
"""

import threading
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from catdog.messages import Message
from catdog.models.architectures import BACKBONE

# Thumbnails per layer: enough to see variety, few enough to read on a projector.
TOP_CHANNELS = 8
# model4's backbone has over 150 layers; its first blocks are the ones whose maps a class can read.
BACKBONE_FIRST_BLOCKS = ("Conv1", "expanded_conv", "block_1", "block_2", "block_3")
_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


@dataclass(frozen=True)
class LayerMaps:
    """One convolution layer's answer to a photo: its most active channels, most active first."""

    name: str
    grid: tuple[int, int]  # the map's height and width
    channels: int  # how many the layer has
    patch: int  # the side, in input pixels, of the patch one value of a map looks at
    top: tuple[int, ...]  # channel numbers, most active first
    activity: tuple[float, ...]  # their mean activation
    maps: np.ndarray  # (len(top), height, width) uint8, each map scaled to its own maximum
    sentence: str

    def sheet(self, tile: int = 96, gap: int = 3) -> np.ndarray:
        """The maps side by side as one grey image: one picture to send instead of many."""
        tiles = [Image.fromarray(m).resize((tile, tile), Image.Resampling.NEAREST) for m in self.maps]
        sheet = np.full((tile, len(tiles) * (tile + gap) - gap), 255, dtype=np.uint8)
        for i, image in enumerate(tiles):
            sheet[:, i * (tile + gap) : i * (tile + gap) + tile] = np.asarray(image)
        return sheet


def _backbone(model: keras.Model) -> keras.Model | None:
    return next((layer for layer in model.layers if layer.name == BACKBONE), None)


def _tapped_layers(model: keras.Model) -> tuple[list[keras.layers.Layer], list[keras.layers.Layer]]:
    """The layers whose outputs are shown, and every layer on the way there (for the patch sizes).

    In the CNNs, each Conv2D applies its ReLU itself. In MobileNetV2, a convolution's answer is
    the ReLU after its batch normalisation; the linear projections between blocks have none.
    """
    backbone = _backbone(model)
    if backbone is None:
        path = model.layers
        return [layer for layer in path if isinstance(layer, keras.layers.Conv2D)], path
    path = [layer for layer in backbone.layers if _in_first_blocks(layer.name)]
    return [layer for layer in path if isinstance(layer, keras.layers.ReLU)], path


def _in_first_blocks(name: str) -> bool:
    return any(name == block or name.startswith(f"{block}_") for block in BACKBONE_FIRST_BLOCKS)


def _patch_sizes(path: list[keras.layers.Layer]) -> dict[str, int]:
    """Each layer's receptive field along the chain: how many input pixels one output value sees."""
    side, step, sizes = 1, 1, {}
    for layer in path:
        if isinstance(layer, (*_CONVOLUTIONS, keras.layers.MaxPooling2D)):
            kernel = layer.pool_size if isinstance(layer, keras.layers.MaxPooling2D) else layer.kernel_size
            side += (kernel[0] - 1) * step
            step *= layer.strides[0]
        sizes[layer.name] = side
    return sizes


# One traced function per loaded model, kept on the model so that it goes when the model does,
# as Grad-CAM's is (catdog.inference.gradcam): every session's photos reuse it.
_MAPS_ATTRIBUTE = "_catdog_feature_maps"
_maps_lock = threading.Lock()


def _maps_function(model: keras.Model):
    """The sub-model from the input to the tapped layers, traced on its first use."""
    with _maps_lock:
        if not hasattr(model, _MAPS_ATTRIBUTE):
            tapped, _ = _tapped_layers(model)
            backbone = _backbone(model)
            if backbone is None:
                inner, front = keras.Model(model.inputs, [layer.output for layer in tapped]), []
            else:
                # A nested model's inner outputs are reached through its own sub-model, after the
                # layers in front of it (scaling; augmentation, which passes photos through here).
                inner = keras.Model(backbone.inputs, [layer.output for layer in tapped])
                front = model.layers[1 : model.layers.index(backbone)]

            @tf.function(reduce_retracing=True)
            def maps(x: tf.Tensor) -> list[tf.Tensor]:
                for layer in front:
                    x = layer(x, training=False)
                return inner(x, training=False)

            setattr(model, _MAPS_ATTRIBUTE, (maps, [layer.name for layer in tapped]))
        return getattr(model, _MAPS_ATTRIBUTE)


def feature_maps(model: keras.Model, pixels: np.ndarray, top: int = TOP_CHANNELS) -> list[LayerMaps]:
    """Each shown layer's `top` most active channels for one model-size photo, first layer first."""
    maps_function, names = _maps_function(model)
    outputs = maps_function(tf.convert_to_tensor(np.asarray(pixels, dtype=np.float32)[None]))
    _, path = _tapped_layers(model)
    patches = _patch_sizes(path)
    in_backbone = _backbone(model) is not None
    layers = []
    for position, (name, output) in enumerate(zip(names, outputs)):
        values = np.asarray(output)[0]  # height, width, channels
        activity = values.mean(axis=(0, 1))
        order = np.argsort(-activity, kind="stable")[:top]
        chosen = np.moveaxis(values[..., order], -1, 0)
        peaks = chosen.max(axis=(1, 2), keepdims=True)
        scaled = np.divide(chosen, peaks, out=np.zeros_like(chosen), where=peaks > 0)
        grid, patch = values.shape[:2], patches[name]
        layers.append(
            LayerMaps(
                name=name.removesuffix("_relu"),
                grid=grid,
                channels=values.shape[-1],
                patch=patch,
                top=tuple(int(c) for c in order),
                activity=tuple(float(activity[c]) for c in order),
                maps=(scaled * 255).astype(np.uint8),
                sentence=_sentence(position, len(names), grid, patch, in_backbone),
            )
        )
    return layers


def _sentence(position: int, count: int, grid: tuple[int, int], patch: int, in_backbone: bool) -> str:
    """What a layer at this depth responds to, with the patch of the photo it sees."""
    if position == 0:
        return Message(
            "Each value sees a {patch}×{patch}-pixel patch of the photo: the first layer's channels respond to "
            "edges, colour changes and fine texture, so its maps still look like the photo.",
            patch=patch,
        )
    if position < count - 1:
        return Message(
            "Each value sees a {patch}×{patch}-pixel patch of the photo: channels combine the edges found below "
            "into corners, stripes and fur-like textures.",
            patch=patch,
        )
    if in_backbone:
        return Message(
            "Each value sees a {patch}×{patch}-pixel patch of the photo: still early in MobileNetV2, whose later "
            "layers, not shown, respond to eyes, ears and whole animals from ImageNet's 1.4 million photos.",
            patch=patch,
        )
    return Message(
        "Each value sees a {patch}×{patch}-pixel patch of the photo, on a coarse {rows}×{columns} grid: channels "
        "respond to larger parts such as eyes, ears and noses, and the maps look less like the photo and more like "
        "where those parts are.",
        patch=patch,
        rows=grid[0],
        columns=grid[1],
    )
