"""Train: pick an architecture and settings, start a run, watch it live, compare and download runs.

Runs train in their own processes and keep their state on disk, so a reload or a second tab
shows the same live run.
"""

import functools

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import catdog_ui as ui
from catdog import config, predict
from catdog.data import default_dataset_available
from catdog.models import ARCHITECTURES, Architecture, layer_summary, parameter_counts
from catdog.runs import Run, RunError, RunStore, image_size, planned_epochs
from catdog.training import default_run_config

LIVE_REFRESH_S = 1.0
# Curves change once an epoch; redrawing two Plotly charts every second for every open tab
# would take the 2 cores from the server.
CHARTS_REFRESH_S = 4.0
# Without a live run the panel still looks now and then, for runs started in another tab.
IDLE_REFRESH_S = 5.0
PLAN_AXIS_EPOCHS = 20
BATCH_SIZES = (8, 16, 32, 64, 128)
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
IMAGE_SIZE_HELP = (
    f"Photos are resized to this square before training. {config.IMAGE_SIZE[0]} px is the reference "
    "posts' choice; 224 px is the size MobileNetV2 learned ImageNet at and keeps more detail, so "
    "model4 gets more accurate, at about twice the compute per image."
)
FAST_PATH_EXPLANATION = (
    "Fast path: MobileNetV2's features of every training and validation photo are computed once "
    "and cached on disk; only the small head trains, in seconds. The head then sees each photo "
    "as it is, with no fresh random flips or rotations per epoch. Augmented copies add that back "
    "in part: each is one more flipped and rotated version of every training photo, made once "
    "with the augmentation above and cached too."
)


def main() -> None:
    st.title("Train")
    architecture = choose_architecture()
    start_form(architecture)
    st.divider()
    live_run()
    st.divider()
    past_runs()


def choose_architecture() -> Architecture:
    name = st.selectbox(
        "Architecture", list(ARCHITECTURES), format_func=lambda n: f"{n} · {ARCHITECTURES[n].title}",
        key="train_arch", persist_state="session",
    )
    architecture = ARCHITECTURES[name]
    st.markdown(architecture.description)
    counts = cached_parameter_counts(name)
    cols = st.columns(3)
    cols[0].metric("Parameters", f"{counts['total']:,}")
    cols[1].metric("Trainable", f"{counts['trainable']:,}")
    cols[2].metric("Frozen", f"{counts['frozen']:,}")
    with st.expander("Layers"):
        st.dataframe(pd.DataFrame(cached_layer_summary(name)), hide_index=True)
    return architecture


@st.cache_data(show_spinner="Counting parameters…")
def cached_parameter_counts(name: str) -> dict[str, int]:
    return parameter_counts(name)


@st.cache_data(show_spinner=False)
def cached_layer_summary(name: str) -> list[dict]:
    return layer_summary(name)


def start_form(architecture: Architecture) -> None:
    folder = ui.chosen_data_dir()
    if folder is None and not default_dataset_available():
        st.warning("The default data set is not downloaded yet.")
        st.page_link("pages/dataset.py", label="Get it on the Dataset page", icon=":material/photo_library:")
        return
    augmentation = ui.chosen_augmentation()
    with st.form("settings", border=True):
        st.markdown(f"**Settings** · data: `{folder or config.DATASET_NAME}`")
        counts = st.columns(3 if architecture.fine_tune else 2)
        epochs = counts[0].number_input("Epochs", 1, 500, 5, key="train_epochs")
        fine_tune_epochs = 0
        if architecture.fine_tune:
            fine_tune_epochs = counts[1].number_input("Fine-tune epochs", 0, 500, 2, key="train_fine_tune")
        seed = counts[-1].number_input("Seed", 0, 1_000_000, 0, key="train_seed")
        sizes = st.columns(3, gap="large")
        batch_size = sizes[0].select_slider("Batch size", BATCH_SIZES, config.BATCH_SIZE, key="train_batch")
        image_size = sizes[1].select_slider(
            "Image size", config.IMAGE_SIDES, config.IMAGE_SIZE[0], format_func=lambda s: f"{s} px",
            key="train_image_size", help=IMAGE_SIZE_HELP,
        )
        rates = sorted({*LEARNING_RATES, architecture.learning_rate})
        learning_rate = sizes[2].select_slider(
            "Learning rate", rates, architecture.learning_rate, format_func=lambda r: f"{r:g}", key="train_lr"
        )
        if architecture.name == "model1":
            st.caption("model1 trains without augmentation, to show overfitting.")
        else:
            low, high = augmentation.rotation
            st.caption(
                f"Augmentation from the Augmentation page: flip {augmentation.flip}, rotation "
                f"{low * 360:+.0f}° … {high * 360:+.0f}°, fill {augmentation.fill_mode}."
            )
        fast, copies = False, 0
        if architecture.uses_backbone:
            fast_column, copies_column = st.columns(2, vertical_alignment="bottom")
            fast = fast_column.checkbox("Fast path", value=True, key="train_fast")
            copies = copies_column.number_input("Augmented copies (fast path)", 0, 4, 0, key="train_copies")
            st.caption(FAST_PATH_EXPLANATION)
        start = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if architecture.name != "model1":
        st.page_link("pages/augmentation.py", label="Change the augmentation", icon=":material/flip:")
    if not start:
        return
    try:
        run_config = default_run_config(
            architecture.name, epochs=epochs, fine_tune_epochs=fine_tune_epochs, batch_size=batch_size,
            image_size=image_size, learning_rate=learning_rate, augmentation=augmentation.to_dict(), seed=seed, data_dir=folder, fast=fast,
            feature_copies=copies,
        )
        run = RunStore().submit(run_config)
    except (ValueError, RunError) as error:
        st.error(f"Training could not start: {error}")
        return
    st.toast(f"Run {run.id} queued", icon=":material/model_training:")


def live_run() -> None:
    """The running run (else the newest), polled from disk while it is queued or running."""
    store = ui.shared_runs()
    shown = store.latest()
    if shown is None:
        st.subheader("Live run")
        st.info("No runs yet: choose settings above and start one.")
        return
    was_active = ui.is_active(shown)

    @st.fragment(run_every=LIVE_REFRESH_S if was_active else IDLE_REFRESH_S)
    @ui.guarded("The live run")
    def live() -> None:
        run = store.latest()
        if run is None or run.id != shown.id or ui.is_active(run) != was_active:
            # A run started or ended: rerun the page so the runs table and polling rate follow.
            st.rerun()
        show_run(run)
        queue(store, run)

    @st.fragment(run_every=CHARTS_REFRESH_S if was_active else None)
    @ui.guarded("The live charts")
    def charts() -> None:
        run = store.get(shown.id)
        total = planned_epochs(run.config)
        accuracy, loss = st.columns(2)
        accuracy.plotly_chart(curves(run.history(), "accuracy", total), key="live-accuracy")
        loss.plotly_chart(curves(run.history(), "loss", total), key="live-loss")

    live()
    charts()


def show_run(run: Run) -> None:
    status, history, progress = run.status(), run.history(), run.progress()
    state, cfg, cancelling = status["state"], run.config, run.cancel_flag.exists()
    total = planned_epochs(cfg)
    title, badge = st.columns([4, 1], vertical_alignment="center")
    title.subheader(f"{'Live run' if ui.is_active(run) else 'Last run'}: {cfg.get('arch')}")
    badge.badge(state, color=ui.STATE_COLORS[state])
    st.caption(
        f"`{run.id}` · batch {cfg.get('batch_size')} · {image_size(cfg)[0]} px"
        f" · learning rate {cfg.get('learning_rate'):g}"
        f"{' · fast path' if cfg.get('fast') else ''}"
    )
    if state == "queued":
        st.info("Queued: training starts when the runs before it finish.")
    elif state == "running":
        fraction = min(progress["batch"] / max(progress["batches"], 1), 1.0) if progress else 0.0
        if cancelling:
            text = "Cancelling…"
        elif progress:
            text = ui.progress_text(cfg, history, progress)
        else:
            text = "Preparing data and model…"
        st.progress(fraction, text=text)
    elif state == "failed":
        st.error(f"Training failed: {status.get('error') or 'unknown reason'}")
    elif state == "cancelled":
        st.warning(f"Cancelled after {len(history)} of {total} epochs.")
    skipped = run.data().get("skipped")
    if skipped:
        with st.expander(f"{len(skipped)} files or folders in the data folder were not used for training"):
            st.dataframe(skipped, hide_index=True, width="stretch")
    if ui.is_active(run) and not cancelling and st.button("Cancel", icon=":material/stop:", key=f"cancel-{run.id}"):
        cancel(run)


def queue(store: RunStore, shown: Run) -> None:
    waiting = [run for run in store.queue() if run.id != shown.id]
    if not waiting:
        return
    st.markdown(f"**Queue** · {len(waiting)} waiting")
    for run in waiting:
        name, button = st.columns([5, 1], vertical_alignment="center")
        name.caption(f"`{run.id}` · {run.config.get('epochs')} epochs")
        if button.button("Cancel", key=f"cancel-{run.id}", type="tertiary"):
            cancel(run)


def cancel(run: Run) -> None:
    try:
        RunStore().cancel(run.id)
    except RunError as error:
        st.error(f"Could not cancel: {error}")
        return
    st.toast(f"Cancelling {run.id}…")


def curves(history: list[dict], metric: str, planned: int) -> go.Figure:
    """Train vs validation per epoch, with a line where fine-tuning starts."""
    figure = go.Figure()
    epochs = [h["epoch"] for h in history]
    figure.add_scatter(x=epochs, y=[h.get(metric) for h in history], name="train", mode="lines+markers")
    figure.add_scatter(x=epochs, y=[h.get(f"val_{metric}") for h in history], name="validation", mode="lines+markers")
    fine_tune = next((h["epoch"] for h in history if h.get("phase") == "fine-tune"), None)
    if fine_tune:
        figure.add_vline(x=fine_tune - 0.5, line_dash="dot", annotation_text="fine-tuning")
    # Short plans show their whole x axis, so the chart visibly fills in; long ones grow with the run.
    last = max(min(planned, PLAN_AXIS_EPOCHS), epochs[-1] if epochs else 1)
    figure.update_layout(
        title=metric.capitalize(), height=320, margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
        xaxis={"title": "epoch", "range": [0.5, last + 0.5], "dtick": 1 if last <= 20 else None},
    )
    if metric == "accuracy":
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if not history:
        figure.add_annotation(text="waiting for the first epoch…", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def past_runs() -> None:
    st.subheader("All runs")
    runs = list(reversed(ui.shared_runs().runs()))
    if not runs:
        st.caption("Finished runs will be listed here.")
        return
    table = pd.DataFrame([run_row(run) for run in runs])
    event = st.dataframe(
        table, hide_index=True, on_select="rerun", selection_mode="multi-row",
        key=f"runs-{len(runs)}",  # a new run shifts the rows, so it starts a fresh selection
        column_config={
            "best val acc": st.column_config.NumberColumn(format="percent"),
            "last val acc": st.column_config.NumberColumn(format="percent"),
        },
    )
    chosen = [runs[i] for i in event.selection.rows]
    if not chosen:
        st.caption("Select runs in the table to compare their curves and download their models.")
        return
    accuracy, loss = st.columns(2)
    accuracy.plotly_chart(compare(chosen, "val_accuracy"), key="compare-accuracy")
    loss.plotly_chart(compare(chosen, "val_loss"), key="compare-loss")
    for run in chosen:
        downloads(run)


def run_row(run: Run) -> dict:
    summary = run.summary()
    return {
        "run": run.id,
        "arch": summary["arch"],
        "status": summary["status"],
        "epochs": f"{summary['epochs']}/{planned_epochs(run.config)}",
        "batch": summary["batch_size"],
        "px": summary["image_size"],
        "learning rate": summary["learning_rate"],
        "fast": summary["fast"],
        "best val acc": summary["best_val_accuracy"],
        "last val acc": summary["last_val_accuracy"],
        "duration": ui.duration(summary["seconds"]),
        "error": summary["error"] or "",
    }


def compare(runs: list[Run], metric: str) -> go.Figure:
    figure = go.Figure()
    longest = 1
    for run in runs:
        history = run.history()
        longest = max(longest, len(history))
        figure.add_scatter(
            x=[h["epoch"] for h in history], y=[h.get(metric) for h in history],
            name=f"{run.config.get('arch')} · {run.id[:15]}", mode="lines+markers",
        )
    figure.update_layout(
        title=f"Validation {metric.removeprefix('val_')}", height=360, margin={"t": 50, "b": 40, "l": 50, "r": 10},
        xaxis={"title": "epoch", "dtick": 1 if longest <= PLAN_AXIS_EPOCHS else None},
        legend={"orientation": "h", "y": -0.25},
    )
    if metric == "val_accuracy":
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return figure


def downloads(run: Run) -> None:
    if not run.model_path.is_file():
        return
    name, keras_file, tflite_file = st.columns([3, 1, 1], vertical_alignment="center")
    name.caption(f"`{run.id}` · best model")
    keras_file.download_button(
        ".keras", run.model_path.read_bytes, file_name=f"{run.id}.keras", mime="application/octet-stream",
        on_click="ignore", icon=":material/download:", key=f"keras-{run.id}",
    )
    tflite_file.download_button(
        "TFLite", functools.partial(predict.export_tflite, run), file_name=f"{run.id}.tflite",
        mime="application/octet-stream", on_click="ignore", icon=":material/download:", key=f"tflite-{run.id}",
        help="Converted when you click, for phones and microcontrollers; takes a few seconds.",
    )


ui.ensure_router()
main()
