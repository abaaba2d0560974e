"""Class: the teacher's limits on what students start, and every student's experiment on one chart.

The teacher edits the limits here; students see them read-only. The library checks them on every
run a student starts (catdog.classroom), whatever a page sends. The results chart is for the
board: each point one finished run that learned, labelled by student, refreshed as runs finish.
"""

import io

import pandas as pd
import plotly.express as px
import streamlit as st

import catdog_ui as ui
from catdog import classroom, config
from catdog.access import Action, Forbidden
from catdog.classroom import ClassSettings
from catdog.inference.batches import write_rows
from catdog.runs.class_results import COLUMNS, class_results
from catdog.runs.lessons import ARCHITECTURE, AUGMENTATION
from catdog.settings import ARCHITECTURES, EPOCHS_RANGE, SettingsError

# Runs finish a few times a minute in a lesson: the board looks for them this often.
RESULTS_REFRESH_S = 5.0
VARIED = {AUGMENTATION: "Augmentation settings", ARCHITECTURE: "Architectures"}


def main() -> None:
    st.title("Class")
    limits()
    st.divider()
    results()


def limits() -> None:
    """The teacher's form; the same limits, read-only, for everyone else."""
    current = classroom.load()
    st.subheader("Limits for students")
    if ui.refused(Action.SET_CLASS):
        st.markdown(limits_text(current))
        st.caption("Set by the teacher. The teacher's own runs are not limited.")
        return
    with st.form("class_limits", border=True):
        architectures = st.multiselect(
            "Architectures students may train", list(ARCHITECTURES), list(current.architectures), key="class_archs"
        )
        left, middle, right = st.columns(3)
        max_epochs = left.number_input("Max epochs a run", *EPOCHS_RANGE, current.max_epochs, key="class_max_epochs")
        max_image_size = middle.select_slider(
            "Max image size",
            config.IMAGE_SIDES,
            current.max_image_size,
            format_func=lambda side: f"{side} px",
            key="class_max_image_size",
        )
        max_queued = right.number_input(
            "Runs queued per student", *classroom.QUEUED_RANGE, current.max_queued_per_student, key="class_max_queued"
        )
        show = st.checkbox("Students see classmates' runs", current.show_classmates_runs, key="class_show")
        saved = st.form_submit_button("Save the limits", icon=":material/save:")
    if not saved:
        return
    try:
        chosen = ClassSettings(show, tuple(architectures), int(max_epochs), int(max_image_size), int(max_queued))
        classroom.save(chosen, actor=ui.actor())
    except (SettingsError, Forbidden) as error:
        st.error(f"The limits were not saved: {error}")
        return
    st.toast("Limits saved", icon=":material/save:")


def limits_text(settings: ClassSettings) -> str:
    return (
        f"- Architectures: {', '.join(settings.architectures)}\n"
        f"- At most {settings.max_epochs} epochs a run, images of at most {settings.max_image_size} px\n"
        f"- At most {settings.max_queued_per_student} runs queued or training at once per student\n"
        f"- Classmates' runs: {'visible' if settings.show_classmates_runs else 'hidden'}"
    )


def results() -> None:
    st.subheader("The class's results")
    st.caption(
        "Every finished run of every student's experiment that learned: the gap between training and validation "
        "accuracy at its last epoch against its best validation accuracy. Runs that did not learn are left out."
    )
    varied = st.segmented_control(
        "Experiments that vary", list(VARIED), default=AUGMENTATION, format_func=VARIED.get, key="class_varied"
    )
    as_table = st.toggle("Table instead of chart", key="class_table")

    @st.fragment(run_every=RESULTS_REFRESH_S)
    @ui.with_error_boundary("The class's results")
    def board() -> None:
        rows = class_results(ui.shared_runs(), varied or AUGMENTATION)
        if not rows:
            st.caption("No finished experiment yet: the points appear here as students' runs finish.")
            return
        table = pd.DataFrame(rows, columns=COLUMNS)
        if as_table:
            st.dataframe(table, hide_index=True)
        else:
            st.plotly_chart(chart(table), key="class_chart")
        st.download_button(
            "Download the results (CSV)",
            csv_text(rows),
            file_name="class-results.csv",
            mime="text/csv",
            icon=":material/download:",
            key="class_csv",
        )

    board()


def chart(table: pd.DataFrame):
    """One point a run, coloured by setting, labelled by student: big enough for a projector."""
    figure = px.scatter(
        table,
        x="final_gap",
        y="best_val_accuracy",
        color="setting",
        text="student",
        hover_data=["student", "setting", "seed", "run"],
        labels={
            "final_gap": "training − validation accuracy at the last epoch",
            "best_val_accuracy": "best validation accuracy",
        },
    )
    figure.update_traces(textposition="top center", marker={"size": 14})
    figure.update_layout(
        height=560, font={"size": 16}, legend={"orientation": "h", "y": -0.2}, margin={"t": 30, "b": 40}
    )
    figure.update_xaxes(tickformat=".0%")
    figure.update_yaxes(tickformat=".0%")
    return figure


def csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    write_rows(rows, COLUMNS, out)
    return out.getvalue()


ui.ensure_router()
main()
