"""Every dashboard page, run headless with Streamlit's AppTest on tiny data and a tiny trained run."""

import base64
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import catdog_ui as ui
from catdog.models.augmentation import augmentation_code
from catdog.runs.lessons import WITH, WITHOUT, run_label
from catdog.runs.record import PHASE_FEATURES, PHASE_PHOTOS, PHASE_TRAIN, process_identity
from catdog.runs.states import ACTIVE
from catdog.runs.store import RunStore
from catdog.settings import (
    AMOUNT_RANGES,
    ARCHITECTURES,
    LESSON_SEEDS,
    PRESETS,
    ROTATION_RANGE,
    AugmentConfig,
    RunConfig,
)
from tests.helpers import corpus
from tests.helpers.support import (
    APPTEST_TIMEOUT,
    ROOT,
    assert_clean,
    make_dataset,
    open_app,
    select_runs,
    synthetic_image,
    wait_for,
)

PAGES = ("pages/dataset.py", "pages/augmentation.py", "pages/train.py", "pages/predict.py", "pages/class.py")
PHOTO_PARAM = "aug_photo"


def jpeg_bytes(label: int, seed: int = 4242) -> bytes:
    out = io.BytesIO()
    synthetic_image(label, seed, size=(120, 90)).save(out, format="JPEG")
    return out.getvalue()


def image_urls(app: AppTest) -> list[str]:
    return [url for image in app.get("image") for url in image.value]


def image_captions(app: AppTest) -> list[str]:
    return [caption for image in app.get("image") for caption in image.captions]


def python_code(app: AppTest) -> str:
    [code] = [c.value for c in app.code if c.language == "python"]
    return code


def shared_link(app: AppTest) -> str:
    [link] = [c.value for c in app.code if f"{PHOTO_PARAM}=" in c.value]
    return link


def test_script_runs_leave_keras_state_alone(monkeypatch, tiny_env):
    """Streamlit's clear_session after every run cost the server ~0.4 s of garbage collection each.

    The dashboard replaces the hook Streamlit calls after each script run; this fails if Streamlit
    stops calling that hook (the replacement would then guard nothing) or if Keras is cleared.
    """
    import keras
    from streamlit.runtime.scriptrunner import script_runner

    open_app()  # imports catdog_ui, which installs the replacement
    hook_calls, clears = [], []
    replacement = script_runner._clean_problem_modules
    monkeypatch.setattr(script_runner, "_clean_problem_modules", lambda: (hook_calls.append(1), replacement()))
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: clears.append(args))
    open_app()
    assert hook_calls, "Streamlit no longer calls _clean_problem_modules after a script run"
    assert clears == []


def test_home_shows_tour_data_state_and_run_status(tiny_env):
    app = open_app()
    assert_clean(app)
    assert app.title[0].value == "catdog"
    assert any("2 classes (cats, dogs)" in s.value for s in app.success)
    assert any("No runs yet" in c.value for c in app.sidebar.caption)


def test_home_offers_download_and_says_when_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("CATDOG_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    app = open_app()
    download = next(b for b in app.button if b.label.startswith("Download cats_and_dogs_filtered"))
    assert "68 MB" in download.label
    download.click().run()
    assert_clean(app)
    assert any("Download failed" in e.value and "network" in e.value for e in app.error)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(trained_env, page):
    app = open_app(page)
    assert_clean(app)
    assert app.title[0].value == Path(page).stem.capitalize()
    assert any("model1 · 2/2 epochs · val acc" in c.value for c in app.sidebar.caption), "no run status"


def test_unexpected_error_is_one_line_not_a_traceback(tiny_env, monkeypatch, caplog):
    def broken(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(RunStore, "runs", broken)
    app = open_app()
    assert not app.exception
    assert any("unexpected problem: disk on fire" in e.value for e in app.error)
    logged = [r for r in caplog.records if r.name == "catdog.dashboard"]
    assert logged and logged[0].exc_info, "the traceback must reach the server log"


def test_dataset_shows_counts_baseline_and_thumbnails(tiny_env):
    app = open_app("pages/dataset.py")
    assert_clean(app)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Classes"] == "2"
    assert metrics["Usable images"] == "44"
    assert metrics["Majority-class baseline"] == "50.0%"
    assert len(app.get("plotly_chart")) == 2
    assert len(image_urls(app)) == 24  # one page of the train split


def test_dataset_browse_filters_by_class_and_split(tiny_env):
    app = open_app("pages/dataset.py")
    app.button_group(key="browse_classes").set_value(["dogs"]).run()
    names = [b.label for b in app.button if b.key and b.key.startswith("enlarge-")]
    assert names and all(name.startswith("dogs.") for name in names)
    app.button_group(key="browse_split").set_value("validation").run()
    assert len([b for b in app.button if b.key and b.key.startswith("enlarge-")]) == 8


def test_dataset_reports_skipped_files(monkeypatch, tmp_path):
    folder = make_dataset(tmp_path / "data", per_split=(("train", 3), ("validation", 2)))
    (folder / "train" / "cats" / "notes.jpg").write_text("not a photo")
    monkeypatch.setenv("CATDOG_DATA_DIR", str(folder))
    app = open_app("pages/dataset.py")
    assert_clean(app)
    assert {m.label: m.value for m in app.metric}["Skipped files"] == "1"
    skipped = app.dataframe[0].value
    assert list(skipped["file"]) == ["train/cats/notes.jpg"]
    assert "text file" in skipped["reason"][0]


def test_dataset_rejects_unusable_folder_in_one_line(tiny_env, tmp_path):
    app = open_app("pages/dataset.py")
    app.button_group(key="data_source").set_value("A folder on this computer").run()
    app.text_input(key="data_path").set_value(str(tmp_path / "nowhere")).run()
    assert_clean(app)
    assert len(app.error) == 1
    assert "does not exist" in app.error[0].value and "\n" not in app.error[0].value


def test_dataset_folder_is_remembered_for_training(monkeypatch, tiny_data):
    monkeypatch.delenv("CATDOG_DATA_DIR", raising=False)
    app = open_app("pages/dataset.py")
    app.button_group(key="data_source").set_value("A folder on this computer").run()
    app.text_input(key="data_path").set_value(str(tiny_data)).run()
    assert_clean(app)
    assert app.session_state["data_dir"] == str(tiny_data)
    app.switch_page("pages/train.py").run()
    assert any(str(tiny_data) in m.value for m in app.markdown)


def test_augmentation_controls_change_the_preview(tiny_env):
    app = open_app("pages/augmentation.py")
    assert_clean(app)
    before = image_urls(app)
    assert len(before) == 1 + 8 + 24  # original, variants, one (tiny) training batch
    app.slider(key="aug_rotation").set_value((0.4, 0.5)).run()
    after = image_urls(app)
    assert after[0] == before[0], "the original must not change"
    assert after[1:9] != before[1:9]
    assert app.session_state["augmentation"]["rotation"] == (0.4, 0.5)
    assert "RandomRotation((0.4, 0.5)" in python_code(app)
    app.slider(key="aug_variants").set_value(3).run()
    assert len(image_urls(app)) == 1 + 3 + 24


def test_augmentation_apply_again_and_upload(tiny_env):
    app = open_app("pages/augmentation.py")
    app.toggle(key="aug_repeated").set_value(True).run()
    assert any(c.startswith("8× applied: ") for image in app.get("image") for c in image.captions)
    app.button_group(key="aug_source").set_value("Upload").run()
    app.file_uploader(key="aug_upload").set_value(("mine.jpg", jpeg_bytes(0), "image/jpeg")).run()
    assert_clean(app)
    app.file_uploader(key="aug_upload").set_value(("oops.png", b"not really a png", "image/png")).run()
    assert [e.value for e in app.error] == ["oops.png: not an image: a text file"]


def shown_augmentation(app: AppTest) -> AugmentConfig:
    return AugmentConfig(
        flip=app.button_group(key="aug_flip").value,
        rotation=app.slider(key="aug_rotation").value,
        fill_mode=app.selectbox(key="aug_fill").value,
        **{name: app.slider(key=f"aug_{name}").value for name in AMOUNT_RANGES},
    )


def test_every_variant_is_captioned_with_its_draw(tiny_env):
    app = open_app("pages/augmentation.py")
    variants = image_captions(app)[1:9]
    assert all("turned" in caption for caption in variants), variants
    app.slider(key="aug_rotation").set_value((0.0, 0.0)).run()
    assert set(image_captions(app)[1:9]) == {"flipped ↔", "unchanged"}


def test_the_preset_selector_sets_the_controls_until_one_moves(tiny_env):
    app = open_app("pages/augmentation.py")
    for name, preset in PRESETS.items():
        app.button_group(key="aug_preset").set_value(name).run()
        assert_clean(app)
        assert shown_augmentation(app) == preset
        assert python_code(app) == augmentation_code(preset)
    app.slider(key="aug_zoom").set_value(0.05).run()
    assert app.button_group(key="aug_preset").value is None
    assert shown_augmentation(app).zoom == 0.05 and shown_augmentation(app).contrast == PRESETS["heavy"].contrast


def test_a_shared_link_opens_the_same_photo_settings_and_pictures(tiny_env):
    app = open_app("pages/augmentation.py")
    app.selectbox(key="aug_class").select("dogs").run()
    next(b for b in app.button if b.label == "Another photo").click().run()
    app.button_group(key="aug_flip").set_value("both").run()
    app.slider(key="aug_zoom").set_value(0.2).run()
    app.number_input(key="aug_seed").set_value(5).run()
    app.toggle(key="aug_repeated").set_value(True).run()
    link = shared_link(app)
    # Without a browser the server's address is unknown: the link is relative to it.
    assert link.startswith("/augmentation?") and "aug_seed=5" in link and "aug_flip=both" in link

    # A new session, as in another browser: only the link is shared.
    other = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APPTEST_TIMEOUT)
    other.query_params.update(urllib.parse.parse_qs(urllib.parse.urlsplit(link).query))
    other.run().switch_page("pages/augmentation.py").run()
    assert_clean(other)
    assert shown_augmentation(other) == shown_augmentation(app)
    assert other.number_input(key="aug_seed").value == 5 and other.toggle(key="aug_repeated").value
    assert other.selectbox(key="aug_class").value == "dogs"
    assert image_captions(other)[:9] == image_captions(app)[:9]
    assert image_urls(other)[:9] == image_urls(app)[:9]
    assert shared_link(other) == link


def test_the_augmentation_lesson_trains_both_runs_live_and_concludes(tiny_env):
    app = open_app("pages/augmentation.py")
    app.toggle(key="aug_lesson_quick").set_value(True).run()
    next(b for b in app.button if b.label == "Run the experiment").click().run()
    assert_clean(app)
    runs = RunStore().runs()
    assert [run_label(run) for run in runs] == [WITHOUT, WITH] * LESSON_SEEDS
    assert {run.config.experiment for run in runs} == {app.session_state["aug_experiment"]}
    assert len(app.get("plotly_chart")) == 2
    wait_for(lambda: all(run.state not in ACTIVE for run in runs), timeout=600, message="every run to end")
    app.run()
    assert [run.state for run in runs] == ["finished"] * 2 * LESSON_SEEDS
    assert [s.value for s in app.success if f"over {LESSON_SEEDS} seeds" in s.value]


def test_augmentation_names_every_bad_upload_in_one_line(tiny_env):
    app = open_app("pages/augmentation.py")
    app.button_group(key="aug_source").set_value("Upload").run()
    for key, bad in corpus.BAD.items():
        name = f"{key}.jpg"
        app.file_uploader(key="aug_upload").set_value((name, bad.make(), "image/jpeg")).run()
        assert_clean(app)
        [error] = [e.value for e in app.error]
        assert error.startswith(f"{name}: ") and "\n" not in error
        assert all(word in error.lower() for word in bad.words), error


def test_train_start_queue_and_cancel(tiny_env):
    app = open_app("pages/train.py")
    assert_clean(app)
    app.selectbox(key="train_arch").select("model1").run()
    # Far more epochs than the test takes, so the first run is still training when it is cancelled.
    app.number_input(key="train_epochs").set_value(300)
    next(b for b in app.get("form_submit_button") if b.label == "Start training").click().run()
    assert_clean(app)
    store = RunStore()
    (run,) = store.runs()
    assert run.config.arch == "model1" and run.config.epochs == 300
    assert run.config.data_dir == str(tiny_env)
    next(b for b in app.get("form_submit_button") if b.label == "Start training").click().run()
    second = next(r for r in store.runs() if r.id != run.id)
    wait_for(lambda: run.state == "running", timeout=90, message="the first run to start")
    app.run()
    assert any("1 waiting" in m.value for m in app.markdown), "the second run should be queued"
    app.button(key=f"cancel-{second.id}").click().run()
    assert second.state == "cancelled"
    app.button(key=f"cancel-{run.id}").click().run()
    wait_for(lambda: run.state not in ACTIVE, timeout=90, message="the run to stop")
    assert run.state in ("cancelled", "finished")


def test_train_deletes_ended_runs_after_a_confirmation_and_never_active_ones(tiny_env, copied_runs):
    store = RunStore()
    active = store.create(RunConfig("model1", data_dir=str(tiny_env)).to_dict())
    active.mark("running", **process_identity(os.getpid()))
    app = open_app("pages/train.py")
    assert select_runs(app, [0, 1, 2])[0] == active.id
    assert app.button(key="delete").disabled
    assert any("cannot be deleted; cancel them first" in c.value and active.id in c.value for c in app.caption)

    ended = select_runs(app, [1, 2])
    app.button(key="delete").click().run()
    assert any("for good" in w.value for w in app.warning)
    app.button(key="delete-keep").click().run()
    assert len(store.runs()) == 3, "Keep keeps them"
    app.button(key="delete").click().run()
    app.button(key="delete-confirm").click().run()
    assert_clean(app)
    assert [run.id for run in store.runs()] == [active.id]
    assert next(frame.value for frame in app.dataframe if frame.key == "runs-1")["run"].tolist() == [active.id]
    assert not any((copied_runs / run_id).exists() for run_id in ended)


def test_train_notes_are_edited_per_selected_run_and_listed_in_the_table(tiny_env, copied_runs):
    app = open_app("pages/train.py")
    (run_id,) = select_runs(app, [1])
    app.text_input(key=f"note-{run_id}").set_value("same as a, on purpose: checks determinism").run()
    assert_clean(app)
    assert RunStore().get(run_id).note == "same as a, on purpose: checks determinism"
    table = next(frame.value for frame in app.dataframe if frame.key == "runs-2")
    assert dict(zip(table["run"], table["note"])) == {
        **dict.fromkeys(table["run"], ""),
        run_id: "same as a, on purpose: checks determinism",
    }


def test_predict_labels_uploads_and_names_bad_files(trained_env):
    app = open_app("pages/predict.py")
    uploader = app.file_uploader(key="predict_uploads")
    uploader.set_value([("my cat.jpg", jpeg_bytes(0), "image/jpeg"), ("notes.jpg", b"hello", "image/jpeg")]).run()
    assert_clean(app)
    labels = [m.value for m in app.markdown if m.value.startswith("### ")]
    assert labels == ["### cats"] or labels == ["### dogs"]
    assert [e.value for e in app.error] == ["notes.jpg: not an image: a text file"]
    captions = [c for image in app.get("image") for c in image.captions]
    assert "my cat.jpg" in captions and "Grad-CAM: where it looked" in captions


def test_predict_takes_any_file_name_and_lets_the_content_decide(trained_env):
    app = open_app("pages/predict.py")
    uploads = [
        ("IMG_0001", jpeg_bytes(1, seed=77), "application/octet-stream"),
        (".DS_Store", b"\0\0\0\x01Bud1" + b"\0" * 64, "application/octet-stream"),
    ]
    app.file_uploader(key="predict_uploads").set_value(uploads).run()
    assert_clean(app)
    assert len([m for m in app.markdown if m.value.startswith("### ")]) == 1
    assert [e.value for e in app.error] == [
        ".DS_Store: not an image: an unsupported format (use JPEG, PNG, GIF, BMP, WebP or TIFF)"
    ]


def test_one_photo_that_breaks_the_analysis_does_not_take_the_others_down(trained_env, monkeypatch):
    import catdog.inference.gradcam

    real, calls = catdog.inference.gradcam.grad_cam, []

    def first_call_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(catdog.inference.gradcam, "grad_cam", first_call_fails)
    app = open_app("pages/predict.py")
    uploads = [
        ("first.jpg", jpeg_bytes(0, seed=91), "image/jpeg"),
        ("second.jpg", jpeg_bytes(1, seed=92), "image/jpeg"),
    ]
    app.file_uploader(key="predict_uploads").set_value(uploads).run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "first.jpg hit an unexpected problem: simulated failure. The details are in the server log."
    ]
    assert len([m for m in app.markdown if m.value.startswith("### ")]) == 1
    assert "second.jpg" in [c for image in app.get("image") for c in image.captions]
    assert any(m.label == "Test accuracy" for m in app.metric), "the rest of the page must still show"


def test_predict_flip_tta_scores_with_the_mirror_too(trained_env):
    app = open_app("pages/predict.py")
    app.file_uploader(key="predict_uploads").set_value([("cat.jpg", jpeg_bytes(0, seed=5), "image/jpeg")]).run()
    app.toggle(key="predict_flip").set_value(True).run()
    assert_clean(app)
    assert len([m for m in app.markdown if m.value.startswith("### ")]) == 1
    assert any(m.label == "Test accuracy" for m in app.metric)
    assert any("averages the photo's and its mirror image's" in c.value for c in app.caption)


def test_predict_scores_the_test_split(trained_env):
    app = open_app("pages/predict.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Test accuracy"].endswith("%")
    assert {"cats recognised", "dogs recognised"} <= set(metrics)
    [scores] = (table.value for table in app.table)
    [matrix] = (frame.value for frame in app.dataframe if list(frame.value.columns) == ["cats", "dogs"])
    assert list(scores.index) == ["cats", "dogs"] and {"Precision", "F1"} <= set(scores.columns)
    assert list(matrix.index) == list(matrix.columns) == ["cats", "dogs"]
    app.toggle(key="predict_mistakes_only").set_value(True).run()
    assert_clean(app)


def test_predict_shows_dashes_for_a_class_without_test_photos(monkeypatch, lopsided_run_dir):
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(lopsided_run_dir))
    app = open_app("pages/predict.py")
    assert_clean(app)
    assert {m.label: m.value for m in app.metric}["dogs recognised"] == "–"
    dogs = app.table[0].value.loc["dogs"]
    assert dogs["Test photos"] == 0 and dogs["Recognised (recall)"] == dogs["F1"] == "–"


def test_predict_scores_each_of_three_classes(monkeypatch, tiny_env, three_class_run_dir):
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(three_class_run_dir))
    app = open_app("pages/predict.py")
    assert_clean(app)
    classes = ["birds", "cats", "dogs"]
    assert {f"{name} recognised" for name in classes} <= {m.label for m in app.metric}
    # The confusion matrix is a clickable dataframe (see the confusion-cell test), the scores a table.
    [scores], [matrix] = [table.value for table in app.table], [frame.value for frame in app.dataframe]
    assert sorted(scores.index) == classes
    assert {"Test photos", "Recognised (recall)", "Precision", "F1"} <= set(scores.columns)
    assert sorted(matrix.index) == sorted(matrix.columns) == classes


def zip_of(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_predict_many_photos_and_a_zip_make_one_table_with_a_csv(trained_env):
    album = zip_of(
        {"album/cat.jpg": jpeg_bytes(0, seed=31), "album/dog.jpg": jpeg_bytes(1, seed=32), "album/notes.txt": b"hello"}
    )
    evil = zip_of({"fine.jpg": jpeg_bytes(0, seed=34), "../escape.jpg": jpeg_bytes(0, seed=33)})
    uploads = [
        ("first.jpg", jpeg_bytes(0, seed=30), "image/jpeg"),
        ("album.zip", album, "application/zip"),
        ("evil.zip", evil, "application/zip"),
    ]
    app = open_app("pages/predict.py")
    app.file_uploader(key="predict_uploads").set_value(uploads).run()
    assert_clean(app)
    table = app.dataframe[0].value
    assert list(table["File"]) == [
        "first.jpg",
        "album.zip/album/cat.jpg",
        "album.zip/album/dog.jpg",
        "album.zip/album/notes.txt",
        "evil.zip",
    ]
    assert set(table["Label"][:3]) <= {"cats", "dogs"} and all(table["Confidence"][:3].str.endswith("%"))
    assert set(table["Unfamiliar"][:3]) <= {"yes", "no"}
    # A path trick refuses the whole zip: none of its photos is trusted.
    assert list(table["Problem"][3:]) == [
        "not an image: a text file",
        "../escape.jpg could lead outside the folder it is unpacked into (absolute, '..' or a drive): the archive is refused",
    ]
    assert any("5 photos" in m.value and "2 could not be read" in m.value for m in app.markdown)
    assert "Download the answers as CSV" in [button.proto.label for button in app.get("download_button")]
    assert len([m for m in app.markdown if m.value.startswith("### ")]) == 3, "photo cards for the readable ones"


def test_a_refused_zip_is_a_row_with_the_reason(trained_env):
    bomb = zip_of({"zeros.jpg": bytes(20 * 2**20)})
    app = open_app("pages/predict.py")
    app.file_uploader(key="predict_uploads").set_value([("bomb.zip", bomb, "application/zip")]).run()
    assert_clean(app)
    [problem] = app.dataframe[0].value["Problem"]
    assert "zip bomb" in problem
    assert [e.value for e in app.error] == [f"bomb.zip: {problem}"]


def test_predict_says_an_unfamiliar_photo_is_unfamiliar_above_the_bars(trained_env, backbone_weights):
    app = open_app("pages/predict.py")
    app.file_uploader(key="predict_uploads").set_value([("stripes.jpg", jpeg_bytes(2), "image/jpeg")]).run()
    assert_clean(app)
    [warning] = [w.value for w in app.warning]
    assert warning.startswith("This doesn't look like anything I was trained on")
    assert len(app.get("progress")) == 2, "the probabilities stay visible"


def map_points(app) -> pd.DataFrame:
    """The rows the map's Vega-Lite chart draws, as the page sent them."""
    [chart] = app.get("vega_lite_chart")
    return pa.ipc.open_stream(chart.proto.data.data).read_pandas()


def test_predict_map_of_the_data_shows_the_photos_and_opens_a_clicked_one(trained_env, backbone_weights):
    app = open_app("pages/predict.py")
    assert not app.get("vega_lite_chart"), "off until asked for"
    app.toggle(key="predict_map").set_value(True).run()
    assert_clean(app)
    points = map_points(app)
    tested = int(app.table[0].value["Test photos"].sum())
    assert len(points) == tested and set(points["photos"]) == {"test"}
    assert set(points["class"]) <= {"cats", "dogs"} and set(points["answer"]) <= {"right", "wrong"}
    # Hover: Streamlit's Vega tooltips show `title` as a heading and `image` as a picture.
    spec = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    assert {"title", "image"} <= {field["field"] for field in spec["encoding"]["tooltip"]}
    for url in points["image"]:
        assert url.startswith("data:image/jpeg;base64,")
        assert max(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size) <= 64
    app.session_state["predict_map_chart"] = {"selection": {"photo": [{"point": int(points["point"][0])}]}}
    app.run()
    assert_clean(app)
    assert any(caption.startswith(points["title"][0]) for caption in image_captions(app))
    app.radio(key="predict_map_photos").set_value("Both").run()
    both = map_points(app)
    assert list(both["photos"]).index("test") == list(both["photos"]).count("training"), "test photos drawn last"


def test_predict_without_a_model_points_to_training(tiny_env):
    app = open_app("pages/predict.py")
    assert_clean(app)
    assert any("No trained model yet" in i.value for i in app.info)


def test_dataset_enlarges_a_photo_with_name_and_size(tiny_env):
    app = open_app("pages/dataset.py")
    app.button(key="enlarge-train/cats/cats.0.jpg").click().run()
    assert_clean(app)
    assert any("train/cats/cats.0.jpg" in c.value and "64 × 48 pixels" in c.value for c in app.caption)


def test_dataset_enlarged_view_refuses_a_file_grown_past_the_limit(monkeypatch, tmp_path):
    """The enlarged view reads the file again: it must be bounded like every other read, or a
    photo replaced by a huge file after the scan is read whole into the server's memory."""
    folder = make_dataset(tmp_path / "data")
    monkeypatch.setenv("CATDOG_DATA_DIR", str(folder))
    app = open_app("pages/dataset.py")
    with open(folder / "train" / "cats" / "cats.0.jpg", "r+b") as photo:
        photo.truncate(2**40)  # sparse: a terabyte on paper, nothing on disk
    app.button(key="enlarge-train/cats/cats.0.jpg").click().run()
    assert_clean(app)
    assert any("cats.0.jpg cannot be shown" in e.value and "too large" in e.value for e in app.error)


def test_progress_text_covers_feature_caching_and_epochs():
    plan = RunConfig("model1", epochs=4)
    caching = {"epoch": 0, "batch": 500, "batches": 2000, "elapsed": 10.0, "phase": PHASE_FEATURES}
    assert ui.progress_text(plan, [], caching) == (
        "Computing MobileNetV2 features once: 500 of 2000 images · about 30 s left"
    )
    decoding = {**caching, "phase": PHASE_PHOTOS}
    assert ui.progress_text(plan, [], decoding) == "Decoding the photos once: 500 of 2000 images · about 30 s left"
    history = [{"epoch": 1, "seconds": 60.0}]
    second = {"epoch": 2, "batch": 10, "batches": 40, "elapsed": 15.0, "phase": PHASE_TRAIN}
    # 30 batches at 1.5 s, then epochs 3 and 4 at the 60 s measured so far.
    assert ui.time_left(plan, history, second) == 45 + 120
    assert ui.progress_text(plan, history, second).startswith("Epoch 2 of 4 (train) · batch 10 of 40")


def test_augmentation_without_data_works_on_uploads_and_never_downloads(monkeypatch, tmp_path):
    monkeypatch.delenv("CATDOG_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))

    def no_network(*args, **kwargs):
        raise AssertionError("opening the page must not start the 68 MB download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    app = open_app("pages/augmentation.py")
    assert_clean(app)
    assert any("not downloaded yet" in i.value for i in app.info)
    app.button_group(key="aug_source").set_value("Upload").run()
    app.file_uploader(key="aug_upload").set_value(("mine.jpg", jpeg_bytes(1), "image/jpeg")).run()
    assert_clean(app)
    assert len(image_urls(app)) == 1 + 8


def test_train_shows_how_to_open_the_runs_in_tensorboard(trained_env):
    app = open_app("pages/train.py")
    assert_clean(app)
    assert any(c.value == f"tensorboard --logdir {trained_env}" for c in app.code)


def test_train_page_starts_from_the_library_defaults(tiny_env):
    app = open_app("pages/train.py")
    for arch in ARCHITECTURES.values():
        app.selectbox(key="train_arch").select(arch.name).run()
        for fast in (True, False) if arch.uses_backbone else (False,):
            if arch.uses_backbone:
                app.checkbox(key="train_fast").set_value(fast).run()
            shown = RunConfig(arch.name, fast=fast)
            assert app.number_input(key="train_epochs_fast" if fast else "train_epochs").value == shown.epochs
            assert app.number_input(key="train_seed").value == shown.seed
            assert app.select_slider(key="train_batch").value == shown.batch_size
            assert app.select_slider(key="train_image_size").value == shown.image_size
            assert app.select_slider(key=f"train_lr_{arch.name}").value == shown.learning_rate
            if arch.fine_tune:
                assert app.number_input(key="train_fine_tune").value == shown.fine_tune_epochs
            if fast:
                assert app.number_input(key="train_copies").value == shown.feature_copies
                assert app.toggle(key="train_small_photo_copies").value == shown.small_photo_copies
            toggles = [toggle for toggle in app.toggle if toggle.key == f"train_mixed_precision_{arch.name}"]
            assert [toggle.value for toggle in toggles] == ([shown.mixed_precision] if arch.mixed_precision else [])
    assert_clean(app)


def test_augmentation_page_starts_from_the_library_defaults(tiny_env):
    app = open_app("pages/augmentation.py")
    defaults = AugmentConfig()
    assert app.button_group(key="aug_flip").value == defaults.flip
    rotation = app.slider(key="aug_rotation")
    assert rotation.value == defaults.rotation and (rotation.min, rotation.max) == ROTATION_RANGE
    assert app.selectbox(key="aug_fill").value == defaults.fill_mode
