"""Helpers the tests and benchmarks share: synthetic images and data sets, polling, the app and the CLI."""

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from catdog.runs.record import process_identity
from catdog.storage import write_json_atomic

ROOT = Path(__file__).resolve().parents[2]
# What a run makes from its model on demand: a copy without them starts as a run that has made nothing yet.
MADE_FROM_MODEL = shutil.ignore_patterns("evaluation*.json", "photo-scores.json", "*.tflite")
SHARED_KERAS_HOME = ROOT.parent / "shared" / "bin" / "keras-home"


def _configure_keras_home() -> None:
    """Points Keras at the offline cache beside the project when there is one (CI, developers)."""
    if "KERAS_HOME" not in os.environ and SHARED_KERAS_HOME.exists():
        home = subprocess.run([str(SHARED_KERAS_HOME)], capture_output=True, text=True, check=True)
        os.environ["KERAS_HOME"] = home.stdout.strip()


_configure_keras_home()


def answers(url: str) -> bool:
    """Whether an HTTP endpoint on this machine answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def peak_rss(command: list[str], ceiling: int, timeout: float, **options) -> tuple[int, subprocess.CompletedProcess]:
    """Runs a command, sampling its resident memory (psutil, on any platform) until it ends, and
    returns the highest sample with the finished process. Killed once past `ceiling` bytes, so that
    a test of a memory bound fails instead of taking the machine down with it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, **options)
        process, peak = psutil.Process(child.pid), 0
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            try:
                peak = max(peak, process.memory_info().rss)
            except psutil.Error:  # ended between poll() and the sample
                break
            if peak > ceiling or time.monotonic() > deadline:
                child.kill()
            time.sleep(0.005)  # a sampling period, not a wait for anything
        child.wait()
        out.seek(0), err.seek(0)
        done = subprocess.CompletedProcess(command, child.returncode, out.read().decode(), err.read().decode())
    return peak, done


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Polls until predicate() is truthy; returns its value or fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def synthetic_image(label: int, index: int, size=(64, 48)) -> Image.Image:
    """Class 0 is warm with a bright disc, class 1 cool with a dark bar, class 2 green with pale
    stripes: learnable in one epoch."""
    rng = np.random.default_rng(index * 7 + label)
    width, height = size
    base = np.array([[200, 90, 60], [60, 90, 200], [70, 170, 70]][label], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (height, width, 3)), 0, 255)
    yy, xx = np.mgrid[:height, :width]
    if label == 0:
        pixels[(yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (height / 4) ** 2] = 250
    elif label == 1:
        pixels[:, width // 3 : width // 2] = 20
    else:
        pixels[(yy // max(height // 6, 1)) % 2 == 0] = 235
    return Image.fromarray(pixels.astype(np.uint8))


def synthetic_photos(count: int) -> list[tuple[str, bytes]]:
    """Named JPEG files of both classes in turn, each different, as a class of pupils would upload."""
    photos = []
    for i in range(count):
        out = io.BytesIO()
        synthetic_image(i % 2, 5000 + i).save(out, format="JPEG")
        photos.append((f"pet-{i}.jpg", out.getvalue()))
    return photos


def make_dataset(
    root: Path, per_split=(("train", 12), ("validation", 10)), classes=("cats", "dogs"), size=(64, 48)
) -> Path:
    for split, count in per_split:
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                synthetic_image(label, i + 1000 * (split == "validation"), size).save(folder / f"{name}.{i}.jpg")
    return root


def session_actor(role: str):
    """The actor a browser session of a server with a teacher password is: "teacher", "student"
    (one who joined the class) or "visitor" (one who did not)."""
    from catdog.access import Actor, Role

    return Actor(f"{role}-session", f"a {role}", Role(role))


# An AppTest's first run imports TensorFlow and builds models; later runs are fast.
APPTEST_TIMEOUT = 120


def open_app(page: str | None = None, language: str | None = None):
    """The dashboard in Streamlit's AppTest, optionally switched to one of its pages, optionally
    opened by a link in one of its languages (?lang=)."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APPTEST_TIMEOUT)
    if language:
        app.query_params["lang"] = language
    app.run()
    if page:
        app.switch_page(page).run()
    return app


def join_class(app, name: str):
    """The session joined to the class as a student does: their name in the sidebar's Join form."""
    app.text_input(key="join_name").set_value(name)
    app.button(key="FormSubmitter:class_join-Join").click().run()
    assert app.session_state["student"].name == name
    return app


def assert_clean(app) -> None:
    """No exception and no message from the pages' error boundary."""
    assert not app.exception, [e.message for e in app.exception]
    assert not [e.value for e in app.error if "unexpected problem" in e.value]


def forged(widget):
    """A widget as a hand-made request treats it: enabled, whatever the page drew. A disabled
    widget's value is discarded by Streamlit's server; a button inside a disabled popover is not
    disabled at all: the library's own check must refuse what it asks."""
    widget.proto.disabled = False
    return widget


def train_model1(runs_dir: Path, data_dir: Path, epochs: int, cache_dir: Path) -> Path:
    """Trains one model1 run to the end with the real command line; returns the runs folder."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "catdog",
            "train",
            "--arch",
            "model1",
            "--epochs",
            str(epochs),
            "--data-dir",
            str(data_dir),
            "--runs-dir",
            str(runs_dir),
            "--wait",
        ],
        check=True,
        cwd=ROOT,
        env={**os.environ, "CATDOG_CACHE_DIR": str(cache_dir)},
        capture_output=True,
        timeout=300,
    )
    return runs_dir


def catdog(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the command line as a user does: `python -m catdog ARGS`, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "catdog", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def select_runs(app, rows: list[int]) -> list[str]:
    """Selects rows of the runs table, newest first as shown; returns their run ids."""
    from catdog.runs.store import RunStore

    runs = [run.id for run in reversed(RunStore().runs())]
    app.session_state[f"runs-{len(runs)}"] = {"selection": {"rows": rows, "columns": []}}
    app.run()
    return [runs[row] for row in rows]


def recorded(store, run_config, epochs: list[tuple], state: str = "finished"):
    """A run record with these (training, validation) accuracies per epoch, and training loss if
    given third, as training writes them."""
    run = store.create(run_config.to_dict())
    write_json_atomic(run.path / "data.json", {"classes": ["cats", "dogs"]})
    for epoch, (accuracy, val_accuracy, *loss) in enumerate(epochs, 1):
        metrics = {"accuracy": accuracy, "val_accuracy": val_accuracy, **({"loss": loss[0]} if loss else {})}
        run.record_epoch(epoch, "train", 1.0, metrics)
    if state == "running":
        run.mark(state, **process_identity(os.getpid()))
    elif state != "queued":
        run.mark(state)
    return run


class ServerProcess:
    """A server a test starts in a process group of its own (`self.process`, set by `start`):
    stopped with its whole group, as closing its terminal would; runs it started must outlive it."""

    process: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def held_open_refusal() -> PermissionError:
    """PermissionError as Windows raises it when os.replace meets a target another process has
    open (ERROR_ACCESS_DENIED; ERROR_SHARING_VIOLATION, 32, is the other form)."""
    error = PermissionError(13, "Access is denied")
    error.winerror = 5
    return error
