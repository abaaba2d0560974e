"""A lesson is an experiment: runs alike in all but one setting, listed, shown and deleted as a unit."""

import dataclasses
import json
import os

import pytest
from support import assert_clean, catdog, open_app

from catdog.access import OWNER
from catdog.lesson import (
    ARCHITECTURE,
    AUGMENTATION,
    COMPARED_ARCHS,
    LESSON_ARCH,
    architecture_experiment,
    augmentation_experiment,
    conclusion,
    delete_experiment,
    experiments,
    find_experiment,
    gaps,
    run_result,
)
from catdog.runs import ACTIVE, RunError, RunStore, process_identity
from catdog.settings import PRESETS


def test_the_augmentation_experiment_varies_the_augmentation_only():
    without, with_augmentation = augmentation_experiment(PRESETS["heavy"], epochs=4, image_size=96, seed=3)
    assert without.augmentation.is_identity and with_augmentation.augmentation == PRESETS["heavy"]
    assert without.arch == LESSON_ARCH and without.experiment and without.varied == AUGMENTATION
    assert dataclasses.replace(without, augmentation=PRESETS["heavy"]) == with_augmentation
    again, _ = augmentation_experiment(PRESETS["heavy"])
    assert again.experiment != without.experiment


def test_the_architecture_experiment_varies_the_architecture_only():
    configs = architecture_experiment(PRESETS["light"], epochs=3, image_size=96, seed=7)
    assert tuple(config.arch for config in configs) == COMPARED_ARCHS
    assert {config.varied for config in configs} == {ARCHITECTURE}
    assert not any(config.fast for config in configs), "model4 sees the same photos as the others, not cached features"
    # Mixed precision follows each architecture's default (model4's frozen backbone computes in float32).
    same_but_arch = {dataclasses.replace(config, arch="model1", mixed_precision=None) for config in configs}
    assert same_but_arch == {dataclasses.replace(configs[0], mixed_precision=None)}


def recorded(store: RunStore, run_config, epochs: list[tuple[float, float]], state: str = "finished"):
    """A run record with these (training, validation) accuracies per epoch, as training writes them."""
    run = store.create(run_config.to_dict())
    for epoch, (accuracy, val_accuracy) in enumerate(epochs, 1):
        run.record_epoch(epoch, "train", 1.0, {"accuracy": accuracy, "val_accuracy": val_accuracy})
    if state == "running":
        run.mark(state, **process_identity(os.getpid()))
    elif state != "queued":
        run.mark(state)
    return run


def test_the_conclusion_gives_the_measured_gaps(tmp_path):
    store = RunStore(tmp_path)
    old = recorded(store, augmentation_experiment(PRESETS["none"])[0], [(0.6, 0.6)])
    configs = augmentation_experiment(PRESETS["posts"], epochs=2)
    without = recorded(store, configs[0], [(0.7, 0.65), (0.98, 0.71)])
    with_augmentation = recorded(store, configs[1], [(0.6, 0.6), (0.85, 0.76)])
    assert find_experiment(store).runs == (without, with_augmentation)
    assert find_experiment(store, old.config["experiment"]).runs == (old,)
    assert [round(gap, 2) for gap in gaps(without)] == [0.05, 0.27]
    words = conclusion([without, with_augmentation])
    assert "training accuracy is 98% and validation accuracy 71%: a gap of 27 points" in words
    assert "With augmentation: 85% and 76%, a gap of 9 points" in words
    assert "narrowed the gap by 18 points" in words and "rose by 5 points" in words


def architecture_runs(store: RunStore, state: str = "finished"):
    curves = {"model1": [(0.7, 0.6), (0.95, 0.64)], "model2": [(0.6, 0.6), (0.72, 0.69)],
              "model3": [(0.62, 0.61), (0.75, 0.7)], "model4": [(0.9, 0.95), (0.97, 0.96)]}
    configs = architecture_experiment(epochs=2)
    return [recorded(store, config, curves[config.arch], state if config.arch == "model4" else "finished")
            for config in configs]


def test_the_architectures_verdict_names_the_best_and_the_gaps(tmp_path):
    runs = architecture_runs(RunStore(tmp_path))
    words = conclusion(runs)
    assert "best validation accuracy of each: model1 64%, model2 69%, model3 70%, model4 96%" in words
    assert "model4 did best, 32 points above model1" in words and "MobileNetV2" in words
    assert "in points: model1 31, model2 3, model3 5, model4 1" in words
    assert "model1 memorised its training photos the most" in words
    assert run_result(runs[0]) == {
        "run": runs[0].id, "label": "model1", "status": "finished", "epochs": 2, "best_val_accuracy": 0.64,
        "final_gap": pytest.approx(0.31), "seconds": runs[0].summary()["seconds"],
    }


def test_experiments_are_listed_and_deleted_as_a_unit_never_while_one_run_trains(tmp_path):
    store = RunStore(tmp_path)
    lone = store.create(architecture_experiment()[0].to_dict() | {"experiment": None})
    lone.mark("finished")
    augmentation = [recorded(store, config, [(0.9, 0.6)]) for config in augmentation_experiment(PRESETS["posts"])]
    architectures = architecture_runs(store, state="running")
    listed = experiments(store)
    assert [(e.varied, len(e.runs), e.state) for e in listed] == [(AUGMENTATION, 2, "finished"),
                                                                 (ARCHITECTURE, 4, "running")]
    assert find_experiment(store, varied=AUGMENTATION).id == augmentation[0].config["experiment"]
    assert listed[0].conclusion() and listed[1].conclusion() is None
    with pytest.raises(RunError, match="has runs queued or running .*model4.*: cancel them first"):
        delete_experiment(store, listed[1].id, actor=OWNER)
    assert len(store.runs()) == 7, "nothing of it goes while one run trains"
    assert delete_experiment(store, listed[0].id, actor=OWNER) == [run.id for run in augmentation]
    assert [run.id for run in store.runs()] == [lone.id, *(run.id for run in architectures)]
    with pytest.raises(RunError, match="no experiment 'nope'"):
        delete_experiment(store, "nope", actor=OWNER)


def test_the_lesson_on_the_command_line_trains_both_and_concludes(tmp_path, tiny_data):
    result = catdog("lesson", "augmentation", "--quick", "--epochs", "1", "--data-dir", str(tiny_data),
                    "--runs-dir", str(tmp_path), "--wait", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    lesson = json.loads(result.stdout)
    assert [run["status"] for run in lesson["runs"]] == ["finished", "finished"]
    assert [run["label"] for run in lesson["runs"]] == ["without augmentation", "with augmentation"]
    for run in lesson["runs"]:
        history = RunStore(tmp_path).get(run["run"]).history()
        assert run["best_val_accuracy"] == max(h["val_accuracy"] for h in history)
        assert run["final_gap"] == pytest.approx(history[-1]["accuracy"] - history[-1]["val_accuracy"])
    assert "a gap of" in lesson["conclusion"] and lesson["varied"] == AUGMENTATION
    configs = [RunStore(tmp_path).get(run["run"]).config for run in lesson["runs"]]
    assert {config["experiment"] for config in configs} == {lesson["experiment"]}
    assert [config["augmentation"]["flip"] for config in configs] == ["off", PRESETS["posts"].flip]
    assert {(config["epochs"], config["image_size"], config["seed"]) for config in configs} == {(1, 96, 0)}


def test_the_architectures_lesson_on_the_command_line(tmp_path, tiny_data, backbone_weights):
    result = catdog("lesson", "architectures", "--quick", "--epochs", "1", "--data-dir", str(tiny_data),
                    "--runs-dir", str(tmp_path), "--wait", "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lesson = json.loads(result.stdout)
    assert [run["label"] for run in lesson["runs"]] == list(COMPARED_ARCHS)
    assert all(run["status"] == "finished" and run["final_gap"] is not None for run in lesson["runs"])
    assert "did best" in lesson["conclusion"] and lesson["varied"] == ARCHITECTURE


def test_experiments_on_the_command_line_list_and_delete(tmp_path):
    store = RunStore(tmp_path)
    finished = [recorded(store, config, [(0.9, 0.6)]) for config in augmentation_experiment(PRESETS["posts"])]
    busy = architecture_runs(store, state="queued")
    listing = catdog("experiments", "--runs-dir", str(tmp_path))
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:3] == ["EXPERIMENT", "VARIES", "STATUS"]
    assert [row.split()[:3] for row in rows] == [[finished[0].config["experiment"], AUGMENTATION, "finished"],
                                                 [busy[0].config["experiment"], ARCHITECTURE, "queued"]]
    assert "with augmentation: 0.6000 / 0.3000" in rows[0]
    as_json = json.loads(catdog("experiments", "--runs-dir", str(tmp_path), "--json").stdout)
    assert [len(e["runs"]) for e in as_json] == [2, 4] and as_json[0]["conclusion"]

    refused = catdog("delete-experiment", busy[0].config["experiment"], "--runs-dir", str(tmp_path))
    assert refused.returncode == 1 and refused.stderr.startswith("error: experiment ")
    deleted = catdog("delete-experiment", finished[0].config["experiment"], "--runs-dir", str(tmp_path))
    assert deleted.returncode == 0, deleted.stderr
    assert [run.id for run in store.runs()] == [run.id for run in busy]


# --- the Train page ----------------------------------------------------------------------------


@pytest.fixture
def tiny_env(monkeypatch, tiny_data):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    return tiny_data


def test_train_page_compares_the_four_architectures(tiny_env):
    app = open_app("pages/train.py")
    app.toggle(key="train_compare_quick").set_value(True).run()
    app.button(key="compare-architectures").click().run()
    assert_clean(app)
    store = RunStore()
    try:
        (experiment,) = experiments(store)
        assert [run.config["arch"] for run in experiment.runs] == list(COMPARED_ARCHS)
        assert {(run.config["epochs"], run.config["image_size"]) for run in experiment.runs} == {(10, 96)}
        assert app.session_state["train_experiment"] == experiment.id
        table = next(frame.value for frame in app.dataframe if frame.key == "experiments-1")
        assert table["experiment"].tolist() == [experiment.id] and table["varies"].tolist() == [ARCHITECTURE]
        assert {chart.key for chart in app.get("plotly_chart")} >= {"train-experiment-accuracy", "train-experiment-gap"}
        assert app.button(key="delete-experiment").disabled, "not while its runs are queued or training"
    finally:
        for run in store.runs():
            if run.state in ACTIVE:
                store.cancel(run.id, actor=OWNER)


def test_train_page_reopens_and_deletes_an_experiment(tiny_env):
    store = RunStore()
    augmentation = [recorded(store, config, [(0.98, 0.71)]) for config in augmentation_experiment(PRESETS["posts"])]
    architectures = architecture_runs(store)
    app = open_app("pages/train.py")
    table = next(frame.value for frame in app.dataframe if frame.key == "experiments-2")
    assert table["varies"].tolist() == [ARCHITECTURE, AUGMENTATION], "newest first"
    assert [s.value for s in app.success if "model4 did best" in s.value], "the newest is shown at first"

    app.session_state["experiments-2"] = {"selection": {"rows": [1], "columns": []}}
    app.run()
    assert [s.value for s in app.success if "a gap of 27 points" in s.value], "the older one, opened again"
    app.button(key="delete-experiment").click().run()
    assert any("for good" in w.value and augmentation[0].id in w.value for w in app.warning)
    app.button(key="delete-experiment-keep").click().run()
    assert len(store.runs()) == 6, "Keep keeps them"
    app.session_state["experiments-2"] = {"selection": {"rows": [1], "columns": []}}
    app.run()
    app.button(key="delete-experiment").click().run()
    app.button(key="delete-experiment-confirm").click().run()
    assert_clean(app)
    assert [run.id for run in store.runs()] == [run.id for run in architectures]
    assert next(frame.value for frame in app.dataframe if frame.key == "experiments-1")["varies"].tolist() == [
        ARCHITECTURE
    ]


def test_a_locked_train_page_neither_starts_nor_deletes_experiments(tiny_env, monkeypatch):
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", "a-long-teacher-password")
    architecture_runs(RunStore())
    app = open_app("pages/train.py")
    assert app.button(key="compare-architectures").disabled
    assert app.button(key="delete-experiment").disabled
