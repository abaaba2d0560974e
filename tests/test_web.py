"""The browser export (catdog.inference.web): ONNX Runtime Web in Chromium answers as the server does, the
offline page works from file:// with the network off, and the Predict page's live camera names
what a fake camera films.

The cat and dog videos are made here from real test-split photos, so those tests need
cats_and_dogs_filtered and the ImageNet weights in the Keras cache (KERAS_HOME); they are skipped,
saying so, without them. A model1 run on synthetic photos covers the Keras path's parity anywhere.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from catdog import config
from catdog.data.images import open_image
from catdog.inference import familiarity
from catdog.inference.lineage import as_trained
from catdog.runs.record import Run
from tests.helpers.browser import SLOW_MS, Dashboard, launch_chromium, nav_link, new_page, settle, write_y4m
from tests.helpers.support import catdog, wait_for

# What "a few seconds" may take on 2 shared cores, the runtime and model loading included.
ANSWER_S = 60
PHOTOS_PER_VIDEO = 3


def _run_in(runs_dir: Path) -> Run:
    (path,) = [path for path in runs_dir.iterdir() if path.is_dir()]
    return Run(path)


def _export_html(run: Run, out: Path) -> Path:
    result = catdog("export", "--runs-dir", str(run.path.parent), "--run", run.id, "--format", "html", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _test_photos(run: Run, count: int) -> list[Path]:
    data = as_trained(run)[0]
    return [data.root / name for name, _ in data.files["test"][:count]]


def _browser_answers(browser, page_path: Path, photos: list[Path], size: tuple[int, int]) -> list[dict]:
    """The offline page's answers in Chromium for each photo decoded as the server decodes it."""
    context = browser.new_context(offline=True)
    try:
        page = context.new_page()
        page.goto(page_path.as_uri())
        page.wait_for_function("window.catdogView !== undefined", timeout=SLOW_MS)
        answers = []
        for photo in photos:
            seen = open_image(photo.read_bytes(), draft=max(size, familiarity.GUARD_IMAGE_SIZE)[::-1])
            rgba = np.asarray(seen.convert("RGBA"))
            answers.append(
                page.evaluate(
                    "([data, width, height]) => window.catdogView.model.classify(new Uint8ClampedArray(data), width, height)",
                    [rgba.ravel().tolist(), seen.width, seen.height],
                )
            )
        return answers
    finally:
        context.close()


def _assert_parity(browser, run: Run, tmp_path: Path) -> None:
    from catdog.inference.batches import answer_photos

    photos = _test_photos(run, 8)
    assert photos
    server = list(answer_photos(run, [(str(p), p.read_bytes) for p in photos]))
    meta_size = tuple(json.loads(_export_web(run, tmp_path / "web"))["inputs"]["pixels"])
    browser_answers = _browser_answers(browser, _export_html(run, tmp_path / "page.html"), photos, meta_size)
    for expected, got in zip(server, browser_answers):
        for name, p in expected.probabilities.items():
            assert got["probabilities"][name] == pytest.approx(p, abs=1e-3), expected.file
        assert got["unfamiliar"] == expected.unfamiliar, (expected.file, got["unfamiliarity"], expected.unfamiliarity)
        assert got["unfamiliarity"] == pytest.approx(expected.unfamiliarity, rel=1e-3)


def _export_web(run: Run, out: Path) -> str:
    result = catdog("export", "--runs-dir", str(run.path.parent), "--run", run.id, "--format", "web", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "model.onnx").stat().st_size > 0
    return (out / "model.json").read_text()


def test_model1_in_the_browser_answers_as_the_server(browser, backbone_weights, trained_run_dir, tmp_path):
    _assert_parity(browser, _run_in(trained_run_dir), tmp_path)


def test_export_refuses_an_unknown_run(tmp_path):
    result = catdog(
        "export", "--runs-dir", str(tmp_path), "--run", "nope", "--format", "html", str(tmp_path / "x.html")
    )
    assert result.returncode == 1 and result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1


# --- real photos: a model4 fast run on cats_and_dogs_filtered -----------------------------------


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory) -> Run:
    """A model4 --fast run on the real data set, trained by the real command line (a minute)."""
    if not any((config.keras_home() / "models").glob("mobilenet_v2_weights_*_160_no_top.h5")):
        pytest.skip("needs the MobileNetV2 ImageNet weights in the Keras cache: set KERAS_HOME (see README)")
    if not (config.keras_home() / "datasets" / config.DATASET_FILE).exists():
        pytest.skip("needs cats_and_dogs_filtered in the Keras cache: set KERAS_HOME (see README)")
    runs = tmp_path_factory.mktemp("fast-runs")
    result = catdog(
        "train", "--arch", "model4", "--fast", "--epochs", "5", "--runs-dir", str(runs), "--wait", timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return _run_in(runs)


def _videos(run: Run, folder: Path) -> dict[str, Path]:
    """A video per class from its first test-split photos."""
    data = as_trained(run)[0]
    videos = {}
    for label, name in enumerate(data.classes):
        photos = [data.root / path for path, y in data.files["test"] if y == label][:PHOTOS_PER_VIDEO]
        videos[name] = write_y4m([p.read_bytes() for p in photos], folder / f"{name}.y4m")
    return videos


@pytest.mark.slow
def test_model4_in_the_browser_answers_as_the_server(browser, fast_run, tmp_path):
    _assert_parity(browser, fast_run, tmp_path)


@pytest.mark.slow
def test_offline_page_names_what_the_camera_films_with_no_request(browser, fast_run, tmp_path, screenshots):
    page_path = _export_html(fast_run, tmp_path / "page.html")
    for name, video in _videos(fast_run, tmp_path).items():
        chromium = launch_chromium(browser.browser_type, camera_video=video)
        try:
            _offline_camera(chromium, page_path, name, screenshots / f"offline-{name}.png")
        finally:
            chromium.close()


def _offline_camera(chromium, page_path: Path, name: str, screenshot: Path) -> None:
    page = chromium.new_context(offline=True).new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_path.as_uri())
    page.get_by_role("button", name="Start the camera").click(timeout=SLOW_MS)
    page.locator(f'.catdog-answer[data-label="{name}"]').wait_for(timeout=ANSWER_S * 1000)
    page.screenshot(path=screenshot)
    left = [url for url in requests if not url.startswith(("file:", "blob:", "data:"))]
    assert not left, left


@pytest.mark.slow
def test_live_camera_on_the_predict_page(browser, fast_run, tmp_path, screenshots):
    env = {"CATDOG_RUNS_DIR": str(fast_run.path.parent), "CATDOG_CACHE_DIR": str(tmp_path / "cache")}
    with Dashboard(env, tmp_path / "server.log") as server:
        for name, video in _videos(fast_run, tmp_path).items():
            chromium = launch_chromium(browser.browser_type, camera_video=video)
            try:
                _live_camera(new_page(chromium), server.url, name, screenshots / f"live-{name}.png")
            finally:
                chromium.close()


def _live_camera(page, url: str, name: str, screenshot: Path) -> None:
    page.goto(url)
    settle(page)
    nav_link(page, "Predict").click()
    settle(page)
    page.get_by_text("Live camera", exact=True).click()
    page.frame_locator('iframe[src*="catdog_live"]').locator(f'.catdog-answer[data-label="{name}"]').wait_for(
        timeout=ANSWER_S * 1000
    )
    live = next(frame for frame in page.frames if "catdog_live" in frame.url)
    wait_for(lambda: live.evaluate("window.catdogView.stats.answers") >= 3, ANSWER_S, message="live answers")
    page.screenshot(path=screenshot, full_page=True)
