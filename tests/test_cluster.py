"""Runs on a Ray cluster: a real one-node Ray head on this machine, trained through, then stopped."""

import os
import shutil
import subprocess
import sys
import tempfile

import psutil
import pytest

from catdog.access import OWNER
from catdog.runs.states import RunError
from catdog.runs.store import RunStore
from catdog.settings import RunConfig
from tests.helpers.browser import free_port
from tests.helpers.support import ROOT, answers, assert_clean, open_app, wait_for

NEEDS_RAY = "needs Ray: pip install '.[ray]' (CI installs it)"
HEAD_CPUS = 2
# The smallest object store Ray accepts: runs pass no objects through it.
OBJECT_STORE_BYTES = 80 * 2**20


@pytest.fixture
def ray_head(monkeypatch):
    """A one-node Ray head with 2 CPUs, every port free and chosen here; its job API's address.

    Started with --block in a session of its own, so that stopping it ends this head's processes
    and no other Ray on the machine.
    """
    pytest.importorskip("ray.job_submission", reason=NEEDS_RAY)
    temp_dir = tempfile.mkdtemp(prefix="ray")  # short: Ray's Unix sockets live under it
    dashboard = free_port()
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard,
        "--ray-client-server-port": free_port(),
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
    }
    # The nodes of a cluster have catdog installed; this one finds it beside the tests.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    head = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--dashboard-host",
            "127.0.0.1",
            "--include-dashboard",
            "true",
            "--num-cpus",
            str(HEAD_CPUS),
            "--num-gpus",
            "0",
            "--object-store-memory",
            str(OBJECT_STORE_BYTES),
            "--temp-dir",
            temp_dir,
            "--disable-usage-stats",
            *(str(item) for pair in ports.items() for item in pair),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        wait_for(lambda: answers(f"{address}/api/version") or head.poll() is not None, 120, message="the Ray head")
        assert head.poll() is None, "ray start exited"
        monkeypatch.setenv("CATDOG_RAY_ADDRESS", address)
        yield address
    finally:
        _stop_head(head, temp_dir)


def _stop_head(head: subprocess.Popen, temp_dir: str) -> None:
    """Ends `ray start --block`, then whatever of its session is left: this head's processes only."""
    head.terminate()
    head.wait(timeout=60)
    leftovers = [process for process in psutil.process_iter() if _session(process.pid) == head.pid]
    for process in leftovers:
        process.kill()
    psutil.wait_procs(leftovers, timeout=30)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _config(tiny_data, epochs: int) -> dict:
    return RunConfig("model1", epochs=epochs, data_dir=str(tiny_data)).to_dict()


def test_an_unreachable_cluster_is_refused_before_a_run_is_recorded(monkeypatch, tiny_data):
    pytest.importorskip("ray.job_submission", reason=NEEDS_RAY)
    monkeypatch.setenv("CATDOG_RAY_ADDRESS", f"http://127.0.0.1:{free_port()}")
    store = RunStore()
    with pytest.raises(RunError, match="no Ray job server answers"):
        store.submit(_config(tiny_data, 1), actor=OWNER)
    assert store.runs() == []


def _jobs(address: str) -> dict[str, str]:
    """What `ray job list` shows: each job's status by submission id."""
    from ray.job_submission import JobSubmissionClient

    return {job.submission_id: job.status for job in JobSubmissionClient(address).list_jobs()}


def _started(run) -> bool:
    """Running, with the training process's own pid recorded (not only Ray's word that the job runs)."""
    status = run.status()
    return status["state"] == "running" and bool(status.get("pid"))


def test_runs_train_at_once_on_a_ray_cluster_cancel_and_fail_with_ray_s_reason(ray_head, tiny_data):
    store = RunStore()
    first, second = store.submit(_config(tiny_data, 2), actor=OWNER), store.submit(_config(tiny_data, 2), actor=OWNER)
    third, fourth = (
        store.submit(_config(tiny_data, 500), actor=OWNER),
        store.submit(_config(tiny_data, 500), actor=OWNER),
    )
    assert {run.status()["ray_address"] for run in (first, second, third, fourth)} == {ray_head}

    # Two CPUs, one per run: the first two train together while the others wait in Ray's queue.
    wait_for(lambda: first.state == "running" and second.state == "running", 120, message="two runs at once")
    assert third.state == "queued" and fourth.state == "queued"
    store.resume()  # as every page view does: no local queue process takes runs that wait in Ray's queue
    wait_for(lambda: first.state == "finished" and second.state == "finished", 180, message="both runs to finish")
    a, b = first.status(), second.status()
    assert a["started"] < b["ended"] and b["started"] < a["ended"], "the two runs did not overlap"
    assert [h["epoch"] for h in first.history()] == [1, 2] and first.model_path.is_file()
    # The jobs end a moment after the runs record their end, once the processes have exited.
    wait_for(lambda: _jobs(ray_head)[first.id] == _jobs(ray_head)[second.id] == "SUCCEEDED", 60, message="both jobs")

    # Room again: the queued two start, and the Train page shows both live.
    wait_for(lambda: _started(third) and _started(fourth), 120, message="the queued runs to start")
    for run in (third, fourth):
        assert "catdog.runs" not in " ".join(psutil.Process(run.status()["pid"]).parent().cmdline())
    app = open_app("pages/train.py")
    assert_clean(app)
    assert [h.value for h in app.subheader if h.value.startswith("Live run")] == ["Live run: model1"] * 2
    captions = " ".join(caption.value for caption in app.caption)
    assert third.id in captions and fourth.id in captions

    store.cancel(third.id, actor=OWNER)
    wait_for(lambda: third.state == "cancelled", 10, message="cancel to stop the job")
    psutil.Process(fourth.status()["pid"]).kill()
    wait_for(lambda: fourth.state == "failed", 10, message="the killed run to read as failed")
    assert "exit code" in fourth.status()["error"], fourth.status()
    # As above, Ray settles each job a moment after the run records its end.
    wait_for(
        lambda: (_jobs(ray_head)[third.id], _jobs(ray_head)[fourth.id]) == ("STOPPED", "FAILED"),
        60,
        message="the cancelled job to read STOPPED and the killed one FAILED",
    )
