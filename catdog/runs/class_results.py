"""The class's results together: every student's experiment runs as points of one chart.

Each finished run of an experiment that learned (catdog.runs.collapse: a run that did not learn is
no evidence) is one row: whose it is, the setting its experiment varied and the value it had, and
what that gave: the gap between training and validation accuracy at its last epoch, and its best
validation accuracy. Thirty students trying augmentations of their own, side by side, show the
pattern that no single run shows. The Class page charts the rows and downloads them as CSV
(catdog.inference.batches.write_rows). No TensorFlow here.
"""

from catdog.messages import N_
from catdog.runs.lessons import ARCHITECTURE, experiments, gaps
from catdog.runs.record import Run
from catdog.runs.store import RunStore

COLUMNS = ("student", "setting", "varied", "best_val_accuracy", "final_gap", "seed", "epochs", "experiment", "run")
# Each column's header where a page shows the rows (the CSV keeps COLUMNS, for programs).
HEADERS = {
    "student": N_("student"),
    "setting": N_("setting"),
    "varied": N_("varied"),
    "best_val_accuracy": N_("best validation accuracy"),
    "final_gap": N_("final gap"),
    "seed": N_("seed"),
    "epochs": N_("epochs"),
    "experiment": N_("experiment"),
    "run": N_("run"),
}


def setting(run: Run) -> str:
    """The value of the setting its experiment varied, in words: the augmentation or the architecture."""
    if run.config.varied == ARCHITECTURE:
        return run.config.arch
    return run.config.augmentation.describe()


def result_row(run: Run) -> dict | None:
    """One learned, finished run as a row of COLUMNS; None for any other run."""
    summary = run.summary()
    measured = gaps(run)
    if summary["status"] != "finished" or summary["collapsed"] or not measured:
        return None
    return {
        "student": run.owner.name,
        "setting": setting(run),
        "varied": run.config.varied,
        "best_val_accuracy": summary["best_val_accuracy"],
        "final_gap": round(measured[-1], 4),
        "seed": run.config.seed,
        "epochs": summary["epochs"],
        "experiment": run.config.experiment,
        "run": run.id,
    }


def class_results(store: RunStore, varied: str | None = None) -> list[dict]:
    """Every experiment's learned, finished runs, oldest experiment first; only those that vary
    `varied` when given."""
    rows = []
    for experiment in experiments(store):
        if varied is not None and experiment.varied != varied:
            continue
        rows.extend(row for run in experiment.runs if (row := result_row(run)) is not None)
    return rows
