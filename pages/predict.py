"""Predict: a trained model's answer for your photos, where it looked, whether they look like
anything it was trained on, and how it does on unseen photos.

Uploaded bytes stay in memory, zips included: nothing is written under the uploader's file names.
"""

import itertools
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

import catdog_ui as ui
from catdog import config
from catdog.data.archives import is_zip
from catdog.data.datasets import DatasetStore
from catdog.data.errors import DataError
from catdog.data.images import ImageError
from catdog.data.scan import Scan
from catdog.inference import web
from catdog.inference.answers import Prediction, analyse_photo
from catdog.inference.batches import (
    PhotoAnswer,
    answered_batch,
    answers_download,
    photo_count,
    photos_in,
    photos_of,
    uploads_digest,
)
from catdog.inference.data_map import DataMap, data_map
from catdog.inference.evaluation import Evaluation, ImageResult, evaluate
from catdog.inference.familiarity import BORDER, FAMILIAR_SHARE, GuardUnavailable
from catdog.inference.lineage import run_data_dir
from catdog.inference.loading import guard, model_version
from catdog.messages import N_
from catdog.runs.record import Run
from catdog.runs.states import RunError
from catdog_ui import _, ngettext

GALLERY_PAGE = 24
GALLERY_COLUMNS = 8
CONFIDENT_MISTAKES = 8
# A zip's photos shown one by one, with Grad-CAM; every photo is in the table.
PHOTO_CARDS = 6
# The name a camera shot is shown and answered under.
CAMERA_PHOTO = N_("camera photo")
FIRST_CARD = "0-0"


def main() -> None:
    st.title(_("Predict"))
    run = choose_run()
    if run is None:
        return
    flip_average = st.toggle(
        _("Also ask about the mirror image"),
        key="predict_flip",
        help=_(
            "Test-time augmentation: each answer averages the photo's and its left-right mirror's. "
            "Twice the work; often a little more accurate, because a mirrored pet is still the same pet."
        ),
    )
    prepare_guard(run)
    your_photos(run, flip_average)
    st.divider()
    test_set(run, flip_average)


def choose_run() -> Run | None:
    runs = ui.runs_with_model()
    if not runs:
        st.info(_("No trained model yet."))
        st.page_link("pages/train.py", label=_("Train one on the Train page"), icon=":material/model_training:")
        return None
    finished = [run for run in runs if run.state == "finished"]
    default = runs.index(finished[0]) if finished else 0
    by_id = {run.id: run for run in runs}
    chosen = st.selectbox(
        _("Model"),
        list(by_id),
        index=default,
        format_func=ui.shown_as(list(by_id), lambda i: label(by_id[i])),
        key="predict_run",
    )
    run = by_id[chosen]
    if ui.is_active(run):
        st.caption(_("This run is still training: its best model so far answers."))
    return run


def label(run: Run) -> str:
    summary = run.summary()
    status = _(ui.STATE_NAMES[summary["status"]])
    accuracy = _("best val acc {accuracy}", accuracy=ui.percent(summary["best_val_accuracy"]))
    return f"{summary['arch']} · {run.id} · {status} · {accuracy}"


def prepare_guard(run: Run) -> None:
    """The run's unfamiliarity check, made once per run (by training, or here for older runs)."""
    preparing = ui.progress_bar(
        lambda done, total: _(
            "Preparing the unfamiliarity check, once for this model: MobileNetV2 features of its "
            "training and validation photos, {done} of {total}",
            done=ui.number(done),
            total=ui.number(total),
        )
    )
    try:
        with preparing as progress:
            guard(run, progress)
    except GuardUnavailable as error:
        st.caption(_("Answers come without the unfamiliarity check: {error}", error=ui.tr(error)))


# A fragment: an upload reruns this section alone, not the test set's gallery below it, which
# was most of the server's work when a class uploaded at once.
@st.fragment
def your_photos(run: Run, flip_average: bool) -> None:
    st.subheader(_("Your photos"))
    # No extension filter: a folder's worth of files may be dropped, and the content decides.
    uploads = st.file_uploader(
        _("Pet photos, or a zip of them"),
        accept_multiple_files=True,
        key="predict_uploads",
        help=_(
            "JPEG, PNG, GIF, BMP, WebP or TIFF, up to {size} MB each; a zip archive is read in memory, photo by photo.",
            size=config.MAX_UPLOAD_BYTES // 2**20,
        ),
    )
    files = [(upload.name, upload.getvalue()) for upload in uploads or []]
    if st.toggle(
        _("Live camera"),
        key="predict_live",
        help=_(
            "Answers several times a second as you move the camera, front or back. The model runs in your "
            "browser: nothing you film is sent anywhere."
        ),
    ):
        ui.live_camera(run)
    export_buttons(run)
    if st.toggle(_("Use the camera"), key="predict_camera", help=_("One photo at a time, answered by the server.")):
        shot = st.camera_input(_("Take a photo"), key="predict_shot")
        if shot is not None:
            files.append((_(CAMERA_PHOTO), shot.getvalue()))
    if not files:
        st.caption(_("Upload one or more photos of a cat or a dog, or a zip of many, or take one with the camera."))
        return
    counts = [photo_count(data) for _, data in files]
    if sum(counts) > 1 or any(is_zip(data) for _, data in files):
        answers_table(run, files, sum(counts), flip_average)
    # Every photo uploaded on its own in detail, as it was chosen to be seen; of a zip, the first few.
    for number, ((name, data), count) in enumerate(zip(files, counts)):
        cards = itertools.islice(photos_of(name, data), PHOTO_CARDS if is_zip(data) else None)
        for index, (card, read) in enumerate(cards):
            with ui.error_boundary(card):
                show_prediction(run, card, read, flip_average, key=f"{number}-{index}")
        if count > PHOTO_CARDS and is_zip(data):
            st.caption(
                _(
                    "The first {count} photos of {name} in detail; all are in the table above.",
                    count=PHOTO_CARDS,
                    name=name,
                )
            )


def export_buttons(run: Run) -> None:
    """The model to take home: one offline page with the camera, or the files for a web page."""
    page, folder = st.columns(2)
    # Worked out now: Streamlit makes the download later, outside this session's run and language.
    texts, language = ui.page_texts(), ui.language()
    page.download_button(
        _("Download the offline page"),
        lambda: web.html_page(web.export(run), f"catdog · {run.id}", texts, language),
        file_name=f"{run.id}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
        help=_(
            "One HTML file with the model and the camera: it opens from a phone's files or a USB stick, "
            "with no network and no server."
        ),
    )
    folder.download_button(
        _("Download for the browser"),
        lambda: web.export(run).zipped(),
        file_name=f"{run.id}-web.zip",
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
        help=_(
            "The whole model for ONNX Runtime Web (model.onnx) and its description (model.json: class names, "
            "input size, the unfamiliarity border), for a web page of your own."
        ),
    )


def answers_table(run: Run, files: list[tuple[str, bytes]], count: int, flip_average: bool) -> None:
    """Every photo's answer in one table, and as a CSV file."""
    with ui.progress_bar(
        lambda done, total: _(
            "Asking the model… {done} of {total} photos", done=ui.number(done), total=ui.number(total)
        )
    ) as progress:
        answers = answered_batch(
            run, uploads_digest(files), photos_in(files), flip_average, lambda done: progress(done, count)
        )
    answered = [answer for answer in answers if answer.error is None]
    unfamiliar = sum(bool(answer.unfamiliar) for answer in answered)
    st.markdown(
        _(
            "**{count} photos**: {answered} answered, {unfamiliar} of them unfamiliar, {unread} could not be read",
            count=len(answers),
            answered=len(answered),
            unfamiliar=unfamiliar,
            unread=len(answers) - len(answered),
        )
    )
    st.dataframe(answers_frame(answers), hide_index=True)
    ui.announce("answers", ngettext("{count} answer in the table", "{count} answers in the table", len(answers)))
    st.download_button(
        _("Download the answers as CSV"),
        answers_download(answers),
        file_name=f"predictions-{run.id}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key="predict_csv",
    )


def answers_frame(answers: tuple[PhotoAnswer, ...]) -> pd.DataFrame:
    words = {True: _("yes"), False: _("no"), None: "–"}
    return pd.DataFrame(
        [
            {
                _("File"): answer.file,
                _("Label"): answer.label or "–",
                _("Confidence"): ui.percent(answer.confidence),
                _("Unfamiliar"): words[answer.unfamiliar],
                _("Unfamiliarity"): "–" if answer.unfamiliarity is None else ui.number(round(answer.unfamiliarity, 2)),
                _("Problem"): ui.tr(answer.error) if answer.error else "",
            }
            for answer in answers
        ]
    )


# Reruns (any widget) show the same photos again: their answers are kept for a while, keyed by
# the photo's bytes and the model version, so a better model saved by training answers anew.
@st.cache_data(show_spinner=False, max_entries=16)
def analysed(run_path: str, version: int, data: bytes, flip_average: bool) -> Prediction:
    return analyse_photo(Run(Path(run_path)), data, flip_average)


def show_prediction(run: Run, name: str, read: Callable[[], bytes], flip_average: bool, key: str) -> None:
    try:
        with st.spinner(_("Asking the model…")):
            result = analysed(str(run.path), model_version(run), read(), flip_average)
    except ImageError as error:
        st.error(f"{name}: {ui.tr(error)}")
        return
    # Keyed for assets/a11y.css, which keeps the answer beside the photo on a phone.
    with st.container(border=True, key=f"answer-{key}"):
        photo, answer, seen, heat = st.columns([1.3, 1.2, 1, 1])
        photo.image(result.photo, caption=name, width="stretch", alt=_("{name}, the photo asked about", name=name))
        with answer:
            st.markdown(f"### {result.label}")
            st.caption(_("{confidence} sure", confidence=ui.percent(result.confidence)))
            familiarity_note(result)
            probability_bars(result.probabilities)
        seen.image(
            result.pixels,
            caption=_("What the model sees ({size} px)", size=len(result.pixels)),
            width="stretch",
            alt=_("{name} at {size} × {size} pixels, as the model sees it", name=name, size=len(result.pixels)),
        )
        heat.image(
            result.grad_cam,
            caption=_("Grad-CAM: where it looked"),
            width="stretch",
            alt=_(
                "Grad-CAM heat map of {name}: warm where the photo pushed the answer {label}",
                name=name,
                label=result.label,
            ),
        )
        ui.inside_the_model(run, result.pixels, key=f"predict_inside_{key}")
    # The first answer, and a photo just taken, arrive below the upload and the camera, out of a phone's
    # view: brought into it (a no-op where already in view).
    reveal = f"answer-{key}" if key == FIRST_CARD or name == _(CAMERA_PHOTO) else None
    ui.announce(
        f"answer-{key}",
        _(
            "{name}: {label}, {confidence} sure",
            name=name,
            label=result.label,
            confidence=ui.whole_percent(result.confidence),
        ),
        reveal=reveal,
    )


def familiarity_note(result: Prediction) -> None:
    """Above the probabilities, which stay visible: a classifier answers with one of its classes
    even for a photo unlike any it trained on."""
    if result.unfamiliar is None:
        return
    score = _(
        "unfamiliarity {score}; {share} of the validation photos score below {border}",
        score=ui.number(round(result.unfamiliarity, 2)),
        share=ui.whole_percent(FAMILIAR_SHARE),
        border=ui.number(BORDER),
    )
    if result.unfamiliar:
        st.warning(
            _(
                "This doesn't look like anything I was trained on ({score}). The bars below only say which of "
                "my classes it is least unlike.",
                score=score,
            ),
            icon=":material/help:",
        )
    else:
        st.caption(_("Looks like the photos I was trained on ({score}).", score=score))


def probability_bars(probs: dict[str, float]) -> None:
    # Plain bars, not a chart: a class's browsers share the server's cores, and a chart library
    # in every tab cost them more than the server spent answering.
    for name, p in sorted(probs.items(), key=lambda item: -item[1]):
        st.progress(p, text=f"{name} · {ui.whole_percent(p)}")


def test_set(run: Run, flip_average: bool) -> None:
    st.subheader(_("Held-out test set"))
    mirrored = " " + _("Each answer averages the photo's and its mirror image's.") if flip_average else ""
    st.caption(_("Photos the model never saw while training or choosing its best epoch.") + mirrored)
    try:
        scan = ui.load_scan(run_data_dir(run))
        with st.spinner(_("Scoring the test photos…")):
            result = evaluate(run, flip_average, scan)
    except (RunError, DataError) as error:
        st.error(_("The test set cannot be scored: {error}", error=ui.tr(error)))
        return
    if result.gone:
        st.caption(
            _(
                "{count} of this run's test photos are no longer in its data set: scored without them.",
                count=result.gone,
            )
        )
    cols = st.columns(1 + len(result.classes))
    cols[0].metric(_("Test accuracy"), ui.percent(result.test_accuracy), help=_("On {count} photos.", count=result.n))
    for col, (name, scores) in zip(cols[1:], result.per_class.items()):
        col.metric(
            _("{name} recognised", name=name),
            ui.percent(scores.recall),
            help=_(
                "Recall: of the {count} test photos of {name}, the share the model called {name}.",
                count=scores.support,
                name=name,
            ),
        )
    st.table(class_table(result).set_index(_("Class")))
    matrix, mistakes = st.columns([1, 2])
    with matrix:
        cell = confusion_matrix(result)
    with mistakes:
        st.markdown(_("**Most confident mistakes**"))
        wrong = result.confident_mistakes(CONFIDENT_MISTAKES)
        if wrong:
            gallery(wrong, scan, columns=4)
        else:
            st.success(_("No mistakes on the test set."))
    if cell:
        cell_photos(result, scan, *cell)
    data_map_section(run, scan, result.classes)
    st.markdown(_("**All test photos**"))
    mistakes_only = st.toggle(_("Mistakes only"), key="predict_mistakes_only")
    images = [i for i in result.images if not (mistakes_only and i.correct)]
    if not images:
        st.caption(_("Nothing to show."))
        return
    gallery(ui.page_of(images, GALLERY_PAGE, key="test-page"), scan, columns=GALLERY_COLUMNS)


# Training photos first, so the test photos are drawn over them.
MAP_SHOWS = {N_("Test photos"): ("test",), N_("Training photos"): ("train",), N_("Both"): ("train", "test")}


# A fragment, and off until asked for: a chart of a few thousand points costs every browser that
# draws it, and a click on a point reruns the map alone.
@st.fragment
@ui.with_error_boundary(N_("The map of the data"))
def data_map_section(run: Run, scan: Scan, classes: tuple[str, ...]) -> None:
    st.markdown(_("**A map of the data**"))
    if not st.toggle(_("Show the map"), key="predict_map"):
        st.caption(
            _(
                "Every test and training photo as a point, placed by what MobileNetV2 sees in it: "
                "similar photos lie close."
            )
        )
        return
    features = ui.progress_bar(
        lambda done, total: _(
            "MobileNetV2 features, once for this data: {done} of {total} photos",
            done=ui.number(done),
            total=ui.number(total),
        )
    )
    with features as progress, st.spinner(_("Placing the photos…")):
        result = data_map(run, progress, scan)
    shown = MAP_SHOWS[
        st.radio(
            _("Photos"),
            list(MAP_SHOWS),
            format_func=ui.shown_as(list(MAP_SHOWS)),
            horizontal=True,
            key="predict_map_photos",
        )
    ]
    event = st.vega_lite_chart(
        map_points(result, shown),
        map_spec(classes),
        on_select="rerun",
        selection_mode=MAP_PICK,
        key="predict_map_chart",
    )
    first, second = (ui.whole_percent(share) for share in result.explained)
    st.caption(
        _(
            "The two directions along which the training photos' features vary most ({first} and {second} of the "
            "variation). Colour: the true class; ● right, ✕ wrong; hollow: a training photo. Hover a point to see "
            "its photo, click it to open it below; scroll to zoom, drag to pan, double-click to reset.",
            first=first,
            second=second,
        )
    )
    # No selection reads as {}, a clicked point as [{"point": number}].
    picked = event["selection"][MAP_PICK]
    if picked:
        photo = result.photos[picked[0]["point"]]
        if photo.file in scan.index:
            mark = _("right") if photo.correct else _("wrong: {answer}", answer=photo.predicted)
            st.image(
                ui.thumbnail(scan.key, photo.file, scan),
                caption=f"{photo.file} · {photo.label} · {mark} {ui.whole_percent(photo.confidence)}",
                width=320,
                alt=_("{file}, a photo of {label}", file=photo.file, label=photo.label),
            )


# The chart's click selection, by point number (the photo's index in the map).
MAP_PICK = "photo"
# A thick ✕ as a filled outline in Vega's unit square, so that training photos' crosses can be hollow.
CROSS = "M-1,-0.6L-0.6,-1L0,-0.4L0.6,-1L1,-0.6L0.4,0L1,0.6L0.6,1L0,0.4L-0.6,1L-1,0.6L-0.4,0Z"


def map_points(result: DataMap, shown: tuple[str, ...]) -> pd.DataFrame:
    """One row per photo shown, in `shown`'s order, so later splits are drawn over earlier ones.
    `title` and `image` are the fields the chart's tooltip shows as a heading and a picture."""
    rows = [
        {
            "point": i,
            "x": float(result.xy[i, 0]),
            "y": float(result.xy[i, 1]),
            "class": photo.label,
            "answer": _("right") if photo.correct else _("wrong"),
            "photos": _("training") if split == "train" else _("test"),
            "title": photo.file,
            "image": result.thumbnails[i],
            "said": f"{photo.predicted} {ui.whole_percent(photo.confidence)}",
        }
        for split_shown in shown
        for i, (photo, split) in enumerate(zip(result.photos, result.splits))
        if split == split_shown
    ]
    return pd.DataFrame(rows, columns=["point", "x", "y", "class", "answer", "photos", "title", "image", "said"])


def map_spec(classes: tuple[str, ...]) -> dict:
    """A Vega-Lite scatter: colour the true class, a dot right and a cross wrong, hollow for
    training photos; hover shows the photo (Streamlit's Vega tooltips draw an `image` field as a
    picture), a click selects it, and the scales zoom and pan."""
    colors = ui.class_colors(list(classes))
    by_class = {"field": "class", "type": "nominal", "scale": {"domain": list(classes), "range": list(colors.values())}}
    axis = {"labels": False, "ticks": False, "grid": False}
    # Not from zero, and padded, so that no point sits half outside the plot.
    scale = {"zero": False, "nice": False, "padding": 12}
    return {
        "height": 520,
        "params": [
            {"name": MAP_PICK, "select": {"type": "point", "fields": ["point"], "on": "click", "toggle": False}},
            {"name": "zoom", "select": "interval", "bind": "scales"},
        ],
        "mark": {"type": "point", "filled": True, "strokeWidth": 1.5, "cursor": "pointer"},
        "encoding": {
            "x": {"field": "x", "type": "quantitative", "title": _("first direction"), "axis": axis, "scale": scale},
            "y": {"field": "y", "type": "quantitative", "title": _("second direction"), "axis": axis, "scale": scale},
            "color": {**by_class, "title": _("true class")},
            "stroke": {**by_class, "title": _("true class")},  # one legend with the colour's
            "shape": {
                "field": "answer",
                "type": "ordinal",
                "title": _("answer"),
                "scale": {"domain": [_("right"), _("wrong")], "range": ["circle", CROSS]},
            },
            "size": {
                "field": "answer",
                "type": "ordinal",
                "title": _("answer"),
                "scale": {"domain": [_("right"), _("wrong")], "range": [45, 110]},
            },
            "fillOpacity": {
                "field": "photos",
                "type": "ordinal",
                "title": _("photos"),
                "scale": {"domain": [_("test"), _("training")], "range": [1, 0]},
            },
            "tooltip": [
                {"field": "title"},
                {"field": "image"},
                {"field": "class", "title": _("true class")},
                {"field": "said", "title": _("answer")},
            ],
        },
    }


def class_table(result: Evaluation) -> pd.DataFrame:
    """Per class: recall, precision and F1 ("–" for a class with no test photos, or never guessed)."""
    return pd.DataFrame(
        [
            {
                _("Class"): name,
                _("Test photos"): scores.support,
                _("Recognised (recall)"): ui.percent(scores.recall),
                _("Precision"): ui.percent(scores.precision),
                "F1": ui.percent(scores.f1),
            }
            for name, scores in result.per_class.items()
        ]
    )


def confusion(result: Evaluation) -> pd.DataFrame:
    classes = list(result.classes)
    return pd.DataFrame(result.confusion_matrix, index=classes, columns=classes)


def confusion_matrix(result: Evaluation) -> tuple[str, str] | None:
    """The matrix, each cell clickable; returns the clicked cell as (true class, answer)."""
    st.markdown(_("**Confusion matrix**"))
    event = st.dataframe(confusion(result), on_select="rerun", selection_mode="single-cell", key="confusion_cell")
    st.caption(_("Rows: the true class; columns: the model's answer. Click a number to see its photos."))
    cells = event.selection.cells
    return (result.classes[cells[0][0]], cells[0][1]) if cells else None


def cell_photos(result: Evaluation, scan: Scan, label: str, predicted: str) -> None:
    """One cell's test photos; on the app's own data sets each can be moved or removed."""
    dataset = DatasetStore().find(scan.root)
    images = [i for i in result.images if i.label == label and i.predicted == predicted and i.file in scan.index]
    st.markdown(
        _(
            "**{label} photos the model called {predicted}: {count}**",
            label=label,
            predicted=predicted,
            count=len(images),
        )
    )
    ui.undo_bar(dataset)
    if not dataset:
        st.caption(_("Make an editable copy of this data set on the Dataset page to move or remove photos."))
    grid = st.columns(GALLERY_COLUMNS)
    for i, item in enumerate(ui.page_of(images, GALLERY_PAGE, key="cell-page")):
        with grid[i % GALLERY_COLUMNS]:
            st.image(
                ui.thumbnail(scan.key, item.file, scan),
                caption=f"{ui.whole_percent(item.confidence)} {item.predicted}",
                width="stretch",
                alt=_(
                    "{file}, a photo of {label} the model called {predicted}",
                    file=item.file,
                    label=item.label,
                    predicted=item.predicted,
                ),
            )
            ui.fix_photo(dataset, item.file, item.label, scan.classes, key=f"cell-{item.file}")


def gallery(images: list[ImageResult], scan: Scan, columns: int) -> None:
    grid = st.columns(columns)
    for i, item in enumerate(images):
        if item.file not in scan.index:
            continue
        # Words, not emoji: the marks must read the same on every system font and projector.
        mark = f"{_('right')} · {item.label}" if item.correct else f"{_('wrong')} · {item.label} → {item.predicted}"
        grid[i % columns].image(
            ui.thumbnail(scan.key, item.file, scan),
            caption=f"{mark} · {ui.whole_percent(item.confidence)}",
            width="stretch",
            alt=_("{file}, a photo of {label}: {mark}", file=item.file, label=item.label, mark=mark),
        )


ui.ensure_router()
main()
