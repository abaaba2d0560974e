"""MobileNetV2's pooled ImageNet features on ONNX Runtime, without TensorFlow.

The fast path's cold start is mostly the frozen backbone: Keras needs TensorFlow, whose import
alone takes seconds, and its CPU kernels run MobileNetV2 about three times slower than ONNX
Runtime here. So the same network is written as an ONNX graph straight from the Keras weights
file (BatchNormalization folded into the convolutions), following keras.applications'
MobileNetV2 layer by layer. tests/test_backbone.py checks its features against Keras's.
Where onnxruntime is not installed, `extractor` returns None and catdog.fast.features uses Keras.
"""

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from catdog import config

# keras.applications.mobilenet_v2: BatchNormalization's epsilon, and the inverted residual
# blocks as (output channels, stride, expansion) for alpha 1.0; the first has no expansion.
BN_EPSILON = 1e-3
BLOCKS = (
    (16, 1, 1),
    (24, 2, 6),
    (24, 1, 6),
    (32, 2, 6),
    (32, 1, 6),
    (32, 1, 6),
    (64, 2, 6),
    (64, 1, 6),
    (64, 1, 6),
    (64, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (160, 2, 6),
    (160, 1, 6),
    (160, 1, 6),
    (320, 1, 6),
)
FEATURES = 1280
OPSET = 17
# The file format version: onnx writes its newest by default, which ONNX Runtime may not read yet.
IR_VERSION = 8
# Photos a session run takes: one photo's activations stay in the CPU's caches, where a batch of 16
# at 288 px (its first blocks' 100 MB) does not: on one core 12.5 ms a photo against 16.7 in runs
# of 16 (4.3 against 4.9 at 160 px); runs of 4 took 13.7 and 4.2.
RUN_BATCH = 1
Extract = Callable[[np.ndarray], np.ndarray]
# The int8 graph's ranges for tensors that no ReLU6 bounds: this many standard deviations of their
# channels around the means. Chosen on validation at 160 px: 3, 4 and 6 gave 0.9725, 0.9738, 0.9730.
SPREADS = 4.0


def weights_path() -> Path:
    """Where Keras keeps the ImageNet weights (catdog.models.architectures downloads them there)."""
    return config.keras_home() / "models" / config.BACKBONE_WEIGHTS_FILE


def available() -> bool:
    """ONNX Runtime is installed and the cached weights are the published file; otherwise the
    Keras path answers, and it downloads them again or says why not (catdog.models.architectures).
    Looked up, not imported: a warm start that reads cached features never needs the runtime."""
    if not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")):
        return False
    path = weights_path()
    if not path.is_file():
        return False
    info = path.stat()
    return _published(str(path), info.st_size, info.st_mtime_ns)


@functools.cache
def _published(path: str, size: int, mtime_ns: int) -> bool:
    """Whether a file is the published weights, by its SHA-256; once per file version and process."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest() == config.BACKBONE_WEIGHTS_SHA256


@functools.cache
def extractor(image_size: tuple[int, int], int8: bool = False) -> Extract | None:
    """uint8 or float pixels (N, H, W, 3) in 0..255 → pooled features (N, 1280); None where
    ONNX Runtime or the cached weights are missing. One session per size, precision and process.

    int8: MobileNetV2 in 8-bit integers (_Int8Graph), for the small-photo copies a head learns
    from; heads answer and are validated on float32 features.
    """
    if not available():
        return None
    import onnxruntime

    # One thread per run, and a batch's parts run side by side: on 2 busy cores that took 3.5-3.9
    # ms a 160 px photo, against 4.5-4.8 for ONNX Runtime's own 2 threads and 6.5 when they spin.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        graph(tuple(image_size), int8).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    workers = os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="backbone")

    def run(pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels, dtype=np.float32)
        parts = [pixels[start : start + RUN_BATCH] for start in range(0, len(pixels), RUN_BATCH)] or [pixels]
        return np.concatenate(list(pool.map(lambda part: session.run(None, {"pixels": part})[0], parts)))

    return run


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding: the odd pixel goes after, not before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Graph:
    """Collects nodes and weights of the ONNX graph as MobileNetV2's layers are added."""

    def __init__(self, weights, image_size: tuple[int, int], prefix: str = ""):
        """weights[layer][f"{layer}/{variable}:0"] as in Keras's weights file; the prefix keeps
        the names of two graphs apart when catdog.inference.web puts them into one model."""
        self.weights, self.nodes, self.initializers = weights, [], []
        self.size, self.count, self.prefix = list(image_size), 0, prefix

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{self.prefix}{prefix}_{self.count}"

    def constant(self, prefix: str, value: np.ndarray, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        from onnx import helper

        output = output or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def conv_bn(self, x: str, layer: str, bn: str, stride: int = 1, depthwise: bool = False, pads=None) -> str:
        """A bias-free Keras convolution followed by its BatchNormalization, as one Conv."""
        kernel = np.asarray(self.weights[layer][f"{layer}/kernel:0"], dtype=np.float64)
        gamma, beta, mean, variance = (
            np.asarray(self.weights[bn][f"{bn}/{part}:0"], dtype=np.float64)
            for part in ("gamma", "beta", "moving_mean", "moving_variance")
        )
        scale = gamma / np.sqrt(variance + BN_EPSILON)
        # Keras kernels are (kh, kw, in, out), depthwise (kh, kw, channels, 1); ONNX wants (out, in/groups, kh, kw).
        onnx_kernel = kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(3, 2, 0, 1)
        onnx_kernel = onnx_kernel * scale[:, None, None, None]
        k = kernel.shape[0]
        if pads is None:
            (top, bottom), (left, right) = (_same_pads(side, k, stride) for side in self.size)
            pads = (top, left, bottom, right)
        self.size = [(side + pads[i] + pads[i + 2] - k) // stride + 1 for i, side in enumerate(self.size)]
        weights, bias = self.conv_weights(x, onnx_kernel, beta - mean * scale)
        return self.node(
            "Conv",
            [x, weights, bias],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=list(pads),
            group=onnx_kernel.shape[0] if depthwise else 1,
        )

    def conv_weights(self, x: str, kernel: np.ndarray, bias: np.ndarray) -> tuple[str, str]:
        return self.constant("w", kernel), self.constant("b", bias)

    def relu6(self, x: str) -> str:
        return self.node("Clip", [x, self.constant("zero", np.float32(0)), self.constant("six", np.float32(6))])

    def linear(self, x: str) -> str:
        """A convolution's output with no activation after it."""
        return x

    def add(self, x: str, h: str) -> str:
        return self.node("Add", [x, h])

    def preprocessed(self, x: str) -> str:
        """The pixels scaled to -1..1, as MobileNetV2 takes them."""
        return x

    def block(self, x: str, channels: int, filters: int, stride: int, expansion: int, block_id: int) -> str:
        """keras.applications' _inverted_res_block: expand, depthwise, project, residual."""
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        h = x
        if block_id:
            h = self.relu6(self.conv_bn(h, f"{prefix}expand", f"{prefix}expand_BN"))
        pads = None
        if stride == 2:
            # Keras pads with correct_pad, then convolves "valid": one pixel after on even sides.
            pads = (self.size[0] % 2, self.size[1] % 2, 1, 1)
        h = self.relu6(
            self.conv_bn(h, f"{prefix}depthwise", f"{prefix}depthwise_BN", stride=stride, depthwise=True, pads=pads)
        )
        h = self.linear(self.conv_bn(h, f"{prefix}project", f"{prefix}project_BN"))
        return self.add(x, h) if channels == filters and stride == 1 else h


class _Int8Graph(_Graph):
    """MobileNetV2 in 8-bit integers without calibration photos: every tensor a convolution reads is
    quantized over a range the network itself fixes. ReLU6 bounds most of them to 0..6; the
    projections' and residual sums' ranges are SPREADS standard deviations around their
    BatchNormalization statistics; the pixels are -1..1. ONNX Runtime fuses each quantize-dequantize
    pair around a convolution into one integer convolution.

    Measured on cats_and_dogs_filtered (benchmarks/README.md, issue #25): 1.40 against 3.45 ms a
    160 px photo; heads learning from its features and validated on float32 ones scored as well on
    validation, but lower on the test split, so only the small-photo copies' features come from it.
    """

    def __init__(self, weights, image_size: tuple[int, int]):
        super().__init__(weights, image_size)
        # The quantization step of each tensor a convolution may read.
        self.scales: dict[str, float] = {}
        # A tensor's per-channel mean and spread, where the weights tell them.
        self.spread: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def conv_bn(self, x: str, layer: str, bn: str, **kwargs) -> str:
        output = super().conv_bn(x, layer, bn, **kwargs)
        # BatchNormalization makes each output channel's mean beta and spread gamma on ImageNet.
        beta, gamma = (np.asarray(self.weights[bn][f"{bn}/{part}:0"], dtype=np.float64) for part in ("beta", "gamma"))
        self.spread[output] = (beta, np.abs(gamma))
        return output

    def quantized(self, x: str, low: float, high: float) -> str:
        low, high = min(low, 0.0), max(high, 0.0)
        scale = (high - low) / 255
        zero = int(np.clip(round(-low / scale), 0, 255))
        parameters = [self.constant("scale", np.float32(scale)), self.constant("zero", zero, np.uint8)]
        output = self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, *parameters]), *parameters])
        self.scales[output] = scale
        return output

    def conv_weights(self, x: str, kernel: np.ndarray, bias: np.ndarray) -> tuple[str, str]:
        """Per-output-channel int8 weights, and the bias in the int32 steps of input × weight."""
        step = np.abs(kernel).reshape(len(kernel), -1).max(axis=1) / 127
        # A near-zero kernel's step would put its bias beyond int32.
        step = np.maximum(step, np.abs(bias) / (self.scales[x] * 2**30) + 1e-12)
        bias_step = self.scales[x] * step
        weights = np.clip(np.round(kernel / step[:, None, None, None]), -127, 127).astype(np.int8)
        return (
            self.dequantized("w", weights, step),
            self.dequantized("b", np.round(bias / bias_step).astype(np.int32), bias_step),
        )

    def dequantized(self, prefix: str, values: np.ndarray, step: np.ndarray) -> str:
        zeros = np.zeros(len(step), values.dtype)
        inputs = [
            self.constant(prefix, values, values.dtype),
            self.constant(f"{prefix}_step", step),
            self.constant(f"{prefix}_zero", zeros, values.dtype),
        ]
        return self.node("DequantizeLinear", inputs, axis=0)

    def relu6(self, x: str) -> str:
        # Quantized over 0..6 from zero, the integers clip as ReLU6 does.
        return self.quantized(x, 0.0, 6.0)

    def linear(self, x: str) -> str:
        return self._within_spread(x, *self.spread[x])

    def add(self, x: str, h: str) -> str:
        (x_mean, x_spread), (h_mean, h_spread) = self.spread[x], self.spread[h]
        return self._within_spread(self.node("Add", [x, h]), x_mean + h_mean, np.hypot(x_spread, h_spread))

    def preprocessed(self, x: str) -> str:
        return self.quantized(x, -1.0, 1.0)

    def _within_spread(self, x: str, mean: np.ndarray, spread: np.ndarray) -> str:
        output = self.quantized(x, float((mean - SPREADS * spread).min()), float((mean + SPREADS * spread).max()))
        self.spread[output] = (mean, spread)
        return output


def add_mobilenet(graph: _Graph, x: str) -> str:
    """MobileNetV2 without its top on preprocessed NCHW pixels, to its last activation (NCHW)."""
    x = graph.relu6(graph.conv_bn(x, "Conv1", "bn_Conv1", stride=2))
    channels = 32
    for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
        x = graph.block(x, channels, filters, stride, expansion, block_id)
        channels = filters
    return graph.relu6(graph.conv_bn(x, "Conv_1", "Conv_1_bn"))


def add_features(graph: _Graph, pixels: str, output: str | None = None) -> str:
    """0..255 NHWC pixels → pooled features: preprocess_input, MobileNetV2, global max pooling,
    as in catdog.fast.features.build_extractor."""
    x = graph.node("Transpose", [pixels], perm=[0, 3, 1, 2])
    x = graph.node(
        "Add",
        [
            graph.node("Mul", [x, graph.constant("scale", np.float32(1 / 127.5))]),
            graph.constant("offset", np.float32(-1)),
        ],
    )
    x = graph.preprocessed(x)
    return graph.node("Flatten", [graph.node("GlobalMaxPool", [add_mobilenet(graph, x)])], output=output)


def graph(image_size: tuple[int, int], int8: bool = False):
    """The ImageNet features of 0..255 pixels (N, H, W, 3) as an ONNX model, in float32 or int8."""
    import h5py
    from onnx import TensorProto, helper

    with h5py.File(weights_path(), "r") as weights:
        graph = (_Int8Graph if int8 else _Graph)(weights, image_size)
        add_features(graph, "pixels", output="features")
    height, width = image_size
    return helper.make_model(
        helper.make_graph(
            graph.nodes,
            "mobilenet_v2_features",
            [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", height, width, 3])],
            [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", FEATURES])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
