"""The four classic architectures of the reference posts, plus fine-tuned model4, as Keras models.

catdog.settings.ARCHITECTURES is their one table (names, descriptions, training defaults and the
flags `build` follows), and needs no TensorFlow.

Every model takes square RGB pixels in 0..255 (IMAGE_SIZE unless a run chooses another of
IMAGE_SIDES; the model's input shape records it) and returns logits, so one loss,
`SparseCategoricalCrossentropy(from_logits=True)`, serves all of them for any number of classes.
"""

from functools import cache

import keras
from keras import layers

from catdog import config
from catdog.data.download import failure_reason
from catdog.messages import N_, Message
from catdog.models import model4
from catdog.models.augmentation import PIXEL_RANGE, build_augmentation
from catdog.models.model4 import WeightsUnavailable
from catdog.settings import ARCHITECTURES, FINE_TUNE_AT, AugmentConfig, get_architecture

# The frozen MobileNetV2 inside model4: fine-tuning and the Predict page's feature maps find it by name.
BACKBONE = "backbone"
MODEL4 = "model4"


ImageSize = tuple[int, int]


def _inputs(image_size: ImageSize) -> keras.KerasTensor:
    return keras.Input(shape=(*image_size, 3), name="image")


# What preprocess_input makes of 0..255 pixels; augmentation after it must clip colours to this.
PREPROCESSED_RANGE = (-1.0, 1.0)


def preprocess_input() -> layers.Layer:
    """mobilenet_v2.preprocess_input (x / 127.5 - 1) as a layer, so safe_mode can load it."""
    return layers.Rescaling(scale=1 / 127.5, offset=-1.0, name="preprocess_input")


def _small_cnn(x: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    # float32 logits whatever the policy: a softmax in bfloat16 loses the small probabilities.
    return layers.Dense(num_classes, name="logits", dtype="float32")(x)


def build_backbone(image_size: ImageSize = config.IMAGE_SIZE, weights: str | None = "imagenet") -> keras.Model:
    """Frozen MobileNetV2 without its classifier, with ImageNet weights unless weights is None."""
    backbone = keras.applications.MobileNetV2(
        input_shape=(*image_size, 3), include_top=False, weights=None, name=BACKBONE
    )
    if weights == "imagenet":
        backbone.load_weights(backbone_weights_path())
    backbone.trainable = False
    return backbone


def backbone_weights_path() -> str:
    """The ImageNet weights from the Keras cache, downloaded there first if need be; a clear
    error naming the file and the folder if neither works."""
    where = config.keras_home() / "models"
    # Read first: Keras deletes a damaged copy when it cannot fetch the published one.
    cached = (where / config.BACKBONE_WEIGHTS_FILE).exists()
    try:
        # A cached file whose hash differs is downloaded again; one that still differs is refused.
        return keras.utils.get_file(
            config.BACKBONE_WEIGHTS_FILE,
            config.BACKBONE_WEIGHTS_URL,
            cache_subdir="models",
            file_hash=config.BACKBONE_WEIGHTS_SHA256,
        )
    except Exception as error:  # noqa: BLE001 -- get_file raises a bare Exception for network failures
        reason = failure_reason(error)
        template = (
            N_(
                "MobileNetV2 ImageNet weights unavailable: {file} in {where} is not the published file (its SHA-256 "
                "differs) and could not be downloaded ({reason})"
            )
            if cached
            else N_(
                "MobileNetV2 ImageNet weights unavailable: {file} is not in {where} and could not be downloaded ({reason})"
            )
        )
        raise WeightsUnavailable(
            Message(template, file=config.BACKBONE_WEIGHTS_FILE, where=str(where), reason=reason)
        ) from None


def pooled_features(
    pixels: keras.KerasTensor, image_size: ImageSize, weights: str | None = "imagenet"
) -> keras.KerasTensor:
    """model4 below its head: frozen MobileNetV2 on preprocessed pixels, max-pooled to one vector."""
    # training=False keeps the frozen backbone's BatchNorm statistics fixed, even when fine-tuning.
    x = build_backbone(image_size, weights)(pixels, training=False)
    return layers.GlobalMaxPooling2D(name="pool")(x)


def build_head(pooled: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    """model4's trainable head on pooled backbone features; the fast path trains it alone."""
    x = layers.Dropout(model4.DROPOUT, name=model4.DROPOUT_NAME)(pooled)
    x = layers.Dense(model4.HIDDEN, activation="relu", name=model4.NAMES[0])(x)
    return layers.Dense(num_classes, name=model4.NAMES[1])(x)


def unfreeze_top(model: keras.Model) -> None:
    """Makes the top of model4's backbone trainable for fine-tuning."""
    backbone = model.get_layer(BACKBONE)
    backbone.trainable = True
    for layer in backbone.layers[:FINE_TUNE_AT]:
        layer.trainable = False


def build(
    name: str,
    num_classes: int,
    augmentation: AugmentConfig | None = None,
    image_size: ImageSize = config.IMAGE_SIZE,
    weights: str | None = "imagenet",
) -> keras.Model:
    """The architecture `name` of catdog.settings.ARCHITECTURES, made as its flags say; `weights`
    (the backbone's) None leaves it random, for models only looked at."""
    arch = get_architecture(name)
    inputs = _inputs(image_size)
    x = preprocess_input()(inputs) if arch.scales_inputs else inputs
    if arch.augments:
        x = build_augmentation(
            augmentation or AugmentConfig(), PREPROCESSED_RANGE if arch.scales_inputs else PIXEL_RANGE
        )(x)
    if arch.uses_backbone:
        # One Keras name for model4 and its fine-tuned variant: the same layers, trained longer.
        return keras.Model(inputs, build_head(pooled_features(x, image_size, weights), num_classes), name=MODEL4)
    return keras.Model(inputs, _small_cnn(x, num_classes), name=arch.name)


@cache
def _blueprint(name: str, num_classes: int) -> keras.Model:
    """The model at IMAGE_SIZE with random weights: enough to count and list its layers, no download."""
    model = build(name, num_classes, weights=None)
    if get_architecture(name).fine_tune:
        unfreeze_top(model)
    return model


def parameter_counts(name: str, num_classes: int = 2) -> dict[str, int]:
    """Total, trainable and frozen parameters (trainable as in the last training phase)."""
    model = _blueprint(name, num_classes)
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    total = model.count_params()
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


def layer_summary(name: str, num_classes: int = 2) -> list[dict]:
    """One row per top-level layer (name, kind, output shape, parameters), for the Train page."""
    return [
        {
            N_("layer"): layer.name,
            N_("kind"): type(layer).__name__,
            N_("output"): str(tuple(layer.output.shape)),
            N_("parameters"): layer.count_params(),
        }
        for layer in _blueprint(name, num_classes).layers
    ]


def architectures_table() -> list[dict]:
    return [
        {"name": arch.name, "title": arch.title, "description": arch.description, **parameter_counts(arch.name)}
        for arch in ARCHITECTURES.values()
    ]
