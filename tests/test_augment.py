"""Augmentation previews come from the very layers models train with, reproducibly."""

import dataclasses

import keras
import numpy as np
import pytest

from catdog.cli import build_parser, chosen_augmentation
from catdog.models.architectures import build
from catdog.models.augmentation import AugmentConfig, augmentation_code, build_augmentation, preview
from catdog.settings import PRESETS, SettingsError
from tests.helpers.support import synthetic_image

IMAGE = np.asarray(synthetic_image(0, 1, size=(160, 160)))


def test_same_seed_same_variants_other_seed_other_variants():
    config = AugmentConfig(flip="both", rotation=(-0.25, 0.25))
    (first, _), (again, _) = preview(IMAGE, config, n=4, seed=7), preview(IMAGE, config, n=4, seed=7)
    assert first.shape == (4, 160, 160, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, preview(IMAGE, config, n=4, seed=8)[0])
    assert len({variant.tobytes() for variant in first}) > 1


def test_identity_config_returns_the_original():
    variants, draws = preview(IMAGE, AugmentConfig(flip="off", rotation=(0, 0)), n=3, seed=0)
    assert all(np.array_equal(v, IMAGE) for v in variants)
    assert [draw.describe() for draw in draws] == ["unchanged"] * 3


def test_vertical_flip_only_gives_the_image_or_its_upside_down_copy():
    variants, _ = preview(IMAGE, AugmentConfig(flip="vertical", rotation=(0, 0)), n=8, seed=3)
    for variant in variants:
        assert np.array_equal(variant, IMAGE) or np.array_equal(variant, IMAGE[::-1])


def test_repeated_mode_applies_the_layers_to_the_previous_tile():
    config = AugmentConfig(flip="off", rotation=(0.25, 0.25), fill_mode="constant")
    tiles, draws = preview(IMAGE, config, n=4, seed=0, repeated=True)
    # Four quarter turns bring the picture back to where it started.
    assert np.abs(tiles[3].astype(int) - IMAGE.astype(int)).mean() < 6
    assert np.abs(tiles[1].astype(int) - IMAGE.astype(int)).mean() > 20
    assert [draw.describe() for draw in draws] == ["turned +90°", "turned -180°", "turned -90°", "unchanged"]


def test_models_train_with_the_same_layers_the_preview_uses():
    config = AugmentConfig(flip="vertical", rotation=(-0.1, 0.3), fill_mode="wrap")
    in_model = build("model2", 2, config).get_layer("augmentation")
    assert [layer.get_config() for layer in in_model.layers] == [
        layer.get_config() for layer in build_augmentation(config).layers
    ]


def test_code_shows_exactly_the_configured_layers():
    code = augmentation_code(AugmentConfig(flip="both", rotation=(-0.1, 0.2), fill_mode="nearest"))
    assert 'RandomFlip("horizontal_and_vertical")' in code
    assert 'RandomRotation((-0.1, 0.2), fill_mode="nearest")' in code
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 -- the code shown to learners must run as shown
    assert len(namespace["augmentation"].layers) == 2


def layer_configs(block: keras.Sequential) -> list[tuple[str, dict]]:
    """Each layer's class and settings, without what names or seeds it."""
    ignored = ("name", "seed", "trainable", "dtype")
    return [
        (type(layer).__name__, {k: v for k, v in layer.get_config().items() if k not in ignored})
        for layer in block.layers
    ]


@pytest.mark.parametrize("preset", PRESETS)
def test_code_and_built_layers_agree_in_order_and_settings_for_each_preset(preset):
    namespace: dict = {}
    exec(augmentation_code(PRESETS[preset]), namespace)  # noqa: S102 -- the code shown to learners must run as shown
    assert layer_configs(namespace["augmentation"]) == layer_configs(build_augmentation(PRESETS[preset]))


def test_presets_keep_the_posts_setting_as_the_default_and_grow_from_none_to_heavy():
    assert PRESETS["posts"] == AugmentConfig() and PRESETS["none"].is_identity
    order = [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomGrayscale",
        "RandomContrast",
        "RandomBrightness",
    ]
    assert [name for name, _ in layer_configs(build_augmentation(PRESETS["heavy"]))] == order
    assert len(build_augmentation(PRESETS["light"]).layers) < len(order)


def test_colour_layers_clip_to_the_range_of_the_pixels_they_get():
    """model3 augments after scaling to -1..1; clipping there to 0..255 would erase the dark half."""
    augmentation = build("model3", 2, PRESETS["heavy"]).get_layer("augmentation")
    assert augmentation.get_layer("brightness").value_range == [-1.0, 1.0]
    assert augmentation.get_layer("contrast").value_range == (-1.0, 1.0)


def test_an_old_config_json_record_reads_as_flip_and_rotation_only():
    old = {"flip": "vertical", "rotation": [-0.1, 0.1], "fill_mode": "wrap", "seed": None}
    config = AugmentConfig.from_dict(old)
    assert (config.zoom, config.translation, config.grayscale, config.contrast, config.brightness) == (0,) * 5
    assert [layer.name for layer in build_augmentation(config).layers] == ["flip", "rotation"]


def test_a_preset_on_the_command_line_takes_single_flags_on_top():
    args = build_parser().parse_args(["train", "--arch", "model1", "--augmentation-preset", "heavy", "--zoom", "0.1"])
    assert chosen_augmentation(args) == dataclasses.replace(PRESETS["heavy"], zoom=0.1)
    assert chosen_augmentation(build_parser().parse_args(["train", "--arch", "model1"])) == AugmentConfig()


# --- every tile tells its draw -------------------------------------------------------------


def test_tiles_labelled_flipped_are_the_mirror_and_the_others_the_original():
    tiles, draws = preview(IMAGE, AugmentConfig(flip="horizontal", rotation=(0, 0)), n=12, seed=5)
    captions = [draw.describe() for draw in draws]
    assert set(captions) == {"flipped ↔", "unchanged"}
    for tile, caption in zip(tiles, captions):
        np.testing.assert_array_equal(tile, IMAGE[:, ::-1] if caption == "flipped ↔" else IMAGE)


def test_tiles_labelled_grey_have_lost_their_colour_and_the_others_kept_it():
    tiles, draws = preview(IMAGE, AugmentConfig(flip="off", rotation=(0, 0), grayscale=0.5), n=8, seed=2)
    assert {draw.describe() for draw in draws} == {"grey", "unchanged"}
    for tile, draw in zip(tiles, draws):
        if draw.grey:
            assert np.array_equal(tile[..., 0], tile[..., 1]) and np.array_equal(tile[..., 1], tile[..., 2])
        else:
            np.testing.assert_array_equal(tile, IMAGE)


def test_the_labelled_angle_reproduces_the_tile_with_the_same_layer():
    config = AugmentConfig(flip="off", rotation=(-0.3, 0.3), fill_mode="constant")
    tiles, draws = preview(IMAGE, config, n=4, seed=11)
    assert len({round(draw.angle) for draw in draws}) == 4
    for tile, draw in zip(tiles, draws):
        assert draw.describe() == f"turned {draw.angle:+.0f}°"
        turn = draw.angle / 360
        fixed = keras.layers.RandomRotation((turn, turn), fill_mode="constant")
        again = keras.ops.convert_to_numpy(fixed(IMAGE[None].astype("float32"), training=True))[0]
        assert np.abs(np.clip(again, 0, 255).astype(int) - tile.astype(int)).max() <= 1


def test_the_previews_are_what_the_training_block_makes_with_the_same_seed():
    config = dataclasses.replace(PRESETS["heavy"], seed=4)
    tiles, draws = preview(IMAGE, config, n=6, seed=4)
    block = build_augmentation(config)(np.repeat(IMAGE[None].astype("float32"), 6, axis=0), training=True)
    np.testing.assert_array_equal(tiles, np.clip(keras.ops.convert_to_numpy(block), 0, 255).astype(np.uint8))
    # Layers seeded alike would draw alike: every flipped copy would turn the same way.
    assert len({(draw.flip_horizontal, draw.angle > 0) for draw in draws}) > 2


def test_apply_again_labels_the_total_that_one_application_reproduces():
    config = AugmentConfig(flip="horizontal", rotation=(-0.1, 0.1), fill_mode="constant", zoom=0.2, translation=0.1)
    tiles, draws = preview(IMAGE, config, n=3, seed=0, repeated=True)
    total = draws[-1]
    once = IMAGE[:, ::-1] if total.flip_horizontal else IMAGE
    turn, zoom = total.angle / 360, 1 / total.scale - 1
    dx, dy = total.shift[0] / IMAGE.shape[1], total.shift[1] / IMAGE.shape[0]
    for layer in (
        keras.layers.RandomRotation((turn, turn), fill_mode="constant"),
        keras.layers.RandomZoom((zoom, zoom), fill_mode="constant"),
        keras.layers.RandomTranslation((dy, dy), (dx, dx), fill_mode="constant"),
    ):
        once = keras.ops.convert_to_numpy(layer(once[None].astype("float32"), training=True))[0]
    # Away from the corners, where filling once and three times differs.
    inner = slice(30, 130)

    def distance(image: np.ndarray) -> float:
        return np.abs(np.clip(image, 0, 255)[inner, inner] - tiles[-1][inner, inner].astype(float)).mean()

    assert distance(once) < 10 and 3 * distance(once) < distance(IMAGE), (distance(once), distance(IMAGE))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"flip": "sideways"}, "got 'sideways'"),
        ({"fill_mode": "mirror"}, "got 'mirror'"),
        ({"rotation": (0.3, 0.1)}, "got (0.3, 0.1)"),
        ({"rotation": (-2, 0)}, "got (-2, 0)"),
        ({"zoom": 0.7}, "zoom must be between 0 and 0.5; got 0.7"),
        ({"translation": -0.1}, "translation must be between 0 and 0.5; got -0.1"),
        ({"contrast": "lots"}, "contrast must be a number; got 'lots'"),
        ({"brightness": 1.5}, "brightness must be between 0 and 1; got 1.5"),
        ({"grayscale": 2}, "grayscale must be between 0 and 1; got 2"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(bad, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AugmentConfig(**bad)


def moved_away(tile: np.ndarray, x: int, y: int) -> float:
    """How far the tile's pixels x right and y down are from the original's (interpolation blurs a little)."""
    return np.abs(tile[40 + y : 120 + y, 40 + x : 120 + x].astype(int) - IMAGE[40:120, 40:120]).mean()


def test_a_shift_is_labelled_the_way_the_photo_moved():
    config = AugmentConfig(flip="off", rotation=(0, 0), fill_mode="constant", translation=0.1)
    tiles, draws = preview(IMAGE, config, n=4, seed=1)
    for tile, draw in zip(tiles, draws):
        dx, dy = map(round, draw.shift)
        assert ("→" if dx > 0 else "←") in draw.describe() and ("↓" if dy > 0 else "↑") in draw.describe()
        assert moved_away(tile, dx, dy) < 10 and 3 * moved_away(tile, dx, dy) < moved_away(tile, -dx, -dy)
