"""A run as a model that runs in the browser: the export format's one owner.

The browser runs the whole model, backbone included, on ONNX Runtime Web (vendored under
assets/vendor/onnxruntime-web). The export is one ONNX graph and a JSON description:

    model.onnx   inputs  pixels (N, H, W, 3): RGB, 0..255, float32, at the model's size;
                         guard_pixels (N, 160, 160, 3) where the guard needs other pixels
                 outputs probabilities (N, classes), unfamiliarity (N,) where the run has a guard
    model.json   class names, input sizes, how to make the pixels, the guard's border

The graph is written here from the model's own weights (no converter to install): the four
architectures use a handful of layer kinds, and catdog.fast.backbone already writes MobileNetV2 as
ONNX for the server. The unfamiliarity guard goes into the same graph (_add_guard: the one port
of catdog.inference.familiarity's score), so a page gets both answers from one call. Pixels are made as
the server makes them: assets/web/catdog.js resizes with PIL's bilinear filter, to the integer.

`write_html` puts the runtime, the model and a camera page into one file that works offline.
"""

import base64
import gzip
import io
import json
import secrets
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog import config
from catdog.fast import backbone, head
from catdog.inference import familiarity
from catdog.inference.answers import class_names, input_size
from catdog.inference.loading import guard, load_model, model_version
from catdog.inference.once import OncePerKey
from catdog.messages import N_, Message
from catdog.runs.record import Run
from catdog.runs.states import RunError
from catdog.storage import write_bytes_atomic, write_json_atomic

if TYPE_CHECKING:
    import keras

FORMAT = "catdog-web"
FORMAT_VERSION = 1
MODEL_FILE, META_FILE = "model.onnx", "model.json"
FORMATS, PRECISIONS = config.WEB_FORMATS, config.WEB_PRECISIONS
# Weights with fewer values than this stay float32: halving them saves nothing worth a Cast.
HALF_MIN_VALUES = 1024
RUNTIME_DIR = config.ASSETS_DIR / "vendor" / "onnxruntime-web"
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_DIR = config.ASSETS_DIR / "web"


class ExportError(RunError):
    """The run cannot be exported for the browser; the message is one line."""


@dataclass(frozen=True)
class WebModel:
    """An exported run: the ONNX graph's bytes and model.json's content. Shared: read only."""

    onnx: bytes
    meta: dict

    def write(self, out: Path) -> list[Path]:
        """model.onnx and model.json in the folder out, made if need be."""
        out.mkdir(parents=True, exist_ok=True)
        (out / MODEL_FILE).write_bytes(self.onnx)
        (out / META_FILE).write_text(json.dumps(self.meta, indent=1), encoding="utf-8")
        return [out / MODEL_FILE, out / META_FILE]

    def zipped(self) -> bytes:
        """model.onnx and model.json in a zip, for a download button."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr(MODEL_FILE, self.onnx)
            archive.writestr(META_FILE, json.dumps(self.meta, indent=1))
        return out.getvalue()


def export(run: Run, precision: str = "float32") -> WebModel:
    """The run's saved model and guard as a WebModel, made once per saved model, guard and
    precision however many sessions ask at once (every live camera page asks); ExportError if it
    cannot be made."""
    if precision not in PRECISIONS:
        raise ExportError(
            Message(
                "precision must be one of {choices}, not {value}", choices=", ".join(PRECISIONS), value=repr(precision)
            )
        )
    key = (str(run.path.resolve()), model_version(run), _guard_stamp(run), precision)
    return _exports.get(key, lambda: _export(run, precision))


# A few runs' exports stay in memory (about 10-30 MB each).
_exports = OncePerKey(size=4)


def _guard_stamp(run: Run) -> int | None:
    try:
        return run.familiarity_path.stat().st_mtime_ns
    except OSError:
        return None


def _export(run: Run, precision: str) -> WebModel:
    import onnx
    from onnx import TensorProto, helper

    classes = class_names(run)
    trained = head.load(run.model_path)
    size = run.config.input_size if trained else input_size(load_model(run))
    graph = backbone._Graph(_imagenet_weights() if trained else None, size)
    if trained:
        features = backbone.add_features(graph, "pixels")
        logits = _add_head(graph, features, trained)
    else:
        model = load_model(run)
        graph.weights = _KerasWeights(model.get_layer("backbone")) if _has_layer(model, "backbone") else None
        features, logits = None, _add_keras(graph, model, "pixels")
    graph.node("Softmax", [logits], output="probabilities", axis=1)
    inputs = [_pixels_input("pixels", size)]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", len(classes)])]
    guard_meta = None
    try:
        run_guard = guard(run)
    except familiarity.GuardUnavailable:
        run_guard = None
    if run_guard is not None:
        guard_size = familiarity.GUARD_IMAGE_SIZE
        if features is None or tuple(size) != tuple(guard_size):
            guard_graph = backbone._Graph(_imagenet_weights(), guard_size, prefix="guard_")
            features = backbone.add_features(guard_graph, "guard_pixels")
            graph.nodes += guard_graph.nodes
            graph.initializers += guard_graph.initializers
            inputs.append(_pixels_input("guard_pixels", guard_size))
        _add_guard(graph, features, run_guard)
        outputs.append(helper.make_tensor_value_info("unfamiliarity", TensorProto.FLOAT, ["n"]))
        guard_meta = {
            "border": familiarity.BORDER,
            "neighbours": run_guard.neighbours,
            "reference_photos": len(run_guard.reference),
            "version": familiarity.GUARD_VERSION,
        }
    model_proto = helper.make_model(
        helper.make_graph(graph.nodes, f"catdog_{run.id}", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", backbone.OPSET)],
        ir_version=backbone.IR_VERSION,
        producer_name="catdog",
    )
    if precision == "float16":
        _halve_weights(model_proto)
    onnx.checker.check_model(model_proto)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run": run.id,
        "architecture": run.config.arch,
        "classes": classes,
        "precision": precision,
        "inputs": {item.name: [dim.dim_value for dim in item.type.tensor_type.shape.dim[1:3]] for item in inputs},
        # What catdog.data.images.to_model_input does: RGB, PIL's bilinear resize to the input size (its
        # filter widened when shrinking), kept as 0..255 floats; the model normalises itself.
        "preprocessing": {"resize": "PIL bilinear", "range": [0, 255], "layout": "NHWC", "channels": "RGB"},
        "guard": guard_meta,
    }
    return WebModel(model_proto.SerializeToString(), meta)


def _has_layer(model: "keras.Model", name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def _pixels_input(name: str, size: tuple[int, int]):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", *size, 3])


def _imagenet_weights():
    """The ImageNet weights as catdog.fast.backbone reads them, all in memory (the h5 file closes)."""
    import h5py

    if not backbone.weights_path().is_file():
        raise ExportError(
            Message("MobileNetV2 ImageNet weights unavailable: {path} is missing", path=str(backbone.weights_path()))
        )
    with h5py.File(backbone.weights_path(), "r") as file:
        return {layer: {key: np.asarray(file[layer][key]) for key in _h5_keys(file[layer])} for layer in file}


def _h5_keys(group) -> list[str]:
    keys = []
    group.visit(lambda name: keys.append(name) if hasattr(group[name], "shape") else None)
    return keys


class _KerasWeights:
    """A Keras MobileNetV2's weights, looked up as catdog.fast.backbone looks them up in Keras's file."""

    def __init__(self, model: "keras.Model"):
        self.model = model

    def __getitem__(self, layer: str) -> dict[str, np.ndarray]:
        return {
            f"{layer}/{weight.name}:0": np.asarray(weight.numpy()) for weight in self.model.get_layer(layer).weights
        }


def _dense(graph, x: str, kernel: np.ndarray, bias: np.ndarray, activation: str) -> str:
    x = graph.node("Add", [graph.node("MatMul", [x, graph.constant("kernel", kernel)]), graph.constant("bias", bias)])
    return graph.node("Relu", [x]) if activation == "relu" else x


def _add_head(graph, features: str, trained: head.Head) -> str:
    """The fast path's head (catdog.fast.head.Head.logits)."""
    k1, b1, k2, b2 = trained.weights
    return _dense(graph, _dense(graph, features, k1, b1, "relu"), k2, b2, "linear")


def _add_keras(graph, model: "keras.Model", x: str) -> str:
    """A Keras model of catdog.models.architectures, a chain of layers, at inference: logits of 0..255 NHWC pixels."""
    x = graph.node("Transpose", [x], perm=[0, 3, 1, 2])
    for layer in model.layers[1:]:
        x = _add_layer(graph, layer, x)
    return x


def _activation(layer) -> str:
    name = getattr(layer.activation, "__name__", "linear")
    if name not in ("relu", "linear"):
        raise ExportError(
            Message(
                "layer {layer}: the {name} activation cannot be exported for the browser yet",
                layer=layer.name,
                name=name,
            )
        )
    return name


def _add_layer(graph, layer, x: str) -> str:
    """One layer on NCHW activations; augmentation and dropout do nothing at inference."""
    kind = type(layer).__name__
    if kind in ("Dropout", "Identity") or layer.name == "augmentation":
        return x
    if kind == "Rescaling":
        x = graph.node("Mul", [x, graph.constant("scale", np.float32(layer.scale))])
        return graph.node("Add", [x, graph.constant("offset", np.float32(layer.offset))])
    if kind == "Conv2D" and layer.padding == "valid" and layer.dilation_rate == (1, 1):
        kernel, bias = (np.asarray(w.numpy()) for w in layer.weights)
        x = graph.node(
            "Conv",
            [x, graph.constant("w", kernel.transpose(3, 2, 0, 1)), graph.constant("b", bias)],
            kernel_shape=list(kernel.shape[:2]),
            strides=list(layer.strides),
        )
        return graph.node("Relu", [x]) if _activation(layer) == "relu" else x
    if kind == "MaxPooling2D" and layer.padding == "valid":
        return graph.node("MaxPool", [x], kernel_shape=list(layer.pool_size), strides=list(layer.strides))
    if kind == "Flatten":
        # Keras flattens channels last.
        return graph.node("Flatten", [graph.node("Transpose", [x], perm=[0, 2, 3, 1])])
    if kind == "Dense":
        kernel, bias = (np.asarray(w.numpy()) for w in layer.weights)
        return _dense(graph, x, kernel, bias, _activation(layer))
    if kind in ("Functional", "Model") and layer.name == "backbone":
        return backbone.add_mobilenet(graph, x)
    if kind == "GlobalMaxPooling2D":
        return graph.node("Flatten", [graph.node("GlobalMaxPool", [x])])
    raise ExportError(
        Message("layer {layer} ({kind}) cannot be exported for the browser yet", layer=layer.name, kind=kind)
    )


def _add_guard(graph, features: str, guard: familiarity.Guard) -> str:
    """familiarity.Guard.unfamiliarity as ONNX: the larger of the two scaled distances. The
    references stay float16, as the guard file keeps them, and are cast to float32 as Guard.load
    does: the same numbers as the server's."""
    plain = _neighbour_distance(graph, features, guard.reference, 1, "reference")
    centred_features = graph.node("Sub", [features, graph.constant("mean", np.asarray(guard.mean, np.float32))])
    centred = _neighbour_distance(graph, centred_features, guard.centred, guard.neighbours, "centred")
    scaled = [
        graph.node("Div", [distance, graph.constant(f"scale_{name}", np.float32(scale))])
        for distance, scale, name in zip((plain, centred), guard.scales, ("plain", "centred"), strict=True)
    ]
    return graph.node("Max", scaled, output="unfamiliarity")


def _neighbour_distance(graph, features: str, reference: np.ndarray, neighbours: int, name: str) -> str:
    """familiarity.neighbour_distances: the cosine distance to the neighbours-th nearest row of a
    reference already of unit length."""
    from onnx import helper, numpy_helper

    length = graph.node(
        "Max", [graph.node("ReduceL2", [features], axes=[1], keepdims=1), graph.constant("tiny", np.float32(1e-12))]
    )
    unit = graph.node("Div", [features, length])
    reference_name = graph.name(name)
    graph.initializers.append(numpy_helper.from_array(reference.T.astype(np.float16), reference_name))
    similarity = graph.node("MatMul", [unit, graph.node("Cast", [reference_name], to=1)])
    k_name = graph.name("k")
    graph.initializers.append(numpy_helper.from_array(np.array([min(neighbours, len(reference))], np.int64), k_name))
    nearest = graph.name("nearest")
    graph.nodes.append(helper.make_node("TopK", [similarity, k_name], [nearest, graph.name("indices")], axis=1))
    kth = graph.node("ReduceMin", [nearest], axes=[1], keepdims=0)
    return graph.node("Sub", [graph.constant("one", np.float32(1)), kth])


def _halve_weights(model) -> None:
    """Stores large float32 weights as float16, each cast back to float32 when the model loads:
    half the size, the arithmetic still float32 (benchmarks/export.py measures the accuracy)."""
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT and np.prod(tensor.dims) >= HALF_MIN_VALUES:
            name = tensor.name
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), f"{name}_half"))
            casts.append(helper.make_node("Cast", [f"{name}_half"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


# --- the live camera's files -------------------------------------------------------------------


def live_folder() -> Path:
    """The folder the Predict page's live camera component serves: its page, the runtime and the
    exported models. Copied, not linked: Streamlit serves no file outside a component's folder."""
    folder = config.cache_dir() / "live"
    sources = [PAGE_DIR / "live.html", PAGE_DIR / "catdog.js", *(runtime_path(name) for name in RUNTIME_FILES)]
    for source in sources:
        target = folder / ("index.html" if source.name == "live.html" else source.name)
        if not target.is_file() or target.stat().st_mtime_ns != source.stat().st_mtime_ns:
            write_bytes_atomic(target, source.read_bytes(), mtime_ns=source.stat().st_mtime_ns)
    return folder


def live_model(run: Run) -> str:
    """The run's export in live_folder(), written once per saved model: the folder's path below
    it, named by run and model version so that browsers may cache it for good.

    The component's folder is served to anyone who names a file in it, and a run's id is easy to
    guess: each export's folder also carries a random part, so that only the sessions it was
    handed to (those the page let see the run) can fetch the model."""
    models = live_folder() / "models"
    stem = f"{run.id}-{model_version(run)}-{_guard_stamp(run)}"
    folder = next((found for found in models.glob(f"{stem}-*") if (found / META_FILE).is_file()), None)
    if folder is None:
        exported = export(run)
        folder = models / f"{stem}-{secrets.token_hex(16)}"
        # The description last: a folder that has it is complete.
        write_bytes_atomic(folder / MODEL_FILE, exported.onnx)
        write_json_atomic(folder / META_FILE, exported.meta)
    # Exports written before the random part were named by the stem alone: guessable, so gone.
    shutil.rmtree(models / stem, ignore_errors=True)
    return f"models/{folder.name}/"


# --- the offline page ------------------------------------------------------------------------


def _packed(data: bytes) -> str:
    """gzip, then base64: the page unpacks it with DecompressionStream."""
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def runtime_path(name: str) -> Path:
    path = RUNTIME_DIR / name
    if not path.is_file():
        raise ExportError(
            Message(
                "the browser runtime is missing: {path} (run {script})",
                path=str(path),
                script="assets/vendor/refresh.py",
            )
        )
    return path


# What the browser pages (offline.html, live.html and catdog.js) say, in English: the command line's
# page keeps it, the dashboard's pages translate it (catdog_ui.page_texts).
PAGE_TEXTS = {
    "loading": N_("Loading the model…"),
    "offlineFailed": N_("The model could not start in this browser: {error}"),
    "liveFailed": N_(
        "The live camera cannot run in this browser ({error}). Switch on “Use the camera” below instead: the "
        "server answers each photo you take."
    ),
    "start": N_("Start the camera"),
    "stop": N_("Stop the camera"),
    "switch": N_("Switch camera"),
    "choose": N_("Or choose a photo:"),
    "cameraView": N_("the camera's view"),
    "chosenPhoto": N_("the chosen photo"),
    "prompt": N_("Start the camera or choose a photo."),
    "noCamera": N_("This browser offers no camera here; choose a photo instead."),
    "cameraFailed": N_("The camera could not start ({error}); choose a photo instead."),
    "rate": N_("{rate} answers a second"),
    "unfamiliar": N_("I don't know: this doesn't look like the photos I learned from (nearest: {label})"),
}


def html_page(exported: WebModel, title: str, texts: dict[str, str] = PAGE_TEXTS, language: str = "en") -> str:
    """One self-contained page: runtime, model and camera, nothing fetched from anywhere; it says
    `texts` (PAGE_TEXTS, or their translation) in `language`."""
    template = (PAGE_DIR / "offline.html").read_text(encoding="utf-8")
    parts = {
        "LANGUAGE": _html_text(language),
        "LOADING": _html_text(texts["loading"]),
        "TEXTS": json.dumps(texts).replace("<", "\\u003c"),
        "TITLE": _html_text(title),
        "ORT_SCRIPT": runtime_path(RUNTIME_FILES[0]).read_text(encoding="utf-8").replace("</script", "<\\/script"),
        "CATDOG_SCRIPT": (PAGE_DIR / "catdog.js").read_text(encoding="utf-8"),
        "LOADER": _packed(runtime_path(RUNTIME_FILES[1]).read_bytes()),
        "WASM": _packed(runtime_path(RUNTIME_FILES[2]).read_bytes()),
        "MODEL": _packed(exported.onnx),
        "META": json.dumps(exported.meta).replace("<", "\\u003c"),
    }
    for key, value in parts.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _html_text(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def write(run: Run, out: Path, fmt: str, precision: str = "float32") -> list[Path]:
    """`catdog export --format web|html`: the folder's files, or the one page."""
    if fmt not in FORMATS:
        raise ExportError(
            Message("format must be one of {choices}, not {value}", choices=", ".join(FORMATS), value=repr(fmt))
        )
    exported = export(run, precision)
    if fmt == "web":
        return exported.write(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html_page(exported, f"catdog · {run.id}"), encoding="utf-8")
    return [out]
