"""The class together (issue #22): the teacher's limits checked by the library, the queue fair
across students, identical work done once, and the class's results on one chart."""

import os
import threading
from dataclasses import replace

import pytest

from catdog import classroom
from catdog.access import OWNER, Actor, Forbidden, Role
from catdog.classroom import ClassSettings, LimitExceeded
from catdog.data.scan import scan
from catdog.runs import lessons
from catdog.runs import queue as local_queue
from catdog.runs.class_results import class_results
from catdog.runs.queue_times import queue_plan
from catdog.runs.store import RunStore
from catdog.settings import RunConfig
from tests.helpers.support import assert_clean, join_class, open_app

TEACHER = Actor("teacher-1", "Ms Rivera", Role.TEACHER)
ANA, BEN, CAL = (Actor(f"student-{name.lower()}", name, Role.STUDENT) for name in ("Ana", "Ben", "Cal"))


@pytest.fixture
def no_queue_process(monkeypatch):
    """Queued runs stay queued: the schedule and the records are what these tests look at."""
    monkeypatch.setattr(local_queue, "start_process", lambda root: None)


def finished_run(store: RunStore):
    return next(run for run in store.runs() if run.state == "finished")


# --- the teacher's limits ----------------------------------------------------------------------


def test_a_students_run_beyond_the_limits_is_refused_in_one_line_and_the_teachers_is_not(tiny_data, no_queue_process):
    store = RunStore()
    too_long = RunConfig("model1", epochs=21, data_dir=str(tiny_data))
    finetune = RunConfig("model4-finetune", data_dir=str(tiny_data))
    too_big = RunConfig("model1", epochs=2, image_size=224, data_dir=str(tiny_data))
    for run_config, message in (
        (too_long, "Your teacher allows at most 20 epochs a run; this one has 21."),
        (finetune, "Your teacher allows model1, model2, model3, model4 in this class; not model4-finetune."),
        (too_big, "Your teacher allows images of at most 160 px; this run asks for 224."),
    ):
        with pytest.raises(LimitExceeded) as refused:
            store.submit(run_config.to_dict(), actor=ANA)
        assert str(refused.value) == message
        store.submit(run_config.to_dict(), actor=TEACHER)  # the teacher is never limited
    assert store.runs() and all(run.owner == TEACHER for run in store.runs())


def test_a_students_experiment_beyond_the_queue_limit_is_refused_whole(tiny_data, no_queue_process):
    store = RunStore()
    classroom.save(ClassSettings(max_queued_per_student=5), actor=TEACHER)
    lesson = lessons.augmentation_experiment(lessons.PRESETS["posts"], data_dir=str(tiny_data), **lessons.QUICK)
    with pytest.raises(LimitExceeded, match="allows 5 runs queued or training per student; you have 0, and 6 more"):
        lessons.submit_experiment(store, lesson, actor=BEN)
    assert store.runs() == []
    classroom.save(ClassSettings(max_queued_per_student=6), actor=TEACHER)
    assert len(lessons.submit_experiment(store, lesson, actor=BEN)) == 6
    with pytest.raises(LimitExceeded, match="you have 6, and 1 more"):
        store.submit(lesson[0].to_dict(), actor=BEN)
    assert len(lessons.submit_experiment(store, lesson, actor=OWNER)) == 6


def test_tabs_submitting_at_once_stay_within_the_queue_limit(tiny_data, no_queue_process):
    """Each tab is its own thread on the server: submitted at the same moment, twelve runs must
    not each count the student's queue before any of the others is in it."""
    classroom.save(ClassSettings(max_queued_per_student=2), actor=TEACHER)
    start, outcomes = threading.Barrier(12), []

    def tab(seed: int) -> None:
        run_config = RunConfig("model1", epochs=1, image_size=64, seed=seed, data_dir=str(tiny_data))
        start.wait()
        try:
            RunStore().submit(run_config.to_dict(), actor=BEN, content=f"photos-{seed}")
            outcomes.append("queued")
        except LimitExceeded:
            outcomes.append("refused")

    tabs = [threading.Thread(target=tab, args=(seed,)) for seed in range(12)]
    for thread in tabs:
        thread.start()
    for thread in tabs:
        thread.join()
    assert sorted(outcomes) == ["queued"] * 2 + ["refused"] * 10
    assert RunStore().active_count(BEN) == 2


def test_only_the_teacher_changes_the_limits_and_damage_reads_as_the_defaults():
    with pytest.raises(Forbidden):
        classroom.save(ClassSettings(max_epochs=500), actor=ANA)
    chosen = ClassSettings(architectures=("model4",), max_epochs=5, max_image_size=96, max_queued_per_student=2)
    classroom.save(chosen, actor=TEACHER)
    assert classroom.load() == chosen
    classroom.settings_path().write_text('{"architectures": ["model9"], "max_epochs": "many", "max_image_size": 96}')
    assert classroom.load() == ClassSettings(max_image_size=96)


# --- the fair queue ----------------------------------------------------------------------------------


def test_the_queue_takes_runs_in_turn_across_students(tiny_data):
    store = RunStore()
    run_config = RunConfig("model1", epochs=2, data_dir=str(tiny_data))
    ana = [store.create(run_config, owner=ANA) for _ in range(3)]
    ben = store.create(run_config, owner=BEN)
    cal = store.create(run_config, owner=CAL)
    order = [ana[0], ben, cal, ana[1], ana[2]]
    assert [run.id for run in local_queue.fair_order(local_queue.waiting(store.runs()))] == [run.id for run in order]
    assert [(slot.run.id, slot.position) for slot in queue_plan(store)] == [
        (run.id, position) for position, run in enumerate(order, start=1)
    ]
    # Ana's first run trains; a student arriving now waits behind Ben and Cal, not behind Ana's rest.
    ana[0].mark("running", pid=os.getpid(), create_time=None)
    ana[0].mark("finished")
    late = store.create(run_config, owner=Actor("student-dee", "Dee", Role.STUDENT))
    waiting = local_queue.fair_order(local_queue.waiting(store.runs()))
    assert [run.id for run in waiting] == [ben.id, cal.id, late.id, ana[1].id, ana[2].id]


# --- identical work done once -------------------------------------------------------------------------


def test_a_students_run_identical_to_a_finished_one_is_answered_by_it_at_once(copied_runs, tiny_data, no_queue_process):
    store = RunStore()
    source = finished_run(store)
    content = scan(tiny_data, source.config.split_seed).content()
    asked = replace(source.config, experiment="mine", created=None)
    share = store.submit(asked.to_dict(), actor=ANA, content=content)
    assert share.same_as == source.id and share.state == "finished"
    assert local_queue.waiting(store.runs()) == []  # nothing to train
    assert share.owner == ANA and share.config.experiment == "mine"
    assert share.history() == source.history()
    assert share.summary()["best_val_accuracy"] == source.summary()["best_val_accuracy"]
    assert share.model_path.stat().st_ino == source.model_path.stat().st_ino  # a link: no copy, no training

    other_seed = store.submit(replace(asked, seed=7).to_dict(), actor=ANA, content=content)
    assert other_seed.same_as is None and other_seed in local_queue.waiting(store.runs())
    # The owner measures: the same run trains again.
    again = store.submit(asked.to_dict(), actor=OWNER, content=content)
    assert again.same_as is None and again.state == "queued"


def test_a_share_of_a_queued_run_follows_it_and_cancelling_either_spares_the_other(tiny_data, no_queue_process):
    store = RunStore()
    content = scan(tiny_data).content()
    asked = RunConfig("model1", epochs=2, data_dir=str(tiny_data)).to_dict()
    source = store.submit(asked, actor=ANA, content=content)
    ben, cal = (store.submit(asked, actor=student, content=content) for student in (BEN, CAL))
    assert ben.same_as == source.id and ben.state == "queued"
    assert [slot.position for slot in queue_plan(store)] == [1, 1, 1]

    store.cancel(ben.id, actor=TEACHER)  # the teacher (Ben may cancel his own too)
    assert ben.state == "cancelled" and source.state == "queued" and not source.cancel_requested

    store.cancel(source.id, actor=TEACHER)  # Ana's run: Cal's run trains after all
    assert source.state == "cancelled"
    assert cal.same_as is None and cal.state == "queued" and cal in local_queue.waiting(store.runs())


def test_deleting_the_run_a_share_reads_leaves_the_share_whole(copied_runs, tiny_data):
    store = RunStore()
    source = finished_run(store)
    share = store.create(source.config, owner=ANA, same_as=source.id)  # not yet looked at
    history = source.history()
    store.delete(source.id, actor=OWNER)
    assert share.state == "finished" and share.history() == history and share.model_path.is_file()
    assert share.data()["content"] == scan(tiny_data, share.config.split_seed).content()
    store.delete(share.id, actor=OWNER)


# --- the class's results ----------------------------------------------------------------------------


def test_class_results_hold_each_students_learned_runs_only(copied_runs):
    store = RunStore()
    learned, dead = store.runs()
    for run, owner, experiment in ((learned, ANA, "e1"), (dead, BEN, "e2")):
        run.write_config(replace(run.config, experiment=experiment, varied=lessons.AUGMENTATION))
        run.record_owner(owner)
    status = dead.recorded_status()
    (dead.path / "status.json").write_text(__import__("json").dumps({**status, "collapsed": "it did not learn"}))
    rows = class_results(store)
    assert [(row["student"], row["run"]) for row in rows] == [("Ana", learned.id)]
    assert rows[0]["setting"] == learned.config.augmentation.describe()
    assert rows[0]["final_gap"] == round(lessons.gaps(learned)[-1], 4)
    assert class_results(store, varied=lessons.ARCHITECTURE) == []


# --- the Class page ---------------------------------------------------------------------------------


def test_the_class_page_shows_the_results_and_lets_only_the_teacher_change_the_limits(copied_runs, monkeypatch):
    for run in RunStore().runs():
        run.write_config(replace(run.config, experiment="e1", varied=lessons.AUGMENTATION))
        run.record_owner(ANA)
    app = open_app("pages/class.py")
    assert_clean(app)
    assert app.number_input(key="class_max_epochs").value == 20
    app.number_input(key="class_max_epochs").set_value(8)
    app.number_input(key="class_dataset_mb").set_value(150)
    app.button(key="FormSubmitter:class_limits-Save the limits").click().run()
    assert_clean(app)
    assert classroom.load().max_epochs == 8 and classroom.load().max_dataset_mb_per_student == 150
    assert len(app.get("plotly_chart")) == 1
    assert any(button.label == "Download the results (CSV)" for button in app.get("download_button"))


def test_the_teacher_removes_students_on_the_class_page():
    from catdog import roster

    ana, ben = roster.join("Ana", "ana-tab").actor, roster.join("Ben", "ben-tab").actor
    app = open_app("pages/class.py")
    assert app.multiselect(key="class_remove_students").options == ["Ana", "Ben"]
    app.multiselect(key="class_remove_students").select(ana.id)
    app.button(key="FormSubmitter:class_students-Remove from the class").click().run()
    assert_clean(app)
    assert roster.students() == [ben]
    assert app.multiselect(key="class_remove_students").options == ["Ben"]
    assert any("1 student removed" in message.value for message in app.success)


def test_a_removed_student_s_open_tab_acts_as_them_no_more(monkeypatch):
    """Removing a name someone took as a joke must take effect now, not at their next reload."""
    from catdog import roster

    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", "Kätzchen-42")
    app = join_class(open_app("pages/class.py"), "Ana")
    roster.remove([app.session_state["student"].id], actor=TEACHER)
    app.run()
    assert_clean(app)
    assert "student" not in app.session_state and app.text_input(key="join_name") is not None


def test_students_see_the_limits_read_only_and_the_train_page_mirrors_them(tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", "Kätzchen-42")
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    classroom.save(ClassSettings(architectures=("model1", "model4"), max_epochs=8, max_image_size=96), actor=TEACHER)
    app = join_class(open_app("pages/class.py"), "Ana")
    assert_clean(app)
    assert not app.number_input and not app.get("multiselect") and "Students" not in [h.value for h in app.subheader]
    assert any("At most 8 epochs a run, images of at most 96 px" in m.value for m in app.markdown)
    assert any("At most 300 MB of data sets and project files per student" in m.value for m in app.markdown)

    app.switch_page("pages/train.py").run()
    assert_clean(app)
    assert app.selectbox(key="train_arch").options == [
        "model1 · Plain CNN",
        "model4 · Transfer learning (frozen MobileNetV2)",
    ]
    assert app.select_slider(key="train_image_size").options == ["64 px", "96 px"]
    assert app.number_input(key="train_epochs").max == 8

    app.switch_page("pages/dataset.py").run()
    app.button_group(key="data_source").set_value("Your data sets").run()
    assert_clean(app)
    assert any("Your data sets and project files take 0 of the 300 MB" in caption.value for caption in app.caption)


def test_the_class_results_csv_keeps_a_students_name_from_running_as_a_formula():
    from io import StringIO

    from catdog.inference.batches import write_rows
    from catdog.runs.class_results import COLUMNS

    out = StringIO()
    rows = [
        {"student": "=HYPERLINK(1)", "final_gap": -0.05, "setting": "none"},
        # A spreadsheet in a locale that separates cells with ";" splits unquoted text there.
        {"student": "Ann;=cmd|' /C calc'!A0;", "setting": "none"},
    ]
    write_rows(rows, COLUMNS, out)
    header, first, second = out.getvalue().splitlines()
    assert header.startswith("student,setting,varied,best_val_accuracy,final_gap")
    assert first.startswith('"\'=HYPERLINK(1)","none","","",-0.05,')
    assert second.startswith('"Ann;=cmd|\' /C calc\'!A0;","none",')


def test_a_downloaded_table_opens_in_excel_with_its_accents():
    """Excel takes a CSV for the system's code page unless it starts with UTF-8's byte-order mark."""
    import codecs

    from catdog.inference.batches import csv_download
    from catdog.runs.class_results import COLUMNS

    data = csv_download([{"student": "Zoë Ødegård", "setting": "none"}], COLUMNS)
    assert data.startswith(codecs.BOM_UTF8)
    assert data.decode("utf-8-sig").splitlines()[1].startswith('"Zoë Ødegård","none",')


def test_a_student_past_the_queue_limit_is_refused_in_one_line_on_the_train_page(
    tiny_data, no_queue_process, monkeypatch
):
    """The widgets cap what they offer (Streamlit drops a value past a widget's bounds); what they
    cannot see, the student's runs already waiting, the library refuses."""
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", "Kätzchen-42")
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    classroom.save(ClassSettings(max_queued_per_student=1), actor=TEACHER)
    app = join_class(open_app("pages/train.py"), "Ana")
    start = "FormSubmitter:settings-Start training"
    app.button(key=start).click().run()
    assert_clean(app)
    assert len(RunStore().runs()) == 1 and not app.error
    app.number_input(key="train_seed").set_value(1)
    app.button(key=start).click().run()
    assert [e.value for e in app.error] == [
        (
            "Training could not start: Your teacher allows 1 runs queued or training per student; you have 1, "
            "and 1 more would be too many: wait for them, or cancel some."
        )
    ]
    assert len(RunStore().runs()) == 1
