"""What training reports as it goes: a phase's epochs and progress into the run's record, and its cancel.

Both the Keras loop and the fast path's NumPy head report through EpochReporter. No TensorFlow.
"""

import time

from catdog.runs.collapse import collapse_reason
from catdog.runs.record import Run
from catdog.runs.states import RunCancelled

# Batch progress is written at most this often: a file replace per batch would slow small models.
PROGRESS_INTERVAL_S = 1.0


class EpochReporter:
    """Records a phase's epochs and progress, keeps the best validation accuracy, stops on cancel,
    and says in the run's status as soon as it has stopped learning (catdog.runs.collapse)."""

    def __init__(self, run: Run, phase: str, best: float = -1.0):
        self.run, self.phase, self.best = run, phase, best
        self.epoch_offset, self.epochs_done = len(run.history()), 0
        self.num_classes = len(run.data().get("classes") or ())
        self._last_write = 0.0

    def check_cancel(self) -> None:
        if self.run.cancel_requested:
            raise RunCancelled()

    def batch(self, batches: int, done: int, seconds: float) -> None:
        self.check_cancel()
        now = time.time()
        if now - self._last_write >= PROGRESS_INTERVAL_S or done == batches:
            self._last_write = now
            self.run.record_progress(self.phase, self.epoch_offset + self.epochs_done + 1, done, batches, seconds)

    def epoch(self, seconds: float, metrics: dict) -> bool:
        """Records the epoch; whether its validation accuracy is the best so far."""
        self.epochs_done += 1
        metrics = {key: None if value is None else round(float(value), 5) for key, value in metrics.items()}
        self.run.record_epoch(self.epoch_offset + self.epochs_done, self.phase, seconds, metrics)
        collapsed = collapse_reason(self.run.history(), self.num_classes)
        if collapsed != self.run.recorded_status().get("collapsed"):
            self.run.mark(self.run.recorded_status().get("state", "running"), collapsed=collapsed)
        if metrics["val_accuracy"] is not None and metrics["val_accuracy"] > self.best:
            self.best = metrics["val_accuracy"]
            return True
        return False
