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


def weights_path() -> Path:
    """Where Keras keeps the ImageNet weights (catdog.models.architectures downloads them there)."""
    return config.keras_home() / "models" / config.BACKBONE_WEIGHTS_FILE


def available() -> bool:
    """ONNX Runtime is installed and the cached weights are the published file; otherwise the
    Keras path answers, and it downloads them again or says why not (catdog.models.architectures)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
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
def extractor(image_size: tuple[int, int]) -> Extract | None:
    """uint8 or float pixels (N, H, W, 3) in 0..255 → pooled features (N, 1280); None where
    ONNX Runtime or the cached weights are missing. One session per size and process."""
    if not available():
        return None
    import onnxruntime

    # One thread per run, and a batch's parts run side by side: on 2 busy cores that took 3.5-3.9
    # ms a 160 px photo, against 4.5-4.8 for ONNX Runtime's own 2 threads and 6.5 when they spin.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        graph(tuple(image_size)).SerializeToString(), options, providers=["CPUExecutionProvider"]
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

    def constant(self, prefix: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
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
        return self.node(
            "Conv",
            [x, self.constant("w", onnx_kernel), self.constant("b", beta - mean * scale)],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=list(pads),
            group=onnx_kernel.shape[0] if depthwise else 1,
        )

    def relu6(self, x: str) -> str:
        return self.node("Clip", [x, self.constant("zero", np.float32(0)), self.constant("six", np.float32(6))])

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
        h = self.conv_bn(h, f"{prefix}project", f"{prefix}project_BN")
        return self.node("Add", [x, h]) if channels == filters and stride == 1 else h


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
    return graph.node("Flatten", [graph.node("GlobalMaxPool", [add_mobilenet(graph, x)])], output=output)


def graph(image_size: tuple[int, int]):
    """The ImageNet features of 0..255 pixels (N, H, W, 3) as an ONNX model."""
    import h5py
    from onnx import TensorProto, helper

    with h5py.File(weights_path(), "r") as weights:
        graph = _Graph(weights, image_size)
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
