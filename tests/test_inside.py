"""Inside the model: a photo's feature maps per convolution layer, most active channel first."""

import io

import keras
import numpy as np
import pytest

from catdog.data.images import to_model_input
from catdog.inference import feature_maps
from catdog.inference.loading import load_model
from catdog.models.architectures import build
from catdog.runs.store import RunStore
from tests.helpers.support import assert_clean, open_app, synthetic_image


@pytest.fixture
def trained_model1(trained_run_dir):
    (run,) = RunStore(trained_run_dir).runs()
    return load_model(run)


def photo(label: int = 0) -> np.ndarray:
    return to_model_input(np.asarray(synthetic_image(label, 31, size=(120, 90))))


def test_each_convolution_layer_shows_its_most_active_channels_first(trained_model1):
    pixels = photo()
    layers = feature_maps.feature_maps(trained_model1, pixels, top=5)
    assert [(layer.grid, layer.channels, layer.patch) for layer in layers] == [
        ((158, 158), 32, 3),
        ((77, 77), 32, 8),
        ((36, 36), 64, 18),
    ]
    convolutions = [layer for layer in trained_model1.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer, convolution in zip(layers, convolutions):
        # The same answer from a sub-model built here, independently of the traced one.
        values = keras.Model(trained_model1.inputs, convolution.output)([pixels[None].astype(np.float32)])
        activity = np.asarray(values)[0].mean(axis=(0, 1))
        assert layer.name == convolution.name
        assert list(layer.top) == list(np.argsort(-activity, kind="stable")[:5])
        assert np.allclose(layer.activity, activity[list(layer.top)], rtol=1e-4, atol=1e-6)
        assert list(layer.activity) == sorted(layer.activity, reverse=True)
        assert layer.maps.shape == (5, *layer.grid) and layer.maps.dtype == np.uint8
        assert layer.sheet(tile=40, gap=2).shape == (40, 5 * 40 + 4 * 2)
    sentences = [layer.sentence for layer in layers]
    assert len(set(sentences)) == 3 and all(s.endswith(".") for s in sentences)
    assert "edges" in sentences[0] and "larger parts" in sentences[-1] and "3×3-pixel" in sentences[0]


def test_the_traced_sub_model_is_made_once_per_loaded_model(trained_model1):
    feature_maps.feature_maps(trained_model1, photo(0))
    traced = feature_maps._maps_function(trained_model1)
    feature_maps.feature_maps(trained_model1, photo(1))
    assert feature_maps._maps_function(trained_model1) is traced


def test_model4_shows_the_first_blocks_of_its_backbone():
    layers = feature_maps.feature_maps(build("model4", 2, image_size=(96, 96), weights=None), photo()[:96, :96], top=3)
    assert [layer.name for layer in layers] == [
        "Conv1",
        "expanded_conv_depthwise",
        "block_1_expand",
        "block_1_depthwise",
        "block_2_expand",
        "block_2_depthwise",
        "block_3_expand",
        "block_3_depthwise",
    ]
    assert [layer.grid for layer in layers][::2] == [(48, 48), (48, 48), (24, 24), (24, 24)]
    assert [layer.patch for layer in layers] == sorted(layer.patch for layer in layers)
    assert "MobileNetV2" in layers[-1].sentence


def test_predict_opens_the_photo_s_feature_maps_on_request(trained_env):
    app = open_app("pages/predict.py")
    out = io.BytesIO()
    synthetic_image(1, 77, size=(120, 90)).save(out, format="JPEG")
    app.file_uploader(key="predict_uploads").set_value([("dog.jpg", out.getvalue(), "image/jpeg")]).run()
    assert [e.label for e in app.get("expander")] == ["Inside the model"]
    assert not [m for m in app.markdown if "channels of" in m.value], "closed, it works out nothing"
    app.session_state["predict_inside_0-0"] = True
    app.run()
    assert_clean(app)
    headings = [m.value for m in app.markdown if "channels of" in m.value]
    assert headings == [
        "**conv2d** · 32 channels of 158×158",
        "**conv2d_1** · 32 channels of 77×77",
        "**conv2d_2** · 64 channels of 36×36",
    ]
    sheets = [c for image in app.get("image") for c in image.captions if c.startswith("channels ")]
    assert len(sheets) == 3 and all(len(c.split(", ")) == feature_maps.TOP_CHANNELS for c in sheets)
    assert len([c for c in app.caption if "Each value sees" in c.value]) == 3


@pytest.fixture
def trained_env(monkeypatch, tiny_data, trained_run_dir):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(trained_run_dir))
    return trained_run_dir
