"""The run lifecycle against real training processes on tiny data."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from catdog.access import OWNER
from catdog.inference.answers import input_size, predict
from catdog.inference.evaluation import evaluate
from catdog.inference.loading import load_model
from catdog.runs.queue import _wait_or_stop
from catdog.runs.record import NOTE_MAX_CHARS, PHASE_HEAD, RECORD_EPOCH, Run, process_identity
from catdog.runs.states import RunError
from catdog.runs.store import RunStore
from catdog.settings import RunConfig
from catdog.storage import read_jsonl
from tests.helpers.support import ROOT, synthetic_image, wait_for


def _config(tiny_data, epochs=2, **overrides):
    return RunConfig("model1", epochs=epochs, data_dir=str(tiny_data), **overrides).to_dict()


def _running_with_progress(run):
    return run.state == "running" and run.progress() is not None


def test_run_trains_to_finished_with_history_model_and_logs(tiny_data):
    run = RunStore().submit(_config(tiny_data, epochs=2), actor=OWNER)
    assert run.state in ("queued", "running")
    wait_for(lambda: run.state not in ("queued", "running"), 120, message="run to end")
    status = run.status()
    assert status["state"] == "finished", status
    history = run.history()
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0 <= h["val_accuracy"] <= 1 and h["seconds"] > 0 for h in history)
    assert run.progress()["batches"] == run.progress()["batch"]
    assert {r["type"] for r in read_jsonl(run.path / "history.jsonl")} == {RECORD_EPOCH}, "progress has its own file"
    assert run.model_path.is_file()
    assert any((run.path / "tensorboard").rglob("events.out.tfevents.*"))
    cfg = json.loads((run.path / "config.json").read_text())
    assert cfg["arch"] == "model1" and cfg["split_seed"] and cfg["versions"]["tensorflow"]
    assert json.loads((run.path / "data.json").read_text())["classes"] == ["cats", "dogs"]
    assert run.summary()["best_val_accuracy"] == max(h["val_accuracy"] for h in history)


def test_a_run_at_another_image_size_trains_predicts_and_evaluates_at_that_size(tiny_data):
    run = RunStore().submit(_config(tiny_data, epochs=1, image_size=96), actor=OWNER)
    wait_for(lambda: run.state not in ("queued", "running"), 120, message="run to end")
    assert run.state == "finished", run.status()
    model = load_model(run)
    assert input_size(model) == (96, 96)
    assert abs(sum(predict(run, np.asarray(synthetic_image(0, 3, size=(300, 200)))).values()) - 1) < 1e-5
    assert evaluate(run).n > 0


def test_cancel_stops_a_running_run_within_5_s_and_keeps_history(tiny_data):
    store = RunStore()
    run = store.submit(_config(tiny_data, epochs=500), actor=OWNER)
    wait_for(lambda: _running_with_progress(run), 120, message="training to start")
    wait_for(lambda: run.history(), 60, message="a first epoch")
    store.cancel(run.id, actor=OWNER)
    wait_for(lambda: run.state == "cancelled", 5, message="cancel to take effect")
    assert len(run.history()) >= 1
    with pytest.raises(RunError, match="already cancelled"):
        store.cancel(run.id, actor=OWNER)


def test_cancel_lands_within_5_s_while_the_run_is_still_starting(tiny_data):
    store = RunStore()
    run = store.submit(_config(tiny_data, epochs=500), actor=OWNER)
    wait_for(lambda: run.state == "running", 120, message="the training process to start")
    store.cancel(run.id, actor=OWNER)  # TensorFlow is still importing: no batch will see the flag soon
    wait_for(lambda: run.state == "cancelled", 5, message="cancel to take effect")
    assert not run.history()


def test_a_training_process_that_does_not_act_on_cancel_is_terminated(tmp_path):
    """A sleeper stands for a child busy importing TensorFlow or computing features."""
    run = Run(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    run.request_cancel()
    assert _wait_or_stop(run, child) == -signal.SIGTERM


def test_runs_queue_one_at_a_time_in_order_and_a_killed_run_fails_with_reason(tiny_data):
    store = RunStore()
    first = store.submit(_config(tiny_data, epochs=500), actor=OWNER)
    second = store.submit(_config(tiny_data, epochs=1), actor=OWNER)
    third = store.submit(_config(tiny_data, epochs=1), actor=OWNER)
    wait_for(lambda: _running_with_progress(first), 120, message="first run to train")
    assert second.state == "queued" and third.state == "queued"
    assert [run.id for run in store.queue()] == [second.id, third.id]

    store.cancel(third.id, actor=OWNER)
    assert third.state == "cancelled"

    os.kill(first.status()["pid"], signal.SIGKILL)
    wait_for(lambda: first.state == "failed", 5, message="killed run to show as failed")
    assert "killed" in first.status()["error"]

    wait_for(lambda: second.state == "finished", 120, message="queued run to start and finish")
    assert second.status()["started"] > first.status()["started"]
    assert third.state == "cancelled" and not third.history()


def test_damaged_status_and_torn_history_line_still_list_and_read(tiny_data, tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.submit(_config(tiny_data, epochs=1), actor=OWNER)
    wait_for(lambda: run.state == "finished", 120, message="run to finish")
    with open(run.path / "history.jsonl", "a") as history:
        history.write('{"type": "epoch", "epoch": 2, "loss"')
    assert len(run.history()) == 1
    (run.path / "status.json").write_text("{not json")
    [summary] = [r.summary() for r in store.runs()]
    assert summary["status"] == "failed" and "damaged" in summary["error"]
    assert summary["epochs"] == 1


def test_unwritable_runs_dir_is_refused_before_training(tmp_path, tiny_data):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunError, match="not writable"):
        RunStore(blocker / "runs").submit(_config(tiny_data), actor=OWNER)


def test_run_ids_cannot_reach_outside_the_runs_dir():
    store = RunStore()
    for bad in ("../etc", "/etc/passwd", "", "a/b"):
        with pytest.raises(RunError):
            store.get(bad)


def test_a_run_whose_process_died_reads_as_its_outcome_before_the_queue_records_it(tmp_path):
    """Between a training process's death and the queue process's record, readers must not see
    a cancelled run as failed."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = process_identity(dead.pid)
    dead.wait()
    run = _running_as(tmp_path, identity)
    assert run.state == "failed" and "without a final status" in run.status()["error"]
    run.request_cancel()
    assert run.state == "cancelled"


def _running_as(tmp_path: Path, identity: dict) -> Run:
    """A run whose status says that this process trains it."""
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.mark("running", **identity)
    return run


def test_a_run_whose_process_is_alive_reads_as_running(tmp_path):
    assert _running_as(tmp_path, process_identity(os.getpid())).state == "running"


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no zombie processes")
def test_a_zombie_training_process_is_dead(tmp_path):
    """An ended child nobody has waited for yet still has its pid: it must not read as running."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        identity = process_identity(child.pid)
        wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 30, message="a zombie")
        assert _running_as(tmp_path, identity).state == "failed"
    finally:
        child.wait()


def test_a_reused_pid_is_not_the_training_process(tmp_path):
    """A pid the training process had, now another process's: its creation time tells them apart."""
    this = process_identity(os.getpid())
    run = _running_as(tmp_path, {**this, "create_time": this["create_time"] - 3600})
    assert run.state == "failed"


def test_a_finished_runs_accuracy_is_its_saved_models_not_its_best_epochs(tmp_path):
    """A fast-path head keeps its last epoch (catdog.fast.head): the runs table shows what it scores."""
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.write_config(RunConfig("model4", fast=True))
    run.mark("running", started=1.0)
    for epoch, val in enumerate((0.8, 0.9, 0.85), start=1):
        run.record_epoch(epoch, PHASE_HEAD, 0.1, {"accuracy": 0.9, "val_accuracy": val})
    assert run.summary()["best_val_accuracy"] == 0.9, "while it trains, the best epoch so far"
    run.mark("finished", best_val_accuracy=0.85)
    assert run.summary()["best_val_accuracy"] == 0.85


def test_a_final_status_is_kept_whoever_writes_after_it(tmp_path):
    """A training process can end before its queue process records it as running."""
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.mark("queued")
    run.mark("finished", best_val_accuracy=0.75)  # the child, done at once
    run.mark("running", started=1.0, **process_identity(os.getpid()))  # the queue, after spawning it
    assert run.status()["state"] == "finished" and run.status()["best_val_accuracy"] == 0.75
    run.mark("failed", error="late bookkeeping")
    assert run.status()["state"] == "finished" and "error" not in run.status()


def _queue_processes(store: RunStore) -> list[psutil.Process]:
    """The queue processes serving this runs folder: one per submit, one at work."""
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if {"catdog.runs", str(store.root)} <= set(process.info["cmdline"] or ())
    ]


def test_killed_queue_processes_are_replaced_and_the_queue_goes_on(tiny_data):
    store = RunStore()
    first = store.submit(_config(tiny_data, epochs=300), actor=OWNER)
    second = store.submit(_config(tiny_data, epochs=1), actor=OWNER)
    wait_for(lambda: _running_with_progress(first), 120, message="the first run to train")
    for process in _queue_processes(store):
        process.kill()
    store.cancel(first.id, actor=OWNER)
    wait_for(lambda: first.state == "cancelled", 60, message="the first run to stop by itself")
    assert second.state == "queued", "nothing serves the queue now"
    store.resume()
    wait_for(lambda: second.state == "finished", 120, message="the queued run to train")


def test_links_in_the_runs_dir_are_not_runs_and_linked_models_are_not_loaded(trained_run_dir, tmp_path):
    (real,) = RunStore(trained_run_dir).runs()
    store = RunStore(tmp_path / "runs")
    store.root.mkdir()
    (store.root / "elsewhere").symlink_to(real.path, target_is_directory=True)
    assert store.runs() == []
    with pytest.raises(RunError, match="no run"):
        store.get("elsewhere")
    copied = store.root / "copied"
    shutil.copytree(real.path, copied, ignore=shutil.ignore_patterns("model.keras"))
    (copied / "model.keras").symlink_to(real.model_path)
    with pytest.raises(RunError, match="link"):
        load_model(store.get("copied"))


def test_bad_settings_are_refused_with_a_clear_message(tiny_data):
    with pytest.raises(ValueError, match="image size"):
        _config(tiny_data, image_size=100)
    with pytest.raises(ValueError, match="epochs"):
        _config(tiny_data, epochs=0)
    with pytest.raises(ValueError, match="fast path"):
        _config(tiny_data, fast=True)
    with pytest.raises(ValueError, match="unknown architecture"):
        RunConfig("model9")


def test_resume_serves_runs_left_queued_without_a_queue_process(tiny_data):
    store = RunStore()
    run = store.create(_config(tiny_data, epochs=1))
    assert run.state == "queued"
    store.resume()
    wait_for(lambda: run.state == "finished", 120, message="resumed run to finish")


def test_the_queue_trains_where_fcntl_does_not_exist(tiny_data, tmp_path):
    """Windows has no fcntl: here it cannot be imported by any process of the run."""
    no_fcntl = tmp_path / "no-fcntl"
    no_fcntl.mkdir()
    (no_fcntl / "fcntl.py").write_text("raise ImportError('no fcntl on this platform')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(no_fcntl), os.environ.get("PYTHONPATH")]))}
    script = (
        "import sys\n"
        "from catdog.access import OWNER\n"
        "from catdog.runs.store import RunStore\n"
        "from catdog.settings import RunConfig\n"
        "assert sys.modules.get('fcntl') is None\n"
        f"run = RunStore().submit(RunConfig('model1', epochs=1, data_dir={str(tiny_data)!r}).to_dict(), actor=OWNER)\n"
        "print(run.id)\n"
    )
    started = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert started.returncode == 0, started.stderr
    run = RunStore().get(started.stdout.strip())
    wait_for(lambda: run.state not in ("queued", "running"), 120, message="the run to end")
    assert run.state == "finished", (run.status(), run.log_path.read_text()[-2000:])
    assert "ImportError: no fcntl" not in run.log_path.read_text()


def test_delete_removes_ended_runs_and_refuses_active_ones(tiny_data, tmp_path):
    store = RunStore(tmp_path / "runs")
    queued = store.create(_config(tiny_data))
    with pytest.raises(RunError, match="queued: cancel it"):
        store.delete(queued.id, actor=OWNER)
    running = store.create(_config(tiny_data))
    running.mark("running", **process_identity(os.getpid()))
    with pytest.raises(RunError, match="running: cancel it"):
        store.delete(running.id, actor=OWNER)
    store.cancel(queued.id, actor=OWNER)
    store.delete(queued.id, actor=OWNER)
    assert [run.id for run in store.runs()] == [running.id]
    assert not queued.path.exists() and [p.name for p in store.root.iterdir() if p.name.startswith(".deleted")] == []
    with pytest.raises(RunError, match="no run"):
        store.delete(queued.id, actor=OWNER)


def test_a_note_is_kept_with_its_run_bounded_and_removable(tiny_data, tmp_path):
    run = RunStore(tmp_path / "runs").create(_config(tiny_data))
    assert run.note == "" and run.summary()["note"] == ""
    run.set_note("  lr 3e-4 overfits after epoch 3 · ünïcödé  ", actor=OWNER)
    assert run.note == "lr 3e-4 overfits after epoch 3 · ünïcödé"
    assert run.summary()["note"] == run.note
    with pytest.raises(RunError, match=f"at most {NOTE_MAX_CHARS} characters") as error:
        run.set_note("x" * (NOTE_MAX_CHARS + 1), actor=OWNER)
    assert "\n" not in str(error.value)
    assert run.note == "lr 3e-4 overfits after epoch 3 · ünïcödé"
    run.set_note("", actor=OWNER)
    assert run.note == ""


def test_the_queue_is_free_to_train_here_only_when_nothing_waits_or_trains(tiny_data, tmp_path):
    store = RunStore(tmp_path / "runs")
    with store.queue_free() as free:
        assert free
        with store.queue_free() as again:
            assert not again, "one holder at a time"
    queued = store.create(_config(tiny_data))
    with store.queue_free() as free:
        assert not free, "a queued run goes first"
        queued.mark("cancelled")  # before the queue is let go, which would start a queue process for it
    with store.queue_free() as free:
        assert free


def test_a_run_reads_its_config_typed_and_a_damaged_config_json_is_no_run(tiny_data, tmp_path):
    store = RunStore(tmp_path / "runs")
    kept, damaged = store.create(_config(tiny_data, epochs=3)), store.create(_config(tiny_data))
    assert kept.config.epochs == 3 and kept.config.created > 0 and kept.config.data_dir == str(tiny_data)
    (damaged.path / "config.json").write_text('{"arch": "model1", "epochs": "three"}')
    assert store.runs() == [kept]
    with pytest.raises(RunError, match=f"run {damaged.id} has a damaged config.json"):
        _ = store.get(damaged.id).config
    store.cancel(damaged.id, actor=OWNER)
    store.delete(damaged.id, actor=OWNER)
    assert not damaged.path.exists()
