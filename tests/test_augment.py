"""Augmentation previews come from the very layers models train with, reproducibly."""

import numpy as np
import pytest
from support import synthetic_image

from catdog.augment import AugmentConfig, augmentation_code, build_augmentation, preview
from catdog.models import build_model2

IMAGE = np.asarray(synthetic_image(0, 1, size=(160, 160)))


def test_same_seed_same_variants_other_seed_other_variants():
    config = AugmentConfig(flip="both", rotation=(-0.25, 0.25))
    first, again = preview(IMAGE, config, n=4, seed=7), preview(IMAGE, config, n=4, seed=7)
    assert first.shape == (4, 160, 160, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, preview(IMAGE, config, n=4, seed=8))
    assert len({variant.tobytes() for variant in first}) > 1


def test_identity_config_returns_the_original():
    variants = preview(IMAGE, AugmentConfig(flip="off", rotation=(0, 0)), n=3, seed=0)
    assert all(np.array_equal(v, IMAGE) for v in variants)


def test_vertical_flip_only_gives_the_image_or_its_upside_down_copy():
    variants = preview(IMAGE, AugmentConfig(flip="vertical", rotation=(0, 0)), n=8, seed=3)
    for variant in variants:
        assert np.array_equal(variant, IMAGE) or np.array_equal(variant, IMAGE[::-1])


def test_repeated_mode_applies_the_layers_to_the_previous_tile():
    config = AugmentConfig(flip="off", rotation=(0.25, 0.25), fill_mode="constant")
    tiles = preview(IMAGE, config, n=4, seed=0, repeated=True)
    # Four quarter turns bring the picture back to where it started.
    assert np.abs(tiles[3].astype(int) - IMAGE.astype(int)).mean() < 6
    assert np.abs(tiles[1].astype(int) - IMAGE.astype(int)).mean() > 20


def test_models_train_with_the_same_layers_the_preview_uses():
    config = AugmentConfig(flip="vertical", rotation=(-0.1, 0.3), fill_mode="wrap")
    in_model = build_model2(2, config).get_layer("augmentation")
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


@pytest.mark.parametrize(
    "bad", [{"flip": "sideways"}, {"fill_mode": "mirror"}, {"rotation": (0.3, 0.1)}, {"rotation": (-2, 0)}]
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        AugmentConfig(**bad)
