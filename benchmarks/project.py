"""Project files (catdog.project): how large a typical one is, and how long exporting and opening take.

    python -m benchmarks.project            # real photos: a class-built set and all of cats_and_dogs_filtered
    python -m benchmarks.project --smoke    # tiny synthetic photos, as CI runs it

For each workspace (a model4 --fast run on a data set of the app's own): the project file's size,
and the wall time of `catdog project export` and of `catdog project open` into an empty server,
each a fresh process as a user starts it (opening loads each model once, so it imports
TensorFlow), and of opening in a process that has TensorFlow imported already, as a dashboard
server that has answered a photo has. Writes benchmarks/project.json.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.support import catdog, make_dataset

HERE = Path(__file__).resolve().parent


def class_built(source: Path, folder: Path, per_class: int) -> Path:
    """A set as a student builds one on the Dataset page: a few photos per class."""
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True)
        for photo in sorted((source / "train" / name).iterdir())[:per_class]:
            shutil.copyfile(photo, folder / name / photo.name)
    return folder


def timed(*args: str) -> float:
    start = time.perf_counter()
    done = catdog(*args, timeout=3600)
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    return round(time.perf_counter() - start, 2)


def in_a_running_server(file: Path, root: Path) -> dict:
    """Opening as the dashboard does it: in a process that has imported TensorFlow already."""
    import keras  # noqa: F401 -- imported first, as a server that has answered a photo has it

    from catdog import project
    from catdog.access import OWNER
    from catdog.data.datasets import DatasetStore
    from catdog.runs.store import RunStore

    start = time.perf_counter()
    project.open_project(
        file.read_bytes(), actor=OWNER, store=RunStore(root / "runs"), datasets=DatasetStore(root / "datasets")
    )
    return {"open_in_server_s": round(time.perf_counter() - start, 2)}


def measure(name: str, photos: Path, work: Path) -> dict:
    home, away = work / "servers" / name / "home", work / "servers" / name / "away"
    os.environ.update(CATDOG_RUNS_DIR=str(home / "runs"), CATDOG_DATASETS_DIR=str(home / "datasets"))
    timed("dataset", "copy", "--from", str(photos), "--name", name)
    timed("train", "--arch", "model4", "--fast", "--dataset", name, "--wait")
    file = work / f"{name}.catdog"
    export_s = timed("project", "export", str(file))
    os.environ.update(CATDOG_RUNS_DIR=str(away / "runs"), CATDOG_DATASETS_DIR=str(away / "datasets"))
    open_s = timed("project", "open", str(file))
    return {
        **in_a_running_server(file, work / "servers" / name / "served"),
        "workspace": name,
        "photos": sum(1 for path in photos.rglob("*") if path.is_file()),
        "file_mb": round(file.stat().st_size / 2**20, 2),
        "export_s": export_s,
        "open_s": open_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic photos")
    parser.add_argument("--out", type=Path, default=HERE / "project.json", help="where the JSON goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("CATDOG_CACHE_DIR", str(work / "cache"))
        if args.smoke:
            workspaces = {"synthetic": make_dataset(work / "synthetic")}
        else:
            from catdog.access import OWNER
            from catdog.data.download import download_default_dataset

            real = download_default_dataset(actor=OWNER)
            workspaces = {"class-built": class_built(real, work / "class-built", 20), "cats-and-dogs": real}
        rows = [measure(name, photos, work) for name, photos in workspaces.items()]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "workspaces": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'workspace':<16}{'photos':>8}{'file MB':>10}{'export s':>10}{'open s':>8}{'in a server s':>15}")
    for row in rows:
        print(
            f"{row['workspace']:<16}{row['photos']:>8}{row['file_mb']:>10}{row['export_s']:>10}{row['open_s']:>8}"
            f"{row['open_in_server_s']:>15}"
        )


if __name__ == "__main__":
    main()
