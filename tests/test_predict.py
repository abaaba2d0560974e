"""Prediction, held-out evaluation and Grad-CAM on a really trained run."""

import numpy as np
import pytest
from support import synthetic_image

from catdog.data import scan
from catdog.explain import grad_cam, overlay
from catdog.predict import class_names, evaluate, load_model, predict
from catdog.runs import RunError, RunStore


@pytest.fixture
def run(trained_run_dir):
    return RunStore(trained_run_dir).runs()[0]


def test_predict_returns_probabilities_for_any_image_size(run):
    for size in [(1, 1), (640, 20), (300, 200)]:
        probabilities = predict(run, np.asarray(synthetic_image(1, 5, size=size)))
        assert list(probabilities) == ["cats", "dogs"]
        assert abs(sum(probabilities.values()) - 1) < 1e-5


def test_evaluate_scores_a_test_split_disjoint_from_training(run, tiny_data):
    result = evaluate(run)
    data = scan(tiny_data)
    seen = {name for split in ("train", "validation") for name, _ in data.files[split]}
    tested = {image["file"] for image in result["images"]}
    assert tested and not tested & seen
    assert result["n"] == len(tested) == sum(map(sum, result["confusion_matrix"]))
    correct = sum(image["correct"] for image in result["images"])
    assert result["test_accuracy"] == correct / result["n"]
    assert evaluate(run) == result


def test_flip_tta_averages_the_photo_and_its_mirror(run):
    photo = np.asarray(synthetic_image(1, 8, size=(90, 60)))
    plain, mirrored = predict(run, photo), predict(run, photo[:, ::-1])
    averaged = predict(run, photo, flip_average=True)
    for name in averaged:
        assert averaged[name] == pytest.approx((plain[name] + mirrored[name]) / 2, abs=1e-5)


def test_flip_tta_evaluation_is_kept_apart_from_the_plain_one(run):
    plain, flipped = evaluate(run), evaluate(run, flip_average=True)
    assert plain["flip_average"] is False and flipped["flip_average"] is True
    assert (run.path / "evaluation.json").is_file() and (run.path / "evaluation-flip.json").is_file()
    assert evaluate(run) == plain and evaluate(run, flip_average=True) == flipped


def test_models_load_with_safe_mode_and_are_cached(run):
    assert load_model(run) is load_model(run)
    assert class_names(run) == ["cats", "dogs"]


def test_a_model_with_python_code_in_it_is_refused(tmp_path):
    """A Lambda layer would run arbitrary code on load: safe_mode must refuse it."""
    import keras

    from catdog.runs import Run

    inputs = keras.Input((4,))
    tampered = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    run = Run(tmp_path / "tampered")
    run.path.mkdir()
    tampered.save(run.model_path)
    with pytest.raises(ValueError, match="(?i)lambda"):
        load_model(run)


def test_a_run_without_a_model_is_a_clear_error(tmp_path):
    from catdog.runs import Run

    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no saved model"):
        load_model(Run(tmp_path / "empty"))


def test_grad_cam_gives_a_normalised_map_and_an_overlay_of_the_photo_size(run):
    photo = np.asarray(synthetic_image(0, 3, size=(200, 120)))
    from catdog.images import to_model_input

    heat = grad_cam(load_model(run), to_model_input(photo), 0)
    assert heat.ndim == 2 and heat.min() >= 0 and heat.max() <= 1
    assert overlay(photo, heat).shape == photo.shape
