"""Class: the teacher's limits on what students start, and every student's experiment on one chart.

The teacher edits the limits here; students see them read-only. The library checks them on every
run a student starts (catdog.classroom), whatever a page sends. The results chart is for the
board: each point one finished run that learned, labelled by student, refreshed as runs finish.
"""

import pandas as pd
import plotly.express as px
import streamlit as st

import catdog_ui as ui
from catdog import classroom, config, roster
from catdog.access import Action, Forbidden
from catdog.classroom import ClassSettings
from catdog.inference.batches import csv_download
from catdog.messages import N_
from catdog.runs.class_results import COLUMNS, HEADERS, class_results
from catdog.runs.lessons import ARCHITECTURE, AUGMENTATION
from catdog.settings import ARCHITECTURES, EPOCHS_RANGE, SettingsError
from catdog_ui import _, ngettext

# Runs finish a few times a minute in a lesson: the board looks for them this often.
RESULTS_REFRESH_S = 5.0
VARIED = {AUGMENTATION: N_("Augmentation settings"), ARCHITECTURE: N_("Architectures")}


def main() -> None:
    st.title(_("Class"))
    limits()
    students()
    st.divider()
    results()


def limits() -> None:
    """The teacher's form; the same limits, read-only, for everyone else."""
    current = classroom.load()
    st.subheader(_("Limits for students"))
    if ui.refused(Action.SET_CLASS):
        st.markdown(limits_text(current))
        st.caption(_("Set by the teacher. The teacher's own runs are not limited."))
        return
    with st.form("class_limits", border=True):
        architectures = st.multiselect(
            _("Architectures students may train"), list(ARCHITECTURES), list(current.architectures), key="class_archs"
        )
        left, middle, right = st.columns(3)
        max_epochs = left.number_input(_("Max epochs a run"), *EPOCHS_RANGE, current.max_epochs, key="class_max_epochs")
        max_image_size = middle.select_slider(
            _("Max image size"),
            config.IMAGE_SIDES,
            current.max_image_size,
            format_func=ui.shown_as(list(config.IMAGE_SIDES), lambda side: f"{ui.number(side)} px"),
            key="class_max_image_size",
        )
        max_queued = right.number_input(
            _("Runs queued per student"),
            *classroom.QUEUED_RANGE,
            current.max_queued_per_student,
            key="class_max_queued",
        )
        dataset_mb = st.number_input(
            _("Room per student for data sets and project files (MB)"),
            *classroom.DATASET_MB_RANGE,
            current.max_dataset_mb_per_student,
            step=50,
            key="class_dataset_mb",
        )
        show = st.checkbox(_("Students see classmates' runs"), current.show_classmates_runs, key="class_show")
        saved = st.form_submit_button(_("Save the limits"), icon=":material/save:")
    if not saved:
        return
    try:
        chosen = ClassSettings(
            show_classmates_runs=show,
            architectures=tuple(architectures),
            max_epochs=int(max_epochs),
            max_image_size=int(max_image_size),
            max_queued_per_student=int(max_queued),
            max_dataset_mb_per_student=int(dataset_mb),
        )
        classroom.save(chosen, actor=ui.actor())
    except (SettingsError, Forbidden) as error:
        st.error(_("The limits were not saved: {error}", error=ui.tr(error)))
        return
    st.toast(_("Limits saved"), icon=":material/save:")


def students() -> None:
    """The roster, for the teacher to take off a name someone took as a joke, or made-up ones."""
    if ui.refused(Action.REMOVE_STUDENT):
        return
    st.subheader(_("Students"))
    if removed := st.session_state.pop("class_removed", None):
        st.success(ngettext("{count} student removed", "{count} students removed", removed))
    joined = roster.students()
    if not joined:
        st.caption(_("No student has joined yet."))
        return
    names = {student.id: student.name for student in joined}
    with st.form("class_students", border=True):
        st.multiselect(
            ngettext("{count} student has joined", "{count} students have joined", len(joined)),
            list(names),
            format_func=names.get,
            key="class_remove_students",
        )
        st.caption(_("Their runs and data sets stay; their names are free again, and their codes sign no one in."))
        st.form_submit_button(_("Remove from the class"), icon=":material/person_remove:", on_click=remove_students)


def remove_students() -> None:
    """Before the page runs again, so that the list it shows is the roster after the removal."""
    chosen = st.session_state.get("class_remove_students") or []
    st.session_state["class_remove_students"] = []
    try:
        st.session_state["class_removed"] = roster.remove(chosen, actor=ui.actor()) if chosen else None
    except Forbidden as error:
        st.session_state["class_removed"] = None
        st.toast(ui.tr(error), icon=":material/block:")


def limits_text(settings: ClassSettings) -> str:
    return "\n".join(
        (
            _("- Architectures: {architectures}", architectures=", ".join(settings.architectures)),
            _(
                "- At most {epochs} epochs a run, images of at most {size} px",
                epochs=ui.number(settings.max_epochs),
                size=ui.number(settings.max_image_size),
            ),
            ngettext(
                "- At most {count} run queued or training at once per student",
                "- At most {count} runs queued or training at once per student",
                settings.max_queued_per_student,
            ),
            _(
                "- At most {mb} MB of data sets and project files per student",
                mb=ui.number(settings.max_dataset_mb_per_student),
            ),
            _("- Classmates' runs: visible") if settings.show_classmates_runs else _("- Classmates' runs: hidden"),
        )
    )


def results() -> None:
    st.subheader(_("The class's results"))
    st.caption(
        _(
            "Every finished run of every student's experiment that learned: the gap between training and validation "
            "accuracy at its last epoch against its best validation accuracy. Runs that did not learn are left out."
        )
    )
    varied = st.segmented_control(
        _("Experiments that vary"),
        list(VARIED),
        default=AUGMENTATION,
        format_func=ui.shown_as(list(VARIED), lambda varied: _(VARIED[varied])),
        key="class_varied",
    )
    as_table = st.toggle(_("Table instead of chart"), key="class_table")

    @st.fragment(run_every=RESULTS_REFRESH_S)
    @ui.with_error_boundary(N_("The class's results"))
    def board() -> None:
        rows = class_results(ui.shared_runs(), varied or AUGMENTATION)
        if not rows:
            st.caption(_("No finished experiment yet: the points appear here as students' runs finish."))
            return
        table = shown_table(rows)
        if as_table:
            st.dataframe(table.rename(columns=lambda column: _(HEADERS[column])), hide_index=True)
        else:
            st.plotly_chart(chart(table), key="class_chart")
        st.download_button(
            _("Download the results (CSV)"),
            csv_download(rows, COLUMNS),
            file_name="class-results.csv",
            mime="text/csv",
            icon=":material/download:",
            key="class_csv",
        )

    board()


def shown_table(rows: list[dict]) -> pd.DataFrame:
    """The rows with their settings and what each experiment varied in the session's language."""
    # Translated before the frame is made: pandas keeps text as plain str, without its template.
    shown = [{**row, "setting": ui.tr(row["setting"]), "varied": _(row["varied"])} for row in rows]
    return pd.DataFrame(shown, columns=COLUMNS)


def chart(table: pd.DataFrame):
    """One point a run, coloured by setting, labelled by student: big enough for a projector."""
    labels = {column: _(HEADERS[column]) for column in COLUMNS}
    labels |= {
        "final_gap": _("training − validation accuracy at the last epoch"),
        "best_val_accuracy": _("best validation accuracy"),
    }
    figure = px.scatter(
        table,
        x="final_gap",
        y="best_val_accuracy",
        color="setting",
        text="student",
        hover_data=["student", "setting", "seed", "run"],
        labels=labels,
    )
    figure.update_traces(textposition="top center", marker={"size": 14})
    figure.update_layout(
        height=560,
        font={"size": 16},
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 30, "b": 40},
        separators=ui.separators(),
    )
    figure.update_xaxes(tickformat=".0%")
    figure.update_yaxes(tickformat=".0%")
    return figure


ui.ensure_router()
main()
