"""The benchmarks' smoke modes, so the hand-run benchmarks keep working."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT


def test_smoke_benchmark_writes_every_figure(tmp_path, backbone_weights):
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed", "--smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    for key in ("reference_model4", "catdog_model4", "catdog_model4_fast_cold", "catdog_model4_fast_warm",
                "catdog_model4_finetune_fast"):
        assert results[key]["epochs_run"] >= 1 and results[key]["seconds_per_epoch"] > 0
    assert results["predict_12mp_jpeg"]["p50_ms"] > 0 and results["preview_8_variants"]["p95_ms"] > 0
    assert 0 <= results["test_accuracy"]["model4_fast"]["flip_tta"] <= 1
    assert "speed-up to target" in result.stdout


def test_smoke_responsiveness_measures_switches_and_slider_while_training(tmp_path):
    from browser import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} to measure the dashboard in a browser")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    out = tmp_path / "responsiveness.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.responsiveness", "--smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    for key in ("page_switch", "slider"):
        figures = results[key]
        assert figures["n"] == 3 and 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    assert results["page_switch"]["title_shown"]["p50_ms"] <= results["page_switch"]["p50_ms"]
    assert results["slider"]["copy_changed"]["max_ms"] <= results["slider"]["max_ms"]
    training = results["training"]
    assert training["arch"] == "model1" and training["kept_training"] and training["final_state"] == "cancelled"
    assert "slider step" in result.stdout
