"""The benchmarks' smoke modes, so the hand-run benchmarks keep working."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from catdog.config import IMAGE_SIDES
from catdog.runs.lessons import QUICK
from catdog.settings import LESSON_SEEDS
from tests.helpers.support import ROOT

HIRES = IMAGE_SIDES[-1]


def run_smoke(module: str, out: Path, timeout: float, *args: str) -> tuple[dict, str]:
    """Runs `python -m MODULE --smoke ARGS`; returns its JSON results and its printed table."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_smoke_benchmark_writes_every_figure(tmp_path, backbone_weights):
    results, table = run_smoke("benchmarks.speed", tmp_path / "results.json", timeout=900)
    for key in (
        "reference_model4",
        "catdog_model4",
        "catdog_model4_fast_cold",
        "catdog_model4_fast_warm",
        "catdog_model4_finetune_fast",
        f"catdog_model4_fast_{HIRES}",
    ):
        figures = results[key]
        # A head epoch on the smoke set's cached features can take under a millisecond.
        assert (
            figures["epochs_run"] == len(figures["seconds_per_epoch_each"]) >= 1 and figures["seconds_per_epoch"] >= 0
        )
    assert results["predict_12mp_jpeg"]["p50_ms"] > 0 and results["preview_8_variants"]["p95_ms"] > 0
    assert 0 <= results["test_accuracy"]["model4_fast"]["flip_tta"] <= 1
    assert 0 <= results["test_accuracy"][f"model4_fast_{HIRES}"]["plain"] <= 1
    assert "speed-up to target" in table
    for key in ("cli_fast_cold", "cli_fast_warm"):
        figures = results[key]
        assert figures["wall_s"] > 0 and len(figures["load_average"]) == 3
        assert (
            sum(figures["breakdown_s"].values()) - figures["breakdown_s"]["features_of_which"]
            <= figures["wall_s"] + 0.1
        )
    assert results["first_visit"]["ready_s"] >= results["first_visit"]["server_started_s"] > 0
    assert {"cli_fast_cold_wall_s", "cli_fast_warm_wall_s", "first_visit_ready_s", "predict_12mp_jpeg_p50_ms"} <= set(
        results["goals"]
    )
    assert "goal cli_fast_cold_wall_s" in table
    assert "held_out_test_accuracy" in results["goals"]


def test_smoke_small_photos_and_limits_report_each_size_and_the_floor(tmp_path, backbone_weights):
    results, table = run_smoke("benchmarks.speed", tmp_path / "results.json", 600, "--only", "small_photos", "limits")
    sizes = results["small_photos"]["sizes"]
    copies = results["small_photos"]["with_small_photo_copies"]
    assert list(sizes) == list(copies["sizes"]) == ["full", "200", "128"] and copies["setting"]["small_photo_copies"]
    for figures in [*sizes.values(), *copies["sizes"].values()]:
        assert len(figures["per_seed"]["plain"]) == len(figures["per_seed"]["mirror_average"]) == 2
        assert figures["plain_mean"] == round(sum(figures["per_seed"]["plain"]) / 2, 4)
    assert {"small_photos_full", "small_photos_200", "small_photos_128", "small_photos_128_mirror_not_lower"} <= set(
        results["goals"]
    )
    limits = results["limits"]
    small, large = (limits["sizes"][str(side)] for side in (160, HIRES))
    # Counted from the graph: a convolution's work grows with its output's pixels, so about as the photo's.
    ratio = large["multiply_adds_per_photo"] / small["multiply_adds_per_photo"]
    assert ratio == pytest.approx((HIRES / 160) ** 2, rel=0.05)
    assert 0 < large["floor_int8_s"] and 0 < large["floor_float32_s"]
    assert all(rate["one_core"] > 0 for rate in limits["gmac_per_s"].values())
    assert "multiply-adds a photo" in table and "test photos at 128 with small-photo copies" in table


def test_smoke_held_out_alone_reports_each_seed_and_its_goal(tmp_path, backbone_weights):
    results, table = run_smoke("benchmarks.speed", tmp_path / "results.json", 300, "--only", "held_out")
    held_out = results["held_out"]
    assert held_out["setting"]["image_size"] == HIRES and [s["seed"] for s in held_out["seeds"]] == [0, 1]
    tests = [s["test_accuracy"] for s in held_out["seeds"]]
    assert all(0 <= accuracy <= 1 for accuracy in tests) and held_out["test_accuracy_mean"] == round(sum(tests) / 2, 4)
    goal = results["goals"]["held_out_test_accuracy"]
    assert goal["goal"] == 0.99 and goal["met"] == (held_out["test_accuracy_mean"] >= 0.99)
    assert set(results["goals"]) == {"held_out_test_accuracy"} and "goal held_out_test_accuracy" in table


def test_smoke_responsiveness_measures_switches_and_slider_while_training(tmp_path):
    from tests.helpers.browser import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} to measure the dashboard in a browser")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    results, table = run_smoke("benchmarks.responsiveness", tmp_path / "responsiveness.json", timeout=300)
    for key in ("page_switch", "slider"):
        figures = results[key]
        assert figures["n"] == 3 and 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    assert results["page_switch"]["title_shown"]["p50_ms"] <= results["page_switch"]["p50_ms"]
    assert results["slider"]["copy_changed"]["max_ms"] <= results["slider"]["max_ms"]
    training = results["training"]
    assert training["arch"] == "model1" and training["kept_training"] and training["final_state"] == "cancelled"
    assert "slider step" in table


def test_smoke_classroom_every_session_gets_its_answer(tmp_path):
    results, table = run_smoke("benchmarks.classroom", tmp_path / "classroom.json", 600, "--sessions", "3")
    (measured,) = results.values()
    assert measured["sessions"] == 3 and measured["answered"] == 3 and measured["sessions_with_errors"] == 0
    assert [s["answer"] in ("cats", "dogs") for s in measured["per_session"]] == [True] * 3
    assert measured["page_ready_s"]["n"] == measured["answer_s"]["n"] == 3
    assert measured["server_cpu_s"] > 0 and measured["load_average_before"]
    assert "3 of 3 answered" in table


def test_smoke_lesson_times_the_lesson_and_reports_each_run(tmp_path):
    results, table = run_smoke("benchmarks.lesson", tmp_path / "lesson.json", 600)
    measured = results["augmentation quick"]
    assert measured["seconds"] > 0 and measured["cpus"] and measured["epochs"] == 1
    assert [run["label"] for run in measured["runs"]] == ["without augmentation", "with augmentation"] * LESSON_SEEDS
    assert [run["seed"] for run in measured["runs"]] == sorted(list(range(LESSON_SEEDS)) * 2)
    assert all(0 <= run["best_val_accuracy"] <= 1 and run["final_gap"] is not None for run in measured["runs"])
    assert measured["cpu_seconds"] > 0 and measured["load_average_after"] and "collapsed" in measured
    assert measured["conclusion"] and f"| augmentation quick | 1 epoch @ {QUICK['image_size']} px |" in table


def test_smoke_lesson_settings_measures_both_arms(tmp_path):
    results, table = run_smoke("benchmarks.lesson_settings", tmp_path / "unused.json", 600)
    (measured,) = results.values()
    assert set(measured["runs"]) == {"without augmentation", "with augmentation"}
    assert measured["summary"]["seeds_compared"] == 1 and "seeds with a narrower gap" in table


def test_smoke_unfamiliar_measures_pets_at_two_sizes_and_each_non_pet_group(tmp_path, backbone_weights):
    pytest.importorskip("skimage", reason="needs scikit-image: pip install -r benchmarks/requirements.txt")
    results, table = run_smoke("benchmarks.unfamiliar", tmp_path / "unfamiliar.json", timeout=600)
    groups = results["photos"]["non_pets"]
    assert groups["scikit-image samples"] == 23 * 5 and groups["faces (LFW)"] == 50 and results["photos"]["pets"] > 0
    for shares in (results["before"], *results["settings"]):
        for key in ("pets_flagged", "pets_flagged_thumbnail", "non_pets_flagged"):
            assert 0 <= shares[key] <= 1
        assert set(shares["non_pets_flagged_by_group"]) == set(groups)
    assert "| non-pets flagged |" in table and "| 160 px, seed 0 |" in table


def test_smoke_project_measures_a_file_and_its_round_trip(tmp_path, backbone_weights):
    results, table = run_smoke("benchmarks.project", tmp_path / "project.json", timeout=900)
    (row,) = results["workspaces"]
    assert row["photos"] == 44 and 0 < row["file_mb"] < 5 and row["export_s"] > 0 and row["open_s"] > 0
    assert "synthetic" in table
