"""Dataset: where the photos come from, how they split, what was skipped, the photos themselves,
and the photos a trained model disputes, to fix."""

import random

import pandas as pd
import plotly.express as px
import streamlit as st

import catdog_ui as ui
from catdog import config
from catdog.access import Action, Forbidden
from catdog.data.datasets import Dataset, DatasetStore, Made
from catdog.data.download import default_dataset_available
from catdog.data.errors import DataError
from catdog.data.images import ImageError, load_image, read_upload
from catdog.data.scan import Scan
from catdog.data.split import min_photos_per_class, split_shares
from catdog.inference.lineage import trained_on
from catdog.runs.states import RunError

DEFAULT, MANAGED, FOLDER = "Default: cats_and_dogs_filtered", "Your data sets", "A folder on this computer"
PAGE_SIZE = 24
GRID_COLUMNS = 6
SUSPECTS = 12
# Widget keys set from a callback or before the widgets exist: the next run shows the new data set.
PICK = "dataset_pick"


def main() -> None:
    st.title("Dataset")
    scan, dataset = choose_source()
    if scan is None:
        return
    if dataset is not None:
        manage(dataset)
    else:
        editable_copy(scan)
    overview(scan)
    sizes(scan)
    skipped(scan)
    browse(scan, dataset)
    fix_the_data(scan, dataset)


def choose_source() -> tuple[Scan | None, Dataset | None]:
    """The data set to show and train on; a usable choice is remembered for the Train page."""
    store = DatasetStore()
    if picked := st.session_state.pop(PICK, None):
        st.session_state["data_source"], st.session_state["dataset_name"] = MANAGED, picked
    remembered = ui.chosen_data_dir()
    managed = store.find(remembered)
    locked = ui.refused(Action.CHOOSE_FOLDER)
    # First values go through Session State, as a data set just made or renamed does: a widget given
    # a default as well warns in the server's log.
    st.session_state.setdefault("data_source", MANAGED if managed else FOLDER if remembered else DEFAULT)
    source = st.segmented_control(
        "Source",
        [DEFAULT, MANAGED, FOLDER],
        required=True,
        key="data_source",
        persist_state="session",
        disabled=locked,
        help=ui.LOCKED if locked else None,
    )
    folder = None
    if source == MANAGED:
        names = store.names()
        with st.expander("New data set", icon=":material/add_photo_alternate:", expanded=not names):
            new_dataset(store)
        if not names:
            return None, None
        if st.session_state.get("dataset_name") not in names:
            st.session_state["dataset_name"] = managed.name if managed else names[0]
        name = st.selectbox("Data set", names, key="dataset_name", persist_state="session", disabled=locked)
        folder = str(store.get(name).root)
    elif source == FOLDER:
        shares = "/".join(f"{share:.0%}" for share in split_shares())  # e.g. 70%/24%/6%
        folder = st.text_input(
            "Folder path",
            value=remembered or "",
            key="data_path",
            persist_state="session",
            placeholder="/path/to/photos",
            disabled=locked,
            help=ui.LOCKED
            if locked
            else "A folder with train/, validation/ and test/ (each with one subfolder "
            f"per class), or just one subfolder per class: it is then split {shares} with a fixed seed.",
        ).strip()
        if not folder:
            st.info("Type the path of a folder of class folders.")
            return None, None
    elif not default_dataset_available():
        ui.download_panel()
        return None, None
    if locked:
        st.caption(ui.LOCKED)
    try:
        scan = ui.load_scan(folder)
    except DataError as error:
        st.error(f"That folder cannot be used: {error}")
        return None, None
    ui.remember_data_dir(folder)
    st.caption(f"Using `{scan.root}` · the Train page trains on this data set.")
    return scan, store.find(folder)


# --- new data sets ------------------------------------------------------------------------


def new_dataset(store: DatasetStore) -> None:
    """A data set from a zip of class folders, or built class by class from photos and the camera."""
    if made := st.session_state.pop("dataset_made", None):
        st.success(f"Data set {made['name']} is ready.")
        if made["skipped"]:
            st.warning(f"{len(made['skipped'])} files were left out:")
            st.dataframe(pd.DataFrame(made["skipped"]), hide_index=True)
    locked = ui.refused(Action.MAKE_DATASET)
    upload, build = st.tabs(["Upload a zip", "Build classes"])
    with upload:
        upload_zip(store, locked)
    with build:
        class_builder(store, locked)


def upload_zip(store: DatasetStore, locked: bool) -> None:
    st.caption(
        "A zip of one folder per class (cats/, dogs/, …), or of train/ and validation/ folders with one "
        "folder per class inside. Files that are not photos are left out and listed."
    )
    archive = st.file_uploader("Zip of class folders", key="dataset_zip", disabled=locked)
    name = st.text_input("Name", key="dataset_zip_name", placeholder="my-pets", disabled=locked)
    if not st.button("Create from the zip", key="dataset_zip_create", type="primary", disabled=locked or not archive):
        return
    with ui.progress_bar(
        lambda done, total: f"Unpacking… {done / 2**20:.1f} of {total / 2**20:.1f} MB", "Unpacking…"
    ) as progress:
        created(lambda: store.import_zip(archive, name, progress, actor=ui.actor()))


def class_builder(store: DatasetStore, locked: bool) -> None:
    minimum = min_photos_per_class()
    st.caption(
        f"Name at least two classes and give each at least {minimum} photos: drop files or take them with the camera."
    )
    names = st.text_input(
        "Classes, separated by commas", key="builder_classes", placeholder="cats, dogs", disabled=locked
    )
    classes = list(dict.fromkeys(part.strip() for part in names.split(",") if part.strip()))
    photos = {name: class_photos(name, minimum, locked) for name in classes}
    name = st.text_input("Name", key="builder_name", placeholder="my-classes", disabled=locked)
    ready = len(classes) >= 2 and all(len(items) >= minimum for items in photos.values())
    if not ready:
        st.caption(f"Needs at least two classes with at least {minimum} photos each.")
    if st.button("Create the data set", key="builder_create", type="primary", disabled=locked or not ready):
        created(lambda: store.create(name, photos, actor=ui.actor()))


def class_photos(name: str, minimum: int, locked: bool) -> list[tuple[str, bytes]]:
    """One class's photos: files dropped, and shots taken with the camera (kept until the set is made)."""
    with st.container(border=True):
        st.markdown(f"**{name}**")
        files = st.file_uploader(
            f"Photos of {name}", accept_multiple_files=True, key=f"builder_files_{name}", disabled=locked
        )
        shots = st.session_state.setdefault(f"builder_shots_{name}", {})
        if st.toggle("Use the camera", key=f"builder_camera_{name}", disabled=locked):
            shot = st.camera_input(f"Take a photo of {name}", key=f"builder_shot_{name}")
            if shot is not None:
                shots.setdefault(shot.file_id, (f"camera-{len(shots) + 1}.jpg", shot.getvalue()))
        photos = [(upload.name, upload.getvalue()) for upload in files or []] + list(shots.values())
        text = f"{len(photos)} photo{'' if len(photos) == 1 else 's'}"
        text += "" if len(photos) >= minimum else f" · at least {minimum} needed"
        st.caption(text)
    return photos


def created(make) -> None:
    """Makes a data set, says why not in one line, and shows the new set on the next run."""
    try:
        made: Made = make()
    except (DataError, Forbidden) as error:
        st.error(f"No data set was made: {error}")
        return
    # The camera shots are in the new data set now: the builder starts afresh.
    for key in [key for key in st.session_state if key.startswith("builder_shots_")]:
        del st.session_state[key]
    st.session_state[PICK] = made.dataset.name
    st.session_state["dataset_made"] = {"name": made.dataset.name, "skipped": made.skipped}
    st.rerun()


def editable_copy(scan: Scan) -> None:
    """The default set or a typed folder, copied into the app's own data sets, where photos can be fixed."""
    locked = ui.refused(Action.MAKE_DATASET)
    with st.popover(
        "Make an editable copy",
        icon=":material/content_copy:",
        disabled=locked,
        help=ui.LOCKED if locked else "Photos can be moved between classes or removed only in a copy.",
    ):
        name = st.text_input("Name of the copy", key="copy_name", placeholder=f"{scan.root.name}-copy")
        if not st.button("Copy", key="copy_create", type="primary"):
            return
        folder = ui.chosen_data_dir()
        with ui.progress_bar(lambda done, total: "Copying…", "Copying…") as progress:
            created(lambda: DatasetStore().copy(folder, name, progress, actor=ui.actor()))


# --- managing one of the app's own data sets -----------------------------------------------


def manage(dataset: Dataset) -> None:
    ui.undo_bar(dataset)
    rename, delete, trash = st.columns(3)
    with rename.popover("Rename", icon=":material/edit:", disabled=ui.refused(Action.RENAME_DATASET), width="stretch"):
        new = st.text_input("New name", value=dataset.name, key="dataset_new_name")
        if st.button("Rename", key="dataset_rename", type="primary"):
            changed(lambda: DatasetStore().rename(dataset.name, new, actor=ui.actor()))
    with delete.popover(
        "Delete", icon=":material/delete_forever:", disabled=ui.refused(Action.DELETE_DATASET), width="stretch"
    ):
        st.caption(f"Deletes {dataset.name} with all its photos and its trash. Runs trained on it keep their models.")
        if st.button(f"Delete {dataset.name}", key="dataset_delete", type="primary"):
            changed(lambda: DatasetStore().delete(dataset.name, actor=ui.actor()))
    removed = dataset.trash()
    with trash.popover(f"Trash ({len(removed)})", icon=":material/restore_from_trash:", width="stretch"):
        if not removed:
            st.caption("Removed photos wait here until restored.")
        else:
            st.dataframe(pd.DataFrame({"removed photo": [change.file for change in removed]}), hide_index=True)
            locked = ui.refused(Action.RESTORE)
            st.button(
                "Restore all",
                key="dataset_restore",
                on_click=ui.restore_all,
                args=(dataset,),
                disabled=locked,
                help=ui.LOCKED if locked else "Back to where they were.",
            )


def changed(change) -> None:
    """Renames or deletes a data set; the next run shows the renamed one, or none."""
    try:
        result = change()
    except (DataError, Forbidden) as error:
        st.error(str(error))
        return
    if isinstance(result, Dataset):
        st.session_state[PICK] = result.name
        ui.remember_data_dir(str(result.root))
    else:
        ui.remember_data_dir(None)
        st.session_state.pop("dataset_name", None)
    st.rerun()


def overview(scan: Scan) -> None:
    counts = scan.counts()
    table = pd.DataFrame(
        [(split, name, n) for split, per_class in counts.items() for name, n in per_class.items()],
        columns=["split", "class", "images"],
    )
    total = int(table["images"].sum())
    majority, baseline = scan.majority_baseline()

    cols = st.columns(4)
    cols[0].metric("Classes", len(scan.classes))
    cols[1].metric("Usable images", f"{total:,}")
    cols[2].metric("Skipped files", len(scan.skipped))
    cols[3].metric(
        "Majority-class baseline",
        ui.percent(baseline),
        help=f"Validation accuracy of always answering '{majority}', the most common training class. "
        "A model must beat this to have learnt anything.",
    )
    figure = px.bar(
        table,
        x="split",
        y="images",
        color="class",
        barmode="group",
        text="images",
        category_orders={"split": list(config.SPLITS), "class": scan.classes},
        color_discrete_map=ui.class_colors(scan.classes),
        title="Images per split and class",
    )
    ui.plotly_chart(figure, key="counts", table=table)


def sizes(scan: Scan) -> None:
    labels = {name: scan.classes[label] for files in scan.files.values() for name, label in files}
    table = pd.DataFrame(
        [(name, w, h, labels.get(name, "?")) for name, (w, h) in scan.sizes.items()],
        columns=["file", "width", "height", "class"],
    )
    st.subheader("Image sizes")
    st.caption(
        f"Every photo is resized to {config.IMAGE_SIZE[0]} × {config.IMAGE_SIZE[1]} pixels (or the size a "
        "run chooses on the Train page) before the model sees it, so wide or tiny originals get squeezed "
        "or blurred."
    )
    figure = px.scatter(
        table,
        x="width",
        y="height",
        color="class",
        hover_name="file",
        opacity=0.5,
        marginal_x="box",
        marginal_y="box",
        category_orders={"class": scan.classes},
        color_discrete_map=ui.class_colors(scan.classes),
    )
    ui.plotly_chart(figure, key="sizes", table=table, name="Image sizes")


def skipped(scan: Scan) -> None:
    st.subheader("Skipped files")
    if not scan.skipped:
        st.success("Every file is a usable image.")
        return
    st.warning(f"{len(scan.skipped)} files or folders are not used for training:")
    st.dataframe(pd.DataFrame(scan.skipped), hide_index=True, height=min(38 * (len(scan.skipped) + 1), 300))


def browse(scan: Scan, dataset: Dataset | None) -> None:
    st.subheader("Browse")
    left, middle, right, seed_column = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    split = left.segmented_control("Split", config.SPLITS, default="train", required=True, key="browse_split")
    chosen = middle.pills("Class", scan.classes, selection_mode="multi", default=scan.classes, key="browse_classes")
    shuffle = right.toggle("Shuffle", key="browse_shuffle")
    seed = seed_column.number_input("Seed", 0, 10_000, 0, key="browse_seed", disabled=not shuffle)

    wanted = {scan.classes.index(name) for name in chosen}
    files = [(name, label) for name, label in scan.files[split] if label in wanted]
    if shuffle:
        random.Random(seed).shuffle(files)
    if not files:
        st.info("No images for this choice.")
        return
    st.caption(f"{len(files)} images · click a name to enlarge")
    shown = ui.page_of(files, PAGE_SIZE, key=f"browse-page-{split}-{shuffle}-{seed}")
    columns = st.columns(GRID_COLUMNS)
    for i, (name, label) in enumerate(shown):
        with columns[i % GRID_COLUMNS]:
            st.image(
                ui.thumbnail(scan.key, name, scan), width="stretch", alt=f"{name}, a photo of {scan.classes[label]}"
            )
            if st.button(name.rsplit("/", 1)[-1], key=f"enlarge-{name}", type="tertiary"):
                enlarge(scan, name, scan.classes[label], dataset)


@st.dialog("Photo", width="large")
def enlarge(scan: Scan, name: str, label: str, dataset: Dataset | None) -> None:
    width, height = scan.sizes[name]
    st.caption(f"`{name}` · {label} · {width} × {height} pixels")
    ui.fix_photo(dataset, name, label, scan.classes, key=f"enlarged-{name}")
    try:
        # Native size: small originals stay sharp instead of being blown up to the dialog's width.
        st.image(load_image(read_upload(scan.root / name)), alt=f"{name}, a photo of {label}, at its own size")
    except (OSError, ImageError) as error:
        st.error(f"{name} cannot be shown: {error}")


# --- fixing the data with a model's help ----------------------------------------------------


def fix_the_data(scan: Scan, dataset: Dataset | None) -> None:
    st.subheader("Most likely mislabeled")
    runs = [run for run in ui.runs_with_model() if trained_on(run, scan.root)]
    if not runs:
        st.caption("Train a model on this data set: the training photos it disagrees with most then show here.")
        return
    st.caption(
        "Training photos ranked by the model's loss on their labels: a photo in the wrong class folder, "
        "or no clear photo of its class, rises to the top."
        + ("" if dataset else " Make an editable copy to move or remove them.")
    )
    # The change and its Undo beside the photos, not only at the top of a long page.
    ui.undo_bar(dataset, key="undo-mislabeled")
    by_id = {run.id: run for run in runs}
    chosen = st.selectbox(
        "Model", list(by_id), key="suspects_run", format_func=lambda i: f"{by_id[i].config.arch} · {i}"
    )
    try:
        from catdog.inference.top_losses import top_losses  # TensorFlow: only once a model is there to ask

        with st.spinner("Asking the model about every training photo…"):
            suspects = top_losses(by_id[chosen], scan, SUSPECTS)
    except RunError as error:
        st.error(f"The photos cannot be ranked: {error}")
        return
    columns = st.columns(GRID_COLUMNS)
    for i, suspect in enumerate(suspects):
        with columns[i % GRID_COLUMNS]:
            st.image(
                ui.thumbnail(scan.key, suspect.file, scan),
                width="stretch",
                alt=f"{suspect.file}, labelled {suspect.label}, which the model calls {suspect.predicted}",
            )
            st.caption(
                f"labelled {suspect.label} · model: {suspect.predicted} {suspect.confidence:.0%} · loss {suspect.loss:.2f}"
            )
            ui.fix_photo(dataset, suspect.file, suspect.label, scan.classes, key=f"suspect-{suspect.file}")


ui.ensure_router()
main()
