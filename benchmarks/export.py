"""The browser export (catdog.inference.web): sizes, accuracy beside the server's, and speed in Chromium.

    python -m benchmarks.export                                # trains a model4 --fast run first (a minute)
    python -m benchmarks.export --runs-dir DIR --run RUN_ID    # an existing run

For float32 and float16 weights: the model's and the offline page's sizes; test-split accuracy
of the exported graph (ONNX Runtime, the same graph and pixels the browser gets; tests/test_web.py
holds the browser to it within 1e-3) beside `catdog evaluate`'s; and in Chromium with a fake
camera playing test-split photos, the offline page's time from opening to its first answer and
its answers a second (the Predict page's live camera runs the same script and model). Writes
benchmarks/export.json.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from catdog import config
from catdog.data.images import open_image, to_model_input
from catdog.inference import familiarity, web
from catdog.inference.evaluation import evaluate
from catdog.inference.lineage import as_trained
from catdog.runs.record import Run

ROOT = Path(__file__).resolve().parent.parent
# The browser tests' helpers are the one way this project drives Chromium; reuse them.
from tests.helpers.browser import SLOW_MS, launch_chromium, write_y4m
from tests.helpers.support import catdog

RATE_WINDOW_S = 10


def trained_run(folder: Path) -> Run:
    result = catdog("train", "--arch", "model4", "--fast", "--runs-dir", str(folder), "--wait", timeout=1800)
    if result.returncode:
        sys.exit(result.stderr)
    return Run(next(path for path in folder.iterdir() if path.is_dir()))


def exported_accuracy(run: Run, exported: web.WebModel) -> dict:
    """Test-split accuracy and share flagged unfamiliar of the exported graph."""
    import onnxruntime

    session = onnxruntime.InferenceSession(exported.onnx, providers=["CPUExecutionProvider"])
    data = as_trained(run)[0]
    sizes = {name: tuple(size) for name, size in exported.meta["inputs"].items()}
    hits, flagged = [], []
    for name, label in data.files["test"]:
        seen = open_image(
            (data.root / name).read_bytes(), draft=max(*sizes.values(), familiarity.GUARD_IMAGE_SIZE)[::-1]
        )
        feeds = {key: to_model_input(seen, size)[None].astype(np.float32) for key, size in sizes.items()}
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        hits.append(int(outputs["probabilities"][0].argmax() == label))
        if "unfamiliarity" in outputs:
            flagged.append(bool(outputs["unfamiliarity"][0] > familiarity.BORDER))
    return {
        "test_accuracy": float(np.mean(hits)),
        "test_flagged_unfamiliar": float(np.mean(flagged)) if flagged else None,
        "n": len(hits),
    }


def chromium_speed(page_path: Path, video: Path) -> dict:
    """The offline page from file://, network off: seconds to the first answer, then answers a second."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, camera_video=video)
        page = browser.new_context(offline=True).new_page()
        page.set_default_timeout(SLOW_MS)
        start = time.perf_counter()
        page.goto(page_path.as_uri())
        page.get_by_role("button", name="Start the camera").click()
        page.wait_for_function("window.catdogView.stats.answers > 0")
        first = time.perf_counter() - start
        before = page.evaluate("window.catdogView.stats.answers")
        page.wait_for_timeout(RATE_WINDOW_S * 1000)
        rate = (page.evaluate("window.catdogView.stats.answers") - before) / RATE_WINDOW_S
        browser.close()
    return {"open_to_first_answer_s": round(first, 2), "answers_per_second": round(rate, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir")
    parser.add_argument("--run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "export.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        run = Run(Path(args.runs_dir) / args.run) if args.run else trained_run(scratch / "runs")
        data = as_trained(run)[0]
        photos = [(data.root / name).read_bytes() for name, _ in data.files["test"][:6]]
        video = write_y4m(photos, scratch / "camera.y4m")
        server = evaluate(run)
        results = {
            "run": run.id,
            "architecture": run.config.get("arch"),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "server_test_accuracy": server.test_accuracy,
            "precisions": {},
        }
        for precision in config.WEB_PRECISIONS:
            exported = web.export(run, precision)
            (page,) = web.write(run, scratch / f"{precision}.html", "html", precision)
            results["precisions"][precision] = {
                "onnx_mb": round(len(exported.onnx) / 1e6, 2),
                "html_mb": round(page.stat().st_size / 1e6, 2),
                **exported_accuracy(run, exported),
                **chromium_speed(page, video),
            }
            print(precision, results["precisions"][precision], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
