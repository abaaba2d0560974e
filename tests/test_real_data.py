"""Accuracy on the real cats_and_dogs_filtered set (skipped, saying why, without the Keras cache)."""

import json

from tests.helpers.support import catdog


def _train(real_data, tmp_path, *args):
    runs = str(tmp_path / "runs")
    result = catdog("train", "--arch", "model4", *args, "--runs-dir", runs, "--wait", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout), runs


def test_model4_reaches_90_percent_validation_accuracy_in_one_epoch(real_data, tmp_path):
    summary, _ = _train(real_data, tmp_path, "--epochs", "1")
    assert summary["status"] == "finished" and summary["epochs"] == 1
    assert summary["val_accuracy"] >= 0.90


def test_fast_model4_reaches_97_percent_and_scores_the_held_out_test_split(real_data, tmp_path):
    summary, runs = _train(real_data, tmp_path, "--fast")
    assert summary["val_accuracy"] >= 0.97
    evaluation = json.loads(catdog("evaluate", "--run", summary["run"], "--runs-dir", runs, "--json").stdout)
    assert evaluation["n"] == 200 and evaluation["test_accuracy"] >= 0.95
