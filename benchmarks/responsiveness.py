"""Responsiveness while a model trains: page switches and augmentation-slider moves, in Chromium.

    python -m benchmarks.responsiveness           # real data, model4 training (a few minutes)
    python -m benchmarks.responsiveness --smoke   # tiny synthetic data, model1: keeps this script working

The acceptance criterion: while model4 trains, switching pages and moving an augmentation slider
each answer within 1 s. The script starts `streamlit run dashboard.py` on a free port with a
private runs and cache folder, submits a real run through RunStore (its own niced process, as the
Train page does), waits until it is in its training epochs, then drives Chromium:

- page switch: click a sidebar link, then time until the new page's title is visible and the app
  is idle again (Streamlit's `data-test-script-state="notRunning"` on the app, which is what
  hides the "Running…" status widget, and no spinner left);
- slider: focus the upper thumb of the rotation slider, press the right arrow (one 0.01 step,
  a new value every time, so nothing comes from Streamlit's caches), then time until the first
  augmented copy's image changes and the app is idle again.

Times are wall-clock in this process around the Playwright calls, so they include the browser
round trip; a first visit to every page and one slider move come first, unmeasured, because
they import TensorFlow and fill caches. Writes JSON (default benchmarks/responsiveness.json)
and prints a table.
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

from catdog.access import OWNER
from catdog.runs.record import PHASE_TRAIN
from catdog.runs.store import RunStore
from catdog.settings import RunConfig

ROOT = Path(__file__).resolve().parent.parent
# The browser tests' helpers are the one way this project drives the dashboard; reuse them.
from tests.helpers.browser import (
    CHROMIUM,
    IDLE,
    PAGE_TITLES,
    Dashboard,
    heading,
    launch_chromium,
    nav_link,
    new_page,
    settle,
)
from tests.helpers.support import make_dataset, wait_for

TARGET_MS = 1000
# The order a user tours the app in; each switch goes to the next page, round and round.
TOUR = ("Home", "Dataset", "Augmentation", "Train", "Predict")
# The rotation range slider's two thumbs are range inputs labelled "… — start" and "… — end".
ROTATION_END = '[data-testid="stSlider"] input[type="range"][aria-label^="Rotation range"][aria-label$="end"]'
VARIANT_IMAGE = '[data-testid="stImage"] img'


def percentiles(samples_ms: list[float]) -> dict:
    return {
        "n": len(samples_ms),
        "p50_ms": round(float(np.percentile(samples_ms, 50)), 1),
        "p95_ms": round(float(np.percentile(samples_ms, 95)), 1),
        "max_ms": round(max(samples_ms), 1),
        "samples_ms": [round(s, 1) for s in samples_ms],
    }


def switch_page(page, name: str, timeout_ms: float) -> tuple[float, float]:
    """Milliseconds from a click on a sidebar link until the page's title shows, and until it is idle."""
    from playwright.sync_api import expect

    start = time.perf_counter()
    nav_link(page, name).click()
    expect(heading(page, PAGE_TITLES[name])).to_be_visible(timeout=timeout_ms)
    shown = time.perf_counter()
    settle(page, timeout_ms)
    return (shown - start) * 1000, (time.perf_counter() - start) * 1000


def move_slider(page, timeout_ms: float) -> tuple[float, float]:
    """Milliseconds from one arrow-key step of the rotation slider until the first augmented copy
    changes, and until the app is idle (the training batch below redrawn too)."""
    thumb = page.locator(ROTATION_END)
    thumb.focus()
    first_copy = page.locator(VARIANT_IMAGE).nth(1)  # nth(0) is the original photo
    before = first_copy.get_attribute("src")
    start = time.perf_counter()
    thumb.press("ArrowRight")
    wait_for(
        lambda: first_copy.get_attribute("src") != before,
        timeout=timeout_ms / 1000,
        interval=0.01,
        message="the augmented copies to change",
    )
    shown = time.perf_counter()
    settle(page, timeout_ms)
    return (shown - start) * 1000, (time.perf_counter() - start) * 1000


def in_training_epoch(run, epoch: int) -> bool:
    progress = run.progress() or {}
    return progress.get("phase") == PHASE_TRAIN and progress.get("epoch", 0) >= epoch


def early_in_epoch(run) -> bool:
    """In the first third of an epoch's training batches; any time when epochs are a batch or two."""
    progress = run.progress() or {}
    batches = progress.get("batches", 0)
    return progress.get("phase") == PHASE_TRAIN and (batches < 3 or progress.get("batch", 0) <= batches // 3)


def training_state(run) -> dict:
    progress = run.progress() or {}
    return {
        "state": run.state,
        "epochs_done": len(run.history()),
        "epoch": progress.get("epoch"),
        "batch": progress.get("batch"),
        "batches": progress.get("batches"),
        "phase": progress.get("phase"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic data, model1, 3 samples each")
    parser.add_argument("--repeats", type=int, help="samples per measurement (default 10, smoke 3)")
    parser.add_argument("--epochs", type=int, help="epochs of the training run (default: more than the measurement)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "responsiveness.json")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    repeats = args.repeats or (3 if args.smoke else 10)
    work = Path(tempfile.mkdtemp(prefix="catdog-responsiveness-"))
    # The queue process that RunStore starts inherits these, so app and training share runs and caches.
    os.environ["CATDOG_RUNS_DIR"] = str(work / "runs")
    os.environ["CATDOG_CACHE_DIR"] = str(work / "cache")
    if args.smoke:
        data_dir = str(make_dataset(work / "data", per_split=(("train", 24), ("validation", 20))))
        os.environ["CATDOG_DATA_DIR"] = data_dir
        arch, epochs = "model1", args.epochs or 500
    else:
        data_dir, arch, epochs = None, "model4", args.epochs or 20
    env = {
        key: os.environ[key] for key in ("CATDOG_RUNS_DIR", "CATDOG_CACHE_DIR", "CATDOG_DATA_DIR") if key in os.environ
    }
    store = RunStore()
    timeout_ms = 120_000

    with Dashboard(env, work / "streamlit.log") as server:
        run = store.submit(RunConfig(arch, epochs=epochs, data_dir=data_dir).to_dict(), actor=OWNER)
        print(f"{arch} run {run.id}: waiting for its training epochs …", file=sys.stderr)
        # Epoch 2's batches: past the first epoch's graph tracing and validation, training at its steady pace.
        wait_for(
            lambda: in_training_epoch(run, 2) or run.state not in ("queued", "running"),
            timeout=900,
            interval=1,
            message="the run to train",
        )
        assert run.state == "running", f"the run did not start training: {run.status()}"
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = new_page(browser)
                page.goto(server.url)
                settle(page)
                # Unmeasured: first visits import TensorFlow, scan the data and fill caches.
                warm_up = {}
                for name in TOUR[1:] + TOUR[:1]:
                    warm_up[name] = round(switch_page(page, name, timeout_ms)[1], 1)
                switch_page(page, "Augmentation", timeout_ms)
                move_slider(page, timeout_ms)
                # Start with an epoch's training batches, not its validation pass, so both are measured against.
                wait_for(
                    lambda: early_in_epoch(run) or run.state != "running",
                    600,
                    interval=0.2,
                    message="the start of a training epoch",
                )
                print("measuring …", file=sys.stderr)

                before = training_state(run)
                switches: list[tuple[str, float, float]] = []
                current = "Augmentation"
                for _ in range(repeats):
                    current = TOUR[(TOUR.index(current) + 1) % len(TOUR)]
                    switches.append((current, *switch_page(page, current, timeout_ms)))
                switch_page(page, "Augmentation", timeout_ms)
                slider = [move_slider(page, timeout_ms) for _ in range(repeats)]
                after = training_state(run)
                page.wait_for_selector(IDLE)
                browser.close()
        finally:
            if run.state in ("queued", "running"):
                store.cancel(run.id, actor=OWNER)
            wait_for(lambda: run.state not in ("queued", "running"), timeout=120, message="the run to stop")

    per_page = {name: [idle for target, _, idle in switches if target == name] for name in TOUR}
    results = {
        "criterion": "while model4 trains, a page switch and an augmentation-slider step each answer within 1 s",
        "target_ms": TARGET_MS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "data": "synthetic (smoke)" if args.smoke else "cats_and_dogs_filtered",
        "training": {
            "arch": arch,
            "epochs_planned": epochs,
            "run": run.id,
            "before": before,
            "after": after,
            "batches_trained_while_measuring": batches_between(before, after),
            "kept_training": kept_training(before, after),
            "final_state": run.state,
        },
        "warm_up_ms": warm_up,
        "page_switch": {
            **percentiles([idle for _, _, idle in switches]),
            "title_shown": percentiles([shown for _, shown, _ in switches]),
            "per_page": {name: percentiles(samples) for name, samples in per_page.items() if samples},
        },
        "slider": {
            **percentiles([idle for _, idle in slider]),
            "copy_changed": percentiles([shown for shown, _ in slider]),
        },
        "method": (
            "wall clock around Playwright: click a sidebar link → page title visible and app idle "
            "(data-test-script-state=notRunning, no spinner); rotation slider ArrowRight → first augmented "
            "copy's img src changed and app idle"
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)


def batches_between(before: dict, after: dict) -> int:
    return (after["epoch"] - before["epoch"]) * after["batches"] + after["batch"] - before["batch"]


def kept_training(before: dict, after: dict) -> bool:
    """The run trained at least one more batch during the measurement (not only validation)."""
    position = lambda s: (s["epoch"] or 0, s["batch"] or 0)
    return after["state"] == "running" and position(after) > position(before)


def print_table(results: dict) -> None:
    rows = [("while training " + results["training"]["arch"], "n", "p50 ms", "p95 ms", "max ms", "≤ 1 s")]
    switch, slider = results["page_switch"], results["slider"]
    for name, r in (
        ("page switch, until idle", switch),
        ("  until the title shows", switch["title_shown"]),
        *((f"  to {k}, until idle", v) for k, v in switch["per_page"].items()),
        ("slider step, until idle", slider),
        ("  until a copy changes", slider["copy_changed"]),
    ):
        rows.append(
            (
                name,
                str(r["n"]),
                str(r["p50_ms"]),
                str(r["p95_ms"]),
                str(r["max_ms"]),
                "yes" if r["max_ms"] <= results["target_ms"] else "no",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    training = results["training"]
    print(
        f"training: {training['before']} → {training['after']}: "
        f"{training['batches_trained_while_measuring']} batches while measuring"
    )
    print(f"first visits (unmeasured warm-up, ms): {results['warm_up_ms']}")


if __name__ == "__main__":
    main()
