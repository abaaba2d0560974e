"""The command line, run as a user runs it: a subprocess, JSON on stdout, one-line errors."""

import json

import corpus
from support import catdog, synthetic_image


def test_data_json_reports_classes_splits_and_skipped(tiny_data, tmp_path):
    (tiny_data / "train" / "cats" / "notes.txt").write_text("not an image")
    try:
        result = catdog("data", "--data-dir", str(tiny_data), "--json")
    finally:
        (tiny_data / "train" / "cats" / "notes.txt").unlink()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["classes"] == ["cats", "dogs"]
    assert report["splits"]["train"] == {"cats": 12, "dogs": 12}
    assert report["splits"]["validation"] == {"cats": 8, "dogs": 8}
    assert report["splits"]["test"] == {"cats": 2, "dogs": 2}
    assert report["skipped"] == [{"file": "train/cats/notes.txt", "reason": "not an image: a text file"}]


def test_data_with_a_missing_folder_is_a_one_line_error(tmp_path):
    result = catdog("data", "--data-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_archs_json_lists_the_registry():
    result = catdog("archs", "--json")
    assert result.returncode == 0, result.stderr
    names = [arch["name"] for arch in json.loads(result.stdout)]
    assert names == ["model1", "model2", "model3", "model4", "model4-finetune"]


def test_train_wait_runs_list_predict_and_evaluate(trained_run_dir, tiny_data, tmp_path):
    listed = json.loads(catdog("runs", "--runs-dir", str(trained_run_dir), "--json").stdout)
    [run] = listed
    assert run["arch"] == "model1" and run["status"] == "finished" and run["epochs"] == 2

    cat = tmp_path / "my cat é.JPG"
    synthetic_image(0, 99).save(cat, format="JPEG")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = catdog("predict", "--run", run["id"], "--runs-dir", str(trained_run_dir), str(cat), str(notes))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    good, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert good["file"] == str(cat) and good["label"] in ("cats", "dogs")
    assert abs(sum(good["probabilities"].values()) - 1) < 1e-4
    assert bad == {"file": str(notes), "error": "not an image: a text file"}

    evaluation = json.loads(catdog("evaluate", "--run", run["id"], "--runs-dir", str(trained_run_dir), "--json").stdout)
    assert evaluation["n"] == 4 and evaluation["classes"] == ["cats", "dogs"]
    assert sum(map(sum, evaluation["confusion_matrix"])) == 4
    assert 0 <= evaluation["test_accuracy"] <= 1


def test_predict_names_every_bad_file_in_one_json_line(trained_run_dir, tmp_path):
    run_id = json.loads(catdog("runs", "--runs-dir", str(trained_run_dir), "--json").stdout)[0]["id"]
    expected = {}
    for key, bad in corpus.BAD.items():
        path = tmp_path / f"{key}.jpg"
        path.write_bytes(bad.make())
        expected[str(path)] = bad.words
    expected[str(tmp_path / "missing.jpg")] = ("no such file",)
    expected[str(tmp_path)] = ("is a directory",)
    result = catdog("predict", "--run", run_id, "--runs-dir", str(trained_run_dir), *expected)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [answer["file"] for answer in answers] == list(expected)
    for answer in answers:
        assert "label" not in answer
        assert all(word in answer["error"].lower() for word in expected[answer["file"]]), answer


def test_evaluate_with_flip_tta_says_so(trained_run_dir):
    run_id = json.loads(catdog("runs", "--runs-dir", str(trained_run_dir), "--json").stdout)[0]["id"]
    result = catdog("evaluate", "--run", run_id, "--runs-dir", str(trained_run_dir), "--flip-tta", "--json")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert evaluation["flip_average"] is True and evaluation["n"] == 4


def test_train_wait_prints_one_json_line_and_fails_for_a_failed_run(tmp_path, tiny_data):
    single = tmp_path / "one-class" / "cats"
    single.mkdir(parents=True)
    synthetic_image(0, 1).save(single / "a.jpg")
    result = catdog("train", "--arch", "model1", "--epochs", "1", "--data-dir", str(single.parent),
                    "--runs-dir", str(tmp_path / "runs"), "--wait")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and "two class folders" in summary["error"]


def test_cancel_of_an_unknown_run_is_a_clear_error(tmp_path):
    result = catdog("cancel", "nope", "--runs-dir", str(tmp_path))
    assert result.returncode == 2 and "no run 'nope'" in result.stderr
