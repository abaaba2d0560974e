"""Who may change what: the one place every action of the library asks, and the teacher's password.

Every action that changes state (starting, cancelling and deleting runs and experiments; making,
fixing, renaming and deleting data sets; reading a typed folder anywhere; downloading the data
set) takes the `Actor` asking and calls `authorize`, which refuses in one line what they may not
do. The pages pass the browser session's actor and only mirror the answer in their widgets, so a
forged click reaches the same check; the CLI acts as the owner of the files it is given.

The teacher's password: a correct one always unlocks. Wrong guesses are counted per browser
session and over the whole server; past a few of them each further wrong guess is answered with
how long to wait, and the server log says someone is guessing. Refusing a try before comparing
it would let one student keep the teacher out with a wrong guess a minute from fresh tabs; no
throttle can slow guessing from many tabs without doing that, so the password itself must be
long (README).
"""

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
    STUDENT = "student"  # any other browser session of a server with a password


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


@dataclass(frozen=True)
class Actor:
    """Who is asking: an id that stays for the session, a name to show, and a role."""

    id: str
    name: str
    role: Role


OWNER = Actor("owner", "the owner", Role.OWNER)

# What each role may do. Per-student workspaces (issue #22) add the student's own things here,
# judged by the owner a run or data set records.
ALLOWED: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    # A served machine's other folders stay closed to its sessions, the teacher's too.
    Role.TEACHER: frozenset(Action) - {Action.READ_ANY_FOLDER},
    Role.STUDENT: frozenset(),
}


class Forbidden(ValueError):
    """An action the actor may not take; the message is one line, shown as it is."""


def allowed(actor: Actor, action: Action) -> bool:
    """Whether `actor` may take `action`: what a page mirrors in its widgets."""
    return action in ALLOWED[actor.role]


def authorize(actor: Actor, action: Action) -> None:
    """Raises Forbidden unless `actor` may take `action`: every action of the library calls it first."""
    if not allowed(actor, action):
        raise Forbidden(
            Message(
                "Locked by the teacher: only the teacher may {action} (unlock with the teacher password).",
                action=Message(action.value),
            )
        )


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
        if password_matches(attempt, password):
            self.sessions.forget(session)
            return Verdict(True)
        wait = max(self.sessions.wait_s(session), self.server.wait_s(SERVER))
        self.sessions.failed(session)
        self.server.failed(SERVER)
        if wait:
            log.warning("wrong teacher password from session %s while throttled", session)
            return Verdict(
                False,
                Message(
                    "Wrong password, and too many of them: wait {seconds} s before trying again.",
                    seconds=math.ceil(wait),
                ),
            )
        return Verdict(False, Message(N_("Wrong password.")))


# One per server process: the server-wide throttle must see every session's tries.
GATE = Gate()
