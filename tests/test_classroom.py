"""Serving a class: the teacher's lock, folders the server shares, sessions kept apart, the queue's
schedule. AppTest for the pages, Chromium against a real server for what only a browser shows."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import catdog_ui as ui
from catdog import access, config
from catdog.access import Gate, Throttle, password_matches
from catdog.runs.queue_times import queue_plan
from catdog.runs.record import PHASE_TRAIN, process_identity
from catdog.runs.store import RunStore
from tests.helpers.browser import SLOW_MS, Dashboard, nav_link, new_page, settle
from tests.helpers.support import (
    APPTEST_TIMEOUT,
    ROOT,
    assert_clean,
    forged,
    make_dataset,
    open_app,
    select_runs,
    synthetic_image,
    wait_for,
)

PASSWORD = "Kätzchen-42"
FOLDER = "A folder on this computer"


class Clock:
    """Time that moves only when the test says, so that throttle waits are exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """A fresh server-wide gate on a test clock: no test inherits another's failures."""
    clock = Clock()
    monkeypatch.setattr(access, "GATE", Gate(clock=clock))
    return clock


@pytest.fixture
def teacher(monkeypatch, tiny_data, clock):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", PASSWORD)
    return tiny_data


@pytest.fixture
def tiny_env_no_password(monkeypatch, tiny_data, clock):
    monkeypatch.delenv("CATDOG_TEACHER_PASSWORD", raising=False)
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))


# --- the password check and its throttles -------------------------------------------------------


def test_password_comparison_is_exact_for_any_text():
    assert password_matches(PASSWORD, PASSWORD)
    assert not password_matches(PASSWORD[:-1], PASSWORD)
    assert not password_matches("", PASSWORD)
    assert not password_matches("Katzchen-42", PASSWORD)


def test_a_session_waits_twice_as_long_after_each_failure_past_the_free_ones():
    clock = Clock()
    throttle = Throttle(free=3, first_wait_s=2, longest_wait_s=10, forget_after_s=900, clock=clock)
    waits = []
    for _ in range(6):
        waits.append(throttle.wait_s("student"))
        throttle.failed("student")
    assert waits == [0, 0, 0, 2, 4, 8]
    assert throttle.wait_s("student") == 10, "capped at the longest wait"
    assert throttle.wait_s("teacher") == 0, "another session is not slowed down"
    clock.now += 4
    assert throttle.wait_s("student") == 6
    clock.now += 900
    assert throttle.wait_s("student") == 0
    throttle.failed("teacher")
    assert throttle.wait_s("student") == 0, "old failures are forgotten"


def test_failures_in_student_sessions_do_not_lock_the_teacher_session():
    clock = Clock()
    gate = Gate(clock=clock)
    for _ in range(config.UNLOCK_FREE_TRIES + 2):
        clock.now += 1
        gate.unlock("guess", PASSWORD, "student")
    assert gate.unlock("guess", PASSWORD, "student").message.startswith("Wrong password, and too many of them: wait")
    assert gate.unlock(PASSWORD, PASSWORD, "teacher").unlocked


def test_new_sessions_buy_no_new_tries_past_the_server_throttle():
    clock = Clock()
    gate = Gate(clock=clock)
    for tab in range(config.SERVER_FREE_TRIES):
        assert gate.unlock(f"guess {tab}", PASSWORD, f"tab {tab}").message == "Wrong password."
    refused = gate.unlock("another guess", PASSWORD, "a brand-new tab")
    assert not refused.unlocked
    assert refused.message == "Wrong password, and too many of them: wait 2 s before trying again."
    assert gate.unlock(PASSWORD, PASSWORD, "teacher").unlocked, "the teacher never waits"


# --- the lock on the pages -----------------------------------------------------------------------


def start_button(app: AppTest):
    return next(b for b in app.get("form_submit_button") if b.label == "Start training")


def unlock(app: AppTest, password: str = PASSWORD) -> AppTest:
    app.sidebar.text_input(key="teacher_attempt").input(password)
    next(b for b in app.sidebar.get("form_submit_button") if b.label == "Unlock").click().run()
    return app


def test_without_a_password_nothing_is_locked(tiny_env_no_password):
    app = open_app("pages/train.py")
    assert_clean(app)
    assert not start_button(app).disabled
    assert not [c for c in app.sidebar.caption if c.value == "Teacher"]
    assert not [c for c in app.caption if c.value == ui.LOCKED]


def test_train_is_locked_until_the_teacher_unlocks_and_locks_again(teacher):
    app = open_app("pages/train.py")
    assert_clean(app)
    assert start_button(app).disabled
    assert start_button(app).help == ui.LOCKED
    assert [c.value for c in app.caption if c.value == ui.LOCKED] == [ui.LOCKED]
    forged(start_button(app)).click().run()
    assert RunStore().runs() == [], "a click sent for a disabled button must not start a run"

    unlock(app, "wrong")
    assert [e.value for e in app.sidebar.error] == ["Wrong password."]
    assert start_button(app).disabled

    unlock(app)
    assert_clean(app)
    assert not app.sidebar.error
    assert not start_button(app).disabled
    assert "teacher_lock" in [b.key for b in app.sidebar.button]

    app.sidebar.button(key="teacher_lock").click().run()
    assert start_button(app).disabled
    assert app.sidebar.text_input(key="teacher_attempt").value == ""


def test_deleting_runs_and_editing_notes_wait_for_the_teacher(teacher, copied_runs):
    app = open_app("pages/train.py")
    (run_id,) = select_runs(app, [0])
    assert app.button(key="delete").disabled and app.button(key="delete").help == ui.LOCKED
    assert app.text_input(key=f"note-{run_id}").disabled
    forged(app.button(key="delete")).click().run()
    assert not [b for b in app.button if b.key == "delete-confirm"], "no confirmation while locked"
    unlock(app)
    assert not app.text_input(key=f"note-{run_id}").disabled
    app.button(key="delete").click().run()
    app.button(key="delete-confirm").click().run()
    assert_clean(app)
    assert run_id not in [run.id for run in RunStore().runs()]


def test_repeated_wrong_passwords_are_slowed_down_in_one_line(teacher, clock):
    app = open_app("pages/train.py")
    for _ in range(config.UNLOCK_FREE_TRIES):
        clock.now += 1
        unlock(app, "guess")
    unlock(app, "guess")
    assert [e.value for e in app.sidebar.error] == [
        "Wrong password, and too many of them: wait 2 s before trying again."
    ]
    assert start_button(app).disabled
    unlock(app)
    assert not start_button(app).disabled, "the right password unlocks at once, even while wrong ones wait"


def test_a_password_in_secrets_toml_locks_too(monkeypatch, tiny_data, clock):
    monkeypatch.delenv("CATDOG_TEACHER_PASSWORD", raising=False)
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    app = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APPTEST_TIMEOUT)
    app.secrets["teacher_password"] = PASSWORD
    app.run()
    app.switch_page("pages/train.py").run()
    assert start_button(app).disabled
    unlock(app)
    assert not start_button(app).disabled


def test_dataset_source_is_locked_and_a_locked_session_keeps_its_folder(teacher, tmp_path, monkeypatch):
    other = make_dataset(tmp_path / "other", per_split=(("train", 3), ("validation", 2)), classes=("owls", "bats"))
    monkeypatch.setenv("CATDOG_DATA_ROOTS", str(tmp_path))
    app = open_app("pages/dataset.py")
    assert_clean(app)
    source = app.button_group(key="data_source")
    assert source.disabled and source.help == ui.LOCKED
    assert ui.LOCKED in [c.value for c in app.caption]
    # What a hand-made request could send for the disabled controls changes nothing.
    forged(source).set_value(FOLDER).run()
    forged(app.text_input(key="data_path")).set_value(str(other)).run()
    assert_clean(app)
    assert {m.label: m.value for m in app.metric}["Classes"] == "2"
    assert app.session_state["data_dir"] == str(teacher)

    unlock(app)
    app.text_input(key="data_path").set_value(str(other)).run()
    assert_clean(app)
    assert app.session_state["data_dir"] == str(other)


def test_queued_runs_can_be_cancelled_only_when_unlocked(teacher, queue_behind_a_running_run):
    _, queued = queue_behind_a_running_run
    app = open_app("pages/train.py")
    button = app.button(key=f"cancel-{queued[0].id}")
    assert button.disabled and button.help == ui.LOCKED
    forged(button).click().run()
    assert queued[0].state == "queued"
    unlock(app)
    app.button(key=f"cancel-{queued[0].id}").click().run()
    assert queued[0].state == "cancelled"


# --- folders the server shares ---------------------------------------------------------------------


def choose_folder(app: AppTest, folder) -> AppTest:
    app.button_group(key="data_source").set_value(FOLDER).run()
    app.text_input(key="data_path").set_value(str(folder)).run()
    return app


def test_dataset_refuses_a_folder_outside_the_data_roots_in_one_line(tiny_env_no_password, tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_ROOTS", str(tmp_path))
    app = choose_folder(open_app("pages/dataset.py"), "/usr")
    assert_clean(app)
    assert [e.value for e in app.error] == [
        "That folder cannot be used: /usr is outside the folders this server shares (CATDOG_DATA_ROOTS)"
    ]


def test_with_a_password_in_secrets_and_no_roots_typed_folders_are_refused(monkeypatch, tiny_data, clock, tmp_path):
    """The library knows only the environment's password: the dashboard adds its secrets.toml's."""
    monkeypatch.delenv("CATDOG_TEACHER_PASSWORD", raising=False)
    monkeypatch.delenv("CATDOG_DATA_ROOTS", raising=False)
    monkeypatch.delenv("CATDOG_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))  # no default set to scan first
    app = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APPTEST_TIMEOUT)
    app.secrets["teacher_password"] = PASSWORD
    app.run()
    app.switch_page("pages/dataset.py").run()
    unlock(app)
    choose_folder(app, tiny_data)
    assert_clean(app)
    assert [e.value for e in app.error] == [
        "That folder cannot be used: this server reads no typed folders: its CATDOG_DATA_ROOTS is not set"
    ]


def test_dataset_says_in_one_line_when_a_folder_is_too_big_to_scan(tiny_env_no_password, tmp_path, monkeypatch):
    big = make_dataset(tmp_path / "big", per_split=(("train", 30),))
    monkeypatch.setenv("CATDOG_MAX_SCAN_FILES", "50")
    app = choose_folder(open_app("pages/dataset.py"), big)
    assert_clean(app)
    assert [e.value for e in app.error] == [
        (
            f"That folder cannot be used: {big} has more than 50 files and folders, more than this server scans "
            "(CATDOG_MAX_SCAN_FILES)"
        )
    ]


# --- the queue's schedule ---------------------------------------------------------------------------


@pytest.fixture
def queue_behind_a_running_run(tiny_data, monkeypatch):
    """A finished model1 run to time others by, a running one halfway, and three queued behind it.

    The running run's process is a stand-in that sleeps; the queue process that would train the
    queued runs is not started, so the queue stays as laid out here."""
    monkeypatch.setattr(RunStore, "resume", lambda store: None)
    store = RunStore()
    base = {"data_dir": str(tiny_data), "fast": False, "fine_tune_epochs": 0, "batch_size": 32, "learning_rate": 1e-3}
    past = store.create({**base, "arch": "model1", "epochs": 2})
    for epoch in (1, 2):  # 2 epochs of 40 s in a 100 s run: 20 s of start-up
        past.record_epoch(epoch, PHASE_TRAIN, 40.0, {})
    past.mark("finished", started=1000.0, ended=1100.0)

    running = store.create({**base, "arch": "model1", "epochs": 3})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    running.record_epoch(1, PHASE_TRAIN, 40.0, {})
    running.record_progress(PHASE_TRAIN, 2, 5, 10, 20.0)
    running.mark("running", started=time.time() - 60, **process_identity(sleeper.pid))
    queued = [
        store.create({**base, "arch": "model1", "epochs": 2}),
        store.create({**base, "arch": "model4", "epochs": 1, "fast": True}),  # no finished run of its kind
        store.create({**base, "arch": "model1", "epochs": 2}),
    ]
    wait_for(lambda: running.state == "running", 10, message="the stand-in training process")
    yield running, queued
    sleeper.kill()
    sleeper.wait()


def test_queue_plan_adds_the_running_runs_time_left_and_each_expected_duration(queue_behind_a_running_run):
    _, queued = queue_behind_a_running_run
    plan = queue_plan(RunStore())
    assert [slot.run.id for slot in plan] == [run.id for run in queued]
    assert [slot.position for slot in plan] == [1, 2, 3]
    # Running: 5 batches at 4 s, then epoch 3 at 40 s. Then model1 × 2 epochs: 20 s + 2 × 40 s.
    assert [slot.starts_in for slot in plan] == [60.0, 160.0, None]


def test_train_page_shows_each_queued_runs_place_and_start(tiny_env_no_password, queue_behind_a_running_run):
    _, queued = queue_behind_a_running_run
    app = open_app("pages/train.py")
    assert_clean(app)
    assert any(m.value.startswith("**Queue** · 3 waiting") for m in app.markdown)
    lines = [c.value for c in app.caption if c.value[:2] in ("1.", "2.", "3.")]
    assert len(lines) == 3
    assert lines[0].startswith(f"1. `{queued[0].id}` · model1 · 2 epochs · starts in about 1 min 00 s (≈ ")
    assert lines[1].startswith(f"2. `{queued[1].id}` · model4 · 1 epochs · starts in about 2 min 40 s (≈ ")
    assert lines[2] == (
        f"3. `{queued[2].id}` · model1 · 2 epochs · start time unknown: no finished run yet to "
        "time a run ahead of it by"
    )
    assert "3 in the queue" in [c.value for c in app.sidebar.caption]


# --- in a real browser ---------------------------------------------------------------------------------


def expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture
def screenshots():
    folder = Path(os.environ.get("CATDOG_SCREENSHOTS") or ROOT / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serve(tmp_path, runs_dir, **env) -> Dashboard:
    keep = {key: os.environ[key] for key in ("CATDOG_CACHE_DIR", "KERAS_HOME") if key in os.environ}
    return Dashboard({**keep, "CATDOG_RUNS_DIR": str(runs_dir), **env}, tmp_path / "streamlit.log")


def test_the_teacher_unlocks_and_locks_in_the_browser(page, tmp_path, tiny_data, screenshots):
    with serve(
        tmp_path,
        tmp_path / "runs",
        CATDOG_DATA_DIR=str(tiny_data),
        CATDOG_TEACHER_PASSWORD=PASSWORD,
        CATDOG_DATA_ROOTS=str(tiny_data.parent),
    ) as server:
        page.goto(f"{server.url}/train")
        settle(page)
        start = page.get_by_role("button", name="Start training")
        expect()(start).to_be_disabled(timeout=SLOW_MS)
        expect()(page.get_by_text(ui.LOCKED).first).to_be_visible(timeout=SLOW_MS)
        page.screenshot(path=screenshots / "teacher-train-locked.png", full_page=True)

        password = page.get_by_role("textbox", name="Teacher password")
        password.fill("a guess")
        page.get_by_role("button", name="Unlock").click()
        expect()(page.get_by_text("Wrong password.")).to_be_visible(timeout=SLOW_MS)
        settle(page)
        page.screenshot(path=screenshots / "teacher-wrong-password.png", full_page=True)
        password.fill(PASSWORD)
        page.get_by_role("button", name="Unlock").click()
        expect()(start).to_be_enabled(timeout=SLOW_MS)
        expect()(page.get_by_text(ui.LOCKED)).to_have_count(0, timeout=SLOW_MS)
        settle(page)
        page.screenshot(path=screenshots / "teacher-train-unlocked.png", full_page=True)

        nav_link(page, "Dataset").click()  # within the session: still unlocked
        settle(page)
        folder = page.get_by_role("radio", name=FOLDER)
        expect()(folder).to_be_enabled(timeout=SLOW_MS)
        page.get_by_role("button", name="Lock").click()
        expect()(folder).to_be_disabled(timeout=SLOW_MS)
        expect()(page.get_by_role("textbox", name="Folder path")).to_be_disabled(timeout=SLOW_MS)
        settle(page)
        page.screenshot(path=screenshots / "teacher-dataset-locked.png", full_page=True)

        page.get_by_role("textbox", name="Teacher password").fill(PASSWORD)
        page.get_by_role("button", name="Unlock").click()
        expect()(folder).to_be_enabled(timeout=SLOW_MS)
        page.reload()  # a new browser session starts locked
        settle(page)
        expect()(page.get_by_role("radio", name=FOLDER)).to_be_disabled(timeout=SLOW_MS)


def test_two_sessions_keep_their_data_augmentation_and_photos_apart(
    browser, tmp_path, tiny_data, trained_run_dir, screenshots
):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run_dir, runs, ignore=shutil.ignore_patterns(".queue.lock"))
    other = make_dataset(
        tmp_path / "other photos", per_split=(("train", 3), ("validation", 2)), classes=("owls", "bats")
    )
    photo = tmp_path / "my cat.jpg"
    synthetic_image(0, 7, size=(120, 90)).save(photo)
    with serve(tmp_path, runs, CATDOG_DATA_DIR=str(tiny_data)) as server:
        a, b = new_page(browser), new_page(browser)  # two browser contexts: two pupils
        try:
            a.goto(f"{server.url}/dataset")
            settle(a)
            path = a.get_by_role("textbox", name="Folder path")
            path.fill(str(other))
            path.press("Enter")
            expect()(a.get_by_text("Using")).to_contain_text(str(other), timeout=SLOW_MS)
            nav_link(a, "Augmentation").click()
            settle(a)
            a.get_by_role("radio", name="vertical", exact=True).click()
            settle(a)
            code = a.locator('[data-testid="stCode"]').filter(has_text="keras.Sequential")
            expect()(code).to_contain_text('RandomFlip("vertical")', timeout=SLOW_MS)
            nav_link(a, "Predict").click()
            settle(a)
            a.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(photo)
            expect()(a.get_by_text("Grad-CAM: where it looked")).to_be_visible(timeout=SLOW_MS)
            nav_link(a, "Train").click()
            settle(a)
            expect()(a.get_by_text(f"data: {other}")).to_be_visible(timeout=SLOW_MS)

            b.goto(f"{server.url}/train")
            settle(b)
            expect()(b.get_by_text(f"data: {tiny_data}")).to_be_visible(timeout=SLOW_MS)
            nav_link(b, "Augmentation").click()
            settle(b)
            expect()(b.get_by_role("radio", name="horizontal", exact=True)).to_be_checked(timeout=SLOW_MS)
            nav_link(b, "Predict").click()
            settle(b)
            expect()(b.get_by_text("Upload one or more photos")).to_be_visible(timeout=SLOW_MS)
            assert b.locator('[data-testid="stImageCaption"]').filter(has_text="my cat.jpg").count() == 0
            b.screenshot(path=screenshots / "sessions-b-predict.png", full_page=True)
            nav_link(b, "Dataset").click()
            settle(b)
            expect()(b.get_by_role("textbox", name="Folder path")).to_have_value(str(tiny_data), timeout=SLOW_MS)
            expect()(b.get_by_text("owls")).to_have_count(0, timeout=SLOW_MS)
            a.screenshot(path=screenshots / "sessions-a-train.png", full_page=True)
        finally:
            a.close()
            b.close()
