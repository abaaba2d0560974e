"""Lessons as experiments: runs that differ in one setting only, and what their numbers say.

"Does augmentation help?" trains one architecture twice, with the same seed, data and epochs,
without augmentation and with it. No TensorFlow here: the runs train in their own processes.
"""

import secrets
import time

from catdog.runs import Run, RunStore
from catdog.settings import PRESETS, AugmentConfig, RunConfig

# The posts' CNN with its augmentation block; without augmentation the block passes photos through.
LESSON_ARCH = "model2"
LESSON_EPOCHS = 15
# Measured on cats_and_dogs_filtered with 2 CPU cores: under two minutes for both runs, and a gap of
# 26 points without augmentation against none with it. Three epochs were too few to show it.
QUICK = {"epochs": 10, "image_size": 96}
AUGMENTATION = "augmentation"
WITHOUT, WITH = "without augmentation", "with augmentation"


def augmentation_experiment(
    augmentation: AugmentConfig, epochs: int = LESSON_EPOCHS, image_size: int = 160, seed: int = 0,
    data_dir: str | None = None,
) -> list[RunConfig]:
    """Two runs, without and with the augmentation, alike in every other setting."""
    experiment = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    return [
        RunConfig(LESSON_ARCH, epochs=epochs, image_size=image_size, seed=seed, data_dir=data_dir,
                  augmentation=choice, experiment=experiment, varied=AUGMENTATION)
        for choice in (PRESETS["none"], augmentation)
    ]


def submit_experiment(store: RunStore, run_configs: list[RunConfig]) -> list[Run]:
    """Queues the runs together, in order: they train one after the other, or side by side on a cluster."""
    return [store.submit(run_config.to_dict()) for run_config in run_configs]


def experiment_runs(store: RunStore, experiment: str | None = None) -> list[Run]:
    """The runs of one experiment, the newest experiment by default, in the order they were queued."""
    runs = [run for run in store.runs() if run.config.get("experiment")]
    experiment = experiment or (runs[-1].config["experiment"] if runs else None)
    return [run for run in runs if run.config.get("experiment") == experiment]


def run_label(run: Run) -> str:
    return WITHOUT if AugmentConfig.from_dict(run.config["augmentation"]).is_identity else WITH


def gaps(run: Run) -> list[float]:
    """Training minus validation accuracy per epoch: how much better the model knows the photos it learned from."""
    return [h["accuracy"] - h["val_accuracy"] for h in run.history()
            if h.get("accuracy") is not None and h.get("val_accuracy") is not None]


def _points(record: dict) -> tuple[int, int]:
    """Training and validation accuracy in whole percent, as the sentences show them."""
    return round(record["accuracy"] * 100), round(record["val_accuracy"] * 100)


def conclusion(without: Run, with_augmentation: Run) -> str:
    """A few sentences with the measured numbers, for the end of the lesson."""
    plain, augmented = without.history(), with_augmentation.history()
    if not plain or not augmented:
        return "The runs have no finished epoch yet."
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
