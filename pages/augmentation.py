"""Augmentation: what random flips and rotations do to a photo, live, with the very layers training uses."""

import random

import keras
import numpy as np
import streamlit as st

import catdog_ui as ui
from catdog import config
from catdog.augment import augmentation_code, build_augmentation, preview
from catdog.data import DataError, Scan, default_dataset_available
from catdog.images import ImageError, load_image, to_model_input
from catdog.settings import FILL_MODES, FLIP_MODES, ROTATION_RANGE, AugmentConfig

DATA_SET, UPLOAD = "Data set", "Upload"
ANY_CLASS = "any class"
BATCH_COLUMNS = 8
WHY = """
**Why it helps.** A cat is still a cat when the photo is mirrored or tilted, but to a network
these are different pixels. Showing each training photo in a new random pose every epoch
teaches that *invariance* directly, and the network can no longer memorise exact pixels, so
it **overfits less**: training accuracy rises more slowly, validation accuracy keeps up for longer.
Augmentation runs only while training; at prediction time the photo passes through unchanged.
Choose transformations that keep the label true: pets are rarely upside down, so a vertical
flip may teach the model things it never needs.
"""


def main() -> None:
    st.title("Augmentation")
    st.caption("Random flips and rotations, made by the same Keras layers the models train with.")
    controls, results = st.columns([1.3, 2.7], gap="large")
    with controls:
        scan = data_set()
        photo = choose_photo(scan)
        augmentation, variants, seed, repeated = choose_augmentation()
    ui.remember_augmentation(augmentation)
    with results:
        if photo is None:
            st.info("Pick a photo to see its augmented copies.")
        else:
            show_variants(photo, augmentation, variants, seed, repeated)
        if scan is not None:
            show_batch(scan, augmentation, seed)
        st.markdown("**The code.** This is exactly the augmentation above; the Train page uses it.")
        st.code(augmentation_code(augmentation), language="python")
        st.markdown(WHY)


def data_set() -> Scan | None:
    """The data set chosen on the Dataset page; this page never starts the default download."""
    folder = ui.chosen_data_dir()
    if folder is None and not default_dataset_available():
        st.info("The default data set is not downloaded yet: upload a photo, or get it on the Dataset page.")
        return None
    try:
        return ui.load_scan(folder)
    except DataError as error:
        st.error(f"The data set cannot be used: {error}. Choose another on the Dataset page.")
        return None


def choose_photo(scan: Scan | None) -> np.ndarray | None:
    """A model-size photo: from the data set by class or at random, or an upload."""
    source = st.segmented_control(
        "Photo", [DATA_SET, UPLOAD], default=DATA_SET, required=True, key="aug_source", persist_state="session"
    )
    if source == UPLOAD:
        upload = st.file_uploader("Upload a photo", key="aug_upload", label_visibility="collapsed")
        if upload is None:
            return None
        try:
            return to_model_input(load_image(upload.getvalue()))
        except ImageError as error:
            st.error(f"{upload.name}: {error}")
            return None
    if scan is None:
        return None
    wanted = st.selectbox("Class", [ANY_CLASS, *scan.classes], key="aug_class", persist_state="session")
    if st.button("Another photo", icon=":material/shuffle:"):
        st.session_state["aug_pick"] = st.session_state.get("aug_pick", 0) + 1
    files = [name for name, label in scan.files["train"] if wanted in (ANY_CLASS, scan.classes[label])]
    name = random.Random(f"{wanted}:{st.session_state.get('aug_pick', 0)}").choice(files)
    st.caption(f"`{name}`")
    return np.asarray(scan.pixels[scan.index[name]])


def choose_augmentation() -> tuple[AugmentConfig, int, int, bool]:
    defaults = AugmentConfig()
    flip = st.segmented_control(
        "Flip", list(FLIP_MODES), default=defaults.flip, required=True, key="aug_flip", persist_state="session"
    )
    rotation = st.slider(
        "Rotation range (fraction of a full turn)", *ROTATION_RANGE, defaults.rotation, step=0.01,
        key="aug_rotation", persist_state="session",
        help="Each copy is turned by a random angle in this range; 0.25 is a quarter turn.",
    )
    st.caption(f"= {rotation[0] * 360:+.0f}° … {rotation[1] * 360:+.0f}°")
    fill_mode = st.selectbox(
        "Fill mode", FILL_MODES, FILL_MODES.index(defaults.fill_mode), key="aug_fill", persist_state="session",
        help="How the corners uncovered by a rotation are filled.", disabled=rotation == (0.0, 0.0),
    )
    variants = st.slider("Variants", 1, 16, 8, key="aug_variants", persist_state="session")
    seed = st.number_input("Seed", 0, 1_000_000, 0, key="aug_seed", persist_state="session")
    repeated = st.toggle(
        "Apply again", key="aug_repeated", persist_state="session",
        help="Each copy is the layers applied to the previous copy, so the changes pile up.",
    )
    return AugmentConfig(flip, rotation, fill_mode), variants, seed, repeated


@st.cache_data(show_spinner=False, max_entries=64)
def variant_images(photo: np.ndarray, augmentation: dict, n: int, seed: int, repeated: bool) -> list[bytes]:
    copies = preview(photo, AugmentConfig.from_dict(augmentation), n=n, seed=seed, repeated=repeated)
    return [ui.jpeg(copy) for copy in copies]


def show_variants(photo: np.ndarray, augmentation: AugmentConfig, n: int, seed: int, repeated: bool) -> None:
    original, grid = st.columns([1, 3])
    original.image(photo, caption="Original", width="stretch")
    images = variant_images(photo, augmentation.to_dict(), n, seed, repeated)
    captions = [f"{i}× applied" if repeated else f"Copy {i}" for i in range(1, n + 1)]
    columns = grid.columns(4)
    for i, (image, caption) in enumerate(zip(images, captions)):
        columns[i % 4].image(image, caption=caption, width="stretch")


@st.cache_data(show_spinner=False, max_entries=16)
def augmented_batch(scan_key: str, augmentation: dict, seed: int, _scan: Scan) -> tuple[list[bytes], list[str]]:
    """One shuffled training batch after augmentation, as training would draw it."""
    picks = np.random.default_rng(seed).permutation(len(_scan.files["train"]))[: config.BATCH_SIZE]
    pixels, labels = _scan.arrays("train", picks)
    layers = build_augmentation(AugmentConfig.from_dict({**augmentation, "seed": seed}))
    batch = keras.ops.convert_to_numpy(layers(pixels.astype(np.float32), training=True))
    images = [ui.jpeg(image) for image in np.clip(batch, 0, 255).astype(np.uint8)]
    return images, [_scan.classes[label] for label in labels]


def show_batch(scan: Scan, augmentation: AugmentConfig, seed: int) -> None:
    st.subheader("As the model sees it")
    st.caption(
        f"One training batch of {config.BATCH_SIZE} photos after augmentation, at the "
        f"{config.IMAGE_SIZE[0]} × {config.IMAGE_SIZE[1]} pixels the model gets. Every epoch draws new poses."
    )
    images, labels = augmented_batch(scan.key, augmentation.to_dict(), seed, scan)
    columns = st.columns(BATCH_COLUMNS)
    for i, (image, label) in enumerate(zip(images, labels)):
        columns[i % BATCH_COLUMNS].image(image, caption=label, width="stretch")


ui.ensure_router()
main()
