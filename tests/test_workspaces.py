"""Every student a workspace (issue #22): students join by name and keep a code; runs, experiments
and data sets are their owner's; a student sees and changes their own, sees the class's (the
teacher's), and classmates' only where the teacher shows them; the teacher sees and changes all."""

import io
import json
import re

import pytest

from catdog import access, classroom, config, roster
from catdog.access import OWNER, TEACHER, Action, Actor, Forbidden, Gate, Role
from catdog.classroom import ClassSettings
from catdog.data.datasets import DatasetError, DatasetStore
from catdog.data.errors import DataError
from catdog.data.scan import scan
from catdog.runs import lessons
from catdog.runs.states import RunError
from catdog.runs.store import RunStore
from catdog.settings import RunConfig
from tests.helpers.corpus import class_photos, make_zip
from tests.helpers.support import catdog

PASSWORD = "Kätzchen-42"
VISITOR = Actor("a-tab", "a visitor", Role.VISITOR)


@pytest.fixture(autouse=True)
def fresh_gate(monkeypatch):
    monkeypatch.setattr(roster, "GATE", Gate())


@pytest.fixture
def class_of_two():
    """Ada and Bob, joined as students do."""
    ada, bob = roster.join("Ada", "ada-tab"), roster.join("Bob", "bob-tab")
    return ada, bob


def show_classmates(shown: bool) -> None:
    classroom.save(ClassSettings(show_classmates_runs=shown), actor=TEACHER)


def queued(owner: Actor, experiment: str | None = None):
    return RunStore().create(RunConfig("model1", epochs=1, experiment=experiment, varied="augmentation"), owner=owner)


# --- the rules ----------------------------------------------------------------------------------


RULES = {  # what each role may do: on anything (True), on their own things only ("own"), or not
    Role.OWNER: {action: True for action in Action},
    Role.TEACHER: {action: action is not Action.READ_ANY_FOLDER for action in Action},
    Role.STUDENT: {
        **{action: False for action in Action},
        **{action: "own" for action in access.ON_OWNED},
        Action.START_RUN: True,
        Action.START_EXPERIMENT: True,
        Action.MAKE_DATASET: True,
        Action.CHOOSE_FOLDER: True,
        Action.OPEN_PROJECT: True,  # into their own workspace: what it makes is theirs
    },
    Role.VISITOR: {action: False for action in Action},
}


def test_the_rules_table():
    me = Actor("student-1", "Ada", Role.STUDENT)
    other = Actor("student-2", "Bob", Role.STUDENT)
    for role, rules in RULES.items():
        actor = me if role is Role.STUDENT else Actor("x", "x", role)
        for action, rule in rules.items():
            owner = None if action not in access.ON_OWNED else other
            assert access.allowed(actor, action, owner) == (rule is True), (role, action)
            if action in access.ON_OWNED:
                assert access.allowed(actor, action, me if role is Role.STUDENT else other) == bool(rule)
    with pytest.raises(TypeError, match="needs the owner"):
        access.authorize(OWNER, Action.DELETE_RUN)


def test_what_each_one_sees():
    ada, bob = Actor("student-1", "Ada", Role.STUDENT), Actor("student-2", "Bob", Role.STUDENT)
    for viewer in (ada, bob, VISITOR, TEACHER, OWNER):
        assert access.can_see(viewer, TEACHER, False) and access.can_see(viewer, OWNER, False), "the class's"
    assert access.can_see(ada, ada, False) and not access.can_see(ada, bob, False)
    assert access.can_see(ada, bob, True), "where the teacher shows classmates' work"
    assert not access.can_see(VISITOR, bob, True), "a visitor is no classmate"
    assert access.can_see(TEACHER, bob, False) and access.can_see(OWNER, bob, False)


# --- runs and experiments ------------------------------------------------------------------------


def test_a_student_sees_their_own_runs_and_the_class_s_and_classmates_only_when_shown(class_of_two):
    ada, bob = (joined.actor for joined in class_of_two)
    mine, theirs, teachers, owners = queued(ada), queued(bob), queued(TEACHER), queued(OWNER)
    assert [run.id for run in RunStore(viewer=ada).runs()] == [mine.id, teachers.id, owners.id]
    assert [run.id for run in RunStore(viewer=VISITOR).runs()] == [teachers.id, owners.id]
    assert len(RunStore(viewer=TEACHER).runs()) == len(RunStore().runs()) == 4
    with pytest.raises(RunError, match="no run"):
        RunStore(viewer=ada).get(theirs.id)
    show_classmates(True)
    assert theirs.id in [run.id for run in RunStore(viewer=ada).runs()]
    assert RunStore(viewer=ada).get(theirs.id).id == theirs.id


def test_a_student_cancels_deletes_and_notes_their_own_runs_and_nobody_else_s(class_of_two):
    ada, bob = (joined.actor for joined in class_of_two)
    mine, theirs, teachers = queued(ada), queued(bob), queued(TEACHER)
    store = RunStore()
    for shown in (False, True):
        show_classmates(shown)
        # Hidden, another's run is no run to them; shown, it is not theirs to change.
        refusal = (Forbidden, "Not yours: this is Bob's") if shown else (RunError, "no run")
        with pytest.raises(refusal[0], match=refusal[1]):
            store.cancel(theirs.id, actor=ada)
        with pytest.raises(Forbidden, match="Not yours: this is the teacher's"):
            store.cancel(teachers.id, actor=ada)
        with pytest.raises(Forbidden, match="students may write notes on runs of their own only"):
            theirs.set_note("mine now", actor=ada)
    assert theirs.state == teachers.state == "queued" and theirs.note == ""
    store.cancel(mine.id, actor=ada)
    mine.set_note("too many epochs", actor=ada)
    store.delete(mine.id, actor=ada)
    with pytest.raises(Forbidden, match="Not yours"):
        store.delete(theirs.id, actor=ada)
    store.cancel(theirs.id, actor=TEACHER)
    theirs.set_note("cancelled by the teacher", actor=TEACHER)
    store.delete(theirs.id, actor=TEACHER)
    assert [run.id for run in store.runs()] == [teachers.id]


def test_a_visitor_starts_and_changes_nothing(class_of_two):
    ada = class_of_two[0].actor
    run = queued(ada)
    with pytest.raises(Forbidden, match="Join the class first"):
        RunStore().create(RunConfig("model1", epochs=1), owner=VISITOR)
    with pytest.raises(Forbidden, match="Join the class first"):
        lessons.record_experiment(RunStore(), [RunConfig("model1", epochs=1)], actor=VISITOR)
    show_classmates(True)
    with pytest.raises(RunError, match="no run"):
        RunStore().cancel(run.id, actor=VISITOR)
    assert run.state == "queued" and [r.id for r in RunStore().runs()] == [run.id]


def test_experiments_are_their_runs_owner_s(class_of_two):
    ada, bob = (joined.actor for joined in class_of_two)
    for run in (queued(ada, "ada-1"), queued(ada, "ada-1"), queued(bob, "bob-1")):
        RunStore().cancel(run.id, actor=TEACHER)
    assert [e.id for e in lessons.experiments(RunStore(viewer=ada))] == ["ada-1"]
    assert lessons.find_experiment(RunStore(viewer=ada), "bob-1") is None
    with pytest.raises(RunError, match="no experiment 'bob-1'"):
        lessons.delete_experiment(RunStore(), "bob-1", actor=ada)
    show_classmates(True)
    with pytest.raises(Forbidden, match="students may delete experiments of their own only"):
        lessons.delete_experiment(RunStore(), "bob-1", actor=ada)
    assert len(lessons.delete_experiment(RunStore(), "ada-1", actor=ada)) == 2
    assert len(lessons.delete_experiment(RunStore(), "bob-1", actor=TEACHER)) == 1
    assert RunStore().runs() == []


# --- data sets ------------------------------------------------------------------------------------


def test_data_sets_record_their_owner_who_alone_changes_them_with_the_teacher(class_of_two):
    ada, bob = (joined.actor for joined in class_of_two)
    store = DatasetStore()
    pets = store.import_zip(io.BytesIO(make_zip(class_photos())), "pets", actor=ada).dataset
    shared = store.import_zip(io.BytesIO(make_zip(class_photos())), "shared", actor=TEACHER).dataset
    assert pets.owner == ada and shared.owner == TEACHER
    assert pets.id and pets.owner == ada, "the id is recorded beside the owner, not over it"
    assert DatasetStore(viewer=ada).names() == ["pets", "shared"]
    assert DatasetStore(viewer=bob).names() == ["shared"]
    with pytest.raises(DatasetError, match="no data set 'pets'"):
        DatasetStore(viewer=bob).get("pets")
    with pytest.raises(DatasetError, match="no data set 'pets'"):
        store.rename("pets", "mine", actor=bob)
    with pytest.raises(DataError, match="no data set 'pets'"):
        scan(pets.root, actor=bob)
    for change in (
        lambda: pets.remove("cats/cats-0.jpg", actor=bob),
        lambda: pets.move("cats/cats-0.jpg", "dogs", actor=bob),
        lambda: pets.restore(actor=bob),
        lambda: shared.remove("cats/cats-0.jpg", actor=ada),
    ):
        with pytest.raises(Forbidden, match="Not yours"):
            change()
    show_classmates(True)
    with pytest.raises(Forbidden, match="students may delete data sets of their own only"):
        store.delete("pets", actor=bob)
    removed = pets.remove("cats/cats-0.jpg", actor=ada)
    with pytest.raises(Forbidden, match="students may undo changes to data sets of their own only"):
        pets.undo(removed.id, actor=bob)
    pets.undo(removed.id, actor=ada)
    pets.remove("cats/cats-1.jpg", actor=TEACHER)
    renamed = store.rename("pets", "adas", actor=ada)
    assert renamed.owner == ada
    store.delete("adas", actor=TEACHER)
    assert store.names() == ["shared"]


# --- joining and signing in -------------------------------------------------------------------------


def test_a_student_joins_once_and_signs_in_again_with_their_code(class_of_two):
    ada, _ = class_of_two
    assert re.fullmatch(rf"[{config.STUDENT_CODE_ALPHABET}]{{{config.STUDENT_CODE_LENGTH}}}", ada.code)
    assert roster.sign_in("ada", roster.shown_code(ada.code).lower(), "another device") == ada.actor
    assert roster.sign_in_key(ada.key, "a reload") == ada.actor
    assert roster.students() == [ada.actor, class_of_two[1].actor]
    stored = roster.roster_path().read_text()
    assert ada.code not in stored and ada.key not in stored, "only a salted hash of the code is kept"
    assert len({record["salt"] for record in json.loads(stored)}) == 2


def test_a_taken_name_without_its_code_is_refused(class_of_two):
    ada, bob = class_of_two
    with pytest.raises(roster.RosterError, match="Name taken: if ADA is you, sign in with your code"):
        roster.join("  ADA ", "an impostor")
    with pytest.raises(roster.RosterError, match="^Wrong name or code.$"):
        roster.sign_in("Ada", bob.code, "an impostor")
    with pytest.raises(roster.RosterError, match="^Wrong name or code.$"):
        roster.sign_in_key(f"{bob.key.split('-')[0]}-{ada.code}", "an impostor")
    assert roster.sign_in("Ada", ada.code, "an impostor") == ada.actor, "wrong tries never keep the right code out"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("   ", "type your name"),
        ("x" * 41, "at most 40 characters"),
        ("Ada\u0007", "letters, digits, spaces and punctuation only"),
        ("The Teacher", "is the teacher's"),
    ],
)
def test_names_are_checked_in_one_line(name, why):
    with pytest.raises(roster.RosterError, match=why) as raised:
        roster.join(name, "tab")
    assert "\n" not in str(raised.value)


def test_guessing_codes_is_throttled_and_logged(class_of_two, caplog):
    for _ in range(config.UNLOCK_FREE_TRIES):
        with pytest.raises(roster.RosterError, match="^Wrong name or code.$"):
            roster.sign_in("Ada", "AAAAAAAA", "a guesser")
    with pytest.raises(roster.RosterError, match=r"too many of them: wait \d+ s"):
        roster.sign_in("Ada", "AAAAAAAA", "a guesser")
    with pytest.raises(roster.RosterError, match=r"Name taken.*too many of them: wait \d+ s"):
        roster.join("Bob", "a guesser")
    assert "wrong student code from session a guesser while throttled" in caplog.text


def test_the_teacher_removes_a_student_and_the_name_is_free_again(class_of_two):
    """A name someone took as a joke, or made-up ones, come off the roster by the teacher's hand only."""
    ada, bob = class_of_two
    for not_the_teacher in (bob.actor, VISITOR):
        with pytest.raises(Forbidden):
            roster.remove([ada.actor.id], actor=not_the_teacher)
    assert roster.remove([ada.actor.id], actor=TEACHER) == 1
    assert roster.students() == [bob.actor]
    with pytest.raises(roster.RosterError, match="^Wrong name or code.$"):
        roster.sign_in("Ada", ada.code, "a reload")
    assert roster.join("Ada", "the real Ada").actor != ada.actor


def test_a_script_cannot_fill_the_roster_faster_than_a_class_joins(monkeypatch):
    """Thirty at the bell fit in a minute; a loop of made-up names is held to the same pace, so the
    class is never full before the teacher sees it."""
    monkeypatch.setattr(config, "JOINS_PER_MINUTE", 3)
    for name in ("A1", "A2", "A3"):
        roster.join(name, "a script")
    with pytest.raises(roster.RosterError, match="many students are joining right now: try again in a minute"):
        roster.join("A4", "a script")
    assert len(roster.students()) == 3


# --- the command line --------------------------------------------------------------------------------


def test_the_command_line_acts_as_a_student_or_the_teacher(class_of_two, monkeypatch):
    ada, bob = class_of_two
    mine, theirs = queued(ada.actor), queued(bob.actor)
    monkeypatch.setenv(config.STUDENT_CODE_VAR, ada.code)
    refused = catdog("cancel", theirs.id, "--as", "Ada")
    assert (refused.returncode, refused.stderr.strip()) == (1, f"error: no run {theirs.id!r} in {RunStore().root}")
    assert catdog("cancel", mine.id, "--as", "Ada").returncode == 0
    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", PASSWORD)
    assert catdog("cancel", theirs.id, "--as", "teacher").returncode == 0
    # Listed once nothing is queued: listing starts a queue process for queued runs.
    listed = catdog("runs", "--json", "--as", "Ada")
    assert [row["id"] for row in json.loads(listed.stdout)] == [mine.id], listed.stderr
    assert len(json.loads(catdog("runs", "--json", "--as", "teacher").stdout)) == 2
    monkeypatch.setenv(config.STUDENT_CODE_VAR, bob.code)
    assert catdog("runs", "--as", "Ada").stderr.strip() == "error: Wrong name or code."
    assert catdog("delete", theirs.id, "--as", "teacher").returncode == 0
    assert [run.id for run in RunStore().runs()] == [mine.id]


# --- the live camera's files ---------------------------------------------------------------------------


def test_a_run_s_live_model_is_served_from_a_folder_no_one_can_guess(copied_runs):
    from catdog.inference import web

    run = RunStore().runs()[0]
    stem = f"{run.id}-"
    shown = web.live_model(run)
    assert re.fullmatch(rf"models/{re.escape(stem)}\d+-\w+-[0-9a-f]{{32}}/", shown), shown
    assert web.live_model(run) == shown, "written once per saved model"
    assert [path.name for path in (web.live_folder() / "models").glob(f"{stem}*")] == [shown.split("/")[1]]
