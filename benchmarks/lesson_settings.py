"""Which quick settings make the augmentation lesson's model2 train reliably and show the posts' finding.

    python -m benchmarks.lesson_settings                  # the grid below, 10 seeds each: about an hour on 2 cores
    python -m benchmarks.lesson_settings --seeds 3 --only 0
    python -m benchmarks.lesson_settings --arch model1 --arch model2 --arch model3 --arch model4 --seeds 3 --only 0
    python -m benchmarks.lesson_settings --smoke          # tiny synthetic data, 1 seed: keeps this script working

For each setting and seed, trains model2 without and with the posts' augmentation on
cats_and_dogs_filtered in this process (catdog.training.keras_loop, as a lesson's run does), and records per
run its best validation accuracy, its last epoch's training minus validation accuracy and whether
it collapsed (catdog.runs.collapse). A setting is reliable when every run reaches RELIABLE_VAL without
collapsing; it shows the finding when the gap with augmentation is smaller than without for every
seed. Results are merged into a JSON file after every run, so a long grid can be stopped and resumed.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from catdog import config
from catdog.data.scan import scan
from catdog.runs.store import RunStore
from catdog.settings import PRESETS, RunConfig

ROOT = Path(__file__).resolve().parent.parent
RELIABLE_VAL = 0.6
# The suspects first: Adam's 1e-3 on raw 0..255 pixels, then image size, photos and epochs.
GRID = (
    {"image_size": 64, "epochs": 10, "learning_rate": 3e-4, "photos_per_class": 500},
    {"image_size": 64, "epochs": 10, "learning_rate": 1e-3, "photos_per_class": 500},
    {"image_size": 64, "epochs": 10, "learning_rate": 3e-4, "photos_per_class": None},
    {"image_size": 96, "epochs": 10, "learning_rate": 3e-4, "photos_per_class": 500},
    {"image_size": 64, "epochs": 15, "learning_rate": 3e-4, "photos_per_class": 500},
    {"image_size": 96, "epochs": 10, "learning_rate": 1e-3, "photos_per_class": None},
    # As costly as the first: more photos, fewer epochs; or a bigger step.
    {"image_size": 64, "epochs": 6, "learning_rate": 3e-4, "photos_per_class": None},
    {"image_size": 64, "epochs": 10, "learning_rate": 5e-4, "photos_per_class": 500},
    # The augmented runs still climbed at their last epoch: twice the steps for the same photos.
    {"image_size": 64, "epochs": 10, "learning_rate": 3e-4, "photos_per_class": 500, "batch_size": 16},
    {"image_size": 64, "epochs": 6, "learning_rate": 3e-4, "photos_per_class": None, "batch_size": 16},
)
ARMS = {"without augmentation": "none", "with augmentation": "posts"}


def setting_key(setting: dict, arch: str) -> str:
    photos = setting["photos_per_class"] or "all"
    batch = f", batch {setting['batch_size']}" if "batch_size" in setting else ""
    return (
        f"{arch} {setting['image_size']} px, {setting['epochs']} epochs, lr {setting['learning_rate']:g}, "
        f"{photos} photos per class{batch}"
    )


def train_one(store: RunStore, data, arch: str, setting: dict, seed: int, preset: str) -> dict:
    """One run trained in this process; what it measured."""
    import keras

    from catdog.runs.collapse import collapse_reason
    from catdog.training import keras_loop

    run_config = RunConfig(arch, seed=seed, augmentation=PRESETS[preset], **setting)
    run = store.create(run_config.to_dict())
    run.record_data(data)
    wall, cpu = time.perf_counter(), time.process_time()
    best = keras_loop.train(run, data)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    keras.backend.clear_session()
    last = run.history()[-1]
    return {
        "seed": seed,
        "best_val_accuracy": round(best, 4),
        "final_gap": round(last["accuracy"] - last["val_accuracy"], 4),
        "collapsed": collapse_reason(run.history(), len(data.classes)),
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load_average": [round(load, 2) for load in psutil.getloadavg()],
    }


def verdict(runs: dict[str, list[dict]]) -> dict:
    """Per arm the mean and spread; whether every run learned and every seed showed the finding."""
    arms = {}
    for label, results in runs.items():
        gaps = [run["final_gap"] for run in results]
        best = [run["best_val_accuracy"] for run in results]
        arms[label] = {
            "seeds": len(results),
            "gap_mean": round(statistics.mean(gaps), 4),
            "gap_std": round(statistics.stdev(gaps), 4) if len(gaps) > 1 else None,
            "best_val_mean": round(statistics.mean(best), 4),
            "best_val_min": min(best),
            "collapsed": sum(bool(run["collapsed"]) for run in results),
            "unreliable": sum(bool(run["collapsed"]) or run["best_val_accuracy"] < RELIABLE_VAL for run in results),
        }
    summary = {"arms": arms}
    if set(runs) == set(ARMS):
        plain = {run["seed"]: run for run in runs["without augmentation"]}
        pairs = [(plain[run["seed"]], run) for run in runs["with augmentation"] if run["seed"] in plain]
        summary["seeds_gap_narrower_with_augmentation"] = sum(b["final_gap"] < a["final_gap"] for a, b in pairs)
        summary["seeds_compared"] = len(pairs)
    summary["reliable"] = all(arm["unreliable"] == 0 for arm in arms.values())
    return summary


def table(results: dict) -> str:
    lines = [
        (
            "| setting | seeds | unreliable runs (no aug / aug) | best val, mean (no aug / aug) | gap, points (no aug) "
            "| gap, points (aug) | seeds with a narrower gap | CPU s per run |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, measured in results.items():
        arms, summary = measured["summary"]["arms"], measured["summary"]
        if set(arms) != set(ARMS):
            continue
        plain, augmented = arms["without augmentation"], arms["with augmentation"]
        # CPU seconds, not wall: on the shared cores the wall time says more about the load than the setting.
        seconds = statistics.mean(run["cpu_seconds"] for results in measured["runs"].values() for run in results)
        seeds = plain["seeds"] if plain["seeds"] == augmented["seeds"] else f"{plain['seeds']} / {augmented['seeds']}"

        def spread(arm):
            return f"{arm['gap_mean'] * 100:.0f} ± {(arm['gap_std'] or 0) * 100:.0f}"

        lines.append(
            f"| {key} | {seeds} | {plain['unreliable']} / {augmented['unreliable']} "
            f"| {plain['best_val_mean']:.2f} / {augmented['best_val_mean']:.2f} | {spread(plain)} | {spread(augmented)} "
            f"| {summary['seeds_gap_narrower_with_augmentation']}/{summary['seeds_compared']} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--only", type=int, action="append", help="positions in GRID (default: all)")
    parser.add_argument(
        "--arch", action="append", help="architectures, each with and without augmentation (default: model2)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic data, one seed, one epoch")
    parser.add_argument(
        "--out", type=Path, help="default: benchmarks/lesson_settings.json; with --smoke a temporary file"
    )
    args = parser.parse_args()

    grid, seeds, data_dir = [GRID[i] for i in (args.only or range(len(GRID)))], range(args.seeds), None
    if args.smoke:
        from tests.helpers.support import make_dataset

        data_dir = str(make_dataset(Path(tempfile.mkdtemp(prefix="catdog-bench-data-"))))
        grid, seeds = [{**grid[0], "epochs": 1, "photos_per_class": 5}], range(1)
        args.out = args.out or Path(tempfile.mkdtemp(prefix="catdog-bench-out-")) / "lesson_settings.json"
    args.out = args.out or ROOT / "benchmarks" / "lesson_settings.json"
    from catdog.training import keras_loop

    keras_loop.limit_threads()  # as a lesson's runs train
    data = scan(data_dir, config.SPLIT_SEED)
    store = RunStore(tempfile.mkdtemp(prefix="catdog-bench-settings-"))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for arch in args.arch or ["model2"]:
        for setting in grid:
            key = setting_key(setting, arch)
            measured = results.setdefault(key, {"setting": {"arch": arch, **setting}, "runs": {}})
            for seed in seeds:
                for label, preset in ARMS.items():
                    done = measured["runs"].setdefault(label, [])
                    if any(run["seed"] == seed for run in done):
                        continue
                    done.append(train_one(store, data, arch, setting, seed, preset))
                    measured["summary"] = verdict(measured["runs"])
                    args.out.write_text(json.dumps(results, indent=1) + "\n")
                    print(f"{key} · seed {seed} · {label}: {done[-1]}", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
