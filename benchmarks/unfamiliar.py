"""How well the unfamiliarity guard tells pets from photos that are no pets.

    pip install -r benchmarks/requirements.txt   # scikit-image: its bundled sample photos
    python -m benchmarks.unfamiliar              # cats_and_dogs_filtered: about a minute on 2 cores
    python -m benchmarks.unfamiliar --smoke      # tiny synthetic pets: keeps this script working

The guard is fitted exactly as a run's is (catdog.familiarity: training photos as the reference,
the border at 95 % of the validation photos). Pets: the data set's held-out test split, never
used for fitting or calibrating. Photos that are no pets: the sample images that ship inside the
scikit-image package (never the data set), without its cat (chelsea) and horse; each in several
views (whole, centre square, two corner crops, mirrored), as there are only 23. Every view goes
through the path an uploaded photo takes: PNG bytes, decoded, resized, MobileNetV2 features.
For comparison the same features are scored with a Mahalanobis distance (shrunk covariance),
calibrated the same way. Writes a JSON file (default benchmarks/unfamiliar.json) and prints a table.
"""

import argparse
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from catdog import familiarity
from catdog.access import OWNER
from catdog.data import download_default_dataset, scan
from catdog.features import FeatureCache, extract
from catdog.images import load_image, to_model_input

ROOT = Path(__file__).resolve().parent.parent
# scikit-image's bundled samples that show no animal (chelsea is a cat, horse a horse).
NON_PETS = (
    "astronaut", "brick", "camera", "cell", "chessboard_RGB", "clock_motion", "coffee", "coins", "color", "grass",
    "gravel", "hubble_deep_field", "ihc", "logo", "microaneurysms", "moon", "motorcycle_left", "motorcycle_right",
    "page", "phantom", "retina", "rocket", "text",
)
VIEWS = ("whole", "centre", "top-left", "bottom-right", "mirrored")
GOALS = {"pets_flagged": 0.05, "non_pets_flagged": 0.80}
SHRINKAGES = (0.1, 0.5)


def sample_views(names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """Each bundled sample in every view, as RGB pixels decoded from PNG bytes like an upload."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    views = []
    for name in names:
        image = np.asarray(Image.open(next(folder.glob(f"{name}.*"))).convert("RGB"))
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        crops = {
            "whole": image,
            "centre": image[top : top + side, left : left + side],
            "top-left": image[: height * 2 // 3, : width * 2 // 3],
            "bottom-right": image[height // 3 :, width // 3 :],
            "mirrored": image[:, ::-1],
        }
        for view in VIEWS:
            out = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(crops[view])).save(out, format="PNG")
            views.append((f"{name}/{view}", load_image(out.getvalue())))
    return views


def mahalanobis(train: np.ndarray, shrinkage: float):
    """Squared Mahalanobis distance to the training features' mean, the covariance shrunk
    towards its average variance."""
    mean = train.mean(axis=0)
    covariance = np.cov(train - mean, rowvar=False)
    target = np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    precision = np.linalg.inv((1 - shrinkage) * covariance + shrinkage * target)
    return lambda x: np.einsum("ij,jk,ik->i", x - mean, precision, x - mean)


def flagged(validation: np.ndarray, pets: np.ndarray, others: np.ndarray) -> dict:
    """Shares above the border that FAMILIAR_SHARE of the validation scores stay within."""
    border = np.quantile(validation, familiarity.FAMILIAR_SHARE)
    return {"pets_flagged": float(np.mean(pets > border)), "non_pets_flagged": float(np.mean(others > border))}


def measure(data_dir: Path | None) -> dict:
    start = time.perf_counter()
    data = scan(data_dir)
    guard = familiarity.fit_on(data)
    cache = FeatureCache(data, familiarity.GUARD_IMAGE_SIZE)
    train, validation, test = (cache.features(split)[0] for split in ("train", "validation", "test"))
    views = sample_views(NON_PETS)
    size = familiarity.GUARD_IMAGE_SIZE
    others = extract(np.stack([to_model_input(pixels, size) for _, pixels in views]), size)
    pet_scores, other_scores = guard.unfamiliarity(test), guard.unfamiliarity(others)
    per_image = {}
    for (name, _), score in zip(views, other_scores):
        per_image.setdefault(name.split("/")[0], []).append(round(float(score), 3))
    result = {
        "method": f"{guard.neighbours}-nearest-neighbour cosine distance (catdog.familiarity)",
        "image_size": list(size),
        "photos": {"train": len(train), "validation": len(validation), "pets": len(test), "non_pets": len(views)},
        "pets_flagged": float(np.mean(pet_scores > familiarity.BORDER)),
        "non_pets_flagged": float(np.mean(other_scores > familiarity.BORDER)),
        "validation_flagged": guard.statistics()["validation_flagged"],
        "non_pet_scores": per_image,
        "goals": GOALS,
        "compared": {
            f"mahalanobis shrinkage {shrinkage}": flagged(distance(validation), distance(test), distance(others))
            for shrinkage in SHRINKAGES
            for distance in [mahalanobis(train, shrinkage)]
        },
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }
    result["goals_met"] = result["pets_flagged"] <= GOALS["pets_flagged"] and result["non_pets_flagged"] >= GOALS["non_pets_flagged"]
    return result


def table(result: dict) -> str:
    photos = result["photos"]
    rows = [
        "| method | pet photos flagged (goal ≤ 5 %) | non-pet photos flagged (goal ≥ 80 %) |",
        "|---|---|---|",
        (
            f"| {result['method']} | {result['pets_flagged']:.1%} of {photos['pets']} | "
            f"{result['non_pets_flagged']:.1%} of {photos['non_pets']} |"
        ),
    ]
    for method, shares in result["compared"].items():
        rows.append(f"| {method} | {shares['pets_flagged']:.1%} | {shares['non_pets_flagged']:.1%} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic pets instead of cats_and_dogs_filtered")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "unfamiliar.json")
    args = parser.parse_args(argv)
    if args.smoke:
        import sys

        sys.path.insert(0, str(ROOT / "tests"))
        from support import make_dataset

        with tempfile.TemporaryDirectory() as folder:
            result = measure(make_dataset(Path(folder)))
    else:
        result = measure(download_default_dataset(actor=OWNER))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
