"""The one source of run settings: defaults per path and architecture, checks, and the record runs keep."""

import json
import subprocess
import sys

import pytest

from catdog import config
from catdog.settings import ARCHITECTURES, AugmentConfig, RunConfig, SettingsError, default_epochs
from tests.helpers.support import ROOT


def test_defaults_follow_the_path_and_the_architecture():
    assert RunConfig("model1").epochs == default_epochs(fast=False)
    assert RunConfig("model4", fast=True).epochs == default_epochs(fast=True) != default_epochs(fast=False)
    assert RunConfig("model4-finetune").fine_tune_epochs > 0 and RunConfig("model4").fine_tune_epochs == 0
    for arch in ARCHITECTURES.values():
        assert RunConfig(arch.name).learning_rate == arch.learning_rate
        assert arch.mixed_precision == (not arch.uses_backbone)
        assert RunConfig(arch.name).mixed_precision == arch.mixed_precision_by_default == (arch.name == "model1")
    assert RunConfig("model2", mixed_precision=False).mixed_precision is False
    with pytest.raises(SettingsError, match="mixed precision is offered for model1, model2, model3; not model4"):
        RunConfig("model4", mixed_precision=True)


def test_the_record_keeps_the_config_json_shape_runs_are_read_with():
    record = json.loads(json.dumps(RunConfig("model4", fast=True, data_dir="/data").to_dict()))
    assert list(record) == [
        "arch",
        "epochs",
        "fine_tune_epochs",
        "batch_size",
        "image_size",
        "learning_rate",
        "augmentation",
        "seed",
        "data_dir",
        "split_seed",
        "fast",
        "feature_copies",
        "small_photo_copies",
        "mixed_precision",
        "experiment",
        "varied",
        "photos_per_class",
        "created",
        "versions",
    ]
    assert record["augmentation"] == {
        "flip": "horizontal",
        "rotation": [-0.2, 0.2],
        "fill_mode": "reflect",
        "seed": None,
        "zoom": 0.0,
        "translation": 0.0,
        "grayscale": 0.0,
        "contrast": 0.0,
        "brightness": 0.0,
    }
    assert record["batch_size"] == config.BATCH_SIZE and record["split_seed"] == config.SPLIT_SEED
    assert set(record["versions"]) == {"python", "tensorflow", "keras", "numpy"}
    assert all(record["versions"].values())
    assert AugmentConfig.from_dict(record["augmentation"]) == AugmentConfig()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epochs": 0}, "epochs must be between 1 and 500; got 0"),
        ({"epochs": 2.5}, "epochs must be a whole number; got 2.5"),
        ({"batch_size": 4096}, "batch size must be between 1 and 1024; got 4096"),
        ({"learning_rate": 2.0}, "learning rate must be in (0, 1]; got 2.0"),
        ({"image_size": 100}, f"image size must be one of {', '.join(map(str, config.IMAGE_SIDES))}; got 100"),
        ({"feature_copies": 17, "arch": "model4", "fast": True}, "augmented copies must be between 0 and 16; got 17"),
        ({"fast": True}, "the fast path needs a frozen backbone; model1 has none"),
        ({"arch": "model4", "small_photo_copies": True}, "small-photo copies are made on the fast path"),
        ({"arch": "model9"}, "unknown architecture 'model9'"),
        ({"augmentation": {"flip": "both"}}, "augmentation must be an AugmentConfig"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(settings, message):
    settings = {"arch": "model1", **settings}
    with pytest.raises(SettingsError) as refused:
        RunConfig(**settings)
    assert message in str(refused.value)


def test_settings_need_no_tensorflow():
    code = "import sys, catdog.settings; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_an_old_or_newer_config_json_reads_typed_with_defaults_for_what_it_lacks():
    """Runs recorded before a setting existed read with its default (float32 for mixed precision);
    names this version does not know are ignored; values keep their recorded types."""
    old = RunConfig.from_dict({"arch": "model2", "epochs": 3, "id": "r", "versions": {}, "added_later": 1})
    assert old == RunConfig("model2", epochs=3, mixed_precision=False)
    assert old.input_size == (config.IMAGE_SIZE[0],) * 2 and old.planned_epochs == 3
    assert old.augmentation == AugmentConfig() and old.split_seed == config.SPLIT_SEED
    recorded = json.loads(json.dumps(RunConfig("model4-finetune", batch_size=16, seed=7).to_dict()))
    assert RunConfig.from_dict(recorded) == RunConfig("model4-finetune", batch_size=16, seed=7)
    for damaged in (
        None,
        [],
        {"epochs": 3},
        {"arch": "model1", "epochs": "3"},
        {"arch": "model1", "augmentation": "x"},
    ):
        with pytest.raises(SettingsError):
            RunConfig.from_dict(damaged)
