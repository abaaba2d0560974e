"""The dashboard in a real browser: `streamlit run dashboard.py` driven by Chromium through Playwright.

Uses the tiny synthetic data set and a copy of the tiny trained run; screenshots go to
$CATDOG_SCREENSHOTS (default: screenshots/, ignored by git).
"""

import codecs
import csv
import hashlib
import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.browser import SLOW_MS, assert_no_errors, heading, new_page, serve, settle
from tests.helpers.support import synthetic_image, wait_for

# The browser and page fixtures (conftest.py) skip these tests, saying why, without Chromium or Playwright.
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

PAGES = ("", "dataset", "augmentation", "train", "predict", "class")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_data, trained_run_dir):
    """A dashboard server on a free port, over tiny data and a private copy of the trained run."""
    runs = tmp_path_factory.mktemp("e2e") / "runs"
    shutil.copytree(trained_run_dir, runs, ignore=shutil.ignore_patterns(".queue.lock"))
    yield from serve(tmp_path_factory, tiny_data, runs)


@pytest.fixture
def fresh_app_url(tmp_path_factory, tiny_data):
    """A dashboard with no runs yet, so every chart point on the Train page is the new run's."""
    yield from serve(tmp_path_factory, tiny_data, tmp_path_factory.mktemp("e2e-fresh") / "runs")


def test_every_page_opens_cleanly(page, app_url, screenshots):
    for name in PAGES:
        page.goto(f"{app_url}/{name}")
        settle(page)
        sync_api.expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("model1 · 2/2 epochs")
        assert_no_errors(page)
        page.screenshot(path=screenshots / f"e2e-{name or 'home'}.png", full_page=True)


def test_predict_labels_an_uploaded_photo(page, app_url, screenshots, tmp_path):
    photo = tmp_path / "my pet.jpg"
    synthetic_image(1, 777, size=(200, 150)).save(photo)
    page.goto(f"{app_url}/predict")
    settle(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(photo)
    sync_api.expect(page.get_by_role("heading", name=re.compile(r"^(cats|dogs)$"))).to_be_visible()
    sync_api.expect(page.get_by_text("Grad-CAM: where it looked")).to_be_visible()
    settle(page)
    assert_no_errors(page)
    page.screenshot(path=screenshots / "e2e-predict-upload.png", full_page=True)


def test_predict_flags_an_unfamiliar_photo_and_tables_a_zip(page, app_url, screenshots, tmp_path, backbone_weights):
    stripes = tmp_path / "stripes.jpg"
    synthetic_image(2, 778).save(stripes)
    album = tmp_path / "album.zip"
    with zipfile.ZipFile(album, "w") as archive:
        for i in range(3):
            out = io.BytesIO()
            synthetic_image(i % 2, 780 + i).save(out, format="JPEG")
            archive.writestr(f"pets/pet-{i}.jpg", out.getvalue())
        archive.writestr("pets/notes.txt", "hello")
    page.goto(f"{app_url}/predict")
    settle(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([stripes, album])
    # The server's first unfamiliarity check builds MobileNetV2: seconds on 2 cores.
    sync_api.expect(page.get_by_text("This doesn't look like anything I was trained on")).to_be_visible(timeout=SLOW_MS)
    sync_api.expect(page.get_by_text("5 photos")).to_be_visible()
    settle(page)
    assert_no_errors(page)
    page.screenshot(path=screenshots / "e2e-predict-unfamiliar-batch.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the answers as CSV").click()
    raw = Path(download.value.path()).read_bytes()
    assert raw.startswith(codecs.BOM_UTF8), "Excel reads the file as UTF-8 only with its byte-order mark"
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == "file,label,confidence,unfamiliar,unfamiliarity,error"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 5 and rows[0]["file"] == "stripes.jpg" and rows[0]["unfamiliar"] == "True"
    assert rows[4] == {
        **dict.fromkeys(rows[4], ""),
        "file": "album.zip/pets/notes.txt",
        "error": "not an image: a text file",
    }


def test_predict_map_shows_a_photo_on_hover_and_opens_it_on_click(page, app_url, screenshots, backbone_weights):
    page.goto(f"{app_url}/predict")
    settle(page)
    page.get_by_text("Show the map").click()
    chart = page.locator('[data-testid="stVegaLiteChart"]')
    sync_api.expect(chart).to_be_visible(timeout=SLOW_MS)
    settle(page)
    assert_no_errors(page)
    x, y = a_cat_point(chart)
    page.mouse.move(x, y)
    tooltip = page.locator("#vg-tooltip-element")
    sync_api.expect(tooltip.locator("img")).to_be_visible()
    assert tooltip.locator("img").evaluate("img => img.naturalWidth") > 0, "the thumbnail decodes"
    file = tooltip.locator("h2").inner_text()
    assert file.startswith(("validation/cats/", "train/cats/")), file
    page.screenshot(path=screenshots / "e2e-predict-map-hover.png", full_page=False, clip=hover_area(chart, tooltip))
    page.mouse.click(x, y)
    sync_api.expect(page.locator('[data-testid="stImage"]').filter(has_text=file)).to_be_visible()
    settle(page)
    assert_no_errors(page)


def a_cat_point(chart) -> tuple[float, float]:
    """The page position of a cat's point (a canvas has no elements to find): of the warm pixels
    (cats are drawn warm, dogs cool) in the plot's left part (the legend is on the right), the
    one nearest their middle."""
    shot = np.asarray(Image.open(io.BytesIO(chart.screenshot())).convert("RGB")).astype(int)
    warm = (shot[..., 0] - shot[..., 2] > 80)[:, : int(shot.shape[1] * 0.8)]
    rows, cols = np.nonzero(warm)
    assert len(rows), "no cat drawn"
    middle = np.argmin((rows - np.median(rows)) ** 2 + (cols - np.median(cols)) ** 2)
    box = chart.bounding_box()
    scale = shot.shape[1] / box["width"]
    return box["x"] + cols[middle] / scale, box["y"] + rows[middle] / scale


def hover_area(chart, tooltip) -> dict:
    """The chart and its tooltip together, for the screenshot."""
    a, b = chart.bounding_box(), tooltip.bounding_box()
    left, top = min(a["x"], b["x"]), min(a["y"], b["y"])
    right, bottom = max(a["x"] + a["width"], b["x"] + b["width"]), max(a["y"] + a["height"], b["y"] + b["height"])
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def test_runs_table_compares_and_downloads(page, app_url, screenshots, tmp_path):
    page.goto(f"{app_url}/train")
    settle(page)
    table = page.locator('[data-testid="stDataFrame"]').last
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    # The grid is drawn on a canvas: the first row's selection box sits under the 35 px header.
    page.mouse.click(box["x"] + 16, box["y"] + 35 + 17)
    sync_api.expect(page.get_by_text("Validation accuracy")).to_be_visible()
    settle(page)
    page.screenshot(path=screenshots / "e2e-train-compare.png", full_page=True)
    for label, check in ((".keras", lambda data: data[:2] == b"PK"), ("TFLite", lambda data: data[4:8] == b"TFL3")):
        with page.expect_download() as download:
            page.get_by_role("button", name=label).click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert check(saved.read_bytes()), f"{label} download is not a {label} model"
    assert_no_errors(page)


def test_training_run_goes_live_and_cancels(page, fresh_app_url, screenshots):
    page.goto(f"{fresh_app_url}/train")
    settle(page)
    sync_api.expect(page.get_by_text("No runs yet: choose settings above")).to_be_visible()
    epochs = page.get_by_label("Epochs")
    epochs.fill("300")  # far more than the test waits for, so the run is still going at Cancel
    epochs.press("Tab")
    page.get_by_role("button", name="Start training").click()
    sync_api.expect(page.get_by_role("heading", name="Live run: model1")).to_be_visible(timeout=SLOW_MS)

    accuracy_points = page.locator('[data-testid="stPlotlyChart"]').first.locator(".scatterlayer path.point")
    wait_for(lambda: accuracy_points.count() >= 2, timeout=SLOW_MS / 1000, message="the first epoch's points")
    page.screenshot(path=screenshots / "e2e-train-live.png", full_page=True)

    page.get_by_role("button", name="Cancel").click()
    cancelled = page.get_by_text(re.compile(r"Cancelled after [1-9]\d* of 300 epochs"))
    # While the page reruns for the ended run, the live panel's last frame may still show beside the new one.
    sync_api.expect(cancelled.first).to_be_visible(timeout=SLOW_MS)
    settle(page)
    sync_api.expect(cancelled).to_have_count(1)
    assert_no_errors(page)
    page.screenshot(path=screenshots / "e2e-train-cancelled.png", full_page=True)


def augmentation_pictures(page) -> list[str]:
    """Digests of the original and its variants as the browser received them (the pictures a page
    shows while it still draws are fewer, or an earlier run's)."""
    sources = page.locator('[data-testid="stImage"] img').evaluate_all("images => images.map(i => i.src)")
    return [hashlib.sha256(page.request.get(source).body()).hexdigest()[:16] for source in sources[:9]]


def test_a_shared_augmentation_link_shows_the_same_pictures_in_a_new_browser(browser, app_url, screenshots):
    teacher, pupil = new_page(browser), new_page(browser)  # two browser contexts: nothing shared but the link
    try:
        teacher.goto(f"{app_url}/augmentation")
        settle(teacher)
        teacher.get_by_role("radio", name="heavy", exact=True).click()
        settle(teacher)
        seed = teacher.get_by_label("Seed")
        seed.fill("7")
        seed.press("Enter")
        shared = teacher.locator('[data-testid="stCode"]').filter(has_text="aug_photo=")
        sync_api.expect(shared).to_contain_text("aug_seed=7", timeout=SLOW_MS)  # a heavy rerun on busy cores
        settle(teacher)
        link = shared.inner_text().strip()
        assert link.startswith(f"{app_url}/augmentation?aug_photo="), link
        teacher.screenshot(path=screenshots / "e2e-augmentation-heavy.png", full_page=True)

        pupil.goto(link)
        settle(pupil)
        assert_no_errors(pupil)
        sync_api.expect(pupil.get_by_label("Seed")).to_have_value("7")
        shown = wait_for(
            lambda: len(pictures := augmentation_pictures(teacher)) == 9 and pictures,
            SLOW_MS / 1000,
            message="the teacher's nine pictures",
        )
        wait_for(
            lambda: augmentation_pictures(pupil) == shown, SLOW_MS / 1000, message=f"the pupil's pictures to be {shown}"
        )
    finally:
        teacher.close()
        pupil.close()


def test_presenter_mode_shows_large_pictures_and_captions(browser, app_url, screenshots):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(SLOW_MS)
    try:
        page.goto(f"{app_url}/augmentation")
        settle(page)
        page.get_by_text("Presenter mode").click()
        settle(page)
        assert_no_errors(page)
        images = page.locator('[data-testid="stMain"] [data-testid="stImage"] img')
        sync_api.expect(images).to_have_count(9)
        # Three across on a 1280 px screen: each picture about a third of the width.
        assert images.first.bounding_box()["width"] > 250
        original = page.get_by_role("heading", name="Original")
        sync_api.expect(original).to_be_visible()
        heading(page, "Augmentation").scroll_into_view_if_needed()
        page.screenshot(path=screenshots / "e2e-augmentation-presenter.png")
    finally:
        page.close()
