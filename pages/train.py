"""Train: pick an architecture and settings, start a run, watch it live, compare and download runs.

Runs train in their own processes and keep their state on disk, so a reload or a second tab
shows the same live run.
"""

import functools
from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import catdog_ui as ui
from catdog import classroom, config
from catdog.access import Action, Forbidden
from catdog.classroom import ClassSettings
from catdog.data.download import default_dataset_available
from catdog.inference import tflite
from catdog.messages import N_
from catdog.models.architectures import layer_summary, parameter_counts
from catdog.runs import lessons
from catdog.runs.queue_times import Slot, queue_plan
from catdog.runs.record import NOTE_MAX_CHARS, PHASE_FINE_TUNE, Run
from catdog.runs.states import RunError
from catdog.runs.store import RunStore
from catdog.settings import (
    ARCHITECTURES,
    BATCH_SIZE_CHOICES,
    EPOCHS_RANGE,
    FEATURE_COPIES_RANGE,
    FINE_TUNE_EPOCHS_RANGE,
    LEARNING_RATE_CHOICES,
    LESSON_SEEDS,
    MIXED_PRECISION_MEANING,
    SEED_RANGE,
    SMALL_PHOTO_COPIES_MEANING,
    SMALL_PHOTO_SIDES,
    Architecture,
    RunConfig,
)
from catdog_ui import _, ngettext

LIVE_REFRESH_S = 1.0
# Curves change once an epoch; redrawing two Plotly charts every second for every open tab
# would take the 2 cores from the server.
CHARTS_REFRESH_S = 4.0
# Without a live run the panel still looks now and then, for runs started in another tab.
IDLE_REFRESH_S = 5.0
PLAN_AXIS_EPOCHS = 20
METRIC_TITLES = {
    "accuracy": N_("Accuracy"),
    "loss": N_("Loss"),
    "val_accuracy": N_("Validation accuracy"),
    "val_loss": N_("Validation loss"),
}
IMAGE_SIZE_HELP = N_(
    "Photos are resized to this square before training. {size} px is the reference "
    "posts' choice; larger sizes keep more of each photo's detail, so model4 gets more accurate: "
    "{largest} px is the most accurate, at about three times the compute of 160 px."
)
FAST_PATH_EXPLANATION = N_(
    "Fast path: MobileNetV2's features of every training and validation photo are computed once "
    "and cached on disk; only the small head trains, in seconds. The head then sees each photo "
    "as it is, with no fresh random flips or rotations per epoch. Augmented copies add that back "
    "in part: each is one more flipped and rotated version of every training photo, made once "
    "with the augmentation above and cached too."
)


def main() -> None:
    st.title(_("Train"))
    architecture = choose_architecture()
    start_form(architecture)
    st.divider()
    live_run()
    st.divider()
    experiments()
    st.divider()
    past_runs()


def choose_architecture() -> Architecture:
    name = st.selectbox(
        _("Architecture"),
        allowed_architectures(),
        format_func=ui.shown_as(allowed_architectures(), lambda n: f"{n} · {ui.tr(ARCHITECTURES[n].title)}"),
        key="train_arch",
        persist_state="session",
    )
    architecture = ARCHITECTURES[name]
    st.markdown(ui.tr(architecture.description))
    with st.spinner(_("Counting parameters…")):
        counts = cached_parameter_counts(name)
    cols = st.columns(3)
    cols[0].metric(_("Parameters"), ui.grouped(counts["total"]))
    cols[1].metric(_("Trainable"), ui.grouped(counts["trainable"]))
    cols[2].metric(_("Frozen"), ui.grouped(counts["frozen"]))
    with st.expander(_("Layers")):
        st.dataframe(pd.DataFrame(cached_layer_summary(name)).rename(columns=_), hide_index=True)
    return architecture


@st.cache_data(show_spinner=False)
def cached_parameter_counts(name: str) -> dict[str, int]:
    return parameter_counts(name)


@st.cache_data(show_spinner=False)
def cached_layer_summary(name: str) -> list[dict]:
    return layer_summary(name)


def start_form(architecture: Architecture) -> None:
    folder = ui.chosen_data_dir()
    if folder is None and not default_dataset_available():
        st.warning(_("The default data set is not downloaded yet."))
        st.page_link("pages/dataset.py", label=_("Get it on the Dataset page"), icon=":material/photo_library:")
        return
    augmentation = ui.chosen_augmentation()
    # Outside the form, so that the epochs below follow the path's default at once.
    fast = architecture.uses_backbone and st.checkbox(
        _("Fast path"),
        value=True,
        key="train_fast",
        help=_("Train the head on cached backbone features: seconds, not minutes."),
    )
    defaults = RunConfig(architecture.name, fast=fast)
    with st.form("settings", border=True):
        st.markdown(_("**Settings** · data: `{folder}`", folder=folder or config.DATASET_NAME))
        limits_caption()
        counts = st.columns(3 if architecture.fine_tune else 2)
        # Each path and architecture keeps its own value, starting from its own default.
        epochs = counts[0].number_input(
            _("Epochs"),
            *epochs_range(),
            min(defaults.epochs, epochs_range()[1]),
            key="train_epochs_fast" if fast else "train_epochs",
        )
        fine_tune_epochs = 0
        if architecture.fine_tune:
            fine_tune_epochs = counts[1].number_input(
                _("Fine-tune epochs"), *FINE_TUNE_EPOCHS_RANGE, defaults.fine_tune_epochs, key="train_fine_tune"
            )
        seed = counts[-1].number_input(_("Seed"), *SEED_RANGE, defaults.seed, key="train_seed")
        sizes = st.columns(3, gap="large")
        batch_size = sizes[0].select_slider(_("Batch size"), BATCH_SIZE_CHOICES, defaults.batch_size, key="train_batch")
        image_size = sizes[1].select_slider(
            _("Image size"),
            image_sides(),
            min(defaults.image_size, image_sides()[-1]),
            format_func=lambda s: f"{s} px",
            key="train_image_size",
            help=_(IMAGE_SIZE_HELP, size=config.IMAGE_SIZE[0], largest=config.IMAGE_SIDES[-1]),
        )
        rates = sorted({*LEARNING_RATE_CHOICES, defaults.learning_rate})
        learning_rate = sizes[2].select_slider(
            _("Learning rate"),
            rates,
            defaults.learning_rate,
            format_func=ui.shown_as(rates, ui.number),
            key=f"train_lr_{architecture.name}",
        )
        if not architecture.augments:
            st.caption(_("{arch} trains without augmentation, to show overfitting.", arch=architecture.name))
        else:
            st.caption(
                _(
                    "Augmentation from the Augmentation page: {augmentation}.",
                    augmentation=ui.tr(augmentation.describe()),
                )
            )
        meaning = _(MIXED_PRECISION_MEANING)
        mixed_precision = architecture.mixed_precision and st.toggle(
            _("Mixed precision"),
            defaults.mixed_precision,
            key=f"train_mixed_precision_{architecture.name}",
            help=f"{ui.capitalised(meaning)}.",
        )
        copies, small_photo_copies = defaults.feature_copies, defaults.small_photo_copies
        if fast:
            copies = st.number_input(
                _("Augmented copies (fast path)"), *FEATURE_COPIES_RANGE, defaults.feature_copies, key="train_copies"
            )
            meaning = _(SMALL_PHOTO_COPIES_MEANING, low=SMALL_PHOTO_SIDES[0], high=SMALL_PHOTO_SIDES[1])
            small_photo_copies = st.toggle(
                _("Learn from small photos too"),
                defaults.small_photo_copies,
                key="train_small_photo_copies",
                help=f"{ui.capitalised(meaning)}.",
            )
            st.caption(_(FAST_PATH_EXPLANATION))
        locked = ui.refused(Action.START_RUN)
        start = st.form_submit_button(
            _("Start training"),
            type="primary",
            icon=":material/play_arrow:",
            disabled=locked,
            help=_(ui.LOCKED) if locked else None,
        )
        if locked:
            st.caption(_(ui.LOCKED))
    if architecture.augments:
        st.page_link("pages/augmentation.py", label=_("Change the augmentation"), icon=":material/flip:")
    if not start:
        return
    try:
        run_config = RunConfig(
            architecture.name,
            epochs=epochs,
            fine_tune_epochs=fine_tune_epochs,
            batch_size=batch_size,
            image_size=image_size,
            learning_rate=learning_rate,
            augmentation=augmentation,
            seed=seed,
            data_dir=folder,
            fast=fast,
            feature_copies=copies,
            small_photo_copies=small_photo_copies,
            mixed_precision=mixed_precision,
        )
        ui.load_scan(folder).check_trainable()
        run = RunStore().submit(run_config.to_dict(), actor=ui.actor(), content=ui.load_scan(folder).content())
    except (ValueError, RunError) as error:
        st.error(_("Training could not start: {error}", error=ui.tr(error)))
        return
    st.toast(_("Run {id} queued", id=run.id), icon=":material/model_training:")


def live_run() -> None:
    """Every running run (several train at once on a cluster), else the newest, polled from disk."""
    store = ui.shared_runs()
    shown = store.live()
    if not shown:
        st.subheader(_("Live run"))
        st.info(_("No runs yet: choose settings above and start one."))
        return
    seen = [(run.id, ui.is_active(run)) for run in shown]
    was_active = seen[0][1]

    @st.fragment(run_every=LIVE_REFRESH_S if was_active else IDLE_REFRESH_S)
    @ui.with_error_boundary(N_("The live run"))
    def live(run_id: str) -> None:
        show_run(store.get(run_id))

    @st.fragment(run_every=CHARTS_REFRESH_S if was_active else None)
    @ui.with_error_boundary(N_("The live charts"))
    def charts(run_id: str) -> None:
        run = store.get(run_id)
        history, total = run.history(), run.config.planned_epochs
        accuracy, loss = st.columns(2)
        with accuracy:
            ui.plotly_chart(curves(history, "accuracy", total), key=f"live-accuracy-{run_id}")
        with loss:
            ui.plotly_chart(curves(history, "loss", total), key=f"live-loss-{run_id}")

    @st.fragment(run_every=LIVE_REFRESH_S if was_active else IDLE_REFRESH_S)
    @ui.with_error_boundary(N_("The queue"))
    def waiting() -> None:
        if [(run.id, ui.is_active(run)) for run in store.live()] != seen:
            # A run started or ended: rerun the page so the live runs, runs table and polling rate follow.
            st.rerun()
        queue(store, [run_id for run_id, _active in seen])

    for run_id, _active in seen:
        live(run_id)
        charts(run_id)
    waiting()


def show_run(run: Run) -> None:
    status, history, progress = run.status(), run.history(), run.progress()
    state, cfg, cancelling = status["state"], run.config, run.cancel_requested
    total = cfg.planned_epochs
    title, badge = st.columns([4, 1], vertical_alignment="center")
    title.subheader((_("Live run: {arch}") if ui.is_active(run) else _("Last run: {arch}")).format(arch=cfg.arch))
    badge.badge(_(ui.STATE_NAMES[state]), color=ui.STATE_COLORS[state])
    settings = _(
        "batch {batch} · {size} px · learning rate {rate}",
        batch=cfg.batch_size,
        size=cfg.image_size,
        rate=ui.number(cfg.learning_rate),
    )
    st.caption(f"`{run.id}` · {settings}" + (" · " + _("fast path") if cfg.fast else ""))
    if state == "queued":
        st.info(_("Queued: training starts when the runs before it finish."))
    elif state == "running":
        fraction = min(progress["batch"] / max(progress["batches"], 1), 1.0) if progress else 0.0
        if cancelling:
            text = _("Cancelling…")
        elif progress:
            text = ui.progress_text(cfg, history, progress)
        else:
            text = _("Preparing data and model…")
        st.progress(fraction, text=text)
    elif state == "failed":
        reason = ui.tr(status["error"]) if status.get("error") else _("unknown reason")
        st.error(_("Training failed: {error}", error=reason))
    elif state == "cancelled":
        st.warning(_("Cancelled after {done} of {total} epochs.", done=len(history), total=total))
    if status.get("collapsed"):
        st.warning(
            _(
                "This run did not learn: {reason}. {why} Its numbers say nothing about its settings. {next}",
                reason=ui.tr(status["collapsed"]),
                why=_(lessons.COLLAPSE_WHY),
                next=_(lessons.COLLAPSE_NEXT),
            ),
            icon=":material/warning:",
        )
    skipped = run.data().get("skipped")
    if skipped:
        with st.expander(
            ngettext(
                "{count} file or folder in the data folder was not used for training",
                "{count} files or folders in the data folder were not used for training",
                len(skipped),
            )
        ):
            st.dataframe(ui.skipped_table(skipped), hide_index=True, width="stretch")
    locked = ui.refused(Action.CANCEL_RUN, run.owner)
    if (
        ui.is_active(run)
        and not cancelling
        and st.button(
            _("Cancel"),
            icon=":material/stop:",
            key=f"cancel-{run.id}",
            disabled=locked,
            help=_(ui.LOCKED) if locked else None,
        )
    ):
        cancel(run)


def queue(store: RunStore, shown: list[str]) -> None:
    """Every waiting run with its place in the queue and when it should start."""
    waiting = [slot for slot in queue_plan(store) if slot.run.id not in shown]
    if not waiting:
        return
    st.markdown(_("**Queue** · {count} waiting", count=len(waiting)))
    for slot in waiting:
        run = slot.run
        locked = ui.refused(Action.CANCEL_RUN, run.owner)
        name, button = st.columns([5, 1], vertical_alignment="center")
        name.caption(
            f"{slot.position}. `{run.id}` · {run.config.arch} · "
            + _("{epochs} epochs", epochs=run.config.planned_epochs)
            + f" · {starts(slot)}"
        )
        if button.button(
            _("Cancel"), key=f"cancel-{run.id}", type="tertiary", disabled=locked, help=_(ui.LOCKED) if locked else None
        ):
            cancel(run)


def starts(slot: Slot) -> str:
    if slot.run.same_as:
        return (
            _("shares the identical run `{id}`:", id=slot.run.same_as)
            + " "
            + starts(replace(slot, run=RunStore().get(slot.run.same_as)))
        )
    if slot.starts_in is None:
        return _("start time unknown: no finished run yet to time a run ahead of it by")
    if slot.starts_in < 60:
        return _("starts in under a minute")
    return _("starts in about {time} (≈ {clock})", time=ui.duration(slot.starts_in), clock=ui.clock_in(slot.starts_in))


def cancel(run: Run) -> None:
    try:
        RunStore().cancel(run.id, actor=ui.actor())
    except (RunError, Forbidden) as error:
        st.error(_("Could not cancel: {error}", error=ui.tr(error)))
        return
    st.toast(_("Cancelling {id}…", id=run.id))


def curves(history: list[dict], metric: str, planned: int) -> go.Figure:
    """Train vs validation per epoch, with a line where fine-tuning starts."""
    figure = go.Figure()
    epochs = [h["epoch"] for h in history]
    figure.add_scatter(x=epochs, y=[h.get(metric) for h in history], name=_("train"), mode="lines+markers")
    figure.add_scatter(
        x=epochs, y=[h.get(f"val_{metric}") for h in history], name=_("validation"), mode="lines+markers"
    )
    fine_tune = next((h["epoch"] for h in history if h.get("phase") == PHASE_FINE_TUNE), None)
    if fine_tune:
        figure.add_vline(x=fine_tune - 0.5, line_dash="dot", annotation_text=_("fine-tuning"))
    # Short plans show their whole x axis, so the chart visibly fills in; long ones grow with the run.
    last = max(min(planned, PLAN_AXIS_EPOCHS), epochs[-1] if epochs else 1)
    figure.update_layout(
        title=_(METRIC_TITLES[metric]),
        height=320,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
        xaxis={"title": _("epoch"), "range": [0.5, last + 0.5], "dtick": 1 if last <= 20 else None},
        separators=ui.separators(),
    )
    if metric == "accuracy":
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if not history:
        figure.add_annotation(
            text=_("waiting for the first epoch…"), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    return figure


def experiments() -> None:
    """Runs that differ in one setting: compare the four architectures, and every experiment so far."""
    st.subheader(_("Experiments"))
    st.caption(
        _("An experiment trains runs that differ in one setting only, so their curves show what that setting does.")
    )
    compare_architectures()
    listed = list(reversed(lessons.experiments(ui.shared_runs())))
    if not listed:
        st.caption(_("Experiments will be listed here; the Augmentation page starts one too."))
        return
    event = st.dataframe(
        pd.DataFrame([experiment_row(experiment) for experiment in listed]),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"experiments-{len(listed)}",  # a new experiment shifts the rows: a fresh selection
        column_config={_("best val acc"): st.column_config.NumberColumn(format="percent")},
    )
    # The one picked in the list, else the one this session started, else the newest.
    started = next((e for e in listed if e.id == st.session_state.get("train_experiment")), listed[0])
    chosen = listed[event.selection.rows[0]] if event.selection.rows else started
    ui.experiment_view(chosen, key="train-experiment")
    delete_experiment(chosen)


def compare_architectures() -> None:
    quick_epochs, quick_size = lessons.ARCHITECTURES_QUICK["epochs"], lessons.ARCHITECTURES_QUICK["image_size"]
    st.markdown(
        _(
            "**Compare the four architectures.** Trains {archs} on the same photos with the "
            "same seed, epochs and augmentation (from the Augmentation page; model1 has none), one after the other.",
            archs=", ".join(lessons.COMPARED_ARCHS),
        )
    )
    quick = st.toggle(
        _("Quick"),
        key="train_compare_quick",
        help=_(
            "{quick_epochs} epochs at {quick_size} px instead of {epochs} at {size} px: about {time} for all "
            "four over {seeds} seeds, one run at a time on a free CPU core.",
            quick_epochs=quick_epochs,
            quick_size=quick_size,
            epochs=lessons.LESSON_EPOCHS,
            size=lessons.LESSON_IMAGE_SIZE,
            time=ui.duration(lessons.MEASURED_SECONDS["architectures quick"]),
            seeds=LESSON_SEEDS,
        ),
    )
    folder, locked = ui.chosen_data_dir(), ui.refused(Action.START_EXPERIMENT)
    no_data = folder is None and not default_dataset_available()
    if not st.button(
        _("Compare the four architectures"),
        icon=":material/science:",
        key="compare-architectures",
        disabled=locked or no_data,
        help=_(ui.LOCKED) if locked else _("Get the data set first.") if no_data else None,
    ):
        return
    try:
        run_configs = lessons.architecture_experiment(
            ui.chosen_augmentation(), data_dir=folder, **(lessons.ARCHITECTURES_QUICK if quick else {})
        )
        ui.load_scan(folder).check_trainable()
        lessons.submit_experiment(RunStore(), run_configs, actor=ui.actor(), content=ui.load_scan(folder).content())
    except (ValueError, RunError) as error:
        st.error(_("The experiment could not start: {error}", error=ui.tr(error)))
        return
    st.session_state["train_experiment"] = run_configs[0].experiment
    st.toast(_("Experiment {id} queued", id=run_configs[0].experiment), icon=":material/science:")


def experiment_row(experiment: lessons.Experiment) -> dict:
    results = [lessons.run_result(run) for run in experiment.runs]
    best = [result["best_val_accuracy"] for result in results if result["best_val_accuracy"] is not None]
    return {
        _("experiment"): experiment.id,
        _("varies"): _(experiment.varied),
        _("status"): _(ui.STATE_NAMES[experiment.state]),
        _("runs"): " · ".join(
            f"{ui.tr(label)} ×{len(members)}" for label, members in lessons.arms(experiment.runs).items()
        ),
        _("did not learn"): sum(bool(result["collapsed"]) for result in results),
        _("epochs"): experiment.runs[0].config.epochs,
        "px": experiment.runs[0].config.image_size,
        _("best val acc"): max(best) if best else None,
    }


def delete_experiment(experiment: lessons.Experiment) -> None:
    """Two clicks, as for runs: the second names what goes."""
    locked = ui.refused(Action.DELETE_EXPERIMENT, experiment.owner)
    pending = st.session_state.get("delete_experiment_pending")
    if locked or pending != experiment.id:
        st.button(
            _("Delete experiment {id} and its {count} runs…", id=experiment.id, count=len(experiment.runs)),
            icon=":material/delete:",
            key="delete-experiment",
            disabled=experiment.active or locked,
            help=_(ui.LOCKED) if locked else _("Cancel its runs first.") if experiment.active else None,
            on_click=lambda: st.session_state.update(delete_experiment_pending=experiment.id),
        )
        return
    message = _(
        "Delete experiment {id} for good? Its runs go too: {runs}.",
        id=experiment.id,
        runs=", ".join(run.id for run in experiment.runs),
    )
    if not delete_confirmed(message, "delete_experiment_pending", "delete-experiment"):
        return
    try:
        lessons.delete_experiment(RunStore(), experiment.id, actor=ui.actor())
    except (RunError, Forbidden) as error:
        st.error(_("Not deleted: {error}", error=ui.tr(error)))
        return
    st.toast(_("Deleted experiment {id}", id=experiment.id), icon=":material/delete:")
    st.rerun()


def past_runs() -> None:
    st.subheader(_("All runs"))
    runs = list(reversed(ui.shared_runs().runs()))
    if not runs:
        st.caption(_("Finished runs will be listed here."))
        return
    table = pd.DataFrame([run_row(run) for run in runs])
    event = st.dataframe(
        table,
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        key=f"runs-{len(runs)}",  # a new run shifts the rows, so it starts a fresh selection
        column_config={
            _("best val acc"): st.column_config.NumberColumn(format="percent"),
            _("last val acc"): st.column_config.NumberColumn(format="percent"),
            _("note"): st.column_config.TextColumn(width="medium"),
        },
    )
    tensorboard_hint()
    chosen = [runs[i] for i in event.selection.rows]
    if not chosen:
        st.caption(
            _("Select runs in the table to compare their curves, note what you learned, download or delete them.")
        )
        return
    accuracy, loss = st.columns(2)
    with accuracy:
        ui.plotly_chart(compare(chosen, "val_accuracy"), key="compare-accuracy")
    with loss:
        ui.plotly_chart(compare(chosen, "val_loss"), key="compare-loss")
    for run in chosen:
        selected_run(run)
    delete_runs(chosen)


def tensorboard_hint() -> None:
    """Every run also logs TensorBoard events: the way to its deeper views (graphs, histograms)."""
    with st.expander(_("Open these runs in TensorBoard")):
        st.caption(_("In a terminal on the machine that trains (TensorBoard is installed with catdog):"))
        st.code(f"tensorboard --logdir {RunStore().root}", language="bash")


def run_row(run: Run) -> dict:
    summary = run.summary()
    return {
        _("run"): run.id,
        _("arch"): summary["arch"],
        _("status"): _(ui.STATE_NAMES[summary["status"]]),
        _("epochs"): f"{summary['epochs']}/{summary['planned_epochs']}",
        _("batch"): summary["batch_size"],
        "px": summary["image_size"],
        _("learning rate"): summary["learning_rate"],
        _("fast"): summary["fast"],
        _("best val acc"): summary["best_val_accuracy"],
        _("last val acc"): summary["last_val_accuracy"],
        _("duration"): ui.duration(summary["seconds"]),
        _("error"): ui.tr(summary["error"]) if summary["error"] else "",
        # A run at chance is no evidence about its settings (catdog.runs.collapse): said beside its accuracy.
        _("did not learn"): ui.tr(summary["collapsed"]) if summary["collapsed"] else "",
        _("note"): summary["note"],
    }


def compare(runs: list[Run], metric: str) -> go.Figure:
    figure = go.Figure()
    longest = 1
    for run in runs:
        history = run.history()
        longest = max(longest, len(history))
        figure.add_scatter(
            x=[h["epoch"] for h in history],
            y=[h.get(metric) for h in history],
            name=f"{run.config.arch} · {run.id[:15]}",
            mode="lines+markers",
        )
    figure.update_layout(
        title=_(METRIC_TITLES[metric]),
        height=360,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        xaxis={"title": _("epoch"), "dtick": 1 if longest <= PLAN_AXIS_EPOCHS else None},
        legend={"orientation": "h", "y": -0.25},
        separators=ui.separators(),
    )
    if metric == "val_accuracy":
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return figure


def selected_run(run: Run) -> None:
    """A selected run's note, and its best model's downloads."""
    name, note, keras_file, tflite_file = st.columns([2, 3, 1, 1], vertical_alignment="center")
    name.caption(f"`{run.id}`")
    locked = ui.refused(Action.NOTE_RUN, run.owner)
    note.text_input(
        _("Note"),
        run.note,
        max_chars=NOTE_MAX_CHARS,
        key=f"note-{run.id}",
        on_change=save_note,
        args=(run,),
        placeholder=_("A note: what you tried, what you learned"),
        label_visibility="collapsed",
        disabled=locked,
        help=_(ui.LOCKED) if locked else None,
    )
    if not run.model_path.is_file():
        return
    keras_file.download_button(
        ".keras",
        run.model_path.read_bytes,
        file_name=f"{run.id}.keras",
        mime="application/octet-stream",
        on_click="ignore",
        icon=":material/download:",
        key=f"keras-{run.id}",
    )
    tflite_file.download_button(
        "TFLite",
        functools.partial(tflite.export_tflite, run),
        file_name=f"{run.id}.tflite",
        mime="application/octet-stream",
        on_click="ignore",
        icon=":material/download:",
        key=f"tflite-{run.id}",
        help=_("Converted when you click, for phones and microcontrollers; takes a few seconds."),
    )


def save_note(run: Run) -> None:
    try:
        run.set_note(st.session_state[f"note-{run.id}"], actor=ui.actor())
    except (RunError, Forbidden) as error:
        st.error(_("The note was not saved: {error}", error=ui.tr(error)))
        return
    st.toast(_("Note saved for {id}", id=run.id), icon=":material/edit_note:")


def delete_runs(chosen: list[Run]) -> None:
    """Deleting is two clicks: the second names what goes, as nothing brings it back."""
    ids = [run.id for run in chosen]
    active = [run.id for run in chosen if ui.is_active(run)]
    locked = any(ui.refused(Action.DELETE_RUN, run.owner) for run in chosen)
    if locked or st.session_state.get("delete_pending") != ids:
        st.button(
            ngettext("Delete {count} selected run…", "Delete {count} selected runs…", len(ids)),
            icon=":material/delete:",
            key="delete",
            disabled=bool(active) or locked,
            help=_(ui.LOCKED) if locked else None,
            on_click=lambda: st.session_state.update(delete_pending=ids),
        )
        if active:
            st.caption(
                _("Queued and running runs cannot be deleted; cancel them first: {runs}.", runs=", ".join(active))
            )
        return
    message = ngettext(
        "Delete {runs} for good? The model, curves and logs go too.",
        "Delete {runs} for good? The models, curves and logs go too.",
        len(ids),
        runs=", ".join(ids),
    )
    if not delete_confirmed(message, "delete_pending", "delete"):
        return
    errors = []
    for run_id in ids:
        try:
            RunStore().delete(run_id, actor=ui.actor())
        except (RunError, Forbidden) as error:
            errors.append(ui.tr(error))
    if errors:
        st.error(_("Not deleted: {error}", error="; ".join(errors)))
        return
    st.toast(_("Deleted {runs}", runs=", ".join(ids)), icon=":material/delete:")
    st.rerun()


def delete_confirmed(message: str, pending: str, key: str) -> bool:
    """The second click of a delete: Keep forgets the first click; True once Delete is pressed."""
    st.warning(message, icon=":material/delete_forever:")
    confirm, keep = st.columns([1, 5])
    if keep.button(_("Keep"), key=f"{key}-keep"):
        del st.session_state[pending]
        st.rerun()
    if not confirm.button(_("Delete"), type="primary", key=f"{key}-confirm"):
        return False
    del st.session_state[pending]
    return True


ui.ensure_router()


# --- the teacher's limits, mirrored: the library decides (catdog.classroom) ----------------------


def limits() -> ClassSettings | None:
    """The teacher's limits where they apply to this session (a student's), else None."""
    return classroom.load() if classroom.limited(ui.actor()) else None


def allowed_architectures() -> list[str]:
    chosen = limits()
    return [name for name in ARCHITECTURES if chosen is None or name in chosen.architectures]


def epochs_range() -> tuple[int, int]:
    chosen = limits()
    return (EPOCHS_RANGE[0], chosen.max_epochs) if chosen else EPOCHS_RANGE


def image_sides() -> tuple[int, ...]:
    chosen = limits()
    return chosen.image_sides() if chosen else config.IMAGE_SIDES


def limits_caption() -> None:
    if chosen := limits():
        st.caption(
            _(
                "Your teacher's limits: {architectures}; at most {epochs} epochs and {size} px; {queued} runs "
                "queued at once.",
                architectures=", ".join(chosen.architectures),
                epochs=ui.number(chosen.max_epochs),
                size=ui.number(chosen.max_image_size),
                queued=ui.number(chosen.max_queued_per_student),
            )
        )


main()
