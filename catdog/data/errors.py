"""What every step of reading a data folder shares: the one-line error a user sees, and the
progress callback a long step reports through (done, total)."""

from collections.abc import Callable

Progress = Callable[[int, int], None]


class DataError(ValueError):
    """A data folder that cannot be used; the message is one line for the user."""
