"""Fixtures: tiny synthetic data sets, private runs and cache folders, a trained run, a browser.

The helpers they use live in tests/helpers/ (support.py, protocol.py, browser.py, corpus.py).
"""

import http.server
import os
import shutil
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from catdog.access import OWNER
from tests.helpers import https
from tests.helpers.support import MADE_FROM_MODEL, make_dataset, train_model1


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own runs, datasets and class folders (the class folder is beside the
    runs); caches are shared per session for speed."""
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(tmp_path_factory.mktemp("work") / "runs"))
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(tmp_path_factory.mktemp("datasets")))
    monkeypatch.setenv("CATDOG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A two-class train/validation folder of small synthetic JPEGs (no test/: split off)."""
    return make_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def trained_run_dir(tmp_path_factory, tiny_data) -> Path:
    """A runs folder holding one finished model1 run on tiny_data, trained by the real process."""
    return train_model1(tmp_path_factory.mktemp("trained-runs"), tiny_data, 2, tmp_path_factory.getbasetemp() / "cache")


@pytest.fixture(scope="session")
def three_class_run_dir(tmp_path_factory) -> Path:
    """A runs folder holding one finished model1 run on three synthetic classes."""
    data = make_dataset(tmp_path_factory.mktemp("three-class-data"), classes=("cats", "dogs", "birds"))
    return train_model1(tmp_path_factory.mktemp("three-class-runs"), data, 2, tmp_path_factory.getbasetemp() / "cache")


@pytest.fixture(scope="session")
def lopsided_run_dir(tmp_path_factory) -> Path:
    """A runs folder holding one finished model1 run on data with two validation dogs and no
    test/ folder: too few to hold one out, so the test split has cats only."""
    data = make_dataset(tmp_path_factory.mktemp("lopsided-data"))
    for extra in sorted((data / "validation" / "dogs").iterdir())[2:]:
        extra.unlink()
    return train_model1(tmp_path_factory.mktemp("lopsided-runs"), data, 1, tmp_path_factory.getbasetemp() / "cache")


@pytest.fixture
def tiny_env(monkeypatch, tiny_data):
    """The dashboard and library reading tiny_data."""
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    return tiny_data


@pytest.fixture
def trained_env(monkeypatch, tiny_env, trained_run_dir):
    """tiny_data and the runs folder with its trained run."""
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(trained_run_dir))
    return trained_run_dir


@pytest.fixture
def copied_runs(trained_run_dir, tmp_path, monkeypatch) -> Path:
    """A private runs folder with two copies of the trained run, for tests that change or delete runs."""
    (original,) = [path for path in trained_run_dir.iterdir() if path.is_dir()]
    root = tmp_path / "runs"
    for copy in ("a", "b"):
        shutil.copytree(original, root / f"{original.name}-{copy}", ignore=MADE_FROM_MODEL)
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(root))
    return root


@pytest.fixture
def backbone_weights():
    """Skips, saying why, when the MobileNetV2 ImageNet weights are not in the Keras cache."""
    from catdog import config

    if not any((config.keras_home() / "models").glob("mobilenet_v2_weights_*_160_no_top.h5")):
        pytest.skip("needs the MobileNetV2 ImageNet weights in the Keras cache: set KERAS_HOME (see README)")


@pytest.fixture
def real_data():
    """The real cats_and_dogs_filtered set, when the offline Keras cache (or a download) has it."""
    from catdog import config
    from catdog.data.download import default_dataset_dir, download_default_dataset

    if not (default_dataset_dir().is_dir() or (config.keras_home() / "datasets" / config.DATASET_FILE).exists()):
        pytest.skip("needs cats_and_dogs_filtered in the Keras cache: set KERAS_HOME (see README)")
    return download_default_dataset(actor=OWNER)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """Where browser tests save what they saw: $CATDOG_SCREENSHOTS, else screenshots/ (ignored by git)."""
    from tests.helpers.support import ROOT

    folder = Path(os.environ.get("CATDOG_SCREENSHOTS") or ROOT / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    """Chromium driven by Playwright (tests/helpers/browser.py); skips, saying why, when either is missing.

    CI installs Chromium, and sets CATDOG_REQUIRE_BROWSER so that its absence fails, not skips.
    """
    from tests.helpers.browser import CHROMIUM, launch_chromium

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
    from tests.helpers.browser import new_page

    page = new_page(browser)
    yield page
    page.close()


@pytest.fixture
def https_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """The base URL of a local HTTPS server whose certificate no CA vouches for, and that certificate."""
    certificate, key = https.self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), https.Archive)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", certificate
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def ten_mb_share():
    """A teacher who allows each student 10 MB of data sets, and two students: (teacher, ana, ben)."""
    from catdog import classroom
    from catdog.access import Actor, Role
    from catdog.classroom import ClassSettings

    teacher = Actor("teacher-1", "Ms Rivera", Role.TEACHER)
    classroom.save(ClassSettings(max_dataset_mb_per_student=10), actor=teacher)
    return teacher, Actor("student-ana", "Ana", Role.STUDENT), Actor("student-ben", "Ben", Role.STUDENT)
