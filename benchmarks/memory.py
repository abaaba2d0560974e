"""Peak memory of `catdog predict` on issue 19's hostile upload: a ~7 MB zip of 32 16-bit PNGs.

Trains a model1 run on a synthetic folder, then answers two zips, each with the catdog found in
--code (default: this checkout; point it at an older export to measure before a change):
32 PNGs of 9450 px (89 MP, just under the pixel limit, 170 MiB each to decode) and 32 of
10 950 px (the 120 MP the limit used to allow). The peak resident memory is sampled from outside
the process (tests/helpers/support.peak_rss), which is killed past --ceiling. Writes benchmarks/memory.json.

    python -m benchmarks.memory --label after
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from tests.helpers.corpus import wide_png_zip
from tests.helpers.support import make_dataset, peak_rss, train_model1

ZIPS = {"32 x 9450 px 16-bit PNG": [9450] * 32, "32 x 10950 px 16-bit PNG": [10950] * 32}


def measure(code: Path, runs: Path, album: Path, ceiling: int) -> dict:
    run_id = json.loads(
        subprocess.run(
            [sys.executable, "-m", "catdog", "runs", "--runs-dir", str(runs), "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )[0]["id"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.monotonic()
    peak, result = peak_rss(
        [sys.executable, "-m", "catdog", "predict", "--run", run_id, "--runs-dir", str(runs), str(album)],
        ceiling=ceiling,
        timeout=1200,
        cwd=code,
        env=env,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {
        "zip_mb": round(album.stat().st_size / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20),
        "killed_past_ceiling": peak > ceiling,
        "rows": len(rows),
        "answered": sum("label" in row for row in rows),
        "refused": sum("error" in row for row in rows),
        "seconds": round(time.monotonic() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="the key these figures are kept under, e.g. before, after")
    parser.add_argument("--code", type=Path, default=ROOT, help="a folder holding the catdog package to measure")
    parser.add_argument("--ceiling-gib", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "memory.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        runs = train_model1(scratch / "runs", make_dataset(scratch / "data"), 1, scratch / "cache")
        figures = {}
        for name, sides in ZIPS.items():
            album = scratch / "album.zip"
            album.write_bytes(wide_png_zip(sides))
            figures[name] = measure(args.code.resolve(), runs, album, int(args.ceiling_gib * 2**30))
            print(name, figures[name], flush=True)
    results[args.label] = {"ceiling_gib": args.ceiling_gib, **figures}
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
