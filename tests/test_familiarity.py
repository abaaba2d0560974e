"""The unfamiliarity guard: known answers on synthetic features, then the real backbone on a trained run."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace

import numpy as np
import pytest

from catdog.inference import familiarity
from catdog.inference.answers import analyse_photo
from catdog.inference.familiarity import BORDER, Guard
from catdog.inference.loading import guard
from catdog.runs.record import Run
from catdog.runs.store import RunStore
from tests.helpers.support import ROOT, catdog, synthetic_image


def family(centre: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Features around a centre, non-negative like the backbone's pooled ReLU6 outputs."""
    return np.clip(centre + rng.normal(0, 0.5, (count, len(centre))), 0, 6).astype(np.float32)


def test_photos_like_the_two_trained_families_are_familiar_and_a_third_pattern_is_not():
    rng = np.random.default_rng(0)
    warm, cool, third = (rng.uniform(0, 4, 64) for _ in range(3))
    train = np.concatenate([family(warm, 200, rng), family(cool, 200, rng)])
    validation = np.concatenate([family(warm, 100, rng), family(cool, 100, rng)])
    guard = Guard.fit(train, validation)

    assert 0 < guard.statistics()["validation_flagged"] <= familiarity.FALSE_FLAG_SHARE
    new_pets = guard.unfamiliarity(np.concatenate([family(warm, 200, rng), family(cool, 200, rng)]))
    assert np.mean(new_pets > BORDER) < 0.1
    assert np.all(guard.unfamiliarity(family(third, 50, rng)) > 2 * BORDER)


def test_the_border_is_exceeded_by_new_draws_as_often_as_intended_on_a_known_distribution():
    """Scores drawn uniformly on [0, 1): a border b is exceeded with probability 1 - b exactly."""
    rng = np.random.default_rng(3)
    share = familiarity.FALSE_FLAG_SHARE
    assert familiarity.conformal_border(rng.random(200_000), share) == pytest.approx(1 - share, abs=1e-3)
    # Small calibration sets too: on average over many, new draws exceed the border at most `share`
    # of the time (199 scores: exactly share), where the plain quantile is exceeded more often.
    borders = np.array([familiarity.conformal_border(rng.random(199), share) for _ in range(4000)])
    quantiles = np.array([np.quantile(rng.random(199), 1 - share) for _ in range(4000)])
    assert np.mean(1 - borders) == pytest.approx(share, abs=0.0015)
    assert np.mean(1 - quantiles) > 1.3 * share
    assert familiarity.conformal_border(np.arange(10.0), share) == 9.0, "too few scores: the largest"


def test_the_guard_flags_the_intended_share_of_new_photos_from_the_trained_distribution():
    rng = np.random.default_rng(4)
    warm, cool = rng.uniform(0, 4, 64), rng.uniform(0, 4, 64)
    draw = lambda count: np.concatenate([family(warm, count, rng), family(cool, count, rng)])
    guard = Guard.fit(draw(1000), draw(1500))
    flagged = np.mean(guard.unfamiliarity(draw(10_000)) > BORDER)
    # 20 000 new photos: the standard error of a 1 % share is 0.07 points.
    assert flagged == pytest.approx(familiarity.FALSE_FLAG_SHARE, abs=0.003)


def test_the_guard_keeps_at_most_max_reference_training_photos(monkeypatch):
    monkeypatch.setattr(familiarity, "MAX_REFERENCE", 30)
    rng = np.random.default_rng(1)
    guard = Guard.fit(rng.uniform(0, 1, (100, 8)), rng.uniform(0, 1, (10, 8)))
    assert guard.reference.shape == (30, 8)
    assert np.allclose(np.linalg.norm(guard.reference, axis=1), 1, atol=1e-3)


def test_a_saved_guard_reads_back_and_another_version_is_made_again(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    guard = Guard.fit(rng.uniform(0, 1, (40, 8)), rng.uniform(0, 1, (10, 8)))
    guard.save(tmp_path / "familiarity.npz")
    loaded = Guard.load(tmp_path / "familiarity.npz")
    features = rng.uniform(0, 1, (5, 8))
    assert np.allclose(loaded.unfamiliarity(features), guard.unfamiliarity(features), rtol=2e-3)
    assert loaded.statistics() == guard.statistics()
    (tmp_path / "damaged.npz").write_bytes(b"PK\x03\x04 not really")
    assert Guard.load(tmp_path / "damaged.npz") is None
    monkeypatch.setattr(familiarity, "GUARD_VERSION", familiarity.GUARD_VERSION + 1)
    assert Guard.load(tmp_path / "familiarity.npz") is None


# --- the real backbone on a trained run ---------------------------------------------------------


def jpeg(label: int, seed: int) -> bytes:
    """A photo as a user uploads it: the data set's size and format."""
    out = io.BytesIO()
    synthetic_image(label, seed).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def run(trained_run_dir, backbone_weights):
    return RunStore(trained_run_dir).runs()[0]


@pytest.fixture
def unguarded_run(run, tmp_path):
    """A copy of the trained run as trained before the guard existed: no familiarity.npz."""
    target = tmp_path / run.id
    shutil.copytree(run.path, target, ignore=shutil.ignore_patterns("familiarity.npz"))
    return Run(target)


def test_training_saves_the_guard_and_a_third_pattern_is_called_unfamiliar(run):
    assert run.familiarity_path.is_file()
    pets = [analyse_photo(run, jpeg(i % 2, 3000 + i)) for i in range(4)]
    stranger = analyse_photo(run, jpeg(2, 3000))
    assert stranger.unfamiliar is True and stranger.unfamiliarity > 2 * BORDER
    assert max(pet.unfamiliarity for pet in pets) < stranger.unfamiliarity / 2
    assert stranger.label in ("cats", "dogs"), "the classifier still answers"


def test_a_run_trained_before_the_guard_gets_one_on_first_use_made_once(unguarded_run, monkeypatch):
    fits, real = [], familiarity.fit_on
    monkeypatch.setattr(familiarity, "fit_on", lambda *args, **kwargs: fits.append(1) or real(*args, **kwargs))
    barrier = threading.Barrier(3)

    def ask():
        barrier.wait()
        return familiarity.ensure(unguarded_run)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fits) == 1 and unguarded_run.familiarity_path.is_file()
    assert guard(unguarded_run) is guard(unguarded_run)


def test_without_a_guard_predictions_still_answer_and_say_so(unguarded_run, tmp_path):
    unguarded_run.write_config(replace(unguarded_run.config, data_dir=str(tmp_path / "gone")))
    result = analyse_photo(unguarded_run, jpeg(0, 5))
    assert result.unfamiliarity is None and result.unfamiliar is None and result.label in ("cats", "dogs")

    printed = catdog("predict", "--run", unguarded_run.id, "--runs-dir", str(tmp_path), str(tmp_path / "none.jpg"))
    assert "no unfamiliarity scores" in printed.stderr and "gone" in printed.stderr


def test_predict_csv_is_utf_8_whatever_the_console_s_code_page(run, trained_run_dir, tmp_path):
    """A Windows console or pipe writes in its code page (here cp1252, as a Western one): a photo
    named in another script failed the whole table."""
    (tmp_path / "猫.jpg").write_bytes(jpeg(1, 3003))
    base = ["predict", "--run", run.id, "--runs-dir", str(trained_run_dir), "--csv", str(tmp_path / "猫.jpg")]
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    table = subprocess.run(
        [sys.executable, "-m", "catdog", *base], cwd=ROOT, capture_output=True, env=env, timeout=300, check=False
    )
    assert table.returncode == 0, table.stderr.decode(errors="replace")[-2000:]
    header, row = table.stdout.decode("utf-8").split("\r\n")[:2]
    assert header.startswith("file,label") and row.startswith(f'"{tmp_path / "猫.jpg"}"')


def test_predict_json_lines_and_csv_carry_the_unfamiliarity(run, trained_run_dir, tmp_path):
    (tmp_path / "pet.jpg").write_bytes(jpeg(1, 3001))
    (tmp_path / "stripes.jpg").write_bytes(jpeg(2, 3002))
    (tmp_path / "notes.jpg").write_text("hello")
    files = [str(tmp_path / name) for name in ("pet.jpg", "stripes.jpg", "notes.jpg")]
    base = ("predict", "--run", run.id, "--runs-dir", str(trained_run_dir))

    lines = catdog(*base, *files)
    assert lines.returncode == 1, lines.stderr
    pet, stripes, notes = (json.loads(line) for line in lines.stdout.splitlines())
    assert stripes["unfamiliar"] is True and stripes["unfamiliarity"] > 2 * BORDER
    assert pet["unfamiliarity"] < stripes["unfamiliarity"] and isinstance(pet["unfamiliar"], bool)
    assert notes == {"file": files[2], "error": "not an image: a text file"}

    table = catdog(*base, "--csv", *files)
    assert table.returncode == 1, table.stderr
    assert table.stdout.splitlines()[0] == "file,label,confidence,unfamiliar,unfamiliarity,error"
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [row["file"] for row in rows] == files
    assert rows[1]["unfamiliar"] == "True" and rows[2]["error"] == "not an image: a text file"
    assert rows[2]["label"] == rows[2]["confidence"] == ""
