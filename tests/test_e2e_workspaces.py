"""A class on one server in real browsers (issue #22): two students and the teacher, each in a
Chromium context of their own, against `streamlit run dashboard.py` with a teacher password.
Each sees their own; a student's forged cancel or delete of a classmate's run changes nothing; the
teacher's works; a reload, then the student's link, brings their work back."""

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from catdog import access, classroom, roster
from catdog.classroom import ClassSettings
from catdog.runs.record import Run
from catdog.runs.store import RunStore
from catdog.settings import RunConfig
from tests.helpers.browser import (
    PAGE_TITLES,
    SLOW_MS,
    Dashboard,
    assert_no_errors,
    heading,
    nav_link,
    new_page,
    settle,
)
from tests.helpers.support import MADE_FROM_MODEL, wait_for

# The browser fixture (conftest.py) skips these tests, saying why, without Chromium or Playwright.
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

PASSWORD = "Kätzchen-42"
# The runs table is drawn on a canvas: its first row sits under the 35 px header, each row 35 px.
ROW_PX, HEADER_PX = 35, 35


@pytest.fixture
def class_url(tmp_path, tiny_data, tmp_path_factory, monkeypatch):
    """A teacher's server, its runs, data sets and class folders the test's own."""
    env = {
        "CATDOG_DATA_DIR": str(tiny_data),
        "CATDOG_RUNS_DIR": str(tmp_path / "runs"),
        "CATDOG_DATASETS_DIR": str(tmp_path / "datasets"),
        "CATDOG_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "cache"),
        "CATDOG_TEACHER_PASSWORD": PASSWORD,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with Dashboard(env, tmp_path / "streamlit.log") as server:
        yield server.url


def join(page, url: str, name: str) -> str:
    """Joins the class by name in the sidebar; returns the sign-in link it shows once."""
    page.goto(url)
    settle(page)
    form = page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="Join"))
    form.get_by_label("Your name").fill(name)
    form.get_by_role("button", name="Join").click()
    sync_api.expect(page.get_by_text("Keep your code")).to_be_visible(timeout=SLOW_MS)
    settle(page)
    link = page.locator('[data-testid="stSidebar"] [data-testid="stCode"]').nth(1).inner_text().strip()
    assert link.startswith((f"{url}/?key=", f"{url}?key=")), link
    return link


def unlock(page, url: str) -> None:
    page.goto(url)
    settle(page)
    page.get_by_label("Teacher password").fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()
    sync_api.expect(page.get_by_text("unlocked")).to_be_visible(timeout=SLOW_MS)
    settle(page)


def go(page, name: str) -> None:
    """Another page of the same session: through the sidebar, as a reload would start a new one."""
    nav_link(page, name).click()
    sync_api.expect(heading(page, PAGE_TITLES[name])).to_be_visible(timeout=SLOW_MS)
    settle(page)


def expect_runs(page, count: int) -> None:
    """The Home page's count of the runs this session sees (opened anew: from another page)."""
    go(page, "Dataset")
    go(page, "Home")
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Runs").first
    sync_api.expect(metric.locator('[data-testid="stMetricValue"]')).to_have_text(str(count))


def copy_run(source: Path, owner: access.Actor, created: float) -> Run:
    (original,) = [path for path in source.iterdir() if path.is_dir()]
    run = Run(RunStore().root / f"{original.name}-{owner.name.lower()}")
    shutil.copytree(original, run.path, ignore=MADE_FROM_MODEL)
    run.write_config(replace(run.config, created=created))
    run.record_owner(owner)
    return run


def forge_click(button) -> None:
    """A click on a button the page drew disabled, as a hand-edited page sends it."""
    button.evaluate("b => { b.disabled = false; b.removeAttribute('disabled'); b.click(); }")


def select_row(page, row: int) -> None:
    table = page.locator('[data-testid="stDataFrame"]').last
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    page.mouse.click(box["x"] + 16, box["y"] + HEADER_PX + ROW_PX * row + ROW_PX / 2)
    settle(page)


def test_two_students_and_the_teacher_each_see_their_own_and_only_the_teacher_changes_another_s(
    browser, class_url, trained_run_dir, tiny_data, screenshots
):
    ada_page, bob_page, teacher_page = new_page(browser), new_page(browser), new_page(browser)
    ada_link = join(ada_page, class_url, "Ada")
    join(bob_page, class_url, "Bob")
    unlock(teacher_page, class_url)
    ada, bob = roster.students()
    now = time.time()
    ada_run, bob_run = copy_run(trained_run_dir, ada, now - 60), copy_run(trained_run_dir, bob, now - 30)
    bob_live = RunStore().create(RunConfig("model1", epochs=300, data_dir=str(tiny_data)), owner=bob)

    # Each sees their own; the teacher sees everyone's.
    for page, count in ((ada_page, 1), (bob_page, 2), (teacher_page, 3)):
        expect_runs(page, count)
    for page in (ada_page, bob_page, teacher_page):
        assert_no_errors(page)

    # Shown her classmates' runs, Ada forges Cancel on Bob's and Delete of his finished run.
    classroom.save(ClassSettings(show_classmates_runs=True), actor=access.TEACHER)
    go(ada_page, "Train")
    cancel = ada_page.locator(f".st-key-cancel-{bob_live.id} button").first
    sync_api.expect(cancel).to_be_disabled()
    forge_click(cancel)
    settle(ada_page)
    select_row(ada_page, 1)  # newest first: Bob's live run, Bob's finished run, Ada's
    delete = ada_page.locator(".st-key-delete button").first
    sync_api.expect(delete).to_be_disabled()
    forge_click(delete)
    settle(ada_page)
    ada_page.screenshot(path=screenshots / "e2e-workspaces-student-forged.png", full_page=True)
    assert bob_live.state in ("queued", "running") and not bob_live.cancel_requested, "a forged cancel changes nothing"
    assert bob_run.path.is_dir(), "a forged delete changes nothing"

    # The teacher's cancel and delete work.
    go(teacher_page, "Train")
    teacher_page.locator(f".st-key-cancel-{bob_live.id} button").first.click()
    wait_for(lambda: bob_live.state == "cancelled" or bob_live.cancel_requested, SLOW_MS / 1000, message="cancelled")
    wait_for(lambda: bob_live.state == "cancelled", SLOW_MS / 1000, message="the run ended")
    go(teacher_page, "Train")
    select_row(teacher_page, 1)
    teacher_page.get_by_role("button", name="Delete 1 selected run…").click()
    teacher_page.locator(".st-key-delete-confirm button").first.click()
    wait_for(lambda: not bob_run.path.exists(), SLOW_MS / 1000, message="the teacher's delete")
    assert ada_run.path.is_dir() and bob_live.path.is_dir()

    # A reload starts a new session, a visitor's; Ada's link signs her in again, and leaves the address bar.
    ada_page.reload()
    settle(ada_page)
    sync_api.expect(ada_page.get_by_role("tab", name="Join")).to_be_visible()
    ada_page.goto(ada_link)
    settle(ada_page)
    assert "key=" not in ada_page.url
    sync_api.expect(ada_page.get_by_role("button", name="Sign out")).to_be_visible()
    sync_api.expect(ada_page.locator('[data-testid="stSidebar"]')).to_contain_text("Ada")
    classroom.save(ClassSettings(show_classmates_runs=False), actor=access.TEACHER)
    expect_runs(ada_page, 1)
    ada_page.screenshot(path=screenshots / "e2e-workspaces-student-back.png", full_page=True)
    for page in (ada_page, bob_page, teacher_page):
        assert_no_errors(page)
        page.context.close()
