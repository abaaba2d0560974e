"""The fast path without TensorFlow: MobileNetV2 on ONNX Runtime and the head in NumPy, both held to Keras."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from catdog.data.images import load_image
from catdog.fast import backbone, features, head
from catdog.inference.answers import predict, predict_photo
from catdog.models import model4
from catdog.runs.store import RunStore
from tests.helpers.corpus import head_weights_file
from tests.helpers.support import ROOT, catdog, make_dataset, synthetic_image


def _photos(count: int, size: tuple[int, int]) -> np.ndarray:
    return np.stack([np.asarray(synthetic_image(i % 2, i, size=size)) for i in range(count)])


@pytest.mark.parametrize("side", [96, 160, 224])
def test_onnx_runtime_features_match_keras(backbone_weights, side):
    pixels = _photos(6, (side, side))
    runtime = backbone.extractor((side, side))
    assert runtime is not None, "onnxruntime is in requirements.txt"
    keras_features = features.build_extractor((side, side)).predict(pixels.astype(np.float32), verbose=0)
    ours = runtime(pixels)
    assert ours.shape == keras_features.shape == (6, backbone.FEATURES)
    # float32 round-off of folded batch norms and another summation order; features reach 6.
    np.testing.assert_allclose(ours, keras_features, atol=1e-3)


def test_the_int8_backbone_runs_integer_convolutions_and_keeps_the_features(backbone_weights, tmp_path):
    """The features heads learn from: every convolution fused into an integer one by ONNX Runtime
    (else int8 would be slower, not faster), and close to float32's without being them."""
    import onnx
    import onnxruntime

    side = 160
    pixels = _photos(6, (side, side))
    exact, int8 = (backbone.extractor((side, side), quantized)(pixels) for quantized in (False, True))
    cosine = (exact * int8).sum(axis=1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.min() > 0.9 and not np.allclose(int8, exact, atol=1e-2)
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    graph = backbone.graph((side, side), int8=True)
    onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    convolutions = sum(node.op_type == "Conv" for node in graph.graph.node)
    optimized = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert convolutions == 52 and optimized.count("QLinearConv") == convolutions and "Conv" not in optimized


def test_extract_falls_back_to_keras_without_the_runtime(backbone_weights, monkeypatch):
    pixels = _photos(3, (96, 96))
    fast = features.extract(pixels, (96, 96))
    monkeypatch.setattr(backbone, "available", lambda: False)
    backbone.extractor.cache_clear()
    try:
        assert backbone.extractor((96, 96)) is None and backbone.extractor((96, 96), int8=True) is None
        np.testing.assert_allclose(features.extract(pixels, (96, 96)), fast, atol=1e-3)
        np.testing.assert_allclose(features.extract(pixels, (96, 96), int8=True), fast, atol=1e-3)
    finally:
        backbone.extractor.cache_clear()


def test_the_head_file_is_the_one_keras_saves_and_loads_safely(tmp_path):
    import keras

    trained = head.Head.initial(1280, 3, np.random.default_rng(0))
    trained.weights[1] += 0.1
    head.save(trained, tmp_path / "ours.keras")
    features.build_head_model(1280, 3).save(tmp_path / "keras.keras")
    with zipfile.ZipFile(tmp_path / "ours.keras") as ours, zipfile.ZipFile(tmp_path / "keras.keras") as theirs:
        assert sorted(ours.namelist()) == sorted(theirs.namelist())
        assert json.loads(ours.read("config.json")) == _without_object_ids(json.loads(theirs.read("config.json")))
    loaded = keras.models.load_model(tmp_path / "ours.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(1).normal(size=(5, 1280)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), trained.logits(x), atol=1e-5)


def _head_file(path, config: dict, weights: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


def test_a_head_file_s_weights_are_read_only_from_the_file_itself(tmp_path):
    """Read without Keras, so without Keras's checks: a dataset kept in another file (the server's
    secrets, say) or declared larger than stored (gigabytes of fill value) is refused."""
    config = head.keras_config(1280, 2)
    elsewhere = _head_file(
        tmp_path / "elsewhere.keras",
        config,
        head_weights_file(external={"layers/dense/vars/0": tmp_path / "secret"}),
    )
    with pytest.raises(head.NotAHead, match="layers/dense/vars/0"):
        head.load(elsewhere)
    huge = {"layers/dense/vars/0": (2**20, 64)}
    declared = _head_file(tmp_path / "declared.keras", head.keras_config(2**20, 2), head_weights_file(declared=huge))
    with pytest.raises(head.NotAHead, match="layers/dense/vars/0"):
        head.load(declared)
    assert head.load(_head_file(tmp_path / "plain.keras", config, head_weights_file())) is not None


def _without_object_ids(value):
    if isinstance(value, dict):
        return {k: _without_object_ids(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_without_object_ids(v) for v in value]
    return value


def test_numpy_adam_steps_match_keras_under_cosine_decay():
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(16, 1280)).astype(np.float32), rng.integers(0, 2, 16)
    ours = head.Head.initial(1280, 2, rng)
    model = features.build_head_model(1280, 2)
    for layer, kernel, bias in zip(model4.NAMES, ours.weights[::2], ours.weights[1::2]):
        model.get_layer(layer).set_weights([kernel, bias])
    # Four steps of a three-step decay: the last at rate zero, past the schedule's end.
    adam = head.Adam(ours.weights, 1e-3, decay_steps=3)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=3))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
        our_loss, _, gradients = head._loss_and_gradients(ours, x, y)
        assert our_loss == pytest.approx(float(loss), rel=1e-4)
        adam.apply(ours.weights, gradients)
    for ours_w, theirs in zip(ours.weights, model.get_weights()):
        np.testing.assert_allclose(ours_w, theirs, atol=1e-5)


def test_the_head_kept_is_the_last_epochs_not_the_best_on_validation():
    """The rate decays to zero, so the last epoch's head is the settled one (catdog.fast.head): the best
    of its epochs on the validation photos would be partly chosen on their noise."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(256, 32)).astype(np.float32), rng.integers(0, 2, 256)
    # Validation labels unrelated to the features: each epoch's score is noise around a half.
    x_val, y_val = rng.normal(size=(64, 32)).astype(np.float32), rng.integers(0, 2, 64)
    scores = []
    trained, accuracy = head.train(
        x,
        y,
        x_val,
        y_val,
        2,
        head.Schedule(epochs=8, batch_size=32, learning_rate=1e-2, seed=0),
        on_epoch=lambda epoch, seconds, metrics: scores.append(metrics["val_accuracy"]),
    )
    assert max(scores) > scores[-1], "the best epoch is not the last here"
    assert accuracy == pytest.approx(scores[-1], abs=1e-5)
    assert head.evaluate(trained, x_val, y_val)[1] == pytest.approx(accuracy)


def test_a_fast_run_trains_without_importing_tensorflow(backbone_weights, tiny_data, tmp_path):
    """Features cached or not, the fast path trains and saves its model without TensorFlow, and
    its model answers photos without it too."""
    store = RunStore(tmp_path / "runs")
    code = (
        "import sys; from catdog.training import process; from catdog.runs.store import Run; "
        "assert process.execute(Run(__import__('pathlib').Path(sys.argv[1]))); "
        "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'"
    )
    for _ in range(2):  # cold, then warm caches
        run = store.create(_fast_config(tiny_data))
        done = subprocess.run(
            [sys.executable, "-c", code, str(run.path)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert run.state == "finished" and len(run.history()) == 3
    photo = next((tiny_data / "train" / "cats").iterdir())
    predicting = (
        "import sys; from catdog.inference.batches import answer_photos; from catdog.runs.store import Run; "
        "photo = __import__('pathlib').Path(sys.argv[2]); "
        "print(list(answer_photos(Run(__import__('pathlib').Path(sys.argv[1])), [(photo.name, photo.read_bytes)]))); "
        "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'"
    )
    done = subprocess.run(
        [sys.executable, "-c", predicting, str(run.path), str(photo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "cats" in done.stdout, done.stderr[-2000:]


def _fast_config(data) -> dict:
    from catdog.settings import RunConfig

    return RunConfig("model4", fast=True, epochs=3, data_dir=str(data)).to_dict()


def test_train_wait_trains_in_its_own_process_and_predict_puts_the_backbone_back(backbone_weights, tiny_data, tmp_path):
    runs = str(tmp_path / "runs")
    result = catdog(
        "train",
        "--arch",
        "model4",
        "--fast",
        "--epochs",
        "2",
        "--data-dir",
        str(tiny_data),
        "--runs-dir",
        runs,
        "--wait",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    run = RunStore(runs).get(summary["run"])
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert not run.log_path.exists(), "no queue process trained it"
    assert run.model_path.stat().st_size < 1_000_000, "the head alone, without the frozen backbone"
    photo = tmp_path / "cat.jpg"
    synthetic_image(0, 7, size=(300, 200)).save(photo)
    answer = json.loads(catdog("predict", "--run", run.id, "--runs-dir", runs, str(photo)).stdout)
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-5
    # The head on ONNX Runtime's features answers as the whole Keras model4 does.
    image = load_image(photo.read_bytes())
    for flip in (False, True):
        keras_answer, fast_answer = predict(run, image, flip), predict_photo(run, photo.read_bytes(), flip)
        assert fast_answer == pytest.approx(keras_answer, abs=1e-4)


def test_a_fast_runs_training_photos_are_ranked_by_heads_that_never_saw_them(backbone_weights, tmp_path, monkeypatch):
    """A run's head learns its training photos by heart (on real photos a dog planted among the
    cats came out a cat), so top losses score each photo with heads trained on the other folds."""
    from catdog.data.scan import scan
    from catdog.inference import top_losses as ranking
    from catdog.training import process

    folder = make_dataset(tmp_path / "pets", per_split=(("train", 20), ("validation", 6)))
    synthetic_image(1, 999).save(folder / "train" / "cats" / "cats.planted.jpg")
    run = RunStore(tmp_path / "runs").create(_fast_config(folder))
    assert process.execute(run)
    in_sample = []
    monkeypatch.setattr(ranking, "probabilities", lambda *args, **kwargs: in_sample.append(args))
    top = ranking.top_losses(run, scan(folder), 3)
    assert top[0].file == "train/cats/cats.planted.jpg" and top[0].predicted == "dogs"
    assert in_sample == [], "the run's own model scored its training photos"
    assert len(ranking.top_losses(run, scan(folder), 100)) == len(run.data()["files"]["train"])


def test_small_photo_copies_are_thumbnails_of_the_training_photos_read_as_uploads(backbone_weights, tmp_path):
    """Each training photo once more, shrunk to a side drawn from the setting's range and saved as
    JPEG, then read as an upload is, its features from the int8 backbone (the photos' own stay
    float32, as answers are); cached like the photos' own features."""
    from catdog.data.images import as_small_upload, open_image, to_model_input
    from catdog.data.scan import scan
    from catdog.settings import SMALL_PHOTO_SIDES

    folder = make_dataset(tmp_path / "pets", per_split=(("train", 4), ("validation", 3)), size=(400, 300))
    data, size = scan(folder), (96, 96)
    cache = features.FeatureCache(data, size)
    own, own_labels = cache.features("train")
    both, labels = cache.features("train", small_copies=True)
    count = len(data.files["train"])
    assert both.shape == (2 * count, backbone.FEATURES) and np.array_equal(both[:count], own)
    np.testing.assert_allclose(own, features.extract(data.arrays("train", size=size)[0], size), atol=1e-5)
    assert np.array_equal(labels, np.tile(own_labels, 2))
    sides = np.random.default_rng(features.SMALL_COPY_SEED).integers(
        SMALL_PHOTO_SIDES[0], SMALL_PHOTO_SIDES[1] + 1, count
    )
    for i in (0, count - 1):
        name, side = data.files["train"][i][0], int(sides[i])
        thumbnail = open_image(as_small_upload(open_image((folder / name).read_bytes()), side))
        assert max(thumbnail.size) == side
        expected = features.extract(to_model_input(thumbnail, size)[None], size, int8=True)[0]
        assert np.allclose(both[count + i], expected, atol=1e-4)
        assert not np.allclose(both[count + i], own[i], atol=1e-3), "a copy is not its photo"
    cached = sorted(cache.root.iterdir())
    assert np.array_equal(cache.features("train", small_copies=True)[0], both)
    assert sorted(cache.root.iterdir()) == cached, "the copies' features were computed again"


def test_a_run_with_small_photo_copies_records_them_and_trains(backbone_weights, tiny_data, tmp_path):
    from catdog.settings import RunConfig

    runs = str(tmp_path / "runs")
    args = ("train", "--arch", "model4", "--fast", "--epochs", "2", "--small-photo-copies", "--wait")
    result = catdog(*args, "--data-dir", str(tiny_data), "--runs-dir", runs)
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunStore(runs).get(json.loads(result.stdout)["run"])
    assert run.state == "finished" and RunConfig.from_dict(run.config.to_dict()).small_photo_copies
    refused = catdog(
        "train", "--arch", "model4", "--small-photo-copies", "--data-dir", str(tiny_data), "--runs-dir", runs
    )
    assert refused.returncode != 0 and "small-photo copies are made on the fast path" in refused.stderr
