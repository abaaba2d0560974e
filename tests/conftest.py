"""Shared fixtures: tiny synthetic data sets, private runs and cache folders, a trained run."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED_KERAS_HOME = ROOT.parent / "shared" / "bin" / "keras-home"


def _configure_keras_home() -> None:
    """Points Keras at the offline cache beside the project when there is one (CI, developers)."""
    if "KERAS_HOME" not in os.environ and SHARED_KERAS_HOME.exists():
        home = subprocess.run([str(SHARED_KERAS_HOME)], capture_output=True, text=True, check=True)
        os.environ["KERAS_HOME"] = home.stdout.strip()


_configure_keras_home()


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
    """Class 0 is warm with a bright disc, class 1 cool with a dark bar: learnable in one epoch."""
    rng = np.random.default_rng(index * 7 + label)
    width, height = size
    base = np.array([200, 90, 60] if label == 0 else [60, 90, 200], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (height, width, 3)), 0, 255)
    yy, xx = np.mgrid[:height, :width]
    if label == 0:
        pixels[(yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (height / 4) ** 2] = 250
    else:
        pixels[:, width // 3 : width // 2] = 20
    return Image.fromarray(pixels.astype(np.uint8))


def make_dataset(root: Path, per_split=(("train", 12), ("validation", 10)), classes=("cats", "dogs")) -> Path:
    for split, count in per_split:
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                synthetic_image(label, i + 1000 * (split == "validation")).save(folder / f"{name}.{i}.jpg")
    return root


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own runs folder; caches are shared per session for speed."""
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))
    monkeypatch.setenv("CATDOG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A two-class train/validation folder of small synthetic JPEGs (no test/: split off)."""
    return make_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def trained_run_dir(tmp_path_factory, tiny_data) -> Path:
    """A runs folder holding one finished model1 run on tiny_data, trained by the real process."""
    runs_dir = tmp_path_factory.mktemp("trained-runs")
    env = {**os.environ, "CATDOG_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "cache")}
    subprocess.run(
        [sys.executable, "-m", "catdog", "train", "--arch", "model1", "--epochs", "2",
         "--data-dir", str(tiny_data), "--runs-dir", str(runs_dir), "--wait"],
        check=True, cwd=ROOT, env=env, capture_output=True, timeout=300,
    )
    return runs_dir


# An AppTest's first run imports TensorFlow and builds models; later runs are fast.
APPTEST_TIMEOUT = 120


def open_app(page: str | None = None):
    """The dashboard in Streamlit's AppTest, optionally switched to one of its pages."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APPTEST_TIMEOUT).run()
    if page:
        app.switch_page(page).run()
    return app


def assert_clean(app) -> None:
    """No exception and no message from the pages' error guard."""
    assert not app.exception, [e.message for e in app.exception]
    assert not [e.value for e in app.error if "unexpected problem" in e.value]


def catdog(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the command line as a user does: `python -m catdog ARGS`, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "catdog", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def backbone_weights():
    """Skips, saying why, when the MobileNetV2 ImageNet weights are not in the Keras cache."""
    from catdog import config

    if not any((config.keras_home() / "models").glob("mobilenet_v2_weights_*_160_no_top.h5")):
        pytest.skip("needs the MobileNetV2 ImageNet weights in the Keras cache: set KERAS_HOME (see README)")


@pytest.fixture
def real_data():
    """The real cats_and_dogs_filtered set, when the offline Keras cache (or a download) has it."""
    from catdog import config, data

    if not (data.default_dataset_dir().is_dir() or (config.keras_home() / "datasets" / config.DATASET_FILE).exists()):
        pytest.skip("needs cats_and_dogs_filtered in the Keras cache: set KERAS_HOME (see README)")
    return data.download_default_dataset()


@pytest.fixture(scope="module")
def browser():
    """Chromium driven by Playwright (tests/browser.py); skips, saying why, when either is missing.

    CI installs Chromium, and sets CATDOG_REQUIRE_BROWSER so that its absence fails, not skips.
    """
    from browser import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        reason = f"needs Debian's Chromium at {CHROMIUM} for the browser tests"
        if os.environ.get("CATDOG_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    from browser import new_page

    page = new_page(browser)
    yield page
    page.close()
