"""How often the unfamiliarity guard flags ordinary pet photos, and photos that are no pets.

    pip install -r benchmarks/requirements.txt   # scikit-image: its bundled sample photos and faces
    python -m benchmarks.unfamiliar              # cats_and_dogs_filtered: a few minutes on 2 cores
    python -m benchmarks.unfamiliar --smoke      # tiny synthetic pets: keeps this script working

For each setting (image size, seed) a model4 --fast run is trained with the real command line into
a temporary runs folder, and its guard, made by training (catdog.inference.familiarity), scores: the data
set's held-out test split, never used for fitting or calibrating, at full size and as 200 px
thumbnails (JPEG, long side 200 px); and the non-pet groups of benchmarks.nonpets, kept apart from
those the guard's score was chosen on. Every photo takes an upload's path: encoded bytes,
decoded, resized, MobileNetV2 features. For comparison the guard before issue 20 (the 5th
nearest training photo's cosine distance, border at 95 % of the validation photos) scores the
same features. Writes a JSON file (default benchmarks/unfamiliar.json) and prints a table.
"""

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import nonpets
from catdog.access import OWNER
from catdog.data.download import download_default_dataset
from catdog.data.images import open_image, to_model_input
from catdog.data.scan import Scan, scan
from catdog.fast.features import FeatureCache, extract
from catdog.inference import familiarity
from catdog.runs.record import Run
from catdog.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"pets_flagged": familiarity.FALSE_FLAG_SHARE, "non_pets_flagged": 0.90}
THUMBNAIL = 200
SIZES = (160, 288)
SEEDS = (0, 1, 2)


def thumbnail(data: bytes, side: int = THUMBNAIL) -> bytes:
    """A photo as a small thumbnail comes: at most `side` px a side, as a JPEG."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((side, side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def features(images: list[np.ndarray]) -> np.ndarray:
    size = familiarity.GUARD_IMAGE_SIZE
    return extract(np.stack([to_model_input(image, size) for image in images]), size)


def pet_features(data: Scan) -> dict[str, np.ndarray]:
    """The test split's features at full size and as thumbnails, decoded as answer_photos does."""
    raw = [(data.root / name).read_bytes() for name, _ in data.files["test"]]
    decode = lambda photo: np.asarray(open_image(photo, draft=familiarity.GUARD_IMAGE_SIZE[::-1]))
    return {
        "full size": features([decode(photo) for photo in raw]),
        f"{THUMBNAIL} px": features([decode(thumbnail(photo)) for photo in raw]),
    }


def train(runs_dir: Path, data_dir: Path, size: int, seed: int) -> Run:
    """A model4 --fast run trained to the end with the real command line."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "catdog",
            "train",
            "--arch",
            "model4",
            "--fast",
            "--image-size",
            str(size),
            "--seed",
            str(seed),
            "--data-dir",
            str(data_dir),
            "--runs-dir",
            str(runs_dir),
            "--wait",
        ],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=1800,
    )
    return max(RunStore(runs_dir).runs(), key=lambda run: run.path.stat().st_mtime)


def shares(score, pets: dict[str, np.ndarray], others: dict[str, np.ndarray]) -> dict:
    """Shares flagged (score above familiarity.BORDER) of pets at each size and of each non-pet group."""
    flagged = lambda x: float(np.mean(score(x) > familiarity.BORDER))
    groups = {name: flagged(x) for name, x in others.items()}
    return {
        "pets_flagged": flagged(pets["full size"]),
        "pets_flagged_thumbnail": flagged(pets[f"{THUMBNAIL} px"]),
        "non_pets_flagged": float(np.mean(score(np.concatenate(list(others.values()))) > familiarity.BORDER)),
        "non_pets_flagged_by_group": groups,
    }


def guard_before(data: Scan):
    """Issue 20's starting point: the 5th nearest training photo's cosine distance over the one
    95 % of the validation photos stay within."""
    cache = FeatureCache(data, familiarity.GUARD_IMAGE_SIZE)
    reference = familiarity.unit(cache.features("train")[0])
    distance = lambda x: familiarity.neighbour_distances(reference, x, 5)
    border = np.quantile(distance(cache.features("validation")[0]), 0.95)
    return lambda x: distance(x) / border


def measure(data_dir: Path, sizes: tuple[int, ...], seeds: tuple[int, ...], renders: int) -> dict:
    start = time.perf_counter()
    data = scan(data_dir)
    pets = pet_features(data)
    groups = {name: make() for name, make in nonpets.groups(renders=renders).items()}
    others = {name: features([pixels for _, pixels in photos]) for name, photos in groups.items()}
    settings = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for size in sizes:
            for seed in seeds:
                guard = familiarity.ensure(train(Path(runs_dir), data_dir, size, seed))
                settings.append({"image_size": size, "seed": seed, **shares(guard.unfamiliarity, pets, others)})
    result = {
        "method": "larger of the nearest training photo's cosine distance and the 5th nearest's centred one "
        "(catdog.inference.familiarity), border at 1 % of the validation photos",
        "guard_image_size": list(familiarity.GUARD_IMAGE_SIZE),
        "photos": {
            "train": len(data.files["train"]),
            "validation": len(data.files["validation"]),
            "pets": len(data.files["test"]),
            "non_pets": {name: len(photos) for name, photos in groups.items()},
        },
        "settings": settings,
        "before": {
            "method": "5th nearest training photo's cosine distance, border at 95 % of the validation photos",
            **shares(guard_before(data), pets, others),
        },
        "goals": GOALS,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }
    result["goals_met"] = all(
        s["pets_flagged"] <= GOALS["pets_flagged"]
        and s["pets_flagged_thumbnail"] <= GOALS["pets_flagged"]
        and s["non_pets_flagged"] >= GOALS["non_pets_flagged"]
        for s in settings
    )
    return result


def table(result: dict) -> str:
    groups = list(result["photos"]["non_pets"])
    rows = [
        f"| guard | setting | pets flagged, full size | pets flagged, {THUMBNAIL} px | non-pets flagged | "
        + " | ".join(groups)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(groups),
    ]

    def row(name: str, setting: str, shares: dict) -> str:
        by_group = " | ".join(f"{shares['non_pets_flagged_by_group'][group]:.1%}" for group in groups)
        return (
            f"| {name} | {setting} | {shares['pets_flagged']:.1%} | {shares['pets_flagged_thumbnail']:.1%} | "
            f"{shares['non_pets_flagged']:.1%} | {by_group} |"
        )

    rows.append(row("before (5th neighbour, 95 % border)", "any", result["before"]))
    rows += [row("catdog", f"{s['image_size']} px, seed {s['seed']}", s) for s in result["settings"]]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic pets instead of cats_and_dogs_filtered")
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="the runs' image sizes")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help="the runs' seeds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "unfamiliar.json")
    args = parser.parse_args(argv)
    if args.smoke:
        from tests.helpers.support import make_dataset

        with tempfile.TemporaryDirectory() as folder:
            result = measure(make_dataset(Path(folder)), (160,), (0,), renders=4)
    else:
        result = measure(download_default_dataset(actor=OWNER), tuple(args.sizes), tuple(args.seeds), nonpets.RENDERS)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
