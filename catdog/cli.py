"""`python -m catdog …`: the same library the dashboard uses, from a terminal.

Machine-readable results go to stdout (JSON with --json); progress bars and errors go to
stderr, each error as one line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from catdog import config
from catdog.data import DataError, scan
from catdog.images import ImageError
from catdog.runs import ACTIVE, PHASE_FEATURES, RunError, RunStore, planned_epochs

FOLLOW_INTERVAL_S = 0.5
FLIP_TTA_HELP = "average each answer with the mirror image's (test-time augmentation)"


class ProgressBar:
    """A one-line text bar on stderr, redrawn in place."""

    def __init__(self, label: str, width: int = 30):
        self.label, self.width = label, width

    def __call__(self, done: float, total: float, note: str = "") -> None:
        fraction = min(max(done / total, 0.0), 1.0) if total else 0.0
        filled = int(fraction * self.width)
        bar = "█" * filled + "·" * (self.width - filled)
        sys.stderr.write(f"\r{self.label} {bar} {fraction:4.0%} {note}".ljust(100))
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def _print_json(data) -> None:
    print(json.dumps(data), flush=True)


def cmd_data(args) -> int:
    bar = ProgressBar("scanning")
    data = scan(args.data_dir, progress=bar)
    bar.close()
    result = {"root": str(data.root), "classes": data.classes, "splits": data.counts(), "skipped": data.skipped}
    if args.json:
        _print_json(result)
        return 0
    print(f"{data.root}\nclasses: {', '.join(data.classes)}")
    for split, counts in result["splits"].items():
        print(f"  {split:<10} " + "  ".join(f"{name}: {n}" for name, n in counts.items()))
    for item in data.skipped:
        print(f"  skipped {item['file']}: {item['reason']}")
    return 0


def cmd_archs(args) -> int:
    from catdog.models import architectures_table

    table = architectures_table()
    if args.json:
        _print_json(table)
        return 0
    for arch in table:
        print(f"{arch['name']:<16} {arch['title']:<40} {arch['total']:>9,} params ({arch['trainable']:,} trainable)")
    return 0


def cmd_train(args) -> int:
    from catdog.training import default_run_config

    run_config = default_run_config(
        args.arch,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        augmentation={"flip": args.flip, "rotation": args.rotation, "fill_mode": args.fill_mode},
        data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else config.data_dir(),
        fast=args.fast,
        feature_copies=args.feature_copies,
    )
    run = RunStore(args.runs_dir).submit(run_config)
    if not args.wait:
        print(run.id)
        return 0
    print(f"run {run.id}", file=sys.stderr)
    return _follow(run)


def _follow(run) -> int:
    """Shows a run's progress until it ends; one JSON summary line on stdout."""
    bar, planned = ProgressBar("training"), planned_epochs(run.config)
    while (status := run.status())["state"] in ACTIVE:
        progress, history = run.progress(), run.history()
        if status["state"] == "queued":
            bar(0, 1, "queued")
        elif progress and progress["phase"] == PHASE_FEATURES:
            bar(progress["batch"], progress["batches"], "computing backbone features (cached for next time)")
        elif progress:
            batches = progress["batches"] or 1
            done = progress["epoch"] - 1 + progress["batch"] / batches
            val = f"val_acc {history[-1]['val_accuracy']:.3f}" if history else ""
            bar(done, planned, f"epoch {progress['epoch']}/{planned} {val}")
        time.sleep(FOLLOW_INTERVAL_S)
    bar.close()
    summary = run.summary()
    _print_json(
        {
            "run": run.id,
            "status": summary["status"],
            "epochs": summary["epochs"],
            "accuracy": summary["accuracy"],
            "val_accuracy": summary["best_val_accuracy"],
            "seconds": summary["seconds"],
            **({"error": summary["error"]} if summary["error"] else {}),
        }
    )
    return 0 if summary["status"] == "finished" else 1


def cmd_runs(args) -> int:
    store = RunStore(args.runs_dir)
    store.resume()
    rows = [run.summary() for run in store.runs()]
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        acc = f"{row['best_val_accuracy']:.3f}" if row["best_val_accuracy"] is not None else "-"
        print(f"{row['id']:<36} {row['arch']:<16} {row['status']:<10} epochs {row['epochs']:<3} val_acc {acc}")
    return 0


def cmd_cancel(args) -> int:
    status = RunStore(args.runs_dir).cancel(args.run)
    print(f"{args.run}: {'cancelled' if status['state'] == 'cancelled' else 'stopping at the next batch'}")
    return 0


def cmd_predict(args) -> int:
    from catdog.images import load_image, read_upload
    from catdog.predict import predict

    run = RunStore(args.runs_dir).get(args.run)
    failed = False
    for name in args.images:
        try:
            probabilities = predict(run, load_image(read_upload(Path(name))), args.flip_tta)
        except (ImageError, OSError) as error:
            failed = True
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            _print_json({"file": name, "error": reason})
            continue
        _print_json({"file": name, "label": max(probabilities, key=probabilities.get), "probabilities": probabilities})
    return 1 if failed else 0


def cmd_evaluate(args) -> int:
    from catdog.predict import evaluate

    result = evaluate(RunStore(args.runs_dir).get(args.run), args.flip_tta)
    summary = {key: result[key] for key in ("run", "flip_average", "test_accuracy", "n", "classes", "per_class", "confusion_matrix")}
    if args.json:
        _print_json(summary)
        return 0
    print(f"test accuracy {summary['test_accuracy']:.4f} on {summary['n']} held-out images")
    for name, accuracy in summary["per_class"].items():
        print(f"  {name:<12} {accuracy:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m catdog", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help_text: str, runs: bool = False, json_flag: bool = False):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        if runs:
            sub.add_argument("--runs-dir", help="where runs live (default: $CATDOG_RUNS_DIR or ./runs)")
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    data = command("data", cmd_data, "scan a data set: classes, counts per split, skipped files", json_flag=True)
    data.add_argument("--data-dir", help="a folder of class folders (default: cats_and_dogs_filtered)")
    command("archs", cmd_archs, "list the architectures", json_flag=True)
    train = command("train", cmd_train, "start a training run in the background", runs=True)
    train.add_argument("--arch", required=True, help="model1, model2, model3, model4 or model4-finetune")
    train.add_argument("--epochs", type=int)
    train.add_argument("--fine-tune-epochs", type=int, help="epochs with the backbone's top unfrozen")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--image-size", type=int, choices=config.IMAGE_SIDES,
                       help=f"square side in pixels (default {config.IMAGE_SIZE[0]}; 224 is MobileNetV2's own)")
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--seed", type=int)
    train.add_argument("--flip", choices=["off", "horizontal", "vertical", "both"], default="horizontal")
    train.add_argument("--rotation", type=float, nargs=2, metavar=("LOW", "HIGH"), default=(-0.2, 0.2),
                       help="rotation range as fractions of a full turn")
    train.add_argument("--fill-mode", choices=["reflect", "wrap", "constant", "nearest"], default="reflect")
    train.add_argument("--data-dir")
    train.add_argument("--fast", action="store_true", help="train on cached backbone features (model4 family)")
    train.add_argument("--feature-copies", type=int, help="fast path: augmented copies of the training set (default 0)")
    train.add_argument("--wait", action="store_true", help="follow the run; exit 0 only if it finishes")
    command("runs", cmd_runs, "list runs", runs=True, json_flag=True)
    cancel = command("cancel", cmd_cancel, "cancel a queued or running run", runs=True)
    cancel.add_argument("run")
    predict = command("predict", cmd_predict, "classify images with a finished run", runs=True)
    predict.add_argument("--run", required=True)
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--flip-tta", action="store_true", help=FLIP_TTA_HELP)
    evaluate = command("evaluate", cmd_evaluate, "score a run on its held-out test split", runs=True, json_flag=True)
    evaluate.add_argument("--run", required=True)
    evaluate.add_argument("--flip-tta", action="store_true", help=FLIP_TTA_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (DataError, RunError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
