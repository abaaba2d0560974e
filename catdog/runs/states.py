"""A run's states and the errors a run raises: what the store and its Ray backend both speak."""

STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINAL = ("finished", "failed", "cancelled")


class RunError(ValueError):
    """A run that cannot be found, started or changed; the message is one line for the user."""


class RunCancelled(Exception):
    """Raised inside training when the user cancels, to stop at once with the run marked cancelled."""
