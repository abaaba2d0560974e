"""Training runs: folders on disk, a queue, and the processes that work through it.

A run is a folder under the runs directory:

    config.json     what to train (architecture, hyperparameters, data, seed, versions)
    status.json     queued | running | finished | failed | cancelled, with pid, times, error
    history.jsonl   one line per epoch, plus batch-progress lines
    data.json       what training found in the data folder: classes, counts, skipped files
    model.keras     the weights with the best validation accuracy so far
    tensorboard/    TensorBoard event files
    train.log       the training process's output

Each submitted run starts a small queue process that waits for the queue lock and then trains
queued runs oldest first, each in a fresh child process. The lock dies with its holder, so a
killed queue process never blocks the ones after it. Nothing here imports TensorFlow: listing
runs stays instant. With CATDOG_RAY_ADDRESS set, runs go to a Ray cluster instead (cluster.py);
such a run records "ray_address" in status.json.
"""

import fcntl
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from catdog import config
from catdog.storage import read_json, read_jsonl, write_json_atomic

STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Refuse to start a run with less free space than a few checkpoints and caches need.
MIN_FREE_BYTES = 200 * 2**20
# A cancelled child stops itself at its next batch; one still starting up (TensorFlow import,
# data, backbone features) is terminated after this long, so cancel always lands within seconds.
CANCEL_GRACE_S = 2.0
CANCEL_POLL_S = 0.5


class RunError(ValueError):
    """A run that cannot be found, started or changed; the message is one line for the user."""


@dataclass
class Run:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        return read_json(self.path / "config.json", {})

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def cancel_flag(self) -> Path:
        return self.path / "cancel"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    def data(self) -> dict:
        """What training found in the data folder: root, classes, counts and skipped files."""
        return read_json(self.path / "data.json") or {}

    def status(self) -> dict:
        """The recorded status, corrected when the training process has died without saying so."""
        status = read_json(self.path / "status.json")
        if not isinstance(status, dict) or status.get("state") not in STATES:
            status = {"state": "failed", "error": "status.json is damaged or missing"}
        if status.get("ray_address") and status["state"] in ACTIVE:
            return _cluster().job_status(self, status)
        if status["state"] == "running" and not _alive(status.get("pid"), self.path):
            # Not written back: the queue process, if alive, records the exact outcome, which
            # for a cancelled run is "cancelled" (it may have ended the process itself).
            if self.cancel_flag.exists():
                status = {**status, "state": "cancelled"}
            else:
                status = {
                    **status,
                    "state": "failed",
                    "error": "the training process ended without a final status (killed, or out of memory)",
                }
        return status

    @property
    def state(self) -> str:
        return self.status()["state"]

    def mark(self, state: str, **fields) -> dict:
        status = {**(read_json(self.path / "status.json") or {}), "state": state, **fields}
        if state not in ACTIVE:
            status["ended"] = status.get("ended") or time.time()
        write_json_atomic(self.path / "status.json", status)
        return status

    def history(self) -> list[dict]:
        """Per-epoch records, in order."""
        return [r for r in read_jsonl(self.path / "history.jsonl") if r.get("type") == "epoch"]

    def progress(self) -> dict | None:
        """The latest batch-progress record, if any: {epoch, batch, batches, elapsed, phase}.

        phase is "train", "head" or "fine-tune" for epochs (numbered from 1), and "features"
        (epoch 0) while the fast path computes backbone features, batch counting images.
        """
        records = read_jsonl(self.path / "history.jsonl")
        return next((r for r in reversed(records) if r.get("type") == "batch"), None)

    def summary(self) -> dict:
        """What a runs table shows: settings, state and accuracy, one flat dict."""
        cfg, status, history = self.config, self.status(), self.history()
        val = [h["val_accuracy"] for h in history if h.get("val_accuracy") is not None]
        return {
            "id": self.id,
            "arch": cfg.get("arch"),
            "status": status["state"],
            "fast": cfg.get("fast", False),
            "epochs": len(history),
            "planned_epochs": planned_epochs(cfg),
            "batch_size": cfg.get("batch_size"),
            "image_size": image_size(cfg)[0],
            "learning_rate": cfg.get("learning_rate"),
            "best_val_accuracy": max(val) if val else None,
            "last_val_accuracy": val[-1] if val else None,
            "accuracy": history[-1].get("accuracy") if history else None,
            "seconds": _duration(status),
            "created": cfg.get("created"),
            "error": status.get("error"),
        }


def image_size(run_config: dict) -> tuple[int, int]:
    """The pixel size a run trains at; runs from before the setting existed used IMAGE_SIZE."""
    side = run_config.get("image_size")
    return (int(side), int(side)) if side else config.IMAGE_SIZE


def planned_epochs(run_config: dict) -> int:
    """Epochs a run will train in all, fine-tuning included."""
    return int(run_config.get("epochs") or 0) + int(run_config.get("fine_tune_epochs") or 0)


def _duration(status: dict) -> float | None:
    started, ended = status.get("started"), status.get("ended")
    # Times from a damaged or hand-edited status.json may be anything: then there is no duration.
    if not isinstance(started, int | float) or not started:
        return None
    return round((ended if isinstance(ended, int | float) and ended else time.time()) - started, 1)


def _alive(pid: int | None, run_path: Path) -> bool:
    """Whether pid is still the process training this run (not a zombie, not a reused pid)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return str(run_path).encode() in cmdline


class RunStore:
    """The runs directory: create, list, find, queue and cancel runs."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = config.runs_dir(root)

    def runs(self) -> list[Run]:
        """All runs, oldest first."""
        if not self.root.is_dir():
            return []
        # A link could point anywhere: only the folders the app made here are runs.
        runs = [Run(p) for p in self.root.iterdir() if p.is_dir() and not p.is_symlink() and _RUN_ID.match(p.name)]
        return sorted(runs, key=lambda run: (run.config.get("created") or 0, run.id))

    def get(self, run_id: str) -> Run:
        """The run with this id; ids are checked so no path outside the runs directory is reached."""
        if not _RUN_ID.match(run_id or ""):
            raise RunError(f"invalid run id {run_id!r}")
        path = self.root / run_id
        if path.is_symlink() or not (path / "config.json").is_file():
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(path)

    def latest(self) -> Run | None:
        """The run a status badge shows: the running one, else the newest."""
        runs = self.runs()
        running = [run for run in runs if run.state == "running"]
        return (running or runs or [None])[-1]

    def queue(self) -> list[Run]:
        return [run for run in self.runs() if run.state == "queued"]

    def check_writable(self) -> None:
        """A clear error now rather than a crash mid-training."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Unique per call: sessions of one web server are threads of one process, starting at once.
            probe = self.root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise RunError(f"runs directory {self.root} is not writable ({error.strerror or error})") from None
        free = shutil.disk_usage(self.root).free
        if free < MIN_FREE_BYTES:
            raise RunError(
                f"only {free / 2**20:.0f} MB free in {self.root}; training needs at least "
                f"{MIN_FREE_BYTES // 2**20} MB"
            )

    def create(self, run_config: dict, **status) -> Run:
        """Records a queued run, with any further status fields; `submit` also gets it trained."""
        self.check_writable()
        created = time.time()
        run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{run_config['arch']}-{secrets.token_hex(2)}"
        run = Run(self.root / run_id)
        run.path.mkdir()
        write_json_atomic(run.path / "config.json", {**run_config, "id": run_id, "created": created})
        run.mark("queued", pid=None, created=created, started=None, ended=None, error=None, **status)
        return run

    def submit(self, run_config: dict) -> Run:
        """Records a queued run and makes sure a queue process (or a Ray cluster) will train it; returns at once."""
        if config.ray_address():
            return _cluster().submit(self, run_config)
        run = self.create(run_config)
        self._start_queue_process()
        return run

    def resume(self) -> None:
        """Starts a queue process if runs are waiting with none to serve them (after a reboot)."""
        if self._local_queue() and self._queue_is_idle():
            self._start_queue_process()

    def cancel(self, run_id: str) -> dict:
        """A queued run is cancelled now; a running one at its next batch, or within seconds if still starting."""
        run = self.get(run_id)
        status = run.status()
        if status["state"] not in ACTIVE:
            raise RunError(f"run {run_id} is already {status['state']}")
        run.cancel_flag.touch()
        if status.get("ray_address"):
            _cluster().stop(run, status)
        if status["state"] == "queued":
            return run.mark("cancelled", error=None)
        return status

    def _local_queue(self) -> list[Run]:
        """The queued runs this machine trains: not those waiting in a Ray cluster's queue."""
        return [run for run in self.queue() if not run.status().get("ray_address")]

    def _lock_path(self) -> Path:
        return self.root / ".queue.lock"

    def _queue_is_idle(self) -> bool:
        with open(self._lock_path(), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(lock, fcntl.LOCK_UN)
            return True

    def _start_queue_process(self) -> None:
        # A new session: the queue outlives the web server or terminal that started it.
        subprocess.Popen(
            [sys.executable, "-m", "catdog.runs", str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=_child_env(),
        )

    def serve_queue(self) -> None:
        """Waits for the queue lock, then trains queued runs oldest first until none is left."""
        with open(self._lock_path(), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            while queued := self._local_queue():
                self._train(queued[0])

    def _train(self, run: Run) -> None:
        if run.cancel_flag.exists():
            run.mark("cancelled")
            return
        with open(run.log_path, "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "catdog.training", str(run.path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
            )
        run.mark("running", pid=child.pid, started=time.time())
        returncode = _wait_or_stop(run, child)
        if (read_json(run.path / "status.json") or {}).get("state") == "running":
            if run.cancel_flag.exists():
                run.mark("cancelled")
            else:
                run.mark("failed", error=_exit_reason(returncode))


def _wait_or_stop(run: Run, child: subprocess.Popen) -> int:
    """The child's exit code, ending the child if it has not acted on a cancel in time."""
    while True:
        try:
            return child.wait(timeout=CANCEL_POLL_S)
        except subprocess.TimeoutExpired:
            if run.cancel_flag.exists() and time.time() - run.cancel_flag.stat().st_mtime > CANCEL_GRACE_S:
                child.terminate()


def _cluster():
    """catdog.cluster, imported only for runs on a Ray cluster (it builds on this module)."""
    from catdog import cluster

    return cluster


def _child_env() -> dict[str, str]:
    """The child sees the same catdog package, wherever the parent imported it from."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the training process was killed by {name}{hint}"
    return f"the training process exited with code {returncode} without a final status; see train.log"


if __name__ == "__main__":
    RunStore(sys.argv[1]).serve_queue()
