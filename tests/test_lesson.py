"""A lesson is an experiment: runs alike in all but one setting, listed, shown and deleted as a unit."""

import dataclasses
import json
import subprocess
import sys

import pytest

from catdog.access import OWNER
from catdog.data.scan import scan
from catdog.runs.collapse import collapse_reason
from catdog.runs.lessons import (
    ARCHITECTURE,
    AUGMENTATION,
    CLEAR_RULE,
    COLLAPSE_NEXT,
    COLLAPSE_WHY,
    COMPARED_ARCHS,
    LESSON_ARCH,
    QUICK,
    architecture_experiment,
    augmentation_experiment,
    conclusion,
    delete_experiment,
    experiments,
    find_experiment,
    gaps,
    run_result,
)
from catdog.runs.states import ACTIVE, RunError
from catdog.runs.store import RunStore
from catdog.settings import LESSON_SEEDS, PRESETS, RunConfig, SettingsError
from tests.helpers.support import ROOT, assert_clean, catdog, open_app, recorded


def test_the_augmentation_experiment_varies_the_augmentation_only_seed_by_seed():
    configs = augmentation_experiment(PRESETS["heavy"], epochs=4, image_size=96, seed=3, seeds=3)
    assert [(config.seed, config.augmentation.is_identity) for config in configs] == [
        (3, True),
        (3, False),
        (4, True),
        (4, False),
        (5, True),
        (5, False),
    ]
    without, with_augmentation = configs[:2]
    assert with_augmentation.augmentation == PRESETS["heavy"]
    assert without.arch == LESSON_ARCH and without.experiment and without.varied == AUGMENTATION
    assert dataclasses.replace(without, augmentation=PRESETS["heavy"]) == with_augmentation
    assert {config.experiment for config in configs} == {without.experiment}
    again = augmentation_experiment(PRESETS["heavy"])
    assert len(again) == 2 * LESSON_SEEDS and again[0].experiment != without.experiment
    with pytest.raises(SettingsError, match="seeds must be between 1 and 10; got 0"):
        augmentation_experiment(PRESETS["heavy"], seeds=0)


def test_the_architecture_experiment_varies_the_architecture_only():
    configs = architecture_experiment(PRESETS["light"], epochs=3, image_size=96, seed=7, seeds=1)
    assert tuple(config.arch for config in configs) == COMPARED_ARCHS
    assert {config.varied for config in configs} == {ARCHITECTURE}
    assert not any(config.fast for config in configs), "model4 sees the same photos as the others, not cached features"
    # Mixed precision follows each architecture's default (model4's frozen backbone computes in float32).
    same_but_arch = {dataclasses.replace(config, arch="model1", mixed_precision=None) for config in configs}
    assert same_but_arch == {dataclasses.replace(configs[0], mixed_precision=None)}


def test_the_conclusion_gives_the_measured_gaps(tmp_path):
    store = RunStore(tmp_path)
    old = recorded(store, augmentation_experiment(PRESETS["none"], seeds=1)[0], [(0.6, 0.6)])
    configs = augmentation_experiment(PRESETS["posts"], epochs=2, seeds=1)
    without = recorded(store, configs[0], [(0.7, 0.65), (0.98, 0.71)])
    with_augmentation = recorded(store, configs[1], [(0.6, 0.6), (0.85, 0.76)])
    assert find_experiment(store).runs == (without, with_augmentation)
    assert find_experiment(store, old.config.experiment).runs == (old,)
    assert [round(gap, 2) for gap in gaps(without)] == [0.05, 0.27]
    words = conclusion([without, with_augmentation])
    assert (
        "After 2 epochs, training minus validation accuracy was 9 points with augmentation with one seed, 27 without"
        in words
    )
    assert "Best validation accuracy: 76% with augmentation, 71% without" in words
    assert "One seed per arm shows no spread" in words and "clearly" not in words


def seeded_runs(store: RunStore, without: list[list[tuple]], with_augmentation: list[list[tuple]]):
    """An augmentation experiment with one run per seed and arm, these epochs each."""
    configs = augmentation_experiment(PRESETS["posts"], epochs=len(without[0]), seeds=len(without))
    curves = [curve for pair in zip(without, with_augmentation) for curve in pair]
    return [recorded(store, config, curve) for config, curve in zip(configs, curves)]


def test_a_clear_difference_is_named_with_its_spread(tmp_path):
    # Gaps without augmentation 25, 27, 23 points (25 ± 2); with it 2, 3, 1 (2 ± 1).
    runs = seeded_runs(
        RunStore(tmp_path),
        [[(0.90, 0.65)], [(0.92, 0.65)], [(0.88, 0.65)]],
        [[(0.70, 0.68)], [(0.71, 0.68)], [(0.69, 0.68)]],
    )
    words = conclusion(runs)
    assert "training minus validation accuracy was 2 ± 1 points with augmentation over 3 seeds, 25 ± 2 without" in words
    assert "Augmentation clearly narrowed the gap, by 23 points" in words
    assert "Validation accuracy, the one that counts for new photos, was clearly higher with augmentation" in words
    assert CLEAR_RULE.lower() in words.lower()
    summary = find_experiment(RunStore(tmp_path)).summary()
    assert summary["arms"]["with augmentation"]["final_gap"] == {"mean": 0.02, "std": 0.01, "seeds": 3}
    assert summary["seeds"] == [0, 1, 2] and summary["collapsed"] == []
    assert [run["seed"] for run in summary["runs"]] == [0, 0, 1, 1, 2, 2]


def test_a_difference_within_the_spread_is_no_clear_difference(tmp_path):
    # Gaps 20 ± 10 without and 12 ± 6 with: 8 points apart, 16 of spread.
    runs = seeded_runs(
        RunStore(tmp_path),
        [[(0.80, 0.70)], [(0.90, 0.70)], [(1.00, 0.70)]],
        [[(0.76, 0.70)], [(0.82, 0.70)], [(0.88, 0.70)]],
    )
    words = conclusion(runs)
    assert "12 ± 6 points with augmentation over 3 seeds, 20 ± 10 without" in words
    assert "The gaps differ by less than the seeds' spread: no clear difference." in words
    assert "shows no clear difference" in words and "narrowed" not in words


def test_a_lesson_with_a_run_that_did_not_learn_says_so_and_nothing_about_augmentation(tmp_path):
    learned = [(0.6, 0.58, 0.66), (0.8, 0.65, 0.45), (0.9, 0.66, 0.3)]
    dead = [(0.5, 0.5, 6.5), (0.5, 0.5, 0.6932), (0.505, 0.5, 0.6931)]
    runs = seeded_runs(RunStore(tmp_path), [learned, learned], [learned, dead])
    words = conclusion(runs)
    assert words.startswith(
        "1 run did not learn (with augmentation, seed 1: after 3 epochs its training loss is "
        "0.693 (ln 2 = 0.693, a constant guess)"
    )
    assert COLLAPSE_WHY in words and COLLAPSE_NEXT in words
    assert "gap" not in words and "clear" not in words, "no claim about augmentation"
    summary = find_experiment(RunStore(tmp_path)).summary()
    assert summary["collapsed"] == [runs[3].id] and summary["runs"][3]["collapsed"]


def test_the_collapse_rule_flags_a_constant_guess_after_the_first_epochs_only():
    def history(*epochs):
        return [{"loss": loss, "accuracy": accuracy, "val_accuracy": val} for loss, accuracy, val in epochs]

    dead = [(6.5, 0.5, 0.5), (0.6932, 0.5, 0.5), (0.6931, 0.51, 0.5)]
    assert collapse_reason(history(*dead[:2]), 2) is None, "too early to say"
    assert "did not learn" in collapse_reason(history(*dead), 2)
    assert collapse_reason(history(*dead, (0.62, 0.66, 0.6)), 2) is None, "a run that recovers has learned"
    assert collapse_reason(history((0.69, 0.55, 0.52), (0.66, 0.6, 0.58), (0.64, 0.63, 0.6)), 2) is None
    assert "diverged" in collapse_reason(history(*dead[:2], (float("nan"), 0.5, 0.5)), 2)
    three = [(1.0986, 0.34, 0.33)] * 3
    assert "ln 3 = 1.099" in collapse_reason(history(*three), 3)


def architecture_runs(store: RunStore, state: str = "finished"):
    curves = {
        "model1": [(0.7, 0.6), (0.95, 0.64)],
        "model2": [(0.6, 0.6), (0.72, 0.69)],
        "model3": [(0.62, 0.61), (0.75, 0.7)],
        "model4": [(0.9, 0.95), (0.97, 0.96)],
    }
    configs = architecture_experiment(epochs=2, seeds=1)
    return [
        recorded(store, config, curves[config.arch], state if config.arch == "model4" else "finished")
        for config in configs
    ]


def test_the_architectures_verdict_names_the_best_and_the_gaps(tmp_path):
    runs = architecture_runs(RunStore(tmp_path))
    words = conclusion(runs)
    assert "best validation accuracy of each with one seed: model1 64%, model2 69%, model3 70%, model4 96%" in words
    assert "model4 did best, 32 points above model1" in words and "MobileNetV2" in words
    assert "in points: model1 31, model2 3, model3 5, model4 1" in words
    assert "model1 memorised its training photos the most" in words
    assert run_result(runs[0]) == {
        "run": runs[0].id,
        "label": "model1",
        "seed": 0,
        "status": "finished",
        "epochs": 2,
        "best_val_accuracy": 0.64,
        "final_gap": pytest.approx(0.31),
        "collapsed": None,
        "seconds": runs[0].summary()["seconds"],
    }


# --- real training on tiny synthetic photos ----------------------------------------------------


def train_here(store: RunStore, data, **settings):
    """A run trained in this process, as `catdog lesson --wait` trains its runs."""
    from catdog.training import process

    run = store.create(RunConfig(**settings).to_dict())
    process.execute(run, data)
    return run


def test_a_run_made_to_collapse_is_flagged_and_one_that_learns_is_not(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_CACHE_DIR", str(tmp_path / "cache"))
    store, data = RunStore(tmp_path / "runs"), scan(str(tiny_data))
    # A learning rate of 1 on raw 0..255 pixels: the first step kills the ReLUs, or the loss overflows.
    dead = train_here(
        store, data, arch="model2", epochs=4, image_size=64, learning_rate=1.0, augmentation=PRESETS["none"]
    )
    learned = train_here(store, data, arch="model1", epochs=4, image_size=64, learning_rate=1e-3)
    assert dead.state == learned.state == "finished"
    assert (
        dead.status()["collapsed"]
        and "did not learn" in dead.summary()["collapsed"]
        or "diverged" in dead.summary()["collapsed"]
    )
    assert learned.status()["collapsed"] is None and learned.summary()["collapsed"] is None
    listed = {row["id"]: row for row in json.loads(catdog("runs", "--runs-dir", str(store.root), "--json").stdout)}
    assert listed[dead.id]["collapsed"] == dead.summary()["collapsed"] and listed[learned.id]["collapsed"] is None


def test_the_same_seed_gives_the_same_history(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_CACHE_DIR", str(tmp_path / "cache"))
    store, data = RunStore(tmp_path / "runs"), scan(str(tiny_data))
    settings = {"arch": "model2", "epochs": 3, "image_size": 64, "learning_rate": 3e-4, "seed": 5}
    first, second, other = (
        train_here(store, data, **settings),
        train_here(store, data, **settings),
        train_here(store, data, **{**settings, "seed": 6}),
    )

    def numbers(run):
        return [
            {key: record[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy")} for record in run.history()
        ]

    assert numbers(first) == numbers(second), "weights, photo order and augmentation all follow the seed"
    assert numbers(first) != numbers(other)


# Side by side in execute_all's worker processes, started as `catdog lesson --wait` starts them: from a
# process of their own, since spawned workers import their parent's main module, and in a test
# process that has run pages that module is the dashboard.
BESIDE = (
    "import sys; from pathlib import Path; from catdog.data.scan import scan; from catdog.runs.record import Run; "
    "from catdog.training import process; "
    "sys.exit(process.execute_all([Run(Path(p)) for p in sys.argv[2:]], scan(sys.argv[1])) != [True, True])"
)


def test_a_lesson_run_gives_the_same_history_beside_another_as_alone_in_the_queue(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_CACHE_DIR", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs")
    configs = augmentation_experiment(
        PRESETS["posts"], epochs=3, image_size=64, seed=5, data_dir=str(tiny_data), seeds=1, learning_rate=3e-4
    )
    beside = [store.create(config.to_dict()) for config in configs]
    alone = store.create(configs[1].to_dict())
    both = subprocess.run(
        [sys.executable, "-c", BESIDE, str(tiny_data), *(str(run.path) for run in beside)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert both.returncode == 0, both.stderr[-2000:]
    # The queue's training process, one run in a fresh process with TensorFlow's own start.
    queued = subprocess.run(
        [sys.executable, "-m", "catdog.training", str(alone.path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert queued.returncode == 0, queued.stderr[-2000:]

    def numbers(run):
        return [
            {key: record[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy")} for record in run.history()
        ]

    assert len(numbers(alone)) == 3 and numbers(alone) == numbers(beside[1])
    assert numbers(beside[0]) != numbers(beside[1])


def test_experiments_are_listed_and_deleted_as_a_unit_never_while_one_run_trains(tmp_path):
    store = RunStore(tmp_path)
    lone = store.create(architecture_experiment()[0].to_dict() | {"experiment": None})
    lone.mark("finished")
    augmentation = [
        recorded(store, config, [(0.9, 0.6)]) for config in augmentation_experiment(PRESETS["posts"], seeds=1)
    ]
    architectures = architecture_runs(store, state="running")
    listed = experiments(store)
    assert [(e.varied, len(e.runs), e.state) for e in listed] == [
        (AUGMENTATION, 2, "finished"),
        (ARCHITECTURE, 4, "running"),
    ]
    assert find_experiment(store, varied=AUGMENTATION).id == augmentation[0].config.experiment
    assert listed[0].conclusion() and listed[1].conclusion() is None
    with pytest.raises(RunError, match="has runs queued or running .*model4.*: cancel them first"):
        delete_experiment(store, listed[1].id, actor=OWNER)
    assert len(store.runs()) == 7, "nothing of it goes while one run trains"
    assert delete_experiment(store, listed[0].id, actor=OWNER) == [run.id for run in augmentation]
    assert [run.id for run in store.runs()] == [lone.id, *(run.id for run in architectures)]
    with pytest.raises(RunError, match="no experiment 'nope'"):
        delete_experiment(store, "nope", actor=OWNER)


def test_the_lesson_on_the_command_line_trains_both_arms_per_seed_and_concludes(tmp_path, tiny_data):
    result = catdog(
        "lesson",
        "augmentation",
        "--quick",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--data-dir",
        str(tiny_data),
        "--runs-dir",
        str(tmp_path),
        "--wait",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lesson = json.loads(result.stdout)
    assert [run["status"] for run in lesson["runs"]] == ["finished"] * 4
    assert [(run["label"], run["seed"]) for run in lesson["runs"]] == [
        ("without augmentation", 0),
        ("with augmentation", 0),
        ("without augmentation", 1),
        ("with augmentation", 1),
    ]
    for run in lesson["runs"]:
        history = RunStore(tmp_path).get(run["run"]).history()
        assert run["best_val_accuracy"] == max(h["val_accuracy"] for h in history)
        assert run["final_gap"] == pytest.approx(history[-1]["accuracy"] - history[-1]["val_accuracy"])
    assert set(lesson["arms"]) == {"without augmentation", "with augmentation"}
    assert lesson["arms"]["with augmentation"]["final_gap"]["seeds"] == 2 and "collapsed" in lesson
    assert "over 2 seeds" in lesson["conclusion"] and lesson["varied"] == AUGMENTATION
    configs = [RunStore(tmp_path).get(run["run"]).config for run in lesson["runs"]]
    assert {config.experiment for config in configs} == {lesson["experiment"]}
    assert [config.augmentation.flip for config in configs] == ["off", PRESETS["posts"].flip] * 2
    assert {
        (config.epochs, config.image_size, config.learning_rate, config.photos_per_class, config.batch_size)
        for config in configs
    } == {(1, QUICK["image_size"], QUICK["learning_rate"], QUICK["photos_per_class"], QUICK["batch_size"])}


def test_the_architectures_lesson_on_the_command_line(tmp_path, tiny_data, backbone_weights):
    result = catdog(
        "lesson",
        "architectures",
        "--quick",
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--data-dir",
        str(tiny_data),
        "--runs-dir",
        str(tmp_path),
        "--wait",
        "--json",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lesson = json.loads(result.stdout)
    assert [run["label"] for run in lesson["runs"]] == list(COMPARED_ARCHS)
    assert all(run["status"] == "finished" and run["final_gap"] is not None for run in lesson["runs"])
    assert "did best" in lesson["conclusion"] and lesson["varied"] == ARCHITECTURE


def test_experiments_on_the_command_line_list_and_delete(tmp_path):
    store = RunStore(tmp_path)
    finished = [recorded(store, config, [(0.9, 0.6)]) for config in augmentation_experiment(PRESETS["posts"], seeds=1)]
    busy = architecture_runs(store, state="queued")
    listing = catdog("experiments", "--runs-dir", str(tmp_path))
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:3] == ["EXPERIMENT", "VARIES", "STATUS"]
    assert [row.split()[:3] for row in rows] == [
        [finished[0].config.experiment, AUGMENTATION, "finished"],
        [busy[0].config.experiment, ARCHITECTURE, "queued"],
    ]
    assert "with augmentation: 0.6000 / 0.3000" in rows[0]
    as_json = json.loads(catdog("experiments", "--runs-dir", str(tmp_path), "--json").stdout)
    assert [len(e["runs"]) for e in as_json] == [2, 4] and as_json[0]["conclusion"]

    refused = catdog("delete-experiment", busy[0].config.experiment, "--runs-dir", str(tmp_path))
    assert refused.returncode == 1 and refused.stderr.startswith("error: experiment ")
    deleted = catdog("delete-experiment", finished[0].config.experiment, "--runs-dir", str(tmp_path))
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
        assert [run.config.arch for run in experiment.runs] == list(COMPARED_ARCHS) * LESSON_SEEDS
        assert {(run.config.epochs, run.config.image_size) for run in experiment.runs} == {(10, 96)}
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
    augmentation = [
        recorded(store, config, [(0.98, 0.71)]) for config in augmentation_experiment(PRESETS["posts"], seeds=1)
    ]
    architectures = architecture_runs(store)
    app = open_app("pages/train.py")
    table = next(frame.value for frame in app.dataframe if frame.key == "experiments-2")
    assert table["varies"].tolist() == [ARCHITECTURE, AUGMENTATION], "newest first"
    assert [s.value for s in app.success if "model4 did best" in s.value], "the newest is shown at first"

    app.session_state["experiments-2"] = {"selection": {"rows": [1], "columns": []}}
    app.run()
    assert [s.value for s in app.success if "27 without" in s.value], "the older one, opened again"
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
