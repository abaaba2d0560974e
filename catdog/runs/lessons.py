"""Lessons as experiments: runs that differ in one setting only, each over several seeds, and what
their numbers say with the seeds' spread.

"Does augmentation help?" trains one architecture without augmentation and with it, with the same
data and epochs, once per seed. "Compare the four architectures" trains model1 to model4 alike.
An experiment is listed, shown and deleted as a unit; its runs record its id and the setting it
varies in config.json. A run that did not learn (catdog.runs.collapse) is never read as evidence. No
TensorFlow here: the runs train in their own processes, or in `catdog lesson --wait`'s.
"""

import secrets
import statistics
import time
from dataclasses import dataclass
from typing import TypedDict, Unpack

from catdog import config
from catdog.access import Action, Actor, authorize
from catdog.messages import N_, Message, Messages
from catdog.runs.record import Run
from catdog.runs.states import ACTIVE, RunError
from catdog.runs.store import RunStore
from catdog.settings import LESSON_SEEDS, PRESETS, AugmentConfig, RunConfig, check_lesson_seeds

# The posts' CNN with its augmentation block; without augmentation the block passes photos through.
LESSON_ARCH = "model2"
LESSON_EPOCHS = 15
LESSON_IMAGE_SIZE = 160
# Measured over 10 seeds on cats_and_dogs_filtered (benchmarks/lesson_settings.py, its README):
# every run learned and the gap was narrower with augmentation for every seed. Adam's 1e-3 on the
# posts' raw 0..255 pixels let runs die; at 3e-4 in batches of 32 the augmented runs were still
# climbing at their last epoch and two of 20 runs peaked under 0.6. Batches of 16 take twice the
# steps for the same photos; few, small photos keep 3 seeds per arm within 90 s on 2 cores.
QUICK = {"epochs": 10, "image_size": 64, "learning_rate": 3e-4, "photos_per_class": 500, "batch_size": 16}
# The reference posts' four models, in their order: from a plain CNN to transfer learning.
COMPARED_ARCHS = ("model1", "model2", "model3", "model4")
# The same quick settings: within a class period, and model4 already 17 points ahead of model3.
ARCHITECTURES_QUICK = {"epochs": 10, "image_size": 96, "learning_rate": 3e-4}
# Seconds of one CPU core each lesson takes with its default seeds on cats_and_dogs_filtered: about
# its wall time on the dashboard, whose queue trains one run at a time on one thread (`catdog lesson
# --wait` trains one per core). Quick lessons: CPU seconds measured by benchmarks/lesson.py (README).
# The full one was measured with one seed per arm only, as wall time on 2 busy cores: three times
# that, until measured again.
MEASURED_SECONDS = {"augmentation quick": 156, "augmentation full": 3 * 1369, "architectures quick": 955}
# What an experiment varies (config.json's "varied"), and what the command line calls its lesson.
AUGMENTATION, ARCHITECTURE = N_("augmentation"), N_("architecture")
TOPICS = {"augmentation": AUGMENTATION, "architectures": ARCHITECTURE}
QUICK_SETTINGS = {AUGMENTATION: QUICK, ARCHITECTURE: ARCHITECTURES_QUICK}
WITHOUT, WITH = N_("without augmentation"), N_("with augmentation")
# Why a run dies, and what to try next: said whenever a lesson's run did not learn.
COLLAPSE_WHY = N_(
    "The posts' model2 sees raw 0-255 pixels, and one big first step of its optimiser can push every "
    "ReLU unit below zero, after which the network gives the same answer for every photo."
)
COLLAPSE_NEXT = N_(
    "Next step: run the lesson again with a smaller learning rate (--learning-rate 0.0001) or other seeds, "
    "or look at model3, which scales its pixels to -1..1 before learning."
)


def _new_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class LessonSettings(TypedDict, total=False):
    """What every run of a lesson shares, besides its seeds (LESSON_DEFAULTS where not given)."""

    epochs: int
    image_size: int
    data_dir: str | None
    learning_rate: float | None
    photos_per_class: int | None
    batch_size: int


LESSON_DEFAULTS = LessonSettings(epochs=LESSON_EPOCHS, image_size=LESSON_IMAGE_SIZE, batch_size=config.BATCH_SIZE)


def augmentation_experiment(
    augmentation: AugmentConfig, seed: int = 0, seeds: int = LESSON_SEEDS, **settings: Unpack[LessonSettings]
) -> list[RunConfig]:
    """Runs without and with the augmentation, alike in every other setting."""
    arms = [(LESSON_ARCH, PRESETS["none"]), (LESSON_ARCH, augmentation)]
    return _experiment(AUGMENTATION, arms, seed, seeds, settings)


def architecture_experiment(
    augmentation: AugmentConfig = PRESETS["posts"],
    seed: int = 0,
    seeds: int = LESSON_SEEDS,
    **settings: Unpack[LessonSettings],
) -> list[RunConfig]:
    """model1 to model4 with the same seeds, data, epochs and augmentation (model1 has no augmentation
    layers). model4 trains end to end, not on cached features, so that all four see the same photos.
    Without a learning rate each takes its architecture's own."""
    arms = [(arch, augmentation) for arch in COMPARED_ARCHS]
    return _experiment(ARCHITECTURE, arms, seed, seeds, settings)


def _experiment(
    varied: str, arms: list[tuple[str, AugmentConfig]], seed: int, seeds: int, settings: LessonSettings
) -> list[RunConfig]:
    """Each arm (architecture, augmentation) for seeds `seed`, `seed + 1`, ...: seed by seed, so that
    a lesson stopped early has every arm of its first seeds."""
    experiment = _new_id()
    return [
        RunConfig(
            arch,
            seed=run_seed,
            augmentation=augmentation,
            experiment=experiment,
            varied=varied,
            **{**LESSON_DEFAULTS, **settings},
        )
        for run_seed in range(seed, seed + check_lesson_seeds(seeds))
        for arch, augmentation in arms
    ]


def submit_experiment(
    store: RunStore, run_configs: list[RunConfig], *, actor: Actor, content: str | None = None
) -> list[Run]:
    """Queues the runs together, in order: they train one after the other, or side by side on a
    cluster. A student's experiment is within the teacher's limits as a whole or not queued at all;
    `content`: the data's Scan.content, so that runs identical to others train once (RunStore.submit)."""
    authorize(actor, Action.START_EXPERIMENT)
    return store.submit_all(run_configs, actor=actor, content=content)


def record_experiment(store: RunStore, run_configs: list[RunConfig], *, actor: Actor) -> list[Run]:
    """Records the runs queued, for a caller that trains them itself (`catdog lesson --wait`)."""
    authorize(actor, Action.START_EXPERIMENT)
    return [store.create(run_config.to_dict(), owner=actor) for run_config in run_configs]


# --- experiments as a unit -------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """The runs that share an experiment id, in the order they were queued."""

    id: str
    runs: tuple[Run, ...]

    @property
    def varied(self) -> str:
        return self.runs[0].config.varied or AUGMENTATION

    @property
    def owner(self) -> Actor:
        """Whoever started it: its runs are queued together, by one actor."""
        return self.runs[0].owner

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
        """The experiment as `catdog experiments --json` and the Train page list it: per arm the mean
        and standard deviation over seeds once every run has finished, per run its results, and
        the runs that did not learn."""
        first = self.runs[0].config
        return {
            "experiment": self.id,
            "varied": self.varied,
            "status": self.state,
            "epochs": first.epochs,
            "image_size": first.image_size,
            "learning_rate": first.learning_rate,
            "photos_per_class": first.photos_per_class,
            "batch_size": first.batch_size,
            "seeds": sorted({run.config.seed for run in self.runs}),
            "created": first.created,
            "arms": {
                label: {name: spread.as_dict() for name, spread in measures.items()}
                for label, measures in arm_spreads(list(self.runs)).items()
            }
            if self.finished
            else None,
            "runs": [run_result(run) for run in self.runs],
            "collapsed": [run.id for run in collapsed_runs(self.runs)],
            "conclusion": self.conclusion(),
        }


def experiments(store: RunStore) -> list[Experiment]:
    """Every experiment in the runs folder, oldest first."""
    grouped: dict[str, list[Run]] = {}
    for run in store.runs():
        if experiment := run.config.experiment:
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
    """Deletes every run of an experiment, or none while any is queued or running or not the
    actor's to delete; returns their ids. One the actor does not see is no experiment to them."""
    found = find_experiment(RunStore(store.root, viewer=actor), experiment)
    if found is None:
        raise RunError(Message("no experiment {name} in {folder}", name=repr(experiment), folder=str(store.root)))
    for run in found.runs:
        authorize(actor, Action.DELETE_EXPERIMENT, owner=run.owner)
    if busy := [run.id for run in found.runs if run.state in ACTIVE]:
        raise RunError(
            Message(
                "experiment {name} has runs queued or running ({runs}): cancel them first",
                name=experiment,
                runs=", ".join(busy),
            )
        )
    for run in found.runs:
        store.delete(run.id, actor=actor)
    return [run.id for run in found.runs]


# --- what the numbers say --------------------------------------------------------------------

# A difference between two arms is clear when the difference of their means exceeds the sum of
# their standard deviations over seeds: their mean ± one-SD ranges do not overlap. For 3 seeds
# each that is a t of at least 1.7 and of 2.4 for equal spreads; anything less, run to run
# variation could make on its own. One seed per arm has no spread, and so no clear difference.
CLEAR_RULE = N_("(A difference is clear when it exceeds the two arms' standard deviations over seeds added together.)")


def run_label(run: Run) -> str:
    """The value of the varied setting, as the chart's legend and the sentences name the run."""
    if run.config.varied == ARCHITECTURE:
        return run.config.arch
    return WITHOUT if run.config.augmentation.is_identity else WITH


def arms(runs: list[Run] | tuple[Run, ...]) -> dict[str, list[Run]]:
    """The runs of each value of the varied setting (one per seed), in the order they were queued."""
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run_label(run), []).append(run)
    return grouped


def gaps(run: Run) -> list[float]:
    """Training minus validation accuracy per epoch: how much better the model knows the photos it learned from."""
    return [
        h["accuracy"] - h["val_accuracy"]
        for h in run.history()
        if h.get("accuracy") is not None and h.get("val_accuracy") is not None
    ]


def run_result(run: Run) -> dict:
    """One run of an experiment: its id, seed, best validation accuracy, gap at the last epoch and
    whether it collapsed."""
    summary, measured = run.summary(), gaps(run)
    return {
        "run": run.id,
        "label": run_label(run),
        "seed": run.config.seed,
        "status": summary["status"],
        "epochs": summary["epochs"],
        "best_val_accuracy": summary["best_val_accuracy"],
        "final_gap": measured[-1] if measured else None,
        "collapsed": summary["collapsed"],
        "seconds": summary["seconds"],
        **({"error": summary["error"]} if summary["error"] else {}),
    }


@dataclass(frozen=True)
class Spread:
    """A measure over seeds: its mean and sample standard deviation (None for one seed)."""

    mean: float
    std: float | None
    seeds: int

    @classmethod
    def of(cls, values: list[float]) -> "Spread":
        return cls(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))

    def points(self) -> str:
        """In whole points (percent), as the sentences show it: "25 ± 2", or "25" for one seed."""
        mean = round(self.mean * 100)
        return f"{mean}" if self.std is None else f"{mean} ± {round(self.std * 100)}"

    def as_dict(self) -> dict:
        return {
            "mean": round(self.mean, 4),
            "std": None if self.std is None else round(self.std, 4),
            "seeds": self.seeds,
        }


def clearly_differ(a: Spread, b: Spread) -> bool:
    """CLEAR_RULE."""
    if a.std is None or b.std is None:
        return False
    return abs(a.mean - b.mean) > a.std + b.std


def arm_spreads(runs: list[Run]) -> dict[str, dict[str, Spread]]:
    """Per arm, the spread of its runs' best validation accuracy and of their last epoch's gap."""
    return {
        label: {
            "best_val_accuracy": Spread.of([run.summary()["best_val_accuracy"] or 0.0 for run in members]),
            "final_gap": Spread.of([gaps(run)[-1] for run in members]),
        }
        for label, members in arms(runs).items()
    }


def collapsed_runs(runs: list[Run] | tuple[Run, ...]) -> list[Run]:
    return [run for run in runs if run.summary()["collapsed"]]


def conclusion(runs: list[Run]) -> str:
    """A few sentences with the measured numbers and their spread over seeds, for the end of the lesson."""
    if any(not gaps(run) for run in runs):
        return Message(N_("The runs have no finished epoch yet."))
    if dead := collapsed_runs(runs):
        return _collapse_statement(dead)
    if runs[0].config.varied == ARCHITECTURE:
        return _architectures_conclusion(runs)
    return _augmentation_conclusion(runs)


def _collapse_statement(dead: list[Run]) -> str:
    named = Messages(
        [
            Message(
                "{run}, seed {seed}: {reason}",
                run=Message(run_label(run)),
                seed=run.config.seed,
                reason=run.summary()["collapsed"],
            )
            for run in dead
        ],
        "; ",
    )
    statement = (
        N_("{count} run did not learn ({named}), so this lesson shows nothing about the setting it compares.")
        if len(dead) == 1
        else N_("{count} runs did not learn ({named}), so this lesson shows nothing about the setting it compares.")
    )
    return Messages(
        [Message(statement, count=len(dead), named=named), Message(COLLAPSE_WHY), Message(COLLAPSE_NEXT)], " "
    )


def _seeds_phrase(spread: Spread) -> str:
    return Message("over {seeds} seeds", seeds=spread.seeds) if spread.seeds > 1 else Message(N_("with one seed"))


def _augmentation_conclusion(runs: list[Run]) -> str:
    spreads = arm_spreads(runs)
    if set(spreads) != {WITHOUT, WITH}:
        return Message(N_("The experiment needs runs both without and with augmentation."))
    gap_a, gap_b = spreads[WITHOUT]["final_gap"], spreads[WITH]["final_gap"]
    val_a, val_b = spreads[WITHOUT]["best_val_accuracy"], spreads[WITH]["best_val_accuracy"]
    epochs = runs[0].history()[-1]["epoch"]
    after = (
        N_(
            "After {epochs} epoch, training minus validation accuracy was {with_gap} points with augmentation "
            "{seeds}, {without_gap} without."
        )
        if epochs == 1
        else N_(
            "After {epochs} epochs, training minus validation accuracy was {with_gap} points with augmentation "
            "{seeds}, {without_gap} without."
        )
    )
    sentences = [
        Message(after, epochs=epochs, with_gap=gap_b.points(), seeds=_seeds_phrase(gap_b), without_gap=gap_a.points()),
        Message(
            "Best validation accuracy: {with_best}% with augmentation, {without_best}% without.",
            with_best=val_b.points(),
            without_best=val_a.points(),
        ),
    ]
    if gap_a.std is None or gap_b.std is None:
        sentences.append(
            Message(
                N_(
                    "One seed per arm shows no spread, so it cannot tell a clear difference from chance: "
                    "run the lesson with --seeds 3."
                )
            )
        )
    elif clearly_differ(gap_a, gap_b):
        points = abs(round(gap_a.mean * 100) - round(gap_b.mean * 100))
        if gap_b.mean < gap_a.mean:
            narrowed = N_(
                "Augmentation clearly narrowed the gap, by {points} points: the model memorised its training photos less."
            )
            sentences.append(Message(narrowed, points=points))
        else:
            sentences.append(Message("Augmentation clearly widened the gap, by {points} points.", points=points))
    else:
        sentences.append(Message(N_("The gaps differ by less than the seeds' spread: no clear difference.")))
    if gap_a.std is not None and gap_b.std is not None:
        if not clearly_differ(val_a, val_b):
            verdict = N_("Validation accuracy, the one that counts for new photos, shows no clear difference.")
        elif val_b.mean > val_a.mean:
            verdict = N_(
                "Validation accuracy, the one that counts for new photos, was clearly higher with augmentation."
            )
        else:
            verdict = N_(
                "Validation accuracy, the one that counts for new photos, was clearly lower with augmentation."
            )
        sentences.append(Message(verdict))
    sentences.append(Message(CLEAR_RULE))
    return Messages(sentences, " ")


def _architectures_conclusion(runs: list[Run]) -> str:
    spreads = arm_spreads(runs)
    best = {name: arm["best_val_accuracy"] for name, arm in spreads.items()}
    gap = {name: arm["final_gap"] for name, arm in spreads.items()}
    top = max(best, key=lambda name: best[name].mean)
    bottom = min(best, key=lambda name: best[name].mean)
    widest = max(gap, key=lambda name: gap[name].mean)
    seeds = best[top].seeds
    sentences = [
        Message(
            "After {epochs} epochs, the best validation accuracy of each {seeds}: {accuracies}.",
            epochs=runs[0].history()[-1]["epoch"],
            seeds=_seeds_phrase(best[top]),
            accuracies=", ".join(f"{name} {value.points()}%" for name, value in best.items()),
        ),
    ]
    if seeds > 1 and not clearly_differ(best[top], best[bottom]):
        sentences.append(Message("{top} did best, but not clearly: the seeds' spread covers the difference.", top=top))
    else:
        sentences.append(
            Message(
                "{top} did best, {points} points above {bottom}.",
                top=top,
                points=round(best[top].mean * 100) - round(best[bottom].mean * 100),
                bottom=bottom,
            )
        )
    if top.startswith("model4"):
        sentences.append(
            Message(
                N_(
                    "It starts from what MobileNetV2 learned on 1.4 million ImageNet photos; the others learn "
                    "from these photos alone."
                )
            )
        )
    sentences.append(
        Message(
            "Training minus validation accuracy at the last epoch, in points: {gaps}; {widest} memorised its "
            "training photos the most.",
            gaps=", ".join(f"{n} {g.points()}" for n, g in gap.items()),
            widest=widest,
        )
    )
    return Messages(sentences, " ")
