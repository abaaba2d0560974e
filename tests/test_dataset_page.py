"""The Dataset page's own data sets in AppTest: zip uploads, the class builder with the camera,
fixes with undo, and the Predict page's confusion-matrix cells."""

import pytest
from corpus import ARCHIVES, photo
from support import assert_clean, open_app

from catdog import data
from catdog.datasets import DatasetStore
from catdog.runs import RunStore

MANAGED = "Your data sets"


def managed_page():
    app = open_app("pages/dataset.py")
    app.button_group(key="data_source").set_value(MANAGED).run()
    return app


def test_a_zip_of_three_classes_becomes_the_chosen_data_set(tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    app = managed_page()
    assert_clean(app)
    app.file_uploader(key="dataset_zip").set_value(("pets.zip", ARCHIVES["good-three-classes"].make(), "application/zip")).run()
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
    minimum = data.min_photos_per_class()
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
    counts = [c.value for c in app.caption if c.value.endswith("photos") or "needed" in c.value]
    assert counts == ["3 photos", f"{minimum} photos"]
    app.text_input(key="builder_name").set_value("built").run()
    app.button(key="builder_create").click().run()
    assert_clean(app)
    assert app.selectbox(key="dataset_name").value == "built"
    assert data.scan(DatasetStore().get("built").root).counts()["train"] == {"cats": 2, "dogs": 1}
