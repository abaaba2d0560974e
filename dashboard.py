"""catdog's dashboard: `streamlit run dashboard.py`. Home page, navigation and run status."""

import streamlit as st

import catdog_ui as ui
from catdog import config, project
from catdog.access import Action
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
    (
        "pages/class.py",
        ":material/groups:",
        N_("Class"),
        N_("The teacher's limits, and every student's experiment on one chart as their runs finish."),
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
    training_runs()
    take_home()


def training_runs() -> None:
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


def take_home() -> None:
    """The project file: this session's finished runs with their photos as one file to take to
    another catdog, and one made elsewhere opened here."""
    st.subheader(ui._("Take your work home"))
    st.caption(
        ui._(
            "Your finished runs, with the photos they trained on, as one project file: open it on another "
            "catdog (at home, or next year's class) and the runs are there, ready to answer photos."
        )
    )
    download, upload = st.columns(2)
    with download:
        project_download()
    with upload:
        project_open()


def project_download() -> None:
    actor = ui.actor()
    runs = project.exportable(actor, ui.shared_runs())
    if not runs:
        st.caption(ui._("No finished runs of yours yet: train one, then take it home."))
        return
    label = ui.ngettext("Prepare the project file ({count} run)", "Prepare the project file ({count} runs)", len(runs))
    if st.button(label, key="project_prepare", icon=":material/inventory_2:"):
        with ui.progress_bar(packing, ui._("Packing…")) as progress:
            try:
                data = project.export_project(actor, progress=progress)
            except project.ProjectError as error:
                st.error(ui._("No project file was made: {error}", error=ui.tr(error)))
                return
        st.session_state["project_file"] = (project.file_name(actor), data)
    if prepared := st.session_state.get("project_file"):
        name, data = prepared
        st.download_button(
            ui._("Download {name} ({size} MB)", name=name, size=ui.number(round(len(data) / 2**20, 1))),
            data,
            file_name=name,
            mime="application/zip",
            key="project_download",
            icon=":material/download:",
            on_click="ignore",
        )


def project_open() -> None:
    if opened := st.session_state.pop("project_opened", None):
        st.success(ui.tr(opened))
    locked = ui.refused(Action.OPEN_PROJECT)
    upload = st.file_uploader(
        ui._("Open a project file"),
        type=[config.PROJECT_SUFFIX.lstrip(".")],
        key="project_upload",
        # The web server takes no file past an upload's limit, whatever a widget says.
        max_upload_size=config.MAX_UPLOAD_BYTES // 2**20,
        help=ui._(
            "Up to {limit} MB here; a larger project file opens with `catdog project open FILE` on the server.",
            limit=config.MAX_UPLOAD_BYTES // 2**20,
        ),
        disabled=locked,
    )
    opening = st.button(
        ui._("Open it here"), key="project_open", disabled=locked or not upload, icon=":material/upload:"
    )
    if not opening or upload is None:  # a forged click comes without a file
        return
    with ui.progress_bar(checking, ui._("Checking…")) as progress:
        try:
            opened = project.open_project(upload.getvalue(), actor=ui.actor(), progress=progress)
        except project.ProjectError as error:
            st.error(ui._("The project file was not opened: {error}", error=ui.tr(error)))
            return
    # Shown after a rerun, so that the runs above and the download list the opened runs too.
    st.session_state["project_opened"] = project.describe(opened)
    st.rerun()


def packing(done: int, total: int) -> str:
    return ui._("Packing… {done} of {total}", done=ui.number(done), total=ui.number(total))


def checking(done: int, total: int) -> str:
    return ui._("Checking and opening… {done} of {total}", done=ui.number(done), total=ui.number(total))


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
    ui.sign_in_panel()
    ui.class_panel()
    ui.teacher_panel()
# routed(): the pages know they run inside the router (see catdog_ui's router workaround).
with ui.error_boundary(page.title), ui.routed():
    page.run()
