"""Prediction, held-out evaluation, Grad-CAM and TFLite export on a really trained run."""

import io
import json
import logging
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

import catdog.inference.evaluation as evaluation_module
from catdog.data.images import ImageError, load_image
from catdog.data.scan import scan
from catdog.inference.answers import analyse_photo, class_names, input_size, predict
from catdog.inference.batches import answer_photos
from catdog.inference.data_map import data_map, pca_plane
from catdog.inference.evaluation import Evaluation, evaluate
from catdog.inference.gradcam import grad_cam, overlay
from catdog.inference.loading import load_model, model_version
from catdog.inference.tflite import export_tflite
from catdog.inference.top_losses import top_losses
from catdog.runs.record import Run
from catdog.runs.states import RunError
from catdog.runs.store import RunStore
from tests.helpers.support import MADE_FROM_MODEL, catdog, synthetic_image


@pytest.fixture
def run(trained_run_dir):
    return RunStore(trained_run_dir).runs()[0]


@pytest.fixture
def fresh_run(run, tmp_path):
    """A copy of the trained run with nothing made from its model yet: no evaluation, photo scores or TFLite."""
    target = tmp_path / run.id
    shutil.copytree(run.path, target, ignore=MADE_FROM_MODEL)
    return Run(target)


def at_once(count: int, call):
    """call() from `count` threads released together, as sessions opening a page at the same time."""
    barrier = threading.Barrier(count)

    def task():
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return [future.result() for future in [pool.submit(task) for _ in range(count)]]


def replace_model(run: Run, model: keras.Model) -> None:
    """Saves another model over the run's the way training does: a complete file renamed into place."""
    partial = run.path / "partial.keras"
    model.save(partial)
    os.replace(partial, run.model_path)


def fifty_fifty_model(size: tuple[int, int]) -> keras.Model:
    """Answers exactly 50:50 for every photo, which tells its scores apart from a trained model's."""
    inputs = keras.Input((*size, 3))
    logits = keras.layers.Dense(2, kernel_initializer="zeros")(keras.layers.GlobalAveragePooling2D()(inputs))
    return keras.Model(inputs, logits)


def jpeg(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def test_predict_returns_probabilities_for_any_image_size(run):
    for size in [(1, 1), (640, 20), (300, 200)]:
        probabilities = predict(run, np.asarray(synthetic_image(1, 5, size=size)))
        assert list(probabilities) == ["cats", "dogs"]
        assert abs(sum(probabilities.values()) - 1) < 1e-5


def test_analyse_photo_answers_and_explains_a_photo_in_one_call(run):
    photo = synthetic_image(0, 21, size=(200, 120))
    result = analyse_photo(run, jpeg(photo))
    assert list(result.probabilities) == ["cats", "dogs"]
    assert result.probabilities == pytest.approx(predict(run, load_image(jpeg(photo))), abs=1e-6)
    assert result.label == max(result.probabilities, key=result.probabilities.get)
    assert result.confidence == result.probabilities[result.label] >= 0.5
    assert result.photo.shape == (120, 200, 3) and result.grad_cam.shape == result.photo.shape
    assert result.pixels.shape == (*input_size(load_model(run)), 3)
    with pytest.raises(ImageError, match="not an image"):
        analyse_photo(run, b"hello")


def test_evaluate_scores_a_test_split_disjoint_from_training(run, tiny_data):
    result = evaluate(run)
    data = scan(tiny_data)
    seen = {name for split in ("train", "validation") for name, _ in data.files[split]}
    tested = {image.file for image in result.images}
    assert tested and not tested & seen
    assert result.n == len(tested) == sum(map(sum, result.confusion_matrix))
    correct = sum(image.correct for image in result.images)
    assert result.test_accuracy == correct / result.n
    assert evaluate(run) == result


def test_per_class_scores_and_confident_mistakes_follow_the_answers(run):
    result = evaluate(run)
    for name, scores in result.per_class.items():
        mine = [image for image in result.images if image.label == name]
        called = [image for image in result.images if image.predicted == name]
        assert scores.support == len(mine)
        assert scores.recall == sum(image.correct for image in mine) / len(mine)
        if called:
            assert scores.precision == sum(image.correct for image in called) / len(called)
        if scores.precision and scores.recall:
            assert scores.f1 == pytest.approx(2 / (1 / scores.precision + 1 / scores.recall))
    mistakes = result.confident_mistakes(3)
    assert mistakes == sorted(mistakes, key=lambda image: -image.confidence)
    assert len(mistakes) == min(3, sum(not image.correct for image in result.images))
    assert all(not image.correct for image in mistakes)


def test_per_class_scores_of_three_classes_from_a_known_confusion_matrix():
    # Rows: true class; columns: the answer. birds: 4 of 5 recognised, and 4 of the 6 called birds are.
    matrix = ((4, 1, 0), (2, 3, 0), (0, 0, 0))
    result = Evaluation("r", False, ("birds", "cats", "dogs"), matrix, (), "/data", 1)
    birds, cats, dogs = result.per_class.values()
    assert (birds.recall, birds.precision, birds.support) == (0.8, 4 / 6, 5)
    assert birds.f1 == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))
    assert (cats.recall, cats.precision, cats.f1, cats.support) == (0.6, 0.75, pytest.approx(2 / 3), 5)
    assert (dogs.recall, dogs.precision, dogs.f1, dogs.support) == (None, None, None, 0)


def test_three_classes_have_all_four_scores_in_evaluate_json(three_class_run_dir):
    run = RunStore(three_class_run_dir).runs()[0]
    result = evaluate(run)
    assert len(result.classes) == 3 and len(result.confusion_matrix) == 3
    printed = catdog("evaluate", "--run", run.id, "--runs-dir", str(three_class_run_dir), "--json")
    assert printed.returncode == 0, printed.stderr
    evaluation = json.loads(printed.stdout)
    assert list(evaluation["per_class"]) == evaluation["classes"] == list(result.classes)
    for name, scores in evaluation["per_class"].items():
        assert scores == pytest.approx(vars(result.per_class[name]))
        assert set(scores) == {"recall", "precision", "f1", "support"} and scores["support"] > 0
    assert sum(scores["support"] for scores in evaluation["per_class"].values()) == evaluation["n"]


def test_pca_plane_finds_the_directions_of_largest_variation():
    rng = np.random.default_rng(0)
    along = np.zeros(16)
    along[:2] = 1 / np.sqrt(2)
    points = 5 + rng.normal(0, 10, (300, 1)) * along + rng.normal(0, 0.1, (300, 16))
    mean, axes, explained = pca_plane(points)
    assert np.allclose(mean, points.mean(axis=0))
    assert abs(axes[0] @ along) == pytest.approx(1, abs=1e-3) and abs(axes[1] @ along) < 0.05
    assert explained[0] > 0.95 and explained[0] + explained[1] <= 1


def test_the_map_places_every_test_and_training_photo_with_the_runs_answers(run, tiny_data, backbone_weights):
    result = data_map(run)
    data = scan(tiny_data)
    assert [(photo.file, split) for photo, split in zip(result.photos, result.splits)] == [
        (name, split) for split in ("test", "train") for name, _ in data.files[split]
    ]
    assert result.photos[: evaluate(run).n] == evaluate(run).images
    # The training answers are the per-photo scores top losses keep: one file, no second evaluation.
    suspects = {s.file: (s.predicted, s.confidence) for s in top_losses(run, data, len(data.files["train"]))}
    assert {
        p.file: (p.predicted, p.confidence) for p, split in zip(result.photos, result.splits) if split == "train"
    } == suspects
    assert run.photo_scores_path.is_file() and not list(run.path.glob("evaluation-train*"))
    assert result.xy.shape == (len(result.photos), 2) and np.isfinite(result.xy).all()
    assert len(result.thumbnails) == len(result.photos)
    assert all(url.startswith("data:image/jpeg;base64,") for url in result.thumbnails)
    assert data_map(run) is result, "made once per model version"
    # Warm discs and cool bars differ most in what MobileNetV2 sees: the first axis parts them.
    first = {
        label: result.xy[[i for i, p in enumerate(result.photos) if p.label == label], 0] for label in ("cats", "dogs")
    }
    assert abs(first["cats"].mean() - first["dogs"].mean()) > 2 * max(first["cats"].std(), first["dogs"].std())


def test_the_saved_evaluation_reads_back_equal(fresh_run):
    result = evaluate(fresh_run, flip_average=True)
    saved = json.loads((fresh_run.path / "evaluation-flip.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    assert Evaluation.from_dict(saved) == result


def test_flip_tta_averages_the_photo_and_its_mirror(run):
    photo = np.asarray(synthetic_image(1, 8, size=(90, 60)))
    plain, mirrored = predict(run, photo), predict(run, photo[:, ::-1])
    averaged = predict(run, photo, flip_average=True)
    for name in averaged:
        assert averaged[name] == pytest.approx((plain[name] + mirrored[name]) / 2, abs=1e-5)


def test_flip_tta_evaluation_is_kept_apart_from_the_plain_one(run):
    plain, flipped = evaluate(run), evaluate(run, flip_average=True)
    assert plain.flip_average is False and flipped.flip_average is True
    assert (run.path / "evaluation.json").is_file() and (run.path / "evaluation-flip.json").is_file()
    assert evaluate(run) == plain and evaluate(run, flip_average=True) == flipped


def test_models_load_with_safe_mode_and_are_cached(run):
    assert load_model(run) is load_model(run)
    assert class_names(run) == ["cats", "dogs"]


def test_a_model_with_python_code_in_it_is_refused(tmp_path):
    """A Lambda layer would run arbitrary code on load: safe_mode must refuse it."""
    import keras

    from catdog.runs.record import Run

    inputs = keras.Input((4,))
    tampered = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    run = Run(tmp_path / "tampered")
    run.path.mkdir()
    tampered.save(run.model_path)
    with pytest.raises(ValueError, match="(?i)lambda"):
        load_model(run)


def test_a_run_without_a_model_is_a_clear_error(tmp_path):
    from catdog.runs.record import Run

    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no saved model"):
        load_model(Run(tmp_path / "empty"))


def test_grad_cam_gives_a_normalised_map_and_an_overlay_of_the_photo_size(run):
    photo = np.asarray(synthetic_image(0, 3, size=(200, 120)))
    from catdog.data.images import to_model_input

    heat = grad_cam(load_model(run), to_model_input(photo), 0)
    assert heat.ndim == 2 and heat.min() >= 0 and heat.max() <= 1
    assert overlay(photo, heat).shape == photo.shape


def test_sessions_opening_a_new_model_at_once_load_it_once(fresh_run):
    models = at_once(4, lambda: load_model(fresh_run))
    assert all(model is models[0] for model in models)


def test_sessions_asking_for_a_new_evaluation_at_once_wait_for_one_scoring(fresh_run, caplog):
    caplog.set_level(logging.INFO, logger="catdog.inference.evaluation")
    results = at_once(4, lambda: evaluate(fresh_run))
    assert all(result is results[0] for result in results)
    assert len([r for r in caplog.records if "scored" in r.getMessage()]) == 1
    assert evaluate(fresh_run) is results[0]


@pytest.mark.parametrize("moment", ["as_trained", "probabilities"])
def test_an_evaluation_records_the_model_version_it_scored(run, fresh_run, monkeypatch, moment):
    """Training may save a better model at any moment of an evaluation, here while reading the
    test split (before the copy's model is first loaded) or while scoring it (after)."""
    newer = fifty_fifty_model(input_size(load_model(run)))
    real = getattr(evaluation_module, moment)

    def then_training_saves_a_newer_model(*args, **kwargs):
        monkeypatch.setattr(evaluation_module, moment, real)
        result = real(*args, **kwargs)
        replace_model(fresh_run, newer)
        return result

    monkeypatch.setattr(evaluation_module, moment, then_training_saves_a_newer_model)
    first, latest = evaluate(fresh_run), evaluate(fresh_run)
    newer_answers = lambda result: {image.confidence for image in result.images} == {0.5}
    assert newer_answers(first) == (first.model_mtime_ns == model_version(fresh_run)), "answers and version agree"
    assert latest.model_mtime_ns == model_version(fresh_run)
    assert newer_answers(latest)
    assert Evaluation.load(fresh_run.path / "evaluation.json") == latest


def test_a_class_without_test_photos_has_no_scores_and_nothing_breaks(lopsided_run_dir):
    run = RunStore(lopsided_run_dir).runs()[0]
    result = evaluate(run)
    dogs, cats = result.per_class["dogs"], result.per_class["cats"]
    assert dogs.support == 0 and dogs.recall is None and dogs.f1 is None
    assert cats.support == result.n > 0 and cats.recall is not None
    assert json.loads(json.dumps(result.to_dict()))["per_class"]["dogs"]["recall"] is None

    printed = catdog("evaluate", "--run", run.id, "--runs-dir", str(lopsided_run_dir))
    assert printed.returncode == 0, printed.stderr
    [dogs_line] = [line for line in printed.stdout.splitlines() if line.strip().startswith("dogs")]
    assert "recall -" in dogs_line and "support 0" in dogs_line


def test_evaluate_json_keeps_its_keys_with_per_class_scores(run, trained_run_dir):
    result = catdog("evaluate", "--run", run.id, "--runs-dir", str(trained_run_dir), "--json")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert set(evaluation) == {
        "run",
        "flip_average",
        "test_accuracy",
        "n",
        "gone",
        "classes",
        "per_class",
        "confusion_matrix",
    }
    assert evaluation["gone"] == 0, "every test photo the run recorded is still there"
    assert list(evaluation["per_class"]) == evaluation["classes"] == ["cats", "dogs"]
    for scores in evaluation["per_class"].values():
        assert set(scores) == {"recall", "precision", "f1", "support"}
        assert all(scores[key] is None or 0 <= scores[key] <= 1 for key in ("recall", "precision", "f1"))
    assert sum(scores["support"] for scores in evaluation["per_class"].values()) == evaluation["n"]


def test_sessions_exporting_tflite_at_once_get_one_valid_conversion(fresh_run, caplog):
    import tensorflow as tf

    caplog.set_level(logging.INFO, logger="catdog.inference.tflite")
    first, second = at_once(2, lambda: export_tflite(fresh_run))
    assert first == second
    assert len([r for r in caplog.records if "converted" in r.getMessage()]) == 1
    interpreter = tf.lite.Interpreter(model_content=first)
    interpreter.allocate_tensors()
    assert tuple(interpreter.get_input_details()[0]["shape"][1:3]) == input_size(load_model(fresh_run))
    assert sorted(path.name for path in fresh_run.path.iterdir() if "tflite" in path.name) == ["model.tflite"]

    replace_model(fresh_run, fifty_fifty_model(input_size(load_model(fresh_run))))
    assert export_tflite(fresh_run) != first, "a newer model is converted anew"


def test_a_big_photo_gets_one_answer_on_its_own_and_in_a_table(run, backbone_weights):
    """The Predict page shows a photo's card beside the table's row (and the CLI's line): one
    answer and one unfamiliarity, though the table decodes a big JPEG at a fraction of its scale."""
    photo = jpeg(synthetic_image(1, 33, size=(1280, 960)))
    alone = analyse_photo(run, photo)
    (row,) = answer_photos(run, [("big.jpg", lambda: photo)])
    assert alone.probabilities == pytest.approx(row.probabilities, abs=1e-5)
    assert alone.unfamiliarity == pytest.approx(row.unfamiliarity, abs=1e-5)
    assert alone.photo.shape == (768, 1024, 3), "the card shows the photo as decoded for the eye"


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_text():
    """OWASP's CSV-injection rule: a file name starting with =, +, -, @, tab or CR opens as text."""
    import csv

    from catdog.inference.batches import PhotoAnswer, write_csv

    names = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1+1", "-2", "\tx", "\rx", "cat.jpg"]
    answers = [PhotoAnswer(name, {"cats": 1.0, "dogs": 0.0}, -0.5) for name in names]
    answers.append(PhotoAnswer("=evil.png", error="=1+1 is not an image"))
    out = io.StringIO()
    write_csv(answers, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [row["file"] for row in rows] == ["'" + name for name in names[:-1]] + ["cat.jpg", "'=evil.png"]
    assert rows[-1]["error"] == "'=1+1 is not an image"
    assert rows[0]["unfamiliarity"] == "-0.5", "a negative number stays a number"
