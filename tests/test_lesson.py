"""A lesson is an experiment: runs alike in all but one setting, and sentences with their numbers."""

import dataclasses
import json

from support import catdog

from catdog.lesson import AUGMENTATION, LESSON_ARCH, augmentation_experiment, conclusion, experiment_runs, gaps
from catdog.runs import RunStore
from catdog.settings import PRESETS


def test_the_augmentation_experiment_varies_the_augmentation_only():
    without, with_augmentation = augmentation_experiment(PRESETS["heavy"], epochs=4, image_size=96, seed=3)
    assert without.augmentation.is_identity and with_augmentation.augmentation == PRESETS["heavy"]
    assert without.arch == LESSON_ARCH and without.experiment and without.varied == AUGMENTATION
    assert dataclasses.replace(without, augmentation=PRESETS["heavy"]) == with_augmentation
    again, _ = augmentation_experiment(PRESETS["heavy"])
    assert again.experiment != without.experiment


def recorded(store: RunStore, run_config, epochs: list[tuple[float, float]]):
    """A run record with these (training, validation) accuracies per epoch, as training writes them."""
    run = store.create(run_config.to_dict())
    for epoch, (accuracy, val_accuracy) in enumerate(epochs, 1):
        run.record_epoch(epoch, "train", 1.0, {"accuracy": accuracy, "val_accuracy": val_accuracy})
    return run


def test_the_conclusion_gives_the_measured_gaps(tmp_path):
    store = RunStore(tmp_path)
    old = recorded(store, augmentation_experiment(PRESETS["none"])[0], [(0.6, 0.6)])
    configs = augmentation_experiment(PRESETS["posts"], epochs=2)
    without = recorded(store, configs[0], [(0.7, 0.65), (0.98, 0.71)])
    with_augmentation = recorded(store, configs[1], [(0.6, 0.6), (0.85, 0.76)])
    assert [run.id for run in experiment_runs(store)] == [without.id, with_augmentation.id]
    assert [run.id for run in experiment_runs(store, old.config["experiment"])] == [old.id]
    assert [round(gap, 2) for gap in gaps(without)] == [0.05, 0.27]
    words = conclusion(without, with_augmentation)
    assert "training accuracy is 98% and validation accuracy 71%: a gap of 27 points" in words
    assert "With augmentation: 85% and 76%, a gap of 9 points" in words
    assert "narrowed the gap by 18 points" in words and "rose by 5 points" in words


def test_the_lesson_on_the_command_line_trains_both_and_concludes(tmp_path, tiny_data):
    result = catdog("lesson", "augmentation", "--quick", "--epochs", "1", "--data-dir", str(tiny_data),
                    "--runs-dir", str(tmp_path), "--wait", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    lesson = json.loads(result.stdout)
    assert [run["status"] for run in lesson["runs"]] == ["finished", "finished"]
    assert "a gap of" in lesson["conclusion"]
    configs = [RunStore(tmp_path).get(run["run"]).config for run in lesson["runs"]]
    assert {config["experiment"] for config in configs} == {lesson["experiment"]}
    assert [config["augmentation"]["flip"] for config in configs] == ["off", PRESETS["posts"].flip]
    assert {(config["epochs"], config["image_size"], config["seed"]) for config in configs} == {(1, 96, 0)}
