"""Dataset: where the photos come from, how they split, what was skipped, and the photos themselves."""

import random

import pandas as pd
import plotly.express as px
import streamlit as st

import catdog_ui as ui
from catdog import config
from catdog.data import DataError, Scan, default_dataset_available
from catdog.images import ImageError, load_image, read_upload

DEFAULT, FOLDER = "Default: cats_and_dogs_filtered", "A folder on this computer"
PAGE_SIZE = 24
GRID_COLUMNS = 6


def main() -> None:
    st.title("Dataset")
    scan = choose_source()
    if scan is None:
        return
    overview(scan)
    sizes(scan)
    skipped(scan)
    browse(scan)


def choose_source() -> Scan | None:
    """The data set to show and train on; a usable choice is remembered for the Train page."""
    remembered = ui.chosen_data_dir()
    locked = not ui.teacher_unlocked()
    source = st.segmented_control(
        "Source", [DEFAULT, FOLDER], default=FOLDER if remembered else DEFAULT, required=True,
        key="data_source", persist_state="session", disabled=locked, help=ui.LOCKED if locked else None,
    )
    folder = None
    if source == FOLDER:
        folder = st.text_input(
            "Folder path", value=remembered or "", key="data_path", persist_state="session",
            placeholder="/path/to/photos", disabled=locked,
            help=ui.LOCKED if locked else "A folder with train/, validation/ and test/ (each with one subfolder "
            f"per class), or just one subfolder per class: it is then split {split_shares()} with a fixed seed.",
        ).strip()
        if not folder:
            st.info("Type the path of a folder of class folders.")
            return None
    elif not default_dataset_available():
        ui.download_panel()
        return None
    if locked:
        st.caption(ui.LOCKED)
    try:
        scan = ui.load_scan(folder)
    except DataError as error:
        st.error(f"That folder cannot be used: {error}")
        return None
    ui.remember_data_dir(folder)
    st.caption(f"Using `{scan.root}` · the Train page trains on this data set.")
    return scan


def split_shares() -> str:
    """Train/validation/test shares of a folder that has class folders only, e.g. 70%/24%/6%."""
    held_out, test = config.VALIDATION_FRACTION, config.TEST_FRACTION
    return "/".join(f"{share:.0%}" for share in (1 - held_out, held_out * (1 - test), held_out * test))


def overview(scan: Scan) -> None:
    counts = scan.counts()
    table = pd.DataFrame(
        [(split, name, n) for split, per_class in counts.items() for name, n in per_class.items()],
        columns=["split", "class", "images"],
    )
    total = int(table["images"].sum())
    train = counts["train"]
    majority = max(train, key=train.get)
    validation = counts["validation"]
    baseline = validation[majority] / max(sum(validation.values()), 1)

    cols = st.columns(4)
    cols[0].metric("Classes", len(scan.classes))
    cols[1].metric("Usable images", f"{total:,}")
    cols[2].metric("Skipped files", len(scan.skipped))
    cols[3].metric(
        "Majority-class baseline", ui.percent(baseline),
        help=f"Validation accuracy of always answering '{majority}', the most common training class. "
        "A model must beat this to have learnt anything.",
    )
    figure = px.bar(
        table, x="split", y="images", color="class", barmode="group", text="images",
        category_orders={"split": list(config.SPLITS), "class": scan.classes},
        color_discrete_map=ui.class_colors(scan.classes), title="Images per split and class",
    )
    st.plotly_chart(figure, key="counts")


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
        table, x="width", y="height", color="class", hover_name="file", opacity=0.5,
        marginal_x="box", marginal_y="box", category_orders={"class": scan.classes},
        color_discrete_map=ui.class_colors(scan.classes),
    )
    st.plotly_chart(figure, key="sizes")


def skipped(scan: Scan) -> None:
    st.subheader("Skipped files")
    if not scan.skipped:
        st.success("Every file is a usable image.")
        return
    st.warning(f"{len(scan.skipped)} files or folders are not used for training:")
    st.dataframe(pd.DataFrame(scan.skipped), hide_index=True, height=min(38 * (len(scan.skipped) + 1), 300))


def browse(scan: Scan) -> None:
    st.subheader("Browse")
    left, middle, right, seed_column = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    split = left.segmented_control("Split", config.SPLITS, default="train", required=True, key="browse_split")
    chosen = middle.pills(
        "Class", scan.classes, selection_mode="multi", default=scan.classes, key="browse_classes"
    )
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
            st.image(ui.thumbnail(scan.key, name, scan), width="stretch")
            if st.button(name.rsplit("/", 1)[-1], key=f"enlarge-{name}", type="tertiary"):
                enlarge(scan, name, scan.classes[label])


@st.dialog("Photo", width="large")
def enlarge(scan: Scan, name: str, label: str) -> None:
    width, height = scan.sizes[name]
    st.caption(f"`{name}` · {label} · {width} × {height} pixels")
    try:
        # Native size: small originals stay sharp instead of being blown up to the dialog's width.
        st.image(load_image(read_upload(scan.root / name)))
    except (OSError, ImageError) as error:
        st.error(f"{name} cannot be shown: {error}")


ui.ensure_router()
main()
