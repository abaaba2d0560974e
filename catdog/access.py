"""Who may change what: the one place every action of the library asks, and the teacher's password.

Every action that changes state (starting, cancelling and deleting runs and experiments; making,
fixing, renaming and deleting data sets; reading a typed folder anywhere; downloading the data
set) takes the `Actor` asking and calls `authorize`, which refuses in one line what they may not
do; an action on an existing thing also names its owner, and a student acts on their own things
alone. What each actor sees is `can_see`. The pages pass the browser session's actor and only
mirror the answer in their widgets, so a forged click reaches the same check; the CLI acts as the
owner of the files it is given, or as whom `--as` names (catdog.roster).

The teacher's password: a correct one always unlocks. Wrong guesses are counted per browser
session and over the whole server; past a few of them each further wrong guess is answered with
how long to wait, and the server log says someone is guessing. Refusing a try before comparing
it would let one student keep the teacher out with a wrong guess a minute from fresh tabs; no
throttle can slow guessing from many tabs without doing that, so the password itself must be
long (README).
"""

import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from catdog import config
from catdog.messages import N_, Message

log = logging.getLogger("catdog.access")


class Role(Enum):
    OWNER = "owner"  # whoever has the files: the CLI, or anyone on a server without a password
    TEACHER = "teacher"  # a browser session unlocked with the teacher's password
    STUDENT = "student"  # a browser session that joined the class by name (catdog.roster)
    VISITOR = "visitor"  # any other browser session of a server with a password: it only watches


class Action(Enum):
    """What can be asked for; the value completes "may not …"."""

    START_RUN = N_("start training")
    CANCEL_RUN = N_("cancel runs")
    DELETE_RUN = N_("delete runs")
    NOTE_RUN = N_("write notes on runs")
    START_EXPERIMENT = N_("start experiments")
    DELETE_EXPERIMENT = N_("delete experiments")
    MAKE_DATASET = N_("make data sets")
    RENAME_DATASET = N_("rename data sets")
    DELETE_DATASET = N_("delete data sets")
    FIX_PHOTO = N_("move or remove photos")
    UNDO = N_("undo changes to data sets")
    RESTORE = N_("restore photos from the trash")
    CHOOSE_FOLDER = N_("choose the data folder")
    READ_ANY_FOLDER = N_("read folders outside the shared ones")
    DOWNLOAD = N_("download the data set")
    SET_CLASS = N_("change the class settings")
    OPEN_PROJECT = N_("open project files")
    REMOVE_STUDENT = N_("remove students from the class")


@dataclass(frozen=True)
class Actor:
    """Who is asking: an id that stays for the session, a name to show, and a role."""

    id: str
    name: str
    role: Role


OWNER = Actor("owner", N_("the owner"), Role.OWNER)
# One teacher per class, however many sessions unlock: their runs and data sets are one owner's.
TEACHER = Actor("teacher", N_("the teacher"), Role.TEACHER)

# Actions on an existing thing: `authorize` must be told its owner, and a student may take them
# on their own things alone.
ON_OWNED: frozenset[Action] = frozenset(
    {
        Action.CANCEL_RUN,
        Action.DELETE_RUN,
        Action.NOTE_RUN,
        Action.DELETE_EXPERIMENT,
        Action.RENAME_DATASET,
        Action.DELETE_DATASET,
        Action.FIX_PHOTO,
        Action.UNDO,
        Action.RESTORE,
    }
)

# What each role may do; for a student, ON_OWNED actions only on their own things.
ALLOWED: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    # A served machine's other folders stay closed to its sessions, the teacher's too.
    Role.TEACHER: frozenset(Action) - {Action.READ_ANY_FOLDER},
    # Choosing a folder stays confined to the shared ones and the data sets the student may see.
    Role.STUDENT: ON_OWNED
    | {Action.START_RUN, Action.START_EXPERIMENT, Action.MAKE_DATASET, Action.CHOOSE_FOLDER, Action.OPEN_PROJECT},
    Role.VISITOR: frozenset(),
}
# Whose things are the class's: every session sees them.
SHARED_ROLES = frozenset({Role.OWNER, Role.TEACHER})


def controls(actor: Actor, owner: Actor) -> bool:
    """Whether `actor` may take what `owner` has as their own (a project file of it): their own
    things; the teacher's and the owner's reach is everyone's."""
    return actor.role in (Role.OWNER, Role.TEACHER) or actor.id == owner.id


class Forbidden(ValueError):
    """An action the actor may not take; the message is one line, shown as it is."""


def file_key(actor: Actor) -> str:
    """A name for a file kept per person, such as a lock: an id may hold any character."""
    return hashlib.sha256(actor.id.encode()).hexdigest()[:16]


def is_same(actor: Actor, other: Actor) -> bool:
    """The same person: names may be spelled anew, ids and roles stay."""
    return (actor.id, actor.role) == (other.id, other.role)


def allowed(actor: Actor, action: Action, owner: Actor | None = None) -> bool:
    """Whether `actor` may take `action` (on a thing of `owner`'s, if named): what a page mirrors
    in its widgets. Without an owner, whether they may take it on anything."""
    if action not in ALLOWED[actor.role]:
        return False
    return actor.role is not Role.STUDENT or owner is None or action not in ON_OWNED or is_same(actor, owner)


def authorize(actor: Actor, action: Action, owner: Actor | None = None) -> None:
    """Raises Forbidden unless `actor` may take `action`: every action of the library calls it
    first, naming the owner of the thing acted on for the ON_OWNED actions."""
    if action in ON_OWNED and owner is None:
        raise TypeError(f"authorize({action.name}) needs the owner of the thing acted on")
    if allowed(actor, action, owner):
        return
    if actor.role is Role.VISITOR:
        raise Forbidden(
            Message(
                "Join the class first (in the sidebar): visitors may not {action}; "
                "the teacher unlocks with the teacher password.",
                action=Message(action.value),
            )
        )
    if action in ALLOWED[actor.role]:
        raise Forbidden(
            Message(
                "Not yours: this is {owner}'s, and students may {action} of their own only.",
                owner=Message(owner.name) if owner.role in SHARED_ROLES else owner.name,
                action=Message(action.value),
            )
        )
    raise Forbidden(
        Message(
            "Locked by the teacher: only the teacher may {action} (unlock with the teacher password).",
            action=Message(action.value),
        )
    )


def can_see(viewer: Actor, owner: Actor, show_classmates: bool) -> bool:
    """Whether `viewer` sees a thing of `owner`'s: the teacher's and the owner's things are the
    class's, a student's are their own and the teacher's, and their classmates' too where the
    teacher shows them (catdog.classroom's `show_classmates_runs`)."""
    if viewer.role in SHARED_ROLES or owner.role in SHARED_ROLES or is_same(viewer, owner):
        return True
    return show_classmates and viewer.role is Role.STUDENT and owner.role is Role.STUDENT


def actor_record(actor: Actor) -> dict:
    """An actor as a JSON file records it (a run's owner.json, a data set's metadata)."""
    return {"id": actor.id, "name": actor.name, "role": actor.role.value}


def recorded_actor(recorded: object) -> Actor:
    """The actor of `actor_record`; OWNER for a missing or damaged record (things from before
    workspaces): the class's, which no student may change, so damage never hands a thing to one."""
    try:
        return Actor(str(recorded["id"]), str(recorded["name"]), Role(recorded["role"]))
    except (KeyError, TypeError, ValueError):
        return OWNER


def password_matches(attempt: str, password: str) -> bool:
    """Compared in constant time, so response times do not leak how much of a guess was right."""
    return hmac.compare_digest(attempt.encode(), password.encode())


class Throttle:
    """Failures per key; after `free` of them each try must wait twice as long as the last."""

    def __init__(
        self,
        free: int,
        first_wait_s: float,
        longest_wait_s: float,
        forget_after_s: float = config.UNLOCK_FORGET_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free, self.first_wait_s, self.longest_wait_s = free, first_wait_s, longest_wait_s
        self.forget_after_s, self.clock = forget_after_s, clock
        self._failures: dict[str, tuple[int, float]] = {}  # key: (count, time of the last)
        self._lock = threading.Lock()

    def wait_s(self, key: str) -> float:
        """Seconds before `key` may try again; 0 when it may now."""
        with self._lock:
            count, last = self._failures.get(key, (0, 0.0))
        if count < self.free:
            return 0.0
        wait = min(self.first_wait_s * 2 ** (count - self.free), self.longest_wait_s)
        return max(last + wait - self.clock(), 0.0)

    def failed(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            # Closed sessions leave keys behind: drop every key that has been quiet long enough.
            self._failures = {k: v for k, v in self._failures.items() if now - v[1] < self.forget_after_s}
            count, _ = self._failures.get(key, (0, now))
            self._failures[key] = (count + 1, now)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


@dataclass(frozen=True)
class Verdict:
    unlocked: bool
    message: str = ""  # one line for the user when not unlocked


SERVER = "server"


class Gate:
    """Checks unlock attempts of many browser sessions against one password."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.sessions = Throttle(
            config.UNLOCK_FREE_TRIES, config.UNLOCK_FIRST_WAIT_S, config.UNLOCK_LONGEST_WAIT_S, clock=clock
        )
        self.server = Throttle(
            config.SERVER_FREE_TRIES, config.UNLOCK_FIRST_WAIT_S, config.SERVER_LONGEST_WAIT_S, clock=clock
        )

    def unlock(self, attempt: str, password: str, session: str) -> Verdict:
        """Whether `attempt` unlocks `session`. Every try is compared, so the right password
        unlocks whatever others tried; only wrong ones are counted and told to wait."""
        return self.judge(
            password_matches(attempt, password), session, Message(N_("Wrong password")), "teacher password"
        )

    def judge(self, right: bool, session: str, wrong: Message, what: str) -> Verdict:
        """The verdict on a try already compared (a password, a student's code): a right one
        passes; a wrong one is counted, answered `wrong` (one line), with a wait once there are
        many, and the log names `what` was guessed."""
        if right:
            self.sessions.forget(session)
            return Verdict(True)
        wait = max(self.sessions.wait_s(session), self.server.wait_s(SERVER))
        self.sessions.failed(session)
        self.server.failed(SERVER)
        if wait:
            log.warning("wrong %s from session %s while throttled", what, session)
            return Verdict(
                False,
                Message(
                    "{wrong}, and too many of them: wait {seconds} s before trying again.",
                    wrong=wrong,
                    seconds=math.ceil(wait),
                ),
            )
        return Verdict(False, Message("{wrong}.", wrong=wrong))


# One per server process: the server-wide throttle must see every session's tries.
GATE = Gate()
