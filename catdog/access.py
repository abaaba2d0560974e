"""The teacher's password: a constant-time check, and throttles that slow down guessing.

A wrong password costs nothing the first few times; after that each try of the same browser
session waits twice as long as the last. A server-wide throttle does the same over all
sessions, so that a student who opens new tabs gets no new tries, while one student's failures
never lock the teacher's own session for long.
"""

import hmac
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from catdog import config


def password_matches(attempt: str, password: str) -> bool:
    """Compared in constant time, so response times do not leak how much of a guess was right."""
    return hmac.compare_digest(attempt.encode(), password.encode())


class Throttle:
    """Failures per key; after `free` of them each try must wait twice as long as the last."""

    def __init__(
        self, free: int, first_wait_s: float, longest_wait_s: float,
        forget_after_s: float = config.UNLOCK_FORGET_S, clock: Callable[[], float] = time.monotonic,
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
        self.sessions = Throttle(config.UNLOCK_FREE_TRIES, config.UNLOCK_FIRST_WAIT_S,
                                 config.UNLOCK_LONGEST_WAIT_S, clock=clock)
        self.server = Throttle(config.SERVER_FREE_TRIES, config.UNLOCK_FIRST_WAIT_S,
                               config.SERVER_LONGEST_WAIT_S, clock=clock)

    def unlock(self, attempt: str, password: str, session: str) -> Verdict:
        """Whether `attempt` unlocks `session`; a throttled try is refused before it is compared."""
        if wait := self.sessions.wait_s(session):
            return Verdict(False, f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
        if wait := self.server.wait_s(SERVER):
            return Verdict(False, f"Too many wrong passwords on this server: try again in {math.ceil(wait)} s.")
        if password_matches(attempt, password):
            self.sessions.forget(session)
            self.server.forget(SERVER)
            return Verdict(True)
        self.sessions.failed(session)
        self.server.failed(SERVER)
        return Verdict(False, "Wrong password.")


# One per server process: the server-wide throttle must see every session's tries.
GATE = Gate()
