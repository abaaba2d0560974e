"""Augmentation: what random flips, turns, zooms, shifts and colour changes do to a photo, live, with the very
layers training uses. Every setting lives in the page's address, so a link shows others the same pictures."""

import random
import urllib.parse
from pathlib import Path

import numpy as np
import streamlit as st

import catdog_ui as ui
from catdog import config
from catdog.access import Action
from catdog.data.download import default_dataset_available
from catdog.data.errors import DataError
from catdog.data.images import ImageError, load_image, to_model_input
from catdog.data.scan import Scan
from catdog.messages import N_
from catdog.models.augmentation import augmentation_code, augmented_batch, preview
from catdog.runs.lessons import (
    AUGMENTATION,
    LESSON_ARCH,
    LESSON_EPOCHS,
    LESSON_IMAGE_SIZE,
    MEASURED_SECONDS,
    QUICK,
    augmentation_experiment,
    find_experiment,
    submit_experiment,
)
from catdog.runs.states import RunError
from catdog.runs.store import RunStore
from catdog.settings import (
    AMOUNT_MEANINGS,
    AMOUNT_RANGES,
    FILL_MODES,
    FLIP_MODES,
    LESSON_SEEDS,
    PRESET_DESCRIPTIONS,
    PRESETS,
    ROTATION_RANGE,
    AugmentConfig,
)
from catdog_ui import _

DATA_SET, UPLOAD = N_("Data set"), N_("Upload")
ANY_CLASS = N_("any class")
BATCH_COLUMNS = 8
# Streamlit addresses a page by its file's name.
PAGE_PATH = Path(__file__).stem
# The data set photo in the address; an upload cannot be shared.
PHOTO_PARAM = "aug_photo"
# Widgets whose values presets set; each also names its value in the address.
AUGMENT_KEYS = {
    "flip": "aug_flip",
    "rotation": "aug_rotation",
    "fill_mode": "aug_fill",
    **{name: f"aug_{name}" for name in AMOUNT_RANGES},
}
# What a shared link carries besides the photo: every control that changes the pictures.
SHARED_KEYS = ("aug_class", *AUGMENT_KEYS.values(), "aug_variants", "aug_seed", "aug_repeated")
VARIANT_COLUMNS, PRESENTER_COLUMNS = 4, 3
# The copies' container, which assets/a11y.css keeps in view (st-key-aug-copies).
COPIES = "aug-copies"
WHY = N_(
    "**Why it helps.** A cat is still a cat when the photo is mirrored, tilted, zoomed, shifted or "
    "lit differently, but to a network these are different pixels. Showing each training photo in a new random "
    "pose every epoch teaches that *invariance* directly, and the network can no longer memorise exact pixels, so "
    "it **overfits less**: training accuracy rises more slowly, validation accuracy keeps up for longer. "
    "Augmentation runs only while training; at prediction time the photo passes through unchanged. "
    "Choose transformations that keep the label true: pets are rarely upside down, so a vertical "
    "flip may teach the model things it never needs."
)


def main() -> None:
    st.title(_("Augmentation"))
    presenting = st.session_state.get("aug_presenter", False)
    if not presenting:
        st.caption(
            _(
                "Random flips, turns, zooms, shifts and colour changes, made by the same Keras layers the models "
                "train with. Each copy says what was drawn for it."
            )
        )
    # Presenting, the controls move to the sidebar and the pictures get the whole width. Otherwise the
    # copies stay in view while a control moves: beside the controls, above them on a phone (assets/a11y.css).
    controls, results = (st.sidebar, st.container()) if presenting else st.columns([1.5, 2.5], gap="large")
    with controls:
        scan = data_set()
        photo, name = choose_photo(scan)
        augmentation, variants, seed, repeated = choose_augmentation(presenting)
        st.toggle(
            _("Presenter mode"),
            key="aug_presenter",
            persist_state="session",
            help=_("Large pictures and captions for a classroom screen; the controls move to the sidebar."),
        )
    ui.remember_augmentation(augmentation)
    with results, st.container(key=COPIES):
        if photo is None:
            st.info(_("Pick a photo to see its augmented copies."))
        else:
            show_variants(photo, name or _("Your photo"), augmentation, variants, seed, repeated, presenting)
    if not presenting:
        share(name)
    if scan is not None and not presenting:
        show_batch(scan, augmentation, seed)
    st.markdown(_("**The code.** This is exactly the augmentation above; the Train page uses it."))
    st.code(augmentation_code(augmentation), language="python", wrap_lines=True)
    if not presenting:
        st.markdown(_(WHY))
    lesson(augmentation)


def data_set() -> Scan | None:
    """The data set chosen on the Dataset page; this page never starts the default download."""
    folder = ui.chosen_data_dir()
    if folder is None and not default_dataset_available():
        st.info(_("The default data set is not downloaded yet: upload a photo, or get it on the Dataset page."))
        return None
    try:
        return ui.load_scan(folder)
    except DataError as error:
        st.error(_("The data set cannot be used: {error}. Choose another on the Dataset page.", error=ui.tr(error)))
        return None


def choose_photo(scan: Scan | None) -> tuple[np.ndarray | None, str | None]:
    """A model-size photo, from the data set by class or an upload, and its name in the data set."""
    source = st.segmented_control(
        _("Photo"),
        [DATA_SET, UPLOAD],
        format_func=ui.shown_as([DATA_SET, UPLOAD]),
        default=DATA_SET,
        required=True,
        key="aug_source",
        bind="query-params",
    )
    if source == UPLOAD:
        upload = st.file_uploader(_("Upload a photo"), key="aug_upload", label_visibility="collapsed")
        if upload is None:
            return None, None
        try:
            return to_model_input(load_image(upload.getvalue())), None
        except ImageError as error:
            st.error(f"{upload.name}: {ui.tr(error)}")
            return None, None
    if scan is None:
        return None, None
    wanted = st.selectbox(
        _("Class"),
        [ANY_CLASS, *scan.classes],
        format_func=ui.shown_as([ANY_CLASS, *scan.classes], lambda name: _(ANY_CLASS) if name == ANY_CLASS else name),
        key="aug_class",
        bind="query-params",
    )
    files = [name for name, label in scan.files["train"] if wanted in (ANY_CLASS, scan.classes[label])]
    if st.query_params.get(PHOTO_PARAM) not in files:
        st.query_params[PHOTO_PARAM] = random.Random(wanted).choice(files)
    st.button(_("Another photo"), icon=":material/shuffle:", on_click=another_photo, args=(files,))
    name = st.query_params[PHOTO_PARAM]
    st.caption(f"`{name}`")
    return scan.photo(name), name


def another_photo(files: list[str]) -> None:
    others = [name for name in files if name != st.query_params.get(PHOTO_PARAM)]
    st.query_params[PHOTO_PARAM] = random.choice(others or files)


def apply_preset() -> None:
    """Sets the controls to the chosen preset; they stay free to change afterwards."""
    preset = st.session_state.get("aug_preset")
    if preset is None:
        return
    for name, key in AUGMENT_KEYS.items():
        st.session_state[key] = getattr(PRESETS[preset], name)


def forget_preset() -> None:
    """A control moved away from the preset: no preset is shown as chosen any more."""
    st.session_state["aug_preset"] = None


def choose_augmentation(presenting: bool) -> tuple[AugmentConfig, int, int, bool]:
    defaults = AugmentConfig()
    preset = st.segmented_control(
        _("Preset"),
        list(PRESETS),
        format_func=ui.shown_as(list(PRESETS)),
        key="aug_preset",
        on_change=apply_preset,
        wrap=True,
        help=_("A starting point; every control below stays free to change."),
    )
    if preset:
        st.caption(_(PRESET_DESCRIPTIONS[preset]).capitalize() + ".")
    changed = {"on_change": forget_preset, "bind": "query-params"}
    flip = st.segmented_control(
        _("Flip"),
        list(FLIP_MODES),
        format_func=ui.shown_as(list(FLIP_MODES)),
        default=defaults.flip,
        required=True,
        key="aug_flip",
        wrap=True,
        **changed,
    )
    rotation = st.slider(
        _("Rotation range (fraction of a full turn)"),
        *ROTATION_RANGE,
        defaults.rotation,
        step=0.01,
        key="aug_rotation",
        help=_("Each copy is turned by a random angle in this range; 0.25 is a quarter turn."),
        **changed,
    )
    st.caption(f"= {rotation[0] * 360:+.0f}° … {rotation[1] * 360:+.0f}°")
    amounts = {
        name: st.slider(
            _(name).capitalize(),
            *bounds,
            getattr(defaults, name),
            step=0.05,
            key=AUGMENT_KEYS[name],
            help=_(AMOUNT_MEANINGS[name]).capitalize() + ".",
            **changed,
        )
        for name, bounds in AMOUNT_RANGES.items()
    }
    geometric = rotation != (0.0, 0.0) or amounts["zoom"] or amounts["translation"]
    fill_mode = st.selectbox(
        _("Fill mode"),
        FILL_MODES,
        FILL_MODES.index(defaults.fill_mode),
        format_func=ui.shown_as(FILL_MODES),
        key="aug_fill",
        help=_("How the parts uncovered by a turn, zoom or shift are filled."),
        disabled=not geometric,
        **changed,
    )
    # Presenting, only what changes the lesson's pictures stays in sight.
    with st.expander(_("Variants and seed")) if presenting else st.container():
        variants = st.slider(_("Variants"), 1, 16, 8, key="aug_variants", bind="query-params")
        seed = st.number_input(_("Seed"), 0, 1_000_000, 0, key="aug_seed", bind="query-params")
    repeated = st.toggle(
        _("Apply again"),
        key="aug_repeated",
        bind="query-params",
        help=_("Each copy is the layers applied to the previous copy, so the changes pile up."),
    )
    augmentation = AugmentConfig(flip=flip, rotation=rotation, fill_mode=fill_mode, **amounts)
    return augmentation, variants, seed, repeated


@st.cache_data(show_spinner=False, max_entries=64)
def variant_images(
    photo: np.ndarray, augmentation: dict, n: int, seed: int, repeated: bool
) -> tuple[list[bytes], list[str]]:
    """The copies and what was drawn for each, in total when applied again."""
    copies, draws = preview(photo, AugmentConfig.from_dict(augmentation), n=n, seed=seed, repeated=repeated)
    return [ui.jpeg(copy) for copy in copies], [draw.describe() for draw in draws]


def show_variants(
    photo: np.ndarray, name: str, augmentation: AugmentConfig, n: int, seed: int, repeated: bool, presenting: bool
) -> None:
    """The original and its copies, each with a text alternative naming the photo and what was drawn."""
    images, draws = variant_images(photo, augmentation.to_dict(), n, seed, repeated)
    captions = [
        _("{count}× applied: {draw}", count=i, draw=ui.tr(draw)) if repeated else ui.tr(draw)
        for i, draw in enumerate(draws, 1)
    ]
    if not presenting:
        original, grid = st.columns([1, 3])
        original.image(photo, caption=_("Original"), width="stretch", alt=_("{name}, unchanged", name=name))
        with grid:
            for row in rows(list(zip(images, captions)), VARIANT_COLUMNS):
                for column, (image, caption) in zip(st.columns(VARIANT_COLUMNS), row):
                    column.image(image, caption=caption, width="stretch", alt=f"{name} {caption}")
        return
    # Captions as headings: readable from the back of a classroom.
    for row in rows(list(zip([ui.jpeg(photo), *images], [_("Original"), *captions])), PRESENTER_COLUMNS):
        for column, (image, caption) in zip(st.columns(PRESENTER_COLUMNS, gap="medium"), row):
            column.image(image, width="stretch", alt=f"{name}, {caption}")
            column.subheader(caption, anchor=False)


def rows(tiles: list, width: int) -> list[list]:
    """Tiles in rows of their own columns, so that long captions never push a row out of line."""
    return [tiles[start : start + width] for start in range(0, len(tiles), width)]


def share(name: str | None) -> None:
    """The page's address with every setting, defaults too: opened anywhere, it draws the same copies.

    Built from the controls, not read from the address: the browser updates that after the run.
    """
    if name is None:
        st.caption(_("A link cannot carry an uploaded photo: choose a data set photo to share these copies."))
        return
    values = {PHOTO_PARAM: name, **{key: st.session_state[key] for key in SHARED_KEYS}}
    query = urllib.parse.urlencode({key: _query_value(value) for key, value in values.items()}, doseq=True)
    st.markdown(_("**Share.** This link opens the page with this photo and these settings:"))
    # The server's address is only known from the browser, with or without the page's path.
    server = (st.context.url or "").rstrip("/").removesuffix(f"/{PAGE_PATH}")
    st.code(f"{server}/{PAGE_PATH}?{query}", language=None, wrap_lines=True)


def _query_value(value) -> str | list[str]:
    """As Streamlit writes a bound widget's value in the address: true/false, 5 for 5.0, a range as two."""
    if isinstance(value, (list, tuple)):
        return [_query_value(item) for item in value]
    if isinstance(value, bool):
        return str(value).lower()
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@st.cache_data(show_spinner=False, max_entries=16)
def batch_images(scan_key: str, augmentation: dict, seed: int, _scan: Scan) -> tuple[list[bytes], list[str]]:
    """The augmented training batch as JPEGs, and each photo's class."""
    batch, labels = augmented_batch(_scan, AugmentConfig.from_dict(augmentation), seed)
    return [ui.jpeg(image) for image in batch], labels


def show_batch(scan: Scan, augmentation: AugmentConfig, seed: int) -> None:
    st.subheader(_("As the model sees it"))
    st.caption(
        _(
            "One training batch of {count} photos after augmentation, at the "
            "{width} × {height} pixels the model gets. Every epoch draws new poses.",
            count=config.BATCH_SIZE,
            width=config.IMAGE_SIZE[0],
            height=config.IMAGE_SIZE[1],
        )
    )
    images, labels = batch_images(scan.key, augmentation.to_dict(), seed, scan)
    columns = st.columns(BATCH_COLUMNS)
    for i, (image, label) in enumerate(zip(images, labels)):
        columns[i % BATCH_COLUMNS].image(
            image,
            caption=label,
            width="stretch",
            alt=_("Training photo {number} of the batch, {label}, augmented", number=i + 1, label=label),
        )


def lesson(augmentation: AugmentConfig) -> None:
    """Does augmentation help? Two runs that differ in it alone, their curves, and what they show."""
    st.subheader(_("Does augmentation help?"))
    st.caption(
        _(
            "Trains {arch} twice on the same photos, with the same seed and epochs: without augmentation, "
            "and with the augmentation above. The gap between training and validation accuracy is how much "
            "better the model knows the photos it learned from than new ones.",
            arch=LESSON_ARCH,
        )
    )
    quick = st.toggle(
        _("Quick"),
        key="aug_lesson_quick",
        help=_(
            "{quick_epochs} epochs at {quick_size} px instead of the posts' {epochs} at {size} px: curves within minutes.",
            quick_epochs=QUICK["epochs"],
            quick_size=QUICK["image_size"],
            epochs=LESSON_EPOCHS,
            size=LESSON_IMAGE_SIZE,
        ),
    )
    st.caption(
        _(
            "{seeds} seeds per arm, one run at a time: about {quick} quick, {full} with the posts' settings, "
            "on a free CPU core.",
            seeds=LESSON_SEEDS,
            quick=ui.duration(MEASURED_SECONDS["augmentation quick"]),
            full=ui.duration(MEASURED_SECONDS["augmentation full"]),
        )
    )
    locked = ui.refused(Action.START_EXPERIMENT)
    if st.button(
        _("Run the experiment"),
        icon=":material/science:",
        disabled=locked or augmentation.is_identity,
        help=_(ui.LOCKED) if locked else _("Choose some augmentation first.") if augmentation.is_identity else None,
    ):
        start_lesson(augmentation, quick)
    experiment_chart()


def start_lesson(augmentation: AugmentConfig, quick: bool) -> None:
    folder = ui.chosen_data_dir()
    try:
        run_configs = augmentation_experiment(augmentation, data_dir=folder, **(QUICK if quick else {}))
        ui.load_scan(folder).check_trainable()
        submit_experiment(RunStore(), run_configs, actor=ui.actor(), content=ui.load_scan(folder).content())
    except (ValueError, RunError) as error:
        st.error(_("The experiment could not start: {error}", error=ui.tr(error)))
        return
    st.session_state["aug_experiment"] = run_configs[0].experiment


def experiment_chart() -> None:
    """This session's experiment, else the newest augmentation experiment (the teacher's), live while it trains."""
    experiment = find_experiment(ui.shared_runs(), st.session_state.get("aug_experiment"), varied=AUGMENTATION)
    if experiment is not None:
        ui.experiment_view(experiment, key="lesson")
    st.page_link(
        "pages/train.py",
        label=_("Every experiment, to open again or delete, is on the Train page"),
        icon=":material/science:",
    )


ui.ensure_router()
main()
