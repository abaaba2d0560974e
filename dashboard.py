"""catdog's dashboard: `streamlit run dashboard.py`. Home page, navigation and run status."""

import streamlit as st

import catdog_ui as ui
from catdog import config
from catdog.data.download import default_dataset_available
from catdog.data.errors import DataError
from catdog.messages import N_

# The pages after Home, in the order of the story: file, icon, title, what it is for.
PAGES = (
    (
        "pages/dataset.py",
        ":material/photo_library:",
        N_("Dataset"),
        N_("Browse the photos per split and class, see how balanced they are and which files were skipped."),
    ),
    (
        "pages/augmentation.py",
        ":material/flip:",
        N_("Augmentation"),
        N_("Flip and rotate a photo live and see what one training batch looks like to the model."),
    ),
    (
        "pages/train.py",
        ":material/model_training:",
        N_("Train"),
        N_("Train four classic architectures, from a plain CNN to transfer learning, and watch the curves."),
    ),
    (
        "pages/predict.py",
        ":material/pets:",
        N_("Predict"),
        N_("Upload a pet photo: get the prediction and a Grad-CAM heat map of where the model looked."),
    ),
)


def home() -> None:
    st.title("catdog")
    st.markdown(
        ui._(
            "Train and understand image classifiers, cats vs. dogs first. "
            "Follow the pages in order, or jump straight to a trained model."
        )
    )
    columns = st.columns(len(PAGES))
    for column, (page, icon, title, text) in zip(columns, PAGES):
        with column.container(border=True, height="stretch"):
            st.page_link(page, label=ui._(title), icon=icon)
            st.caption(ui._(text))

    st.subheader(ui._("Data set"))
    data_state()

    st.subheader(ui._("Training runs"))
    runs = ui.shared_runs().runs()
    if not runs:
        st.caption(ui._("No runs yet."))
        st.page_link("pages/train.py", label=ui._("Train a first model"), icon=":material/arrow_forward:")
        return
    if any(ui.is_active(run) for run in runs):
        st.page_link("pages/train.py", label=ui._("A run is training: watch it live"), icon=":material/monitoring:")
    finished = [run for run in runs if run.state == "finished"]
    left, middle, right = st.columns(3)
    left.metric(ui._("Runs"), ui.number(len(runs)))
    middle.metric(ui._("Finished"), ui.number(len(finished)))
    best = max((run.summary()["best_val_accuracy"] or 0 for run in finished), default=None)
    right.metric(ui._("Best validation accuracy"), ui.percent(best))


def data_state() -> None:
    folder = ui.chosen_data_dir()
    if folder is None and not default_dataset_available():
        ui.download_panel()
        return
    try:
        scan = ui.load_scan(folder)
    except DataError as error:
        st.error(ui._("The data folder cannot be used: {error}", error=ui.tr(error)))
        return
    counts = scan.counts()
    per_split = ", ".join(
        f"{ui.number(sum(counts[split].values()))} {ui._(ui.SPLIT_NAMES[split])}" for split in config.SPLITS
    )
    st.success(
        ui._(
            "Ready: {count} classes ({classes}); {per_split} images.",
            count=len(scan.classes),
            classes=", ".join(scan.classes),
            per_split=per_split,
        )
    )
    st.caption(ui._("Folder: `{folder}`", folder=scan.root))


ui.setup_page()
ui.open_server_warning()
page = st.navigation(
    [
        st.Page(home, title=ui._("Home"), icon=":material/home:", default=True),
        *(st.Page(path, title=ui._(title), icon=icon) for path, icon, title, _ in PAGES),
    ]
)
with st.sidebar:
    ui.language_picker()
    ui.run_status()
    ui.teacher_panel()
# routed(): the pages know they run inside the router (see catdog_ui's router workaround).
with ui.error_boundary(page.title), ui.routed():
    page.run()
