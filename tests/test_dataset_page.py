"""The Dataset page's own data sets in AppTest: zip uploads, the class builder with the camera,
fixes with undo, and the Predict page's confusion-matrix cells."""

from dataclasses import replace

import pytest

from catdog.access import OWNER
from catdog.data.datasets import DatasetStore
from catdog.data.scan import scan
from catdog.data.split import min_photos_per_class
from catdog.runs.store import RunStore
from tests.helpers.corpus import ARCHIVES, photo
from tests.helpers.support import assert_clean, open_app, synthetic_image

MANAGED = "Your data sets"


def managed_page():
    app = open_app("pages/dataset.py")
    app.button_group(key="data_source").set_value(MANAGED).run()
    return app


def test_a_zip_of_three_classes_becomes_the_chosen_data_set(tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    app = managed_page()
    assert_clean(app)
    app.file_uploader(key="dataset_zip").set_value(
        ("pets.zip", ARCHIVES["good-three-classes"].make(), "application/zip")
    ).run()
    app.text_input(key="dataset_zip_name").set_value("pets")
    app.button(key="dataset_zip_create").click().run()
    assert_clean(app)
    assert app.success[0].value == "Data set pets is ready."
    assert app.selectbox(key="dataset_name").value == "pets"
    assert {m.label: m.value for m in app.metric}["Classes"] == "3"
    assert app.session_state["data_dir"] == str(DatasetStore().get("pets").root)


def test_a_bad_zip_is_refused_in_one_line_and_leaves_nothing(tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    app = managed_page()
    app.file_uploader(key="dataset_zip").set_value(("evil.zip", ARCHIVES["traversal"].make(), "application/zip")).run()
    app.text_input(key="dataset_zip_name").set_value("evil")
    app.button(key="dataset_zip_create").click().run()
    assert_clean(app)
    [error] = [e.value for e in app.error]
    assert error.startswith("No data set was made:") and "outside" in error and "\n" not in error
    assert DatasetStore().names() == []


def test_the_class_builder_takes_files_and_camera_shots_and_says_what_is_missing(tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    minimum = min_photos_per_class()
    app = managed_page()
    app.text_input(key="builder_classes").set_value("cats, dogs").run()
    assert app.button(key="builder_create").disabled
    assert any(f"at least two classes with at least {minimum} photos each" in c.value for c in app.caption)
    app.file_uploader(key="builder_files_cats").set_value(
        [(f"cat{i}.jpg", photo(0, i), "image/jpeg") for i in range(3)]
    ).run()
    app.toggle(key="builder_camera_dogs").set_value(True).run()
    for i in range(minimum):
        app.camera_input(key="builder_shot_dogs").set_value((f"shot{i}.jpg", photo(1, 50 + i), "image/jpeg")).run()
    assert_clean(app)
    counts = [c.value for c in app.caption if c.value.endswith(("photo", "photos")) or "needed" in c.value]
    assert counts == ["3 photos", f"{minimum} photos"]
    app.text_input(key="builder_name").set_value("built").run()
    app.button(key="builder_create").click().run()
    assert_clean(app)
    assert app.selectbox(key="dataset_name").value == "built"
    assert scan(DatasetStore().get("built").root).counts()["train"] == {"cats": 2, "dogs": 1}


@pytest.fixture
def fixable(copied_runs, tiny_data, monkeypatch):
    """An editable copy of tiny_data with a cat among the dogs, under the name of a dog the run
    trained on, and the trained run pointed at it, chosen."""
    dataset = DatasetStore().copy(tiny_data, "fixable", actor=OWNER).dataset
    synthetic_image(0, 999).save(dataset.root / "train/dogs/dogs.0.jpg")
    for run in RunStore().runs():
        run.write_config(replace(run.config, data_dir=str(dataset.root)))
    monkeypatch.setenv("CATDOG_DATA_DIR", str(dataset.root))
    return dataset


def popover_buttons(app, prefix: str) -> dict[str, object]:
    return {button.key: button for button in app.button if button.key and button.key.startswith(prefix)}


def test_most_likely_mislabeled_then_move_undo_remove_and_restore(fixable):
    app = managed_page()
    assert_clean(app)
    suspect = "train/dogs/dogs.0.jpg"
    captions = [c.value for c in app.caption if c.value.startswith("labelled ")]
    assert captions[0].startswith("labelled dogs · model: cats")
    counts = lambda: scan(fixable.root).counts()["train"]

    popover_buttons(app, f"suspect-{suspect}")[f"suspect-{suspect}-to-cats"].click().run()
    assert_clean(app)
    assert counts() == {"cats": 13, "dogs": 11}
    assert any("moved train/dogs/dogs.0.jpg to train/cats/dogs.0.jpg" in i.value for i in app.info)
    assert {m.label: m.value for m in app.metric}["Usable images"] == "44"

    app.button(key="undo-fixable").click().run()
    assert counts() == {"cats": 12, "dogs": 12}
    popover_buttons(app, f"suspect-{suspect}")[f"suspect-{suspect}-remove"].click().run()
    assert_clean(app)
    assert counts() == {"cats": 12, "dogs": 11}
    assert [change.file for change in fixable.trash()] == [suspect]
    assert {m.label: m.value for m in app.metric}["Usable images"] == "43"
    # Undo beside the mistakes, far down the page from the one at the top; then removed again.
    app.button(key="undo-mislabeled-fixable").click().run()
    assert counts() == {"cats": 12, "dogs": 12} and fixable.trash() == []
    popover_buttons(app, f"suspect-{suspect}")[f"suspect-{suspect}-remove"].click().run()
    assert_clean(app)
    assert counts() == {"cats": 12, "dogs": 11}
    app.button(key="dataset_restore").click().run()
    assert counts() == {"cats": 12, "dogs": 12} and fixable.trash() == []
    # The run keeps its own record of what it trained on.
    recorded = RunStore().runs()[0].data()["files"]["train"]
    assert ["train/dogs/dogs.0.jpg", 1] in recorded and ["train/cats/dogs.0.jpg", 0] not in recorded


def test_fixes_wait_for_the_teacher(fixable, monkeypatch):
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", "secret")
    app = open_app("pages/dataset.py")  # CATDOG_DATA_DIR is the data set: it is shown first
    assert_clean(app)
    assert app.selectbox(key="dataset_name").value == "fixable"
    locked = {p.proto.popover.label: p.proto.popover.disabled for p in app.get("popover")}
    assert locked["Fix"] and locked["Rename"] and locked["Delete"], locked
    assert app.file_uploader(key="dataset_zip").disabled and app.button(key="builder_create").disabled


def test_a_confusion_matrix_cell_shows_its_photos_to_fix(fixable):
    app = open_app("pages/predict.py")
    assert_clean(app)
    app.session_state["confusion_cell"] = {"selection": {"rows": [], "columns": [], "cells": [[0, "cats"]]}}
    app.run()
    assert_clean(app)
    [heading] = [m.value for m in app.markdown if m.value.startswith("**cats photos the model called cats")]
    shown = int(heading.rstrip("*").rsplit(" ", 1)[-1])
    cell_buttons = [b.key for b in app.button if b.key and b.key.startswith("cell-") and b.key.endswith("-remove")]
    assert shown and len(cell_buttons) == shown
    app.button(key=cell_buttons[0]).click().run()
    assert_clean(app)
    assert len(fixable.trash()) == 1
    assert any(i.value.startswith("Last change to fixable: removed") for i in app.info)
