"""Lessons as experiments: runs that differ in one setting only, and what their numbers say.

"Does augmentation help?" trains one architecture twice, with the same seed, data and epochs,
without augmentation and with it. "Compare the four architectures" trains model1 to model4 alike.
An experiment is listed, shown and deleted as a unit; its runs record its id and the setting it
varies in config.json. No TensorFlow here: the runs train in their own processes.
"""

import secrets
import time
from dataclasses import dataclass

from catdog.access import Action, Actor, authorize
from catdog.runs import ACTIVE, Run, RunError, RunStore
from catdog.settings import PRESETS, AugmentConfig, RunConfig

# The posts' CNN with its augmentation block; without augmentation the block passes photos through.
LESSON_ARCH = "model2"
LESSON_EPOCHS = 15
LESSON_IMAGE_SIZE = 160
# Measured on cats_and_dogs_filtered with 2 CPU cores: a gap of 26 points without augmentation against
# none with it, and 3 points more validation accuracy. Three epochs were too few to show it.
QUICK = {"epochs": 10, "image_size": 96}
# The reference posts' four models, in their order: from a plain CNN to transfer learning.
COMPARED_ARCHS = ("model1", "model2", "model3", "model4")
# The same quick settings: within a class period, and model4 already 17 points ahead of model3.
ARCHITECTURES_QUICK = QUICK
# Wall time of each lesson on cats_and_dogs_filtered, on 2 CPU cores shared with other work
# (benchmarks/lesson.json, README). Alone on the cores, the quick augmentation lesson took 100 s.
MEASURED_SECONDS = {"augmentation quick": 244, "augmentation full": 1369, "architectures quick": 760}
# What an experiment varies (config.json's "varied"), and what the command line calls its lesson.
AUGMENTATION, ARCHITECTURE = "augmentation", "architecture"
TOPICS = {"augmentation": AUGMENTATION, "architectures": ARCHITECTURE}
QUICK_SETTINGS = {AUGMENTATION: QUICK, ARCHITECTURE: ARCHITECTURES_QUICK}
WITHOUT, WITH = "without augmentation", "with augmentation"


def _new_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def augmentation_experiment(
    augmentation: AugmentConfig, epochs: int = LESSON_EPOCHS, image_size: int = LESSON_IMAGE_SIZE, seed: int = 0,
    data_dir: str | None = None,
) -> list[RunConfig]:
    """Two runs, without and with the augmentation, alike in every other setting."""
    experiment = _new_id()
    return [
        RunConfig(LESSON_ARCH, epochs=epochs, image_size=image_size, seed=seed, data_dir=data_dir,
                  augmentation=choice, experiment=experiment, varied=AUGMENTATION)
        for choice in (PRESETS["none"], augmentation)
    ]


def architecture_experiment(
    augmentation: AugmentConfig = PRESETS["posts"], epochs: int = LESSON_EPOCHS,
    image_size: int = LESSON_IMAGE_SIZE, seed: int = 0, data_dir: str | None = None,
) -> list[RunConfig]:
    """model1 to model4 with the same seed, data, epochs and augmentation (model1 has no augmentation
    layers). model4 trains end to end, not on cached features, so that all four see the same photos."""
    experiment = _new_id()
    return [
        RunConfig(arch, epochs=epochs, image_size=image_size, seed=seed, data_dir=data_dir,
                  augmentation=augmentation, experiment=experiment, varied=ARCHITECTURE)
        for arch in COMPARED_ARCHS
    ]


def submit_experiment(store: RunStore, run_configs: list[RunConfig], *, actor: Actor) -> list[Run]:
    """Queues the runs together, in order: they train one after the other, or side by side on a cluster."""
    authorize(actor, Action.START_EXPERIMENT)
    return [store.submit(run_config.to_dict(), actor=actor) for run_config in run_configs]


# --- experiments as a unit -------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """The runs that share an experiment id, in the order they were queued."""

    id: str
    runs: tuple[Run, ...]

    @property
    def varied(self) -> str:
        return self.runs[0].config.get("varied") or AUGMENTATION

    @property
    def state(self) -> str:
        """Running while any run trains; else queued, failed or cancelled if any run is; else finished."""
        states = {run.state for run in self.runs}
        return next((state for state in ("running", "queued", "failed", "cancelled") if state in states), "finished")

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    def conclusion(self) -> str | None:
        """What the numbers say once every run has finished; None before."""
        return conclusion(list(self.runs)) if self.finished else None

    def summary(self) -> dict:
        """The experiment as `catdog experiments --json` and the Train page list it."""
        first = self.runs[0].config
        return {
            "experiment": self.id,
            "varied": self.varied,
            "status": self.state,
            "epochs": first.get("epochs"),
            "image_size": first.get("image_size"),
            "created": first.get("created"),
            "runs": [run_result(run) for run in self.runs],
            "conclusion": self.conclusion(),
        }


def experiments(store: RunStore) -> list[Experiment]:
    """Every experiment in the runs folder, oldest first."""
    grouped: dict[str, list[Run]] = {}
    for run in store.runs():
        if experiment := run.config.get("experiment"):
            grouped.setdefault(experiment, []).append(run)
    return [Experiment(experiment, tuple(runs)) for experiment, runs in grouped.items()]


def find_experiment(store: RunStore, experiment: str | None = None, varied: str | None = None) -> Experiment | None:
    """The experiment with this id, else the newest one that varies `varied` (any when None)."""
    def wanted(candidate: Experiment) -> bool:
        if experiment:
            return candidate.id == experiment
        return varied is None or candidate.varied == varied

    return next((candidate for candidate in reversed(experiments(store)) if wanted(candidate)), None)


def delete_experiment(store: RunStore, experiment: str, *, actor: Actor) -> list[str]:
    """Deletes every run of an experiment, or none while any is queued or running; returns their ids."""
    authorize(actor, Action.DELETE_EXPERIMENT)
    found = find_experiment(store, experiment)
    if found is None:
        raise RunError(f"no experiment {experiment!r} in {store.root}")
    if busy := [run.id for run in found.runs if run.state in ACTIVE]:
        raise RunError(f"experiment {experiment} has runs queued or running ({', '.join(busy)}): cancel them first")
    for run in found.runs:
        store.delete(run.id, actor=actor)
    return [run.id for run in found.runs]


# --- what the numbers say --------------------------------------------------------------------


def run_label(run: Run) -> str:
    """The value of the varied setting, as the chart's legend and the sentences name the run."""
    if run.config.get("varied") == ARCHITECTURE:
        return run.config["arch"]
    return WITHOUT if AugmentConfig.from_dict(run.config["augmentation"]).is_identity else WITH


def gaps(run: Run) -> list[float]:
    """Training minus validation accuracy per epoch: how much better the model knows the photos it learned from."""
    return [h["accuracy"] - h["val_accuracy"] for h in run.history()
            if h.get("accuracy") is not None and h.get("val_accuracy") is not None]


def run_result(run: Run) -> dict:
    """One run of an experiment: its id, best validation accuracy and gap at the last epoch."""
    summary, measured = run.summary(), gaps(run)
    return {
        "run": run.id,
        "label": run_label(run),
        "status": summary["status"],
        "epochs": summary["epochs"],
        "best_val_accuracy": summary["best_val_accuracy"],
        "final_gap": measured[-1] if measured else None,
        "seconds": summary["seconds"],
        **({"error": summary["error"]} if summary["error"] else {}),
    }


def _points(record: dict) -> tuple[int, int]:
    """Training and validation accuracy in whole percent, as the sentences show them."""
    return round(record["accuracy"] * 100), round(record["val_accuracy"] * 100)


def conclusion(runs: list[Run]) -> str:
    """A few sentences with the measured numbers, for the end of the lesson."""
    if any(not run.history() for run in runs):
        return "The runs have no finished epoch yet."
    if runs[0].config.get("varied") == ARCHITECTURE:
        return _architectures_conclusion(runs)
    return _augmentation_conclusion(*runs)


def _augmentation_conclusion(without: Run, with_augmentation: Run) -> str:
    plain, augmented = without.history(), with_augmentation.history()
    (train_a, val_a), (train_b, val_b) = _points(plain[-1]), _points(augmented[-1])
    # Differences of the numbers as shown, so that the sentences add up.
    gap_a, gap_b, change = train_a - val_a, train_b - val_b, val_b - val_a
    sentences = [
        (f"After {plain[-1]['epoch']} epochs without augmentation, training accuracy is {train_a}% and validation "
         f"accuracy {val_a}%: a gap of {gap_a} points."),
        f"With augmentation: {train_b}% and {val_b}%, a gap of {gap_b} points.",
    ]
    if gap_b < gap_a:
        sentences.append(f"Augmentation narrowed the gap by {gap_a - gap_b} points: the model memorised its "
                         "training photos less.")
    else:
        sentences.append("Augmentation did not narrow the gap here; a few epochs may be too few for it to show.")
    if change:
        sentences.append(f"Validation accuracy, the one that counts for new photos, {'rose' if change > 0 else 'fell'} "
                         f"by {abs(change)} points.")
    else:
        sentences.append("Validation accuracy stayed the same.")
    return " ".join(sentences)


def _architectures_conclusion(runs: list[Run]) -> str:
    best = {run_label(run): round(run.summary()["best_val_accuracy"] * 100) for run in runs}
    last = {run_label(run): _points(run.history()[-1]) for run in runs}
    gap = {name: train - val for name, (train, val) in last.items()}
    top, bottom = max(best, key=best.get), min(best, key=best.get)
    widest = max(gap, key=gap.get)
    sentences = [
        (f"After {runs[0].history()[-1]['epoch']} epochs, the best validation accuracy of each: "
         f"{', '.join(f'{name} {value}%' for name, value in best.items())}."),
        f"{top} did best, {best[top] - best[bottom]} points above {bottom}.",
    ]
    if top.startswith("model4"):
        sentences.append("It starts from what MobileNetV2 learned on 1.4 million ImageNet photos; the others learn "
                         "from these photos alone.")
    sentences.append(
        f"Training minus validation accuracy at the last epoch, in points: {', '.join(f'{n} {g}' for n, g in gap.items())}; "
        f"{widest} memorised its training photos the most."
    )
    return " ".join(sentences)
