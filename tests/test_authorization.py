"""A served class can't break it (issue #19): a locked session changes nothing whatever it sends,
the teacher always gets in, data sets keep their history when changes race, Undo reverses what it
showed, and a server open to others without a password says so."""

import fnmatch
import json
import logging
import threading
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
from streamlit import config as streamlit_config

import catdog_ui as ui
from catdog import access, config, roster
from catdog import classroom as classroom_settings
from catdog.access import OWNER, TEACHER, Action, Forbidden, Gate
from catdog.classroom import ClassSettings
from catdog.data.datasets import DatasetError, DatasetStore
from catdog.data.download import download_default_dataset
from catdog.runs import queue as local_queue
from catdog.runs.store import RunStore
from tests.helpers.corpus import class_photos, make_zip
from tests.helpers.support import assert_clean, forged, make_dataset, open_app, select_runs

PASSWORD = "Kätzchen-42"
# Lock files, and what viewing a run makes from its model on demand: nothing a student changes.
MADE_BY_VIEWING = ("*.lock", "evaluation*.json", "photo-scores.json", "*.tflite")
# Each of these draws one widget per photo or run with the same code: a few of each are clicked.
FAMILIES = ("enlarge-", "enlarged-", "suspect-", "cell-", "cancel-", "note-", "keras-", "tflite-")
PER_FAMILY = 2
# The buttons that start runs: a student may.
STARTS = ("Start training", "Run the experiment", "compare-architectures")
VISITORS_REFUSED = (
    "Join the class first (in the sidebar): visitors may not rename data sets; "
    "the teacher unlocks with the teacher password."
)


def tree(*roots: Path) -> dict[str, tuple[int, int] | None]:
    """Every folder and file below the roots, each file with its size and time."""
    found: dict[str, tuple[int, int] | None] = {}
    for root in roots:
        for path in root.rglob("*"):
            if any(fnmatch.fnmatch(path.name, pattern) for pattern in MADE_BY_VIEWING):
                continue
            info = path.stat()
            found[str(path)] = (info.st_size, info.st_mtime_ns) if path.is_file() else None
    return found


@pytest.fixture
def classroom(copied_runs, tiny_data, monkeypatch):
    """A teacher's server: a password; a data set of the app's own, with a fix in its trash and
    runs trained on it, one of them an experiment's, and a run waiting in the queue."""
    monkeypatch.setattr(access, "GATE", Gate())
    monkeypatch.setattr(RunStore, "resume", lambda store: None)  # the queued run stays queued
    dataset = DatasetStore().copy(tiny_data, "fixable", actor=OWNER).dataset
    dataset.remove("train/cats/cats.0.jpg", actor=OWNER)
    for run in RunStore().runs():
        run.write_config(replace(run.config, data_dir=str(dataset.root), experiment="e1", varied="augmentation"))
    RunStore().create(replace(run.config, experiment=None))
    monkeypatch.setenv("CATDOG_DATA_DIR", str(dataset.root))
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", PASSWORD)
    return dataset


def clickable(app) -> list:
    widgets = [*app.button, *app.get("form_submit_button"), *app.toggle, *app.checkbox]
    return [widget for widget in widgets if widget.type != "download_button"]


def forge_every_click(app, before: dict, roots: tuple[Path, ...], keep: tuple[str, ...] = ()) -> list[str]:
    """Clicks every button and form button and flips every toggle and checkbox of the page as a
    forged message would, a new name typed wherever a popover asks for one; what a click brings
    up (a dialog) is clicked next. Nothing below `roots` may change. Returns what was clicked;
    widgets whose key or label holds one of `keep` are left alone."""
    clicked: list[str] = []
    done: set[str] = set()
    counts: dict[str, int] = {}
    previous = {widget.id for widget in clickable(app)}
    while True:
        widgets = [
            widget
            for widget in clickable(app)
            if widget.id not in done and not any(kept in (widget.key or widget.label) for kept in keep)
        ]
        widgets.sort(key=lambda widget: widget.id in previous)  # what a click brought up first
        widget = next((w for w in widgets if counts.get(family(w), 0) < PER_FAMILY), None)
        if widget is None:
            return clicked
        done.add(widget.id)
        counts[family(widget)] = counts.get(family(widget), 0) + 1
        for name in [text for text in app.text_input if text.key in ("dataset_new_name", "copy_name")]:
            forged(name).set_value("forged")
        previous = {w.id for w in clickable(app)}
        if widget.type in ("toggle", "checkbox"):
            forged(widget).set_value(not widget.value)
        else:
            forged(widget).click()
        app.run()
        clicked.append(widget.key or widget.label)
        assert not app.exception, [e.message for e in app.exception]
        assert tree(*roots) == before, f"a forged click on {clicked[-1]!r} changed the files"


def family(widget) -> str:
    key = widget.key or ""
    return next((prefix for prefix in FAMILIES if key.startswith(prefix)), key or widget.label)


def test_a_locked_session_changes_nothing_whatever_it_clicks(classroom, tiny_data, monkeypatch):
    roots = (config.datasets_dir(), config.runs_dir())
    before = tree(*roots)
    clicked = []
    app = open_app("pages/dataset.py")
    assert app.selectbox(key="dataset_name").value == "fixable"
    clicked += forge_every_click(app, before, roots)

    app = open_app("pages/train.py")
    select_runs(app, [1, 2])
    clicked += forge_every_click(app, before, roots)

    app = open_app("pages/predict.py")
    app.session_state["confusion_cell"] = {"selection": {"rows": [], "columns": [], "cells": [[0, "cats"]]}}
    app.run()
    clicked += forge_every_click(app, before, roots)

    for page in (None, "pages/augmentation.py"):
        clicked += forge_every_click(open_app(page), before, roots)

    # A typed folder as the source: the editable copy's popover.
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    clicked += forge_every_click(open_app("pages/dataset.py"), before, roots)

    for key in (
        "dataset_rename",
        "dataset_delete",
        "dataset_restore",
        "undo-fixable",
        "copy_create",
        "delete",
        "delete-experiment",
        "compare-architectures",
    ):
        assert key in clicked, (key, clicked)
    for prefix in ("suspect-", "cell-", "enlarged-", "cancel-"):
        assert any(key.startswith(prefix) for key in clicked), (prefix, clicked)
    for label in ("Start training", "Run the experiment", "Unlock"):
        assert any(label in key for key in clicked), (label, clicked)


def test_a_student_changes_nothing_of_a_classmate_s_whatever_they_click(classroom, monkeypatch):
    """Bob, signed in through his link, sees Ada's runs, experiment and data set (the teacher shows
    classmates' work) and forges every click: he may start runs and make data sets of his own, but
    nothing of Ada's changes."""
    monkeypatch.setattr(roster, "GATE", Gate())
    monkeypatch.setattr(local_queue, "start_process", lambda root: None)  # Bob's own runs stay queued
    ada, bob = roster.join("Ada", "ada-tab").actor, roster.join("Bob", "bob-tab")
    for run in RunStore().runs():
        run.record_owner(ada)
    (classroom.root / ".dataset.json").write_text(json.dumps({"owner": access.actor_record(ada)}))
    classroom_settings.save(ClassSettings(show_classmates_runs=True), actor=TEACHER)
    roots = (*(run.path for run in RunStore().runs()), classroom.root)
    before = tree(*roots)
    clicked = []

    def signed_in(page: str | None = None):
        app = open_app()
        app.query_params["key"] = bob.key
        app.run()
        assert any("Bob" in text.value for text in app.sidebar.markdown), "signed in by the link"
        assert "key" not in app.query_params, "the code leaves the address bar"
        return app.switch_page(page).run() if page else app

    app = signed_in("pages/dataset.py")
    assert app.selectbox(key="dataset_name").value == "fixable"
    clicked += forge_every_click(app, before, roots, keep=("student_sign_out",))
    app = signed_in("pages/train.py")
    select_runs(app, [1, 2])
    # His own new runs would change the runs table and lose the selection: starting them is his right.
    clicked += forge_every_click(app, before, roots, keep=("student_sign_out", *STARTS))
    for key in ("dataset_rename", "dataset_delete", "dataset_restore", "undo-fixable", "delete", "delete-experiment"):
        assert key in clicked, (key, clicked)
    assert any(key.startswith("cancel-") for key in clicked), clicked
    assert all(run.owner == bob.actor for run in RunStore().runs() if run.path not in roots), "his own, if any"

    classroom_settings.save(ClassSettings(show_classmates_runs=False), actor=TEACHER)
    shown = signed_in("pages/train.py")
    ada_runs = {run.id for run in RunStore().runs() if run.owner == ada}
    assert not [text for text in map(str, shown.get("dataframe")) if any(run in text for run in ada_runs)]
    assert "fixable" not in DatasetStore(viewer=bob.actor).names()


def test_a_refused_action_is_one_line_on_the_page(classroom):
    app = open_app("pages/dataset.py")
    forged(app.text_input(key="dataset_new_name")).set_value("mine")
    forged(app.button(key="dataset_rename")).click().run()
    assert_clean(app)
    refusals = [e.value for e in app.error if "may not" in e.value]
    assert refusals == [VISITORS_REFUSED]
    assert DatasetStore().names() == ["fixable"]


def test_every_action_asks_the_one_check():
    visitor = access.Actor("s", "a visitor", access.Role.VISITOR)
    for action in Action:
        assert access.allowed(OWNER, action)
        with pytest.raises(Forbidden, match=f"visitors may not {action.value}"):
            access.authorize(visitor, action, owner=OWNER)
    assert [action for action in Action if not access.allowed(access.TEACHER, action)] == [Action.READ_ANY_FOLDER]


def test_a_student_cannot_download_the_data_set(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(Forbidden, match="download the data set"):
        download_default_dataset(actor=access.Actor("s", "a student", access.Role.STUDENT))
    with pytest.raises(Forbidden, match="download the data set"):
        download_default_dataset(actor=access.Actor("s", "a visitor", access.Role.VISITOR))
    assert not any(tmp_path.iterdir())


# --- the teacher always gets in ---------------------------------------------------------------------


def test_the_right_password_unlocks_after_many_wrong_ones_from_many_sessions():
    gate = Gate()  # the real clock: no wait has passed
    for tab in range(30):
        assert not gate.unlock(f"guess {tab}", PASSWORD, f"tab {tab}").unlocked
    for _ in range(30):
        assert not gate.unlock("guess", PASSWORD, "one student").unlocked
    assert gate.unlock(PASSWORD, PASSWORD, "the teacher's fresh tab").unlocked
    assert gate.unlock(PASSWORD, PASSWORD, "one student").unlocked, "even where wrong guesses wait"
    refused = gate.unlock("guess", PASSWORD, "another tab")
    assert not refused.unlocked and refused.message.startswith("Wrong password, and too many of them: wait")


# --- data sets keep their history when changes race ---------------------------------------------------


def race(*actions) -> list[BaseException]:
    """Runs the actions at once, each in its own thread; returns what they raised."""
    start, raised = threading.Barrier(len(actions)), []

    def run(action) -> None:
        start.wait()
        try:
            action()
        except BaseException as error:  # noqa: BLE001 - every failure is judged by the test
            raised.append(error)

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


def fix_all(dataset, files: list[str]) -> None:
    for file in files:
        dataset.remove(file, actor=OWNER)


@pytest.mark.parametrize("ending", ["rename", "delete"])
def test_fixes_racing_a_rename_or_delete_leave_no_ghost_and_no_stranded_photo(tmp_path, ending):
    store = DatasetStore(tmp_path / "datasets")
    source = make_dataset(tmp_path / "source", per_split=(("", 40),))
    for _ in range(8):
        dataset = store.copy(source, "pets", actor=OWNER).dataset
        files = sorted(str(path.relative_to(dataset.root)) for path in dataset.root.glob("*/*.jpg"))
        end = partial(store.rename, "pets", "renamed") if ending == "rename" else partial(store.delete, "pets")
        raised = race(partial(fix_all, dataset, files[:30]), partial(end, actor=OWNER))
        assert all(
            isinstance(error, DatasetError) and "renamed or deleted meanwhile" in str(error) for error in raised
        ), raised
        assert store.names() == (["renamed"] if ending == "rename" else []), "no ghost under the old name"
        if ending == "rename":
            renamed = store.get("renamed")
            in_trash = {str(path.relative_to(renamed.root)) for path in (renamed.root / ".trash").rglob("*.jpg")}
            assert in_trash == {change.to for change in renamed.trash()}, "every photo in the trash is in the journal"
            store.delete("renamed", actor=OWNER)


# --- Undo reverses what it showed -------------------------------------------------------------------


def test_undo_is_refused_once_its_change_is_no_longer_the_latest(tmp_path):
    dataset = DatasetStore(tmp_path).copy(make_dataset(tmp_path / "source"), "pets", actor=OWNER).dataset
    shown = dataset.remove("train/cats/cats.0.jpg", actor=OWNER)
    other = dataset.move("train/cats/cats.1.jpg", "dogs", actor=OWNER)  # another session's change
    with pytest.raises(DatasetError, match="removed train/cats/cats.0.jpg is no longer the latest"):
        dataset.undo(shown.id, actor=OWNER)
    assert dataset.latest() == other
    raised = race(*[lambda: dataset.undo(other.id, actor=OWNER)] * 2)
    assert len(raised) == 1 and "no longer the latest" in str(raised[0]), "two clicks undo one change"
    assert dataset.latest() == shown


def test_undo_on_the_page_reverses_the_change_it_showed_not_a_newer_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(tmp_path / "datasets"))
    store = DatasetStore()
    store.import_zip(_zip(), "pets", actor=OWNER)
    dataset = store.get("pets")
    monkeypatch.setenv("CATDOG_DATA_DIR", str(dataset.root))
    dataset.remove("cats/cats-0.jpg", actor=OWNER)
    app = open_app("pages/dataset.py")
    assert any("removed cats/cats-0.jpg" in info.value for info in app.info)
    dataset.remove("dogs/dogs-0.jpg", actor=OWNER)  # another session, after this page showed its Undo
    app.button(key="undo-pets").click().run()
    assert_clean(app)
    assert [change.file for change in dataset.trash()] == ["cats/cats-0.jpg", "dogs/dogs-0.jpg"], "nothing undone"
    assert any("no longer the latest" in error.value for error in app.error)


def _zip():
    import io

    return io.BytesIO(make_zip(class_photos()))


# --- a server open to others without a password -----------------------------------------------------


@pytest.fixture
def address(monkeypatch):
    """Sets Streamlit's server.address for a test, as --server.address would."""
    monkeypatch.delenv("CATDOG_TEACHER_PASSWORD", raising=False)
    original = streamlit_config.get_option("server.address")
    yield lambda value: streamlit_config.set_option("server.address", value)
    streamlit_config.set_option("server.address", original)


@pytest.mark.parametrize("served", [None, "0.0.0.0", "192.168.1.20"])
def test_a_server_open_to_others_without_a_password_warns_once_per_session(
    address, served, tiny_data, monkeypatch, caplog
):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    address(served)
    ui._log_open_server.clear()
    with caplog.at_level(logging.WARNING, logger="catdog.dashboard"):
        app = open_app()
    assert [w.value for w in app.warning] == [ui.OPEN_SERVER]
    assert [record.getMessage() for record in caplog.records if record.name == "catdog.dashboard"] == [ui.OPEN_SERVER]
    app.run()
    assert not app.warning, "once per session"


@pytest.mark.parametrize("local", ["localhost", "127.0.0.1"])
def test_a_local_or_locked_server_does_not_warn(address, local, tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    address(local)
    assert not open_app().warning
    address("0.0.0.0")
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", PASSWORD)
    assert not open_app().warning
