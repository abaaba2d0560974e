"""Mixed precision for the small CNNs: a setting, on where the hardware computes in reduced precision."""

import json

import numpy as np

from catdog.inference.answers import predict
from catdog.inference.loading import load_model
from catdog.runs.store import RunStore
from catdog.training.keras_loop import _cpu_has_bfloat16, precision_policy
from tests.helpers.support import catdog, synthetic_image


def test_policy_follows_the_setting_and_the_hardware():
    assert precision_policy(False) == "float32"
    assert precision_policy(True) == ("mixed_bfloat16" if _cpu_has_bfloat16() else "float32")


def test_a_mixed_precision_run_saves_a_model_that_loads_safely_and_answers(tiny_data, tmp_path):
    runs = str(tmp_path / "runs")
    result = catdog(
        "train",
        "--arch",
        "model3",
        "--epochs",
        "1",
        "--data-dir",
        str(tiny_data),
        "--runs-dir",
        runs,
        "--mixed-precision",
        "--wait",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunStore(runs).get(json.loads(result.stdout)["run"])
    assert run.config.mixed_precision is True
    model = load_model(run)
    convolutions = [layer for layer in model.layers if layer.name.startswith("conv2d")]
    assert {layer.compute_dtype for layer in convolutions} == {"bfloat16" if _cpu_has_bfloat16() else "float32"}
    assert model.get_layer("logits").compute_dtype == "float32"
    assert abs(sum(predict(run, np.asarray(synthetic_image(1, 9))).values()) - 1) < 1e-5


def test_mixed_precision_is_refused_for_model4(tmp_path):
    result = catdog("train", "--arch", "model4", "--mixed-precision", "--runs-dir", str(tmp_path))
    assert result.returncode == 2 and "mixed precision is offered for model1, model2, model3" in result.stderr
