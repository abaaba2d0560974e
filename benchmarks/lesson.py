"""The lessons end to end on the real data: wall time from a fresh process, and what each run shows.

    python -m benchmarks.lesson                          # does augmentation help? quick, 3 seeds: goal 90 s on 2 cores
    python -m benchmarks.lesson --full                   # the posts' settings, 15 epochs at 160 px: about 25 minutes
    python -m benchmarks.lesson --topic architectures    # model1 to model4, quick
    python -m benchmarks.lesson --smoke                  # tiny synthetic data, one epoch: keeps this script working

Runs `catdog lesson TOPIC [--quick] --wait --json` as a user does, with a fresh runs folder, and
times it by the wall clock: queueing, TensorFlow's start-up and every epoch are inside. The result
is merged into a JSON file (default benchmarks/lesson.json) under "TOPIC quick" or "TOPIC full",
and the README's table is printed. The load average before and after and the CPU seconds the
lesson took are recorded with it: on a shared machine the wall time alone says little.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from catdog.runs.lessons import find_experiment
from catdog.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent


def lesson_command(topic: str, full: bool, runs_dir: Path, data_dir: str | None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "catdog",
        "lesson",
        topic,
        *([] if full else ["--quick"]),
        *(["--epochs", "1", "--data-dir", data_dir] if data_dir else []),
        "--runs-dir",
        str(runs_dir),
        "--wait",
        "--json",
    ]


def measure(topic: str, full: bool, data_dir: str | None) -> dict:
    runs_dir = Path(tempfile.mkdtemp(prefix="catdog-bench-lesson-"))
    command = lesson_command(topic, full, runs_dir, data_dir)
    load_before, cpu_before = psutil.getloadavg(), os.times()
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    seconds = time.perf_counter() - start
    cpu_after = os.times()
    if finished.returncode:
        raise SystemExit(f"the lesson failed (exit status {finished.returncode}); its runs are in {runs_dir}")
    # Children's CPU time: the lesson's process and whatever it started (os.times gives 0 on Windows).
    cpu = (cpu_after.children_user + cpu_after.children_system) - (
        cpu_before.children_user + cpu_before.children_system
    )
    loads = {"load_average_before": load_before, "load_average_after": psutil.getloadavg()}
    return result(RunStore(runs_dir), seconds, cpu, " ".join(["catdog", *command[3:]]), loads)


def result(store: RunStore, seconds: float, cpu_seconds: float, command: str, loads: dict) -> dict:
    """What one lesson measured: its wall and CPU time, the load around it, per arm the spread
    over seeds and per run its accuracies and final gap."""
    experiment = find_experiment(store).summary()
    return {
        "command": command,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "cpus": os.cpu_count(),
        **{name: [round(load, 2) for load in values] for name, values in loads.items()},
        "epochs": experiment["epochs"],
        "image_size": experiment["image_size"],
        "learning_rate": experiment["learning_rate"],
        "photos_per_class": experiment["photos_per_class"],
        "batch_size": experiment["batch_size"],
        "seeds": experiment["seeds"],
        "arms": experiment["arms"],
        "runs": [
            {
                "label": run["label"],
                "seed": run["seed"],
                "best_val_accuracy": run["best_val_accuracy"],
                "final_gap": round(run["final_gap"], 4),
                "collapsed": run["collapsed"],
                "seconds": run["seconds"],
            }
            for run in experiment["runs"]
        ],
        "collapsed": experiment["collapsed"],
        "conclusion": experiment["conclusion"],
    }


def table(results: dict) -> str:
    lines = [
        "| lesson | settings | wall time (CPU) | load before | run | seed | best val acc | final gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, measured in results.items():
        settings = f"{measured['epochs']} epoch{'s' * (measured['epochs'] != 1)} @ {measured['image_size']} px"
        cpu = f" ({measured['cpu_seconds']:.0f} s)" if "cpu_seconds" in measured else ""
        for i, run in enumerate(measured["runs"]):
            first = (key, settings, f"{measured['seconds']:.0f} s{cpu}", f"{measured['load_average_before'][0]:.1f}")
            lines.append(
                f"| {' | '.join(first if i == 0 else ('',) * 4)} | {run['label']} | {run.get('seed', '')} "
                f"| {run['best_val_accuracy']:.1%} | {run['final_gap'] * 100:+.1f} points |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", choices=("augmentation", "architectures"), default="augmentation")
    parser.add_argument("--full", action="store_true", help="the lesson's full settings, not --quick")
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic data, one epoch")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "lesson.json")
    args = parser.parse_args()

    data_dir = None
    if args.smoke:
        from tests.helpers.support import make_dataset

        data_dir = str(make_dataset(Path(tempfile.mkdtemp(prefix="catdog-bench-data-"))))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[f"{args.topic} {'full' if args.full else 'quick'}"] = measure(args.topic, args.full, data_dir)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
