"""Who is in the class: students join by name, keep a code, and sign in with it again.

A student joins with a display name and is given a code to keep (and a link holding it): the code
signs them in again after a reload or on another device, as the same `Actor`, so their runs and
data sets are theirs again. A name is taken once (compared case-folded): another person typing it
without its code is refused. The roster is one JSON file in the class folder (`config.class_dir()`)
holding each student's id, name and only a salted scrypt hash of their code; a code is shown once,
at joining. Wrong codes go through a `access.Gate` of their own, as the teacher's password does:
counted per session and server, logged, and answered with a wait once there are many. The teacher
is whoever holds the teacher's password (`access.TEACHER`).
"""

import functools
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import filelock

from catdog import access, config
from catdog.access import Actor, Role
from catdog.messages import N_, Message
from catdog.storage import read_json, write_json_atomic

ROSTER_FILE = "roster.json"
STUDENT_PREFIX = "student-"
# scrypt's cost: about 50-90 ms a hash on a busy 2-core server, 16 MiB each.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
# A link's key: the student's id without its prefix, then their code.
_KEY = re.compile(r"^([0-9a-f]{8})-([A-Za-z0-9]{1,32})$")
# Names only the class's own people have.
_RESERVED = {"teacher", "the teacher", "owner", "the owner"}
WRONG = Message(N_("Wrong name or code"))

# One per server process, apart from the teacher's: students' typos never delay the teacher.
GATE = access.Gate()


class RosterError(ValueError):
    """A name or code refused; the message is one line for the user."""


@dataclass(frozen=True)
class Joined:
    """A student who just joined, and their code and link key: shown once, never stored."""

    actor: Actor
    code: str

    @property
    def key(self) -> str:
        """What a sign-in link carries (`?key=…`): who, and their code."""
        return f"{self.actor.id.removeprefix(STUDENT_PREFIX)}-{self.code}"


def roster_path() -> Path:
    return config.class_dir() / ROSTER_FILE


def check_name(name: str) -> str:
    """A display name, its spaces tidied, or a one-line refusal."""
    name = " ".join((name or "").split())
    if not name:
        raise RosterError(Message(N_("type your name to join")))
    if len(name) > config.STUDENT_NAME_MAX_CHARS:
        raise RosterError(
            Message(
                "a name can be at most {limit} characters; this one has {count}",
                limit=config.STUDENT_NAME_MAX_CHARS,
                count=len(name),
            )
        )
    if not name.isprintable():
        raise RosterError(Message(N_("a name can hold letters, digits, spaces and punctuation only")))
    if name.casefold() in _RESERVED:
        raise RosterError(Message("{name} is the teacher's: choose your own name", name=repr(name)))
    return name


def normal_code(code: str) -> str:
    """A code as typed, without the spaces and dashes it is shown with, in capitals."""
    return re.sub(r"[\s-]", "", code or "").upper()


def shown_code(code: str) -> str:
    """A code in two halves, easier to copy down."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def students() -> list[Actor]:
    """Everyone who joined, in the order they did."""
    return [_actor(record) for record in _records()]


def on_roster(student_id: str) -> bool:
    """Whether a student is still in the class: a session asks on every action, so the roster is
    read again only when its file changed."""
    try:
        info = roster_path().stat()
    except FileNotFoundError:
        return False
    return student_id in _ids(str(roster_path()), info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=4)
def _ids(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    return frozenset(record["id"] for record in _records())


def join(name: str, session: str) -> Joined:
    """A new student named `name`, with a fresh code; refused if the name is taken, in one line.

    A taken name counts as a wrong try of `session`'s: probing names is throttled like codes."""
    name = check_name(name)
    code = "".join(secrets.choice(config.STUDENT_CODE_ALPHABET) for _ in range(config.STUDENT_CODE_LENGTH))
    salt = secrets.token_bytes(16)
    digest = _hash(code, salt)
    with _lock():
        records = _records()
        if any(record["name"].casefold() == name.casefold() for record in records):
            taken = Message("Name taken: if {name} is you, sign in with your code; else choose another name", name=name)
            raise RosterError(GATE.judge(False, session, taken, "student name").message)
        if len(records) >= config.MAX_STUDENTS:
            raise RosterError(
                Message("the class is full ({count} students): ask the teacher", count=config.MAX_STUDENTS)
            )
        if _joined_lately(records) >= config.JOINS_PER_MINUTE:
            raise RosterError(Message(N_("many students are joining right now: try again in a minute")))
        record = {
            "id": f"{STUDENT_PREFIX}{secrets.token_hex(4)}",
            "name": name,
            "salt": salt.hex(),
            "hash": digest.hex(),
            "joined": time.time(),
        }
        write_json_atomic(roster_path(), [*records, record])
    return Joined(_actor(record), code)


def remove(student_ids: list[str], *, actor: Actor) -> int:
    """Takes students off the roster, the teacher's to do: a name someone took as a joke, or a
    class's worth of made-up ones. Their runs and data sets stay; their names are free again and
    their codes sign no one in. Returns how many were removed."""
    access.authorize(actor, access.Action.REMOVE_STUDENT)
    with _lock():
        records = _records()
        kept = [record for record in records if record["id"] not in set(student_ids)]
        write_json_atomic(roster_path(), kept)
    return len(records) - len(kept)


def sign_in(name: str, code: str, session: str) -> Actor:
    """The student named `name` if `code` is theirs; else a one-line refusal, with a wait once
    `session` (or the server) has had many wrong tries."""
    folded = " ".join((name or "").split()).casefold()
    record = next((record for record in _records() if record["name"].casefold() == folded), None)
    return _checked(record, code, session)


def sign_in_key(key: str, session: str) -> Actor:
    """The student a link's key names, if its code is theirs (see `Joined.key`)."""
    found = _KEY.match((key or "").strip())
    student_id = f"{STUDENT_PREFIX}{found[1]}" if found else None
    record = next((record for record in _records() if record["id"] == student_id), None)
    return _checked(record, found[2] if found else "", session)


def cli_actor(name: str | None, code: str | None) -> Actor:
    """Whom the CLI acts as: the owner without `--as`; `--as teacher` with the teacher's
    password in the environment; else the student `name` with their code."""
    if name is None:
        return access.OWNER
    if name.strip().casefold() in _RESERVED:
        if not config.teacher_password():
            raise RosterError("--as teacher needs the teacher's password in CATDOG_TEACHER_PASSWORD")
        return access.TEACHER
    if not code:
        raise RosterError(f"--as {name} needs {name}'s code in {config.STUDENT_CODE_VAR}")
    return sign_in(name, code, session="cli")


def _checked(record: dict | None, code: str, session: str) -> Actor:
    # A missing student costs a hash too, so that timing does not tell which names joined.
    salt = bytes.fromhex(record["salt"]) if record else b"\0" * 16
    right = hmac.compare_digest(_hash(normal_code(code), salt).hex(), record["hash"] if record else "")
    verdict = GATE.judge(right and record is not None, session, WRONG, "student code")
    if not verdict.unlocked:
        raise RosterError(verdict.message)
    return _actor(record)


def _hash(code: str, salt: bytes) -> bytes:
    return hashlib.scrypt(code.encode(), salt=salt, **_SCRYPT)


def _joined_lately(records: list[dict]) -> int:
    """How many joined in the last minute."""
    now = time.time()
    return sum(1 for record in records if isinstance(joined := record.get("joined"), float) and now - joined < 60)


def _actor(record: dict) -> Actor:
    return Actor(record["id"], record["name"], Role.STUDENT)


def _records() -> list[dict]:
    """The roster's students; a damaged file reads as no one, never as someone else."""
    recorded = read_json(roster_path(), [])
    keys = {"id", "name", "salt", "hash"}
    if not isinstance(recorded, list):
        return []
    return [record for record in recorded if isinstance(record, dict) and keys <= record.keys()]


def _lock() -> filelock.BaseFileLock:
    roster_path().parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(roster_path().with_suffix(".lock"))
