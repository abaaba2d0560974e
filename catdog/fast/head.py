"""model4's head trained on cached backbone features in NumPy, and saved as a Keras file.

The head is dropout, a 64-unit ReLU layer and the logits: on 2000 cached feature vectors an
epoch is a few milliseconds of arithmetic, while importing TensorFlow to do it takes seconds.
So the fast path trains it here, the way Keras would (Glorot-uniform weights, Adam with Keras's
update and defaults under a cosine-decayed learning rate, softmax cross-entropy), and writes the
very `.keras` file that
`catdog.fast.features.build_head_model(...).save()` writes; catdog.inference.loading loads it with
safe_mode=True and puts MobileNetV2 under it. tests/test_fast.py holds both to Keras.
"""

import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from catdog.models.model4 import DROPOUT, DROPOUT_NAME, HIDDEN, MODEL_NAME, NAMES
from catdog.settings import RunConfig, library_versions
from catdog.storage import write_bytes_atomic

# keras.optimizers.Adam's defaults.
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7

Metrics = dict[str, float]
OnBatch = Callable[[int, int, int, float], None]
OnEpoch = Callable[[int, float, Metrics], None]


@dataclass(frozen=True)
class Schedule:
    """How a head learns: a run's settings, whichever caller trains it."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int

    @classmethod
    def of(cls, cfg: RunConfig) -> "Schedule":
        return cls(cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.seed)


@dataclass
class Head:
    """The head's weights: per layer in NAMES, a (kernel, bias) pair as Keras stores them."""

    weights: list[np.ndarray]  # head_dense kernel, bias, logits kernel, bias

    @classmethod
    def initial(cls, num_features: int, num_classes: int, rng: np.random.Generator) -> "Head":
        def glorot(fan_in: int, fan_out: int) -> np.ndarray:
            limit = np.sqrt(6 / (fan_in + fan_out))
            return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

        return cls(
            [
                glorot(num_features, HIDDEN),
                np.zeros(HIDDEN, np.float32),
                glorot(HIDDEN, num_classes),
                np.zeros(num_classes, np.float32),
            ]
        )

    def logits(self, features: np.ndarray) -> np.ndarray:
        k1, b1, k2, b2 = self.weights
        return np.maximum(features @ k1 + b1, 0) @ k2 + b2


def _loss_and_gradients(head: Head, x: np.ndarray, y: np.ndarray) -> tuple[float, float, list[np.ndarray]]:
    """Mean softmax cross-entropy, accuracy and the weights' gradients on one batch."""
    k1, b1, k2, _ = head.weights
    hidden = np.maximum(x @ k1 + b1, 0)
    logits = hidden @ k2 + head.weights[3]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = -float(log_probs[rows, y].mean())
    accuracy = float((logits.argmax(axis=1) == y).mean())
    d_logits = np.exp(log_probs)
    d_logits[rows, y] -= 1
    d_logits /= len(y)
    d_hidden = (d_logits @ k2.T) * (hidden > 0)
    return loss, accuracy, [x.T @ d_hidden, d_hidden.sum(0), hidden.T @ d_logits, d_logits.sum(0)]


def evaluate(head: Head, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean loss and accuracy, without dropout."""
    logits = head.logits(x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -float(log_probs[np.arange(len(y)), y].mean()), float((logits.argmax(axis=1) == y).mean())


class Adam:
    """keras.optimizers.Adam's update, step for step, with its learning rate under
    keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps): from full to zero."""

    def __init__(self, weights: list[np.ndarray], learning_rate: float, decay_steps: int):
        self.learning_rate, self.decay_steps, self.step = learning_rate, decay_steps, 0
        self.m = [np.zeros_like(w) for w in weights]
        self.v = [np.zeros_like(w) for w in weights]

    def apply(self, weights: list[np.ndarray], gradients: list[np.ndarray]) -> None:
        decayed = 0.5 * (1 + np.cos(np.pi * min(self.step, self.decay_steps) / self.decay_steps))
        self.step += 1
        # A Python float, so the float32 weights are not computed in float64.
        rate = float(self.learning_rate * decayed * np.sqrt(1 - BETA_2**self.step) / (1 - BETA_1**self.step))
        for w, g, m, v in zip(weights, gradients, self.m, self.v):
            m += (g - m) * (1 - BETA_1)
            v += (g * g - v) * (1 - BETA_2)
            w -= rate * m / (np.sqrt(v) + EPSILON)


def train(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    schedule: Schedule,
    on_batch: OnBatch | None = None,
    on_epoch: OnEpoch | None = None,
) -> tuple[Head, float]:
    """The head after the schedule's epochs, its learning rate decayed to zero by the last batch,
    and its validation accuracy.

    Why the last head: at a constant rate the head still jumps about from batch to batch, and the
    best of its epochs on 800 validation photos is partly chosen on their noise. Decayed, it
    settles: cross-validated on training and validation photos it is right more often at every
    image size (benchmarks/README.md, "Held-out accuracy").

    on_batch(epoch, batch, batches, seconds) after every batch (it may raise to stop);
    on_epoch(epoch, seconds, metrics) after every epoch, epochs counted from 1.
    """
    # BLAS threads cost more than they save on matrices this small, and on a busy machine
    # (the dashboard, other runs) their waiting made an epoch 10-50x slower.
    with threadpool_limits(1, user_api="blas"):
        return _train(x, y, x_val, y_val, num_classes, schedule, on_batch, on_epoch)


def _train(x, y, x_val, y_val, num_classes, schedule: Schedule, on_batch, on_epoch):
    rng = np.random.default_rng(schedule.seed)
    x, x_val = np.asarray(x, np.float32), np.asarray(x_val, np.float32)
    head = Head.initial(x.shape[1], num_classes, rng)
    batch_size = schedule.batch_size
    batches = -(-len(y) // batch_size)
    adam = Adam(head.weights, schedule.learning_rate, decay_steps=schedule.epochs * batches)
    val_accuracy = 0.0
    for epoch in range(1, schedule.epochs + 1):
        start, losses, hits = time.time(), [], []
        order = rng.permutation(len(y))
        for batch in range(batches):
            rows = order[batch * batch_size : (batch + 1) * batch_size]
            keep = rng.random((len(rows), x.shape[1]), dtype=np.float32) >= DROPOUT
            loss, accuracy, gradients = _loss_and_gradients(head, x[rows] * keep / (1 - DROPOUT), y[rows])
            adam.apply(head.weights, gradients)
            losses.append(loss * len(rows))
            hits.append(accuracy * len(rows))
            if on_batch:
                on_batch(epoch, batch + 1, batches, time.time() - start)
        val_loss, val_accuracy = evaluate(head, x_val, y_val)
        metrics = {
            "loss": sum(losses) / len(y),
            "accuracy": sum(hits) / len(y),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        if on_epoch:
            on_epoch(epoch, time.time() - start, {key: round(value, 5) for key, value in metrics.items()})
    return head, val_accuracy


# --- the Keras file ------------------------------------------------------------------------


def _tensor(shape: list, source: str) -> dict:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": shape, "dtype": "float32", "keras_history": [source, 0, 0]},
    }


def _layer(class_name: str, name: str, config: dict, source: str | None, width: int | None) -> dict:
    layer = {
        "module": "keras.layers",
        "class_name": class_name,
        "config": {"name": name, **config},
        "registered_name": None,
        "name": name,
        "inbound_nodes": [],
    }
    if source:
        layer["inbound_nodes"] = [
            {"args": [_tensor([None, width], source)], "kwargs": {"training": False} if class_name == "Dropout" else {}}
        ]
    if class_name == "Dense":
        layer["build_config"] = {"input_shape": [None, width]}
    return layer


def _dense(units: int, activation: str) -> dict:
    initializer = lambda name, config: {
        "module": "keras.initializers",
        "class_name": name,
        "config": config,
        "registered_name": None,
    }
    return {
        "trainable": True,
        "dtype": _FLOAT32,
        "units": units,
        "activation": activation,
        "use_bias": True,
        "kernel_initializer": initializer("GlorotUniform", {"seed": None, "input_axes": None, "output_axes": None}),
        "bias_initializer": initializer("Zeros", {}),
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
        "quantization_config": None,
    }


_FLOAT32 = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def keras_config(num_features: int, num_classes: int) -> dict:
    """config.json of catdog.fast.features.build_head_model(num_features, num_classes), as Keras saves it."""
    layers = [
        {
            "module": "keras.layers",
            "class_name": "InputLayer",
            "registered_name": None,
            "name": "features",
            "inbound_nodes": [],
            "config": {
                "batch_shape": [None, num_features],
                "dtype": "float32",
                "sparse": False,
                "ragged": False,
                "name": "features",
                "optional": False,
            },
        },
        _layer(
            "Dropout",
            DROPOUT_NAME,
            {"trainable": True, "dtype": _FLOAT32, "rate": DROPOUT, "seed": None, "noise_shape": None},
            "features",
            num_features,
        ),
        _layer("Dense", NAMES[0], _dense(HIDDEN, "relu"), DROPOUT_NAME, num_features),
        _layer("Dense", NAMES[1], _dense(num_classes, "linear"), NAMES[0], HIDDEN),
    ]
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "registered_name": "Functional",
        "config": {
            "name": MODEL_NAME,
            "trainable": True,
            "layers": layers,
            "input_layers": ["features", 0, 0],
            "output_layers": [NAMES[1], 0, 0],
        },
        "build_config": {"input_shape": None},
        "compile_config": {},
    }


def _weights_file(head: Head) -> bytes:
    """model.weights.h5: Keras keys each layer's variables by its class, in the model's layer order."""
    import h5py

    out = io.BytesIO()
    with h5py.File(out, "w") as file:
        file.create_group("vars").attrs["name"] = MODEL_NAME
        for path, name in (("input_layer", "features"), ("dropout", DROPOUT_NAME)):
            file.create_group(f"layers/{path}/vars").attrs["name"] = name
        for path, name, (kernel, bias) in zip(("dense", "dense_1"), NAMES, (head.weights[:2], head.weights[2:])):
            group = file.create_group(f"layers/{path}/vars")
            group.attrs["name"] = name
            group["0"], group["1"] = kernel.astype(np.float32), bias.astype(np.float32)
    return out.getvalue()


def load(path: Path) -> Head | None:
    """The head in a .keras file `save` wrote, read without Keras; None for any other model.

    A file that calls itself the head must be exactly what `save` writes (NotAHead otherwise):
    project files come from students, and h5py follows an external or virtual dataset out of
    the file, or fills a dataset declared larger than what it stores, where Keras would refuse.
    """
    import h5py

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        if not isinstance(config, dict) or config.get("config", {}).get("name") != MODEL_NAME:
            return None
        num_features, num_classes = _head_shape(config)
        shapes = ((num_features, HIDDEN), (HIDDEN,), (HIDDEN, num_classes), (num_classes,))
        names = [f"layers/{layer}/vars/{i}" for layer in ("dense", "dense_1") for i in "01"]
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as file:
            return Head([_stored_array(file, name, shape) for name, shape in zip(names, shapes)])


class NotAHead(ValueError):
    """A model file named as the head that `save` did not write."""


def _head_shape(config: dict) -> tuple[int, int]:
    try:
        layers = config["config"]["layers"]
        shape = layers[0]["config"]["batch_shape"][1], layers[-1]["config"]["units"]
    except (KeyError, IndexError, TypeError):
        shape = None
    if shape is None or not all(isinstance(n, int) and n > 0 for n in shape) or config != keras_config(*shape):
        raise NotAHead("not a head catdog saved: its layers differ")
    return shape


def _stored_array(file, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 dataset of this shape whose every byte is stored in the file itself."""
    import h5py

    link = file.get(name, getlink=True)
    dataset = file.get(name) if isinstance(link, h5py.HardLink) else None
    if (
        not isinstance(dataset, h5py.Dataset)
        or dataset.is_virtual
        or dataset.external
        or dataset.dtype != np.float32
        or dataset.shape != shape
        or dataset.id.get_storage_size() != dataset.nbytes
    ):
        raise NotAHead(f"not a head catdog saved: {name} is not a float32 array of shape {shape} stored in it")
    return dataset[()]


def save(head: Head, path: Path) -> None:
    """The head as a .keras file, replaced atomically so a reader never loads half of it."""
    num_features, num_classes = head.weights[0].shape[0], head.weights[3].shape[0]
    metadata = {"keras_version": library_versions()["keras"], "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(keras_config(num_features, num_classes)))
        archive.writestr("model.weights.h5", _weights_file(head))
    write_bytes_atomic(path, out.getvalue())
