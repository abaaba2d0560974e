"""A project file downloaded from one catdog server opens on another (issue #22), in Chromium:
two real dashboards with runs folders of their own, the file saved from one and uploaded to the other.

Screenshots go to $CATDOG_SCREENSHOTS (default: screenshots/, ignored by git).
"""

import re

import pytest

from tests.helpers.browser import SLOW_MS, Dashboard, assert_no_errors, nav_link, new_page, settle
from tests.test_project import home_run

sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


def folders(root) -> dict[str, str]:
    return {"CATDOG_RUNS_DIR": str(root / "runs"), "CATDOG_DATASETS_DIR": str(root / "datasets")}


def test_a_project_file_downloaded_from_one_server_opens_on_another(browser, tmp_path, monkeypatch, screenshots):
    home, away = tmp_path / "home", tmp_path / "away"
    for name, value in folders(home).items():
        monkeypatch.setenv(name, value)
    run, _ = home_run()
    with (
        Dashboard(folders(home), tmp_path / "home.log") as first,
        Dashboard(folders(away), tmp_path / "away.log") as second,
    ):
        page = new_page(browser)
        page.goto(first.url)
        settle(page)
        page.get_by_role("button", name="Prepare the project file (1 run)").click()
        download_button = page.get_by_role("button", name=re.compile(r"^Download .*\.catdog"))
        with page.expect_download() as download:
            download_button.click()
        file = tmp_path / download.value.suggested_filename
        download.value.save_as(file)
        assert file.suffix == ".catdog" and file.stat().st_size > 0
        page.close()

        page = new_page(browser)  # another user, on the other server
        page.goto(second.url)
        settle(page)
        section = page.locator('[data-testid="stFileUploader"]').filter(has_text="Open a project file")
        section.locator('input[type="file"]').set_input_files(file)
        settle(page)
        page.get_by_role("button", name="Open it here").click()
        # Opening loads the model once to check it: TensorFlow's first import on this server.
        sync_api.expect(page.get_by_text("Opened 1 run and 1 data set.")).to_be_visible(timeout=SLOW_MS)
        assert_no_errors(page)
        page.screenshot(path=screenshots / "e2e-project-opened.png", full_page=True)
        nav_link(page, "Train").click()
        settle(page)
        sync_api.expect(page.get_by_text(run.id).first).to_be_visible(timeout=SLOW_MS)
        assert_no_errors(page)
        page.close()
