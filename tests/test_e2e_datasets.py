"""A new user's way in Chromium: zip three folders of photos, upload them on the Dataset page,
train model4 on the fast path, predict a new photo; the class builder with a fake camera.

Screenshots go to $CATDOG_SCREENSHOTS (default: screenshots/, ignored by git).
"""

import re

import pytest

from tests.helpers.browser import SLOW_MS, Dashboard, assert_no_errors, create_data_set, nav_link, settle
from tests.helpers.corpus import ARCHIVES
from tests.helpers.support import synthetic_image

sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
# Training in the background on 2 shared cores: TensorFlow's start, the backbone's features, 10 epochs.
TRAIN_MS = 300_000


@pytest.fixture
def app_url(tmp_path, tiny_data):
    env = {
        "CATDOG_DATA_DIR": str(tiny_data),
        "CATDOG_RUNS_DIR": str(tmp_path / "runs"),
        "CATDOG_DATASETS_DIR": str(tmp_path / "datasets"),
    }
    with Dashboard(env, tmp_path / "streamlit.log") as server:
        yield server.url


def uploader(page, label: str):
    return page.locator('[data-testid="stFileUploader"]').filter(has_text=label).locator('input[type="file"]')


def test_upload_a_zip_of_three_classes_train_model4_fast_and_predict(
    page, app_url, screenshots, tmp_path, backbone_weights
):
    archive = tmp_path / "pets.zip"
    archive.write_bytes(ARCHIVES["good-three-classes"].make())
    page.goto(f"{app_url}/dataset")
    settle(page)
    page.get_by_role("radio", name="Your data sets").click()
    settle(page)
    uploader(page, "Zip of class folders").set_input_files(archive)
    create_data_set(page, page.get_by_label("Name").first, "pets", "Create from the zip")
    sync_api.expect(page.get_by_text("Every file is a usable image.")).to_be_visible()
    assert_no_errors(page)
    page.screenshot(path=screenshots / "e2e-dataset-uploaded.png", full_page=True)

    nav_link(page, "Train").click()
    settle(page)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Architecture").click()
    page.get_by_role("option", name=re.compile(r"^model4 ·")).click()
    settle(page)
    sync_api.expect(page.get_by_text("pets", exact=False).first).to_be_visible()
    page.get_by_role("button", name="Start training").click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    sync_api.expect(sidebar).to_contain_text("finished", timeout=TRAIN_MS)

    nav_link(page, "Predict").click()
    settle(page)
    photo = tmp_path / "new pet.jpg"
    synthetic_image(1, 4321, size=(200, 150)).save(photo)
    uploader(page, "Pet photos").set_input_files(photo)
    answer = page.get_by_role("heading", name=re.compile(r"^(cats|dogs|rabbits)$"))
    sync_api.expect(answer).to_be_visible(timeout=SLOW_MS)
    settle(page)
    assert_no_errors(page)
    page.screenshot(path=screenshots / "e2e-predict-three-classes.png", full_page=True)

    nav_link(page, "Dataset").click()
    settle(page)
    suspects = page.get_by_text(re.compile(r"^labelled (cats|dogs|rabbits) · model: "))
    sync_api.expect(suspects.first).to_be_visible(timeout=SLOW_MS)
    assert_no_errors(page)
    page.get_by_role("heading", name="Most likely mislabeled").scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "e2e-dataset-mislabeled.png")


def test_the_class_builder_takes_photos_with_a_fake_camera(browser, app_url, screenshots):
    # The session's Chromium: a second Playwright in the same thread is refused.
    context = browser.new_context(viewport={"width": 1400, "height": 1600}, permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(SLOW_MS)
    page.goto(f"{app_url}/dataset")
    settle(page)
    page.get_by_role("radio", name="Your data sets").click()
    settle(page)
    page.get_by_role("tab", name="Build classes").click()
    classes = page.get_by_label("Classes, separated by commas")
    classes.fill("red, blue")
    classes.press("Enter")
    settle(page)
    for i, name in enumerate(("red", "blue")):
        page.locator('[data-testid="stCheckbox"]').filter(has_text="Use the camera").nth(i).click()
        settle(page)
        camera = page.locator('[data-testid="stCameraInput"]').filter(has_text=f"Take a photo of {name}")
        for count in (1, 2):
            # The fake camera's stream must be playing before a shot can be taken.
            camera.locator("video").wait_for()
            page.wait_for_function("video => video.readyState >= 2", arg=camera.locator("video").element_handle())
            camera.get_by_role("button", name="Take Photo").click()
            counted = page.get_by_text(re.compile(rf"^{count} photos?( ·|$)"))
            sync_api.expect(counted.first).to_be_visible(timeout=SLOW_MS)
            settle(page)
            if count == 1:
                camera.get_by_role("button", name="Clear photo").click()
                settle(page)
    page.screenshot(path=screenshots / "e2e-dataset-class-builder.png", full_page=True)
    create_data_set(page, page.get_by_label("Name").nth(1), "webcam", "Create the data set")
    assert_no_errors(page)
    context.close()
