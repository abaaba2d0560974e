"""Every architecture builds, has the documented shape, and trains a step."""

import keras
import numpy as np
import pytest

from catdog import config
from catdog.access import OWNER
from catdog.models.architectures import ARCHITECTURES, build, build_backbone, parameter_counts, preprocess_input
from catdog.models.augmentation import AugmentConfig
from catdog.models.model4 import WeightsUnavailable


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("num_classes", [2, 3])
def test_architecture_builds_and_trains_a_step(name, num_classes, request):
    if ARCHITECTURES[name].uses_backbone:
        request.getfixturevalue("backbone_weights")
    model = build(name, num_classes, AugmentConfig(seed=1))
    x = np.random.default_rng(0).uniform(0, 255, (4, *config.IMAGE_SIZE, 3)).astype("float32")
    y = np.arange(4) % num_classes
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert model.predict_on_batch(x).shape == (4, num_classes)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_each_architecture_is_built_as_its_flags_in_the_table_say(name):
    """The one table (catdog.settings.ARCHITECTURES) decides the layers: scaling, augmentation, backbone."""
    arch = ARCHITECTURES[name]
    layer_names = {layer.name for layer in build(name, 2, weights=None).layers}
    assert ("preprocess_input" in layer_names) == arch.scales_inputs
    assert ("augmentation" in layer_names) == arch.augments == (name != "model1")
    assert ({"backbone", "pool", "head_dense"} <= layer_names) == arch.uses_backbone


def test_one_weights_file_serves_every_image_size(backbone_weights):
    reference = build_backbone().get_weights()
    for side in (config.IMAGE_SIDES[0], config.IMAGE_SIDES[-1]):
        backbone = build_backbone((side, side))
        assert backbone.input_shape == (None, side, side, 3) and not backbone.trainable
        for loaded, expected in zip(backbone.get_weights(), reference, strict=True):
            np.testing.assert_array_equal(loaded, expected)


def test_parameter_counts_match_the_reference_shapes():
    assert parameter_counts("model1") == {"total": 1_355_938, "trainable": 1_355_938, "frozen": 0}
    model4 = parameter_counts("model4")
    assert model4["frozen"] == 2_257_984 and model4["trainable"] == 1280 * 64 + 64 + 64 * 2 + 2
    assert parameter_counts("model4-finetune")["trainable"] > model4["trainable"]


def test_preprocess_layer_equals_mobilenet_v2_preprocess_input():
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.mobilenet_v2.preprocess_input(x.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(preprocess_input()(x)), expected, atol=1e-6)


def test_missing_weights_give_one_clear_error(tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", offline)
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path), raising=False)
    with pytest.raises(WeightsUnavailable) as error:
        build("model4", 2)
    message = str(error.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in message
    assert "\n" not in message


def test_damaged_cached_downloads_are_refused_in_one_line(tmp_path, monkeypatch):
    """The weights and the data set are checked against their published SHA-256: a damaged copy in
    the cache is fetched again, and refused in one line when that fails; the fast path passes it over."""
    import urllib.request

    from catdog.data.download import download_default_dataset
    from catdog.data.errors import DataError
    from catdog.fast import backbone
    from catdog.models.architectures import backbone_weights_path

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", offline)
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path), raising=False)
    for folder, name in (("models", config.BACKBONE_WEIGHTS_FILE), ("datasets", config.DATASET_FILE)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 4096)
    assert backbone.available() is False
    with pytest.raises(WeightsUnavailable) as weights:
        backbone_weights_path()
    with pytest.raises(DataError) as archive:
        download_default_dataset(actor=OWNER)
    for error in (weights.value, archive.value):
        assert "is not the published" in str(error) and "SHA-256" in str(error) and "\n" not in str(error), error
