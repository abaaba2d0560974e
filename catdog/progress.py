"""The progress callback every long task takes: called with (done, total) as the task advances, so
the command line draws a bar and the pages a progress widget from the same calls."""

from collections.abc import Callable

Progress = Callable[[int, int], None]
