"""Predict: a trained model's answer for your photos, where it looked, and how it does on unseen photos.

Uploaded bytes stay in memory: nothing is written under the uploader's file name.
"""

from pathlib import Path

import pandas as pd
import streamlit as st

import catdog_ui as ui
from catdog import config
from catdog.data import DataError, Scan
from catdog.datasets import DatasetStore
from catdog.images import ImageError
from catdog.predict import Evaluation, ImageResult, Prediction, analyse_photo, evaluate, model_version
from catdog.runs import Run, RunError

GALLERY_PAGE = 24
GALLERY_COLUMNS = 8
CONFIDENT_MISTAKES = 8


def main() -> None:
    st.title("Predict")
    run = choose_run()
    if run is None:
        return
    flip_average = st.toggle(
        "Also ask about the mirror image", key="predict_flip",
        help="Test-time augmentation: each answer averages the photo's and its left-right mirror's. "
        "Twice the work; often a little more accurate, because a mirrored pet is still the same pet.",
    )
    your_photos(run, flip_average)
    st.divider()
    test_set(run, flip_average)


def choose_run() -> Run | None:
    runs = ui.runs_with_model()
    if not runs:
        st.info("No trained model yet.")
        st.page_link("pages/train.py", label="Train one on the Train page", icon=":material/model_training:")
        return None
    finished = [run for run in runs if run.state == "finished"]
    default = runs.index(finished[0]) if finished else 0
    by_id = {run.id: run for run in runs}
    chosen = st.selectbox("Model", list(by_id), index=default, format_func=lambda i: label(by_id[i]), key="predict_run")
    run = by_id[chosen]
    if ui.is_active(run):
        st.caption("This run is still training: its best model so far answers.")
    return run


def label(run: Run) -> str:
    summary = run.summary()
    return f"{summary['arch']} · {run.id} · {summary['status']} · best val acc {ui.percent(summary['best_val_accuracy'])}"


# A fragment: an upload reruns this section alone, not the test set's gallery below it, which
# was most of the server's work when a class uploaded at once.
@st.fragment
def your_photos(run: Run, flip_average: bool) -> None:
    st.subheader("Your photos")
    # No extension filter: a folder's worth of files may be dropped, and the content decides.
    uploads = st.file_uploader(
        "Pet photos", accept_multiple_files=True, key="predict_uploads",
        help=f"JPEG, PNG, GIF, BMP, WebP or TIFF, up to {config.MAX_UPLOAD_BYTES // 2**20} MB each.",
    )
    photos = [(upload.name, upload.getvalue()) for upload in uploads or []]
    if st.toggle("Use the camera", key="predict_camera"):
        shot = st.camera_input("Take a photo", key="predict_shot")
        if shot is not None:
            photos.append(("camera photo", shot.getvalue()))
    if not photos:
        st.caption("Upload one or more photos of a cat or a dog, or take one with the camera.")
        return
    for index, (name, data) in enumerate(photos):
        with ui.guard(name):
            show_prediction(run, index, name, data, flip_average)


# Reruns (any widget) show the same photos again: their answers are kept for a while, keyed by
# the photo's bytes and the model version, so a better model saved by training answers anew.
@st.cache_data(show_spinner="Asking the model…", max_entries=16)
def analysed(run_path: str, version: int, data: bytes, flip_average: bool) -> Prediction:
    return analyse_photo(Run(Path(run_path)), data, flip_average)


def show_prediction(run: Run, index: int, name: str, data: bytes, flip_average: bool) -> None:
    try:
        result = analysed(str(run.path), model_version(run), data, flip_average)
    except ImageError as error:
        st.error(f"{name}: {error}")
        return
    with st.container(border=True):
        photo, answer, seen, heat = st.columns([1.3, 1.2, 1, 1])
        photo.image(result.photo, caption=name, width="stretch")
        with answer:
            st.markdown(f"### {result.label}")
            st.caption(f"{result.confidence:.1%} sure")
            probability_bars(result.probabilities)
        seen.image(result.pixels, caption=f"What the model sees ({len(result.pixels)} px)", width="stretch")
        heat.image(result.grad_cam, caption="Grad-CAM: where it looked", width="stretch")
        ui.inside_the_model(run, result.pixels, key=f"predict_inside_{index}")


def probability_bars(probs: dict[str, float]) -> None:
    # Plain bars, not a chart: a class's browsers share the server's cores, and a chart library
    # in every tab cost them more than the server spent answering.
    for name, p in sorted(probs.items(), key=lambda item: -item[1]):
        st.progress(p, text=f"{name} · {p:.0%}")


def test_set(run: Run, flip_average: bool) -> None:
    st.subheader("Held-out test set")
    mirrored = " Each answer averages the photo's and its mirror image's." if flip_average else ""
    st.caption(f"Photos the model never saw while training or choosing its best epoch.{mirrored}")
    try:
        with st.spinner("Scoring the test photos…"):
            result = evaluate(run, flip_average)
        scan = ui.load_scan(run.config.get("data_dir"))
    except (RunError, DataError) as error:
        st.error(f"The test set cannot be scored: {error}")
        return
    cols = st.columns(1 + len(result.classes))
    cols[0].metric("Test accuracy", ui.percent(result.test_accuracy), help=f"On {result.n} photos.")
    for col, (name, scores) in zip(cols[1:], result.per_class.items()):
        col.metric(
            f"{name} recognised", ui.percent(scores.recall),
            help=f"Recall: of the {scores.support} test photos of {name}, the share the model called {name}.",
        )
    st.table(class_table(result).set_index("Class"))
    matrix, mistakes = st.columns([1, 2])
    with matrix:
        cell = confusion_matrix(result)
    with mistakes:
        st.markdown("**Most confident mistakes**")
        wrong = result.confident_mistakes(CONFIDENT_MISTAKES)
        if wrong:
            gallery(wrong, scan, columns=4)
        else:
            st.success("No mistakes on the test set.")
    if cell:
        cell_photos(result, scan, *cell)
    st.markdown("**All test photos**")
    mistakes_only = st.toggle("Mistakes only", key="predict_mistakes_only")
    images = [i for i in result.images if not (mistakes_only and i.correct)]
    if not images:
        st.caption("Nothing to show.")
        return
    gallery(ui.page_of(images, GALLERY_PAGE, key="test-page"), scan, columns=GALLERY_COLUMNS)


def class_table(result: Evaluation) -> pd.DataFrame:
    """Per class: recall, precision and F1 ("–" for a class with no test photos, or never guessed)."""
    return pd.DataFrame([
        {
            "Class": name,
            "Test photos": scores.support,
            "Recognised (recall)": ui.percent(scores.recall),
            "Precision": ui.percent(scores.precision),
            "F1": ui.percent(scores.f1),
        }
        for name, scores in result.per_class.items()
    ])


def confusion(result: Evaluation) -> pd.DataFrame:
    classes = list(result.classes)
    return pd.DataFrame(result.confusion_matrix, index=classes, columns=classes)


def confusion_matrix(result: Evaluation) -> tuple[str, str] | None:
    """The matrix, each cell clickable; returns the clicked cell as (true class, answer)."""
    st.markdown("**Confusion matrix**")
    event = st.dataframe(confusion(result), on_select="rerun", selection_mode="single-cell", key="confusion_cell")
    st.caption("Rows: the true class; columns: the model's answer. Click a number to see its photos.")
    cells = event.selection.cells
    return (result.classes[cells[0][0]], cells[0][1]) if cells else None


def cell_photos(result: Evaluation, scan: Scan, label: str, predicted: str) -> None:
    """One cell's test photos; on the app's own data sets each can be moved or removed."""
    dataset = DatasetStore().find(scan.root)
    images = [i for i in result.images if i.label == label and i.predicted == predicted and i.file in scan.index]
    st.markdown(f"**{label} photos the model called {predicted}: {len(images)}**")
    ui.undo_bar(dataset)
    if not dataset:
        st.caption("Make an editable copy of this data set on the Dataset page to move or remove photos.")
    grid = st.columns(GALLERY_COLUMNS)
    for i, item in enumerate(ui.page_of(images, GALLERY_PAGE, key="cell-page")):
        with grid[i % GALLERY_COLUMNS]:
            st.image(ui.thumbnail(scan.key, item.file, scan), caption=f"{item.confidence:.0%} {item.predicted}", width="stretch")
            ui.fix_photo(dataset, item.file, item.label, scan.classes, key=f"cell-{item.file}")


def gallery(images: list[ImageResult], scan: Scan, columns: int) -> None:
    grid = st.columns(columns)
    for i, item in enumerate(images):
        if item.file not in scan.index:
            continue
        # Words, not emoji: the marks must read the same on every system font and projector.
        mark = f"right · {item.label}" if item.correct else f"wrong · {item.label} → {item.predicted}"
        grid[i % columns].image(
            ui.thumbnail(scan.key, item.file, scan), caption=f"{mark} · {item.confidence:.0%}", width="stretch"
        )


ui.ensure_router()
main()
