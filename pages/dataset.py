"""Dataset: where the photos come from, how they split, what was skipped, the photos themselves,
and the photos a trained model disputes, to fix."""

import random

import pandas as pd
import plotly.express as px
import streamlit as st

import catdog_ui as ui
from catdog import classroom, config
from catdog.access import Action, Forbidden
from catdog.data.datasets import Dataset, DatasetStore, Made
from catdog.data.download import default_dataset_available
from catdog.data.errors import DataError
from catdog.data.images import ImageError, load_image, read_upload
from catdog.data.scan import Scan
from catdog.data.split import min_photos_per_class, split_shares
from catdog.inference.lineage import trained_on
from catdog.messages import N_
from catdog.runs.states import RunError
from catdog_ui import _, ngettext

DEFAULT, MANAGED, FOLDER = N_("Default: cats_and_dogs_filtered"), N_("Your data sets"), N_("A folder on this computer")
PAGE_SIZE = 24
GRID_COLUMNS = 6
SUSPECTS = 12
# Widget keys set from a callback or before the widgets exist: the next run shows the new data set.
PICK = "dataset_pick"


def main() -> None:
    st.title(_("Dataset"))
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
    store = DatasetStore(viewer=ui.actor())
    if picked := st.session_state.pop(PICK, None):
        st.session_state["data_source"], st.session_state["dataset_name"] = MANAGED, picked
    remembered = ui.chosen_data_dir()
    managed = store.find(remembered)
    locked = ui.refused(Action.CHOOSE_FOLDER)
    # First values go through Session State, as a data set just made or renamed does: a widget given
    # a default as well warns in the server's log.
    st.session_state.setdefault("data_source", MANAGED if managed else FOLDER if remembered else DEFAULT)
    source = st.segmented_control(
        _("Source"),
        [DEFAULT, MANAGED, FOLDER],
        format_func=ui.shown_as([DEFAULT, MANAGED, FOLDER]),
        required=True,
        key="data_source",
        persist_state="session",
        disabled=locked,
        help=_(ui.LOCKED) if locked else None,
    )
    folder = None
    if source == MANAGED:
        names = store.names()
        with st.expander(_("New data set"), icon=":material/add_photo_alternate:", expanded=not names):
            new_dataset(store)
        if not names:
            return None, None
        if st.session_state.get("dataset_name") not in names:
            st.session_state["dataset_name"] = managed.name if managed else names[0]
        name = st.selectbox(_("Data set"), names, key="dataset_name", persist_state="session", disabled=locked)
        folder = str(store.get(name).root)
    elif source == FOLDER:
        shares = "/".join(ui.whole_percent(share) for share in split_shares())  # e.g. 70%/24%/6%
        folder = st.text_input(
            _("Folder path"),
            value=remembered or "",
            key="data_path",
            persist_state="session",
            placeholder=_("/path/to/photos"),
            disabled=locked,
            help=_(ui.LOCKED)
            if locked
            else _(
                "A folder with train/, validation/ and test/ (each with one subfolder "
                "per class), or just one subfolder per class: it is then split {shares} with a fixed seed.",
                shares=shares,
            ),
        ).strip()
        if not folder:
            st.info(_("Type the path of a folder of class folders."))
            return None, None
    elif not default_dataset_available():
        ui.download_panel()
        return None, None
    if locked:
        st.caption(_(ui.LOCKED))
    try:
        scan = ui.load_scan(folder)
    except DataError as error:
        st.error(_("That folder cannot be used: {error}", error=ui.tr(error)))
        return None, None
    ui.remember_data_dir(folder)
    st.caption(_("Using `{folder}` · the Train page trains on this data set.", folder=scan.root))
    return scan, store.find(folder)


# --- new data sets ------------------------------------------------------------------------


def new_dataset(store: DatasetStore) -> None:
    """A data set from a zip of class folders, or built class by class from photos and the camera."""
    if made := st.session_state.pop("dataset_made", None):
        st.success(_("Data set {name} is ready.", name=made["name"]))
        if made["skipped"]:
            st.warning(ngettext("{count} file was left out:", "{count} files were left out:", len(made["skipped"])))
            st.dataframe(ui.skipped_table(made["skipped"]), hide_index=True)
    locked = ui.refused(Action.MAKE_DATASET)
    if not locked and (share := classroom.dataset_share(ui.actor())) is not None:
        st.caption(
            _(
                "Your data sets and project files take {used} of the {share} MB your teacher allows each student.",
                used=ui.number(round(store.usage(ui.actor()) / 2**20)),
                share=ui.number(share // 2**20),
            )
        )
    upload, build = st.tabs([_("Upload a zip"), _("Build classes")])
    with upload:
        upload_zip(store, locked)
    with build:
        class_builder(store, locked)


def upload_zip(store: DatasetStore, locked: bool) -> None:
    st.caption(
        _(
            "A zip of one folder per class (cats/, dogs/, …), or of train/ and validation/ folders with one "
            "folder per class inside. Files that are not photos are left out and listed."
        )
    )
    archive = st.file_uploader(_("Zip of class folders"), key="dataset_zip", disabled=locked)
    name = st.text_input(_("Name"), key="dataset_zip_name", placeholder=_("my-pets"), disabled=locked)
    if not st.button(
        _("Create from the zip"), key="dataset_zip_create", type="primary", disabled=locked or not archive
    ):
        return
    with ui.progress_bar(
        lambda done, total: _(
            "Unpacking… {done} of {total} MB",
            done=ui.number(round(done / 2**20, 1)),
            total=ui.number(round(total / 2**20, 1)),
        ),
        _("Unpacking…"),
    ) as progress:
        created(lambda: store.import_zip(archive, name, progress, actor=ui.actor()))


def class_builder(store: DatasetStore, locked: bool) -> None:
    minimum = min_photos_per_class()
    st.caption(
        _(
            "Name at least two classes and give each at least {minimum} photos: drop files or take them with the camera.",
            minimum=minimum,
        )
    )
    names = st.text_input(
        _("Classes, separated by commas"), key="builder_classes", placeholder=_("cats, dogs"), disabled=locked
    )
    classes = list(dict.fromkeys(part.strip() for part in names.split(",") if part.strip()))
    photos = {name: class_photos(name, minimum, locked) for name in classes}
    name = st.text_input(_("Name"), key="builder_name", placeholder=_("my-classes"), disabled=locked)
    ready = len(classes) >= 2 and all(len(items) >= minimum for items in photos.values())
    if not ready:
        st.caption(_("Needs at least two classes with at least {minimum} photos each.", minimum=minimum))
    if st.button(_("Create the data set"), key="builder_create", type="primary", disabled=locked or not ready):
        created(lambda: store.create(name, photos, actor=ui.actor()))


def class_photos(name: str, minimum: int, locked: bool) -> list[tuple[str, bytes]]:
    """One class's photos: files dropped, and shots taken with the camera (kept until the set is made)."""
    with st.container(border=True):
        st.markdown(f"**{name}**")
        files = st.file_uploader(
            _("Photos of {name}", name=name), accept_multiple_files=True, key=f"builder_files_{name}", disabled=locked
        )
        shots = st.session_state.setdefault(f"builder_shots_{name}", {})
        if st.toggle(_("Use the camera"), key=f"builder_camera_{name}", disabled=locked):
            shot = st.camera_input(_("Take a photo of {name}", name=name), key=f"builder_shot_{name}")
            if shot is not None:
                shots.setdefault(shot.file_id, (f"camera-{len(shots) + 1}.jpg", shot.getvalue()))
        photos = [(upload.name, upload.getvalue()) for upload in files or []] + list(shots.values())
        text = ngettext("{count} photo", "{count} photos", len(photos))
        text += "" if len(photos) >= minimum else " · " + _("at least {minimum} needed", minimum=minimum)
        st.caption(text)
    return photos


def created(make) -> None:
    """Makes a data set, says why not in one line, and shows the new set on the next run."""
    try:
        made: Made = make()
    except (DataError, Forbidden) as error:
        st.error(_("No data set was made: {error}", error=ui.tr(error)))
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
        _("Make an editable copy"),
        icon=":material/content_copy:",
        disabled=locked,
        help=_(ui.LOCKED) if locked else _("Photos can be moved between classes or removed only in a copy."),
    ):
        name = st.text_input(_("Name of the copy"), key="copy_name", placeholder=_("{name}-copy", name=scan.root.name))
        if not st.button(_("Copy"), key="copy_create", type="primary"):
            return
        folder = ui.chosen_data_dir()
        with ui.progress_bar(lambda done, total: _("Copying…"), _("Copying…")) as progress:
            created(lambda: DatasetStore().copy(folder, name, progress, actor=ui.actor()))


# --- managing one of the app's own data sets -----------------------------------------------


def manage(dataset: Dataset) -> None:
    ui.undo_bar(dataset)
    rename, delete, trash = st.columns(3)
    with rename.popover(
        _("Rename"),
        icon=":material/edit:",
        disabled=ui.refused(Action.RENAME_DATASET, dataset.owner),
        width="stretch",
    ):
        new = st.text_input(_("New name"), value=dataset.name, key="dataset_new_name")
        if st.button(_("Rename"), key="dataset_rename", type="primary"):
            changed(lambda: DatasetStore().rename(dataset.name, new, actor=ui.actor()))
    with delete.popover(
        _("Delete"),
        icon=":material/delete_forever:",
        disabled=ui.refused(Action.DELETE_DATASET, dataset.owner),
        width="stretch",
    ):
        st.caption(
            _(
                "Deletes {name} with all its photos and its trash. Runs trained on it keep their models.",
                name=dataset.name,
            )
        )
        if st.button(_("Delete {name}", name=dataset.name), key="dataset_delete", type="primary"):
            changed(lambda: DatasetStore().delete(dataset.name, actor=ui.actor()))
    removed = dataset.trash()
    with trash.popover(_("Trash ({count})", count=len(removed)), icon=":material/restore_from_trash:", width="stretch"):
        if not removed:
            st.caption(_("Removed photos wait here until restored."))
        else:
            st.dataframe(pd.DataFrame({_("removed photo"): [change.file for change in removed]}), hide_index=True)
            locked = ui.refused(Action.RESTORE, dataset.owner)
            st.button(
                _("Restore all"),
                key="dataset_restore",
                on_click=ui.restore_all,
                args=(dataset,),
                disabled=locked,
                help=_(ui.LOCKED) if locked else _("Back to where they were."),
            )


def changed(change) -> None:
    """Renames or deletes a data set; the next run shows the renamed one, or none."""
    try:
        result = change()
    except (DataError, Forbidden) as error:
        st.error(ui.tr(error))
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
    split_column, class_column, images_column = _("split"), _("class"), _("images")
    table = pd.DataFrame(
        [(_(ui.SPLIT_NAMES[split]), name, n) for split, per_class in counts.items() for name, n in per_class.items()],
        columns=[split_column, class_column, images_column],
    )
    total = int(table[images_column].sum())
    majority, baseline = scan.majority_baseline()

    cols = st.columns(4)
    cols[0].metric(_("Classes"), ui.number(len(scan.classes)))
    cols[1].metric(_("Usable images"), ui.number(total))
    cols[2].metric(_("Skipped files"), ui.number(len(scan.skipped)))
    cols[3].metric(
        _("Majority-class baseline"),
        ui.percent(baseline),
        help=_(
            "Validation accuracy of always answering '{majority}', the most common training class. "
            "A model must beat this to have learnt anything.",
            majority=majority,
        ),
    )
    figure = px.bar(
        table,
        x=split_column,
        y=images_column,
        color=class_column,
        barmode="group",
        text=images_column,
        category_orders={split_column: [_(ui.SPLIT_NAMES[s]) for s in config.SPLITS], class_column: scan.classes},
        color_discrete_map=ui.class_colors(scan.classes),
        title=_("Images per split and class"),
    )
    ui.plotly_chart(figure, key="counts", table=table)


def sizes(scan: Scan) -> None:
    labels = {name: scan.classes[label] for files in scan.files.values() for name, label in files}
    file_column, width_column, height_column, class_column = _("file"), _("width"), _("height"), _("class")
    table = pd.DataFrame(
        [(name, w, h, labels.get(name, "?")) for name, (w, h) in scan.sizes.items()],
        columns=[file_column, width_column, height_column, class_column],
    )
    st.subheader(_("Image sizes"))
    st.caption(
        _(
            "Every photo is resized to {width} × {height} pixels (or the size a "
            "run chooses on the Train page) before the model sees it, so wide or tiny originals get squeezed "
            "or blurred.",
            width=config.IMAGE_SIZE[0],
            height=config.IMAGE_SIZE[1],
        )
    )
    figure = px.scatter(
        table,
        x=width_column,
        y=height_column,
        color=class_column,
        hover_name=file_column,
        opacity=0.5,
        marginal_x="box",
        marginal_y="box",
        category_orders={class_column: scan.classes},
        color_discrete_map=ui.class_colors(scan.classes),
    )
    ui.plotly_chart(figure, key="sizes", table=table, name=_("Image sizes"))


def skipped(scan: Scan) -> None:
    st.subheader(_("Skipped files"))
    if not scan.skipped:
        st.success(_("Every file is a usable image."))
        return
    st.warning(
        ngettext(
            "{count} file or folder is not used for training:",
            "{count} files or folders are not used for training:",
            len(scan.skipped),
        )
    )
    st.dataframe(ui.skipped_table(scan.skipped), hide_index=True, height=min(38 * (len(scan.skipped) + 1), 300))


def browse(scan: Scan, dataset: Dataset | None) -> None:
    st.subheader(_("Browse"))
    left, middle, right, seed_column = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    split = left.segmented_control(
        _("Split"),
        config.SPLITS,
        format_func=ui.shown_as(config.SPLITS, lambda split: _(ui.SPLIT_NAMES[split])),
        default="train",
        required=True,
        key="browse_split",
    )
    chosen = middle.pills(_("Class"), scan.classes, selection_mode="multi", default=scan.classes, key="browse_classes")
    shuffle = right.toggle(_("Shuffle"), key="browse_shuffle")
    seed = seed_column.number_input(_("Seed"), 0, 10_000, 0, key="browse_seed", disabled=not shuffle)

    wanted = {scan.classes.index(name) for name in chosen}
    files = [(name, label) for name, label in scan.files[split] if label in wanted]
    if shuffle:
        random.Random(seed).shuffle(files)
    if not files:
        st.info(_("No images for this choice."))
        return
    st.caption(
        ngettext("{count} image · click a name to enlarge", "{count} images · click a name to enlarge", len(files))
    )
    shown = ui.page_of(files, PAGE_SIZE, key=f"browse-page-{split}-{shuffle}-{seed}")
    columns = st.columns(GRID_COLUMNS)
    for i, (name, label) in enumerate(shown):
        with columns[i % GRID_COLUMNS]:
            st.image(
                ui.thumbnail(scan.key, name, scan),
                width="stretch",
                alt=_("{file}, a photo of {label}", file=name, label=scan.classes[label]),
            )
            if st.button(name.rsplit("/", 1)[-1], key=f"enlarge-{name}", type="tertiary"):
                enlarge(scan, name, scan.classes[label], dataset)


def enlarge(scan: Scan, name: str, label: str, dataset: Dataset | None) -> None:
    """The photo at its own size, in a dialog titled in the session's language."""
    st.dialog(_("Photo"), width="large")(enlarged)(scan, name, label, dataset)


def enlarged(scan: Scan, name: str, label: str, dataset: Dataset | None) -> None:
    width, height = scan.sizes[name]
    st.caption(f"`{name}` · {label} · " + _("{width} × {height} pixels", width=width, height=height))
    ui.fix_photo(dataset, name, label, scan.classes, key=f"enlarged-{name}")
    try:
        # Native size: small originals stay sharp instead of being blown up to the dialog's width.
        st.image(
            load_image(read_upload(scan.root / name)),
            alt=_("{file}, a photo of {label}, at its own size", file=name, label=label),
        )
    except (OSError, ImageError) as error:
        st.error(_("{name} cannot be shown: {error}", name=name, error=ui.tr(error)))


# --- fixing the data with a model's help ----------------------------------------------------


def fix_the_data(scan: Scan, dataset: Dataset | None) -> None:
    st.subheader(_("Most likely mislabeled"))
    runs = [run for run in ui.runs_with_model() if trained_on(run, scan.root)]
    if not runs:
        st.caption(_("Train a model on this data set: the training photos it disagrees with most then show here."))
        return
    st.caption(
        _(
            "Training photos ranked by the model's loss on their labels: a photo in the wrong class folder, "
            "or no clear photo of its class, rises to the top."
        )
        + ("" if dataset else " " + _("Make an editable copy to move or remove them."))
    )
    # The change and its Undo beside the photos, not only at the top of a long page.
    ui.undo_bar(dataset, key="undo-mislabeled")
    by_id = {run.id: run for run in runs}
    chosen = st.selectbox(
        _("Model"), list(by_id), key="suspects_run", format_func=lambda i: f"{by_id[i].config.arch} · {i}"
    )
    try:
        from catdog.inference.top_losses import top_losses  # TensorFlow: only once a model is there to ask

        with st.spinner(_("Asking the model about every training photo…")):
            suspects = top_losses(by_id[chosen], scan, SUSPECTS)
    except RunError as error:
        st.error(_("The photos cannot be ranked: {error}", error=ui.tr(error)))
        return
    columns = st.columns(GRID_COLUMNS)
    for i, suspect in enumerate(suspects):
        with columns[i % GRID_COLUMNS]:
            st.image(
                ui.thumbnail(scan.key, suspect.file, scan),
                width="stretch",
                alt=_(
                    "{file}, labelled {label}, which the model calls {predicted}",
                    file=suspect.file,
                    label=suspect.label,
                    predicted=suspect.predicted,
                ),
            )
            st.caption(
                _(
                    "labelled {label} · model: {predicted} {confidence} · loss {loss}",
                    label=suspect.label,
                    predicted=suspect.predicted,
                    confidence=ui.whole_percent(suspect.confidence),
                    loss=ui.number(round(suspect.loss, 2)),
                )
            )
            ui.fix_photo(dataset, suspect.file, suspect.label, scan.classes, key=f"suspect-{suspect.file}")


ui.ensure_router()
main()
