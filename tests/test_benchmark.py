"""The benchmark's smoke mode, so the hand-run benchmark keeps working."""

import json
import subprocess
import sys

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
