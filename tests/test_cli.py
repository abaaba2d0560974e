"""The command line, run as a user runs it: a subprocess, JSON on stdout, one-line errors."""

import argparse
import csv
import io
import json
import os
import pty
import subprocess
import sys

import pytest

import catdog as package
from catdog.cli import build_parser
from catdog.runs.store import RunStore
from catdog.settings import RunConfig
from tests.helpers import corpus
from tests.helpers.support import ROOT, catdog, make_dataset, peak_rss, synthetic_image


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error")]


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
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_archs_json_lists_the_registry_without_tensorflow_start_up_logs():
    result = catdog("archs", "--json")
    assert result.returncode == 0, result.stderr
    names = [arch["name"] for arch in json.loads(result.stdout)]
    assert names == ["model1", "model2", "model3", "model4", "model4-finetune"]
    assert result.stderr == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["train", "--help"],
        ["runs"],
        ["data", "--data-dir", "TINY"],
        ["cancel", "nope"],
        ["delete", "nope"],
        ["dataset", "list"],
        ["dataset", "restore", "nope"],
        ["experiments"],
        ["delete-experiment", "nope"],
        ["project", "export", "nothing.catdog"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_verbs_that_need_no_model_never_import_tensorflow(argv, tiny_data):
    argv = [str(tiny_data) if arg == "TINY" else arg for arg in argv]
    code = (
        "import sys\nfrom catdog.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]", result.stderr


def test_version_is_the_package_version():
    result = catdog("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"catdog {package.__version__}"


def test_every_option_has_help_and_settings_show_their_defaults():
    parser = build_parser()
    verbs = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for name, verb in verbs.choices.items():
        for action in verb._actions:
            assert action.help, f"{name} {action.dest} has no help"
    train_help = catdog("train", "--help").stdout
    for shown in ("(default: 32)", "(default: 160)", "(default: posts)", "(default: 5, or 20 with --fast)"):
        assert shown in " ".join(train_help.split()), shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "epochs must be between 1 and 500; got 0"),
        (["--fast"], "the fast path needs a frozen backbone; model1 has none"),
        (["--rotation", "0.3", "0.1"], "got (0.3, 0.1)"),
        (["--augmentation-preset", "heavy", "--zoom", "0.7"], "zoom must be between 0 and 0.5; got 0.7"),
        (["--fine-tune-epochs", "3"], "model1 does not fine-tune; got 3"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_value(args, message, tmp_path, tiny_data):
    result = catdog("train", "--arch", "model1", "--data-dir", str(tiny_data), "--runs-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert error_lines(result) == [f"error: {error_lines(result)[0].removeprefix('error: ')}"]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


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
    # A zip is read as one (see the next test), not refused as a photo.
    for key, bad in ((key, bad) for key, bad in corpus.BAD.items() if key != "zip"):
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


def test_predict_answers_each_photo_of_a_zip_and_each_entry_left_out(trained_run_dir, tmp_path):
    run_id = json.loads(catdog("runs", "--runs-dir", str(trained_run_dir), "--json").stdout)[0]["id"]
    album = tmp_path / "album.zip"
    album.write_bytes(
        corpus.make_zip(
            {
                "pets/cat.jpg": corpus.photo(0, 1),
                "pets/dog.png": corpus.encode(synthetic_image(1, 2), "PNG"),
                "pets/notes.txt": b"hello",
                "pets/more.zip": corpus.zip_bytes(),
                "pets/.DS_Store": b"\0\0\0\1Bud1",
            }
        )
    )
    # Known by content, whatever its name: a zip called .jpg is still read as a zip.
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(corpus.bomb_zip())
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(corpus.photo(0, 3))
    base = ("predict", "--run", run_id, "--runs-dir", str(trained_run_dir))

    result = catdog(*base, str(album), str(bomb), str(cat))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    answers = {answer["file"]: answer for answer in map(json.loads, result.stdout.splitlines())}
    assert list(answers) == [
        f"{album}/pets/cat.jpg",
        f"{album}/pets/dog.png",
        f"{album}/pets/notes.txt",
        f"{album}/pets/more.zip",
        str(bomb),
        str(cat),
    ]
    assert {answers[f"{album}/pets/{name}"]["label"] for name in ("cat.jpg", "dog.png")} <= {"cats", "dogs"}
    assert answers[f"{album}/pets/notes.txt"]["error"] == "not an image: a text file"
    assert "archive inside the archive" in answers[f"{album}/pets/more.zip"]["error"]
    assert "zip bomb" in answers[str(bomb)]["error"] and answers[str(cat)]["label"] in ("cats", "dogs")

    table = catdog(*base, "--csv", str(album))
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [row["file"] for row in rows] == list(answers)[:4] and table.returncode == 1


def test_evaluate_with_flip_tta_says_so(trained_run_dir):
    run_id = json.loads(catdog("runs", "--runs-dir", str(trained_run_dir), "--json").stdout)[0]["id"]
    result = catdog("evaluate", "--run", run_id, "--runs-dir", str(trained_run_dir), "--flip-tta", "--json")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert evaluation["flip_average"] is True and evaluation["n"] == 4


def test_train_refuses_a_single_class_folder_up_front(tmp_path):
    single = tmp_path / "one-class" / "cats"
    single.mkdir(parents=True)
    synthetic_image(0, 1).save(single / "a.jpg")
    result = catdog(
        "train",
        "--arch",
        "model1",
        "--epochs",
        "1",
        "--data-dir",
        str(single.parent),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--wait",
    )
    assert result.returncode == 1 and result.stdout == ""
    [error] = error_lines(result)
    assert "two class folders" in error and "Traceback" not in result.stderr


def test_train_refuses_a_folder_that_leaves_validation_empty(tmp_path):
    data = make_dataset(tmp_path / "one-each", per_split=(("train", 1),))
    result = catdog(
        "train", "--arch", "model4", "--fast", "--data-dir", str(data), "--runs-dir", str(tmp_path / "runs")
    )
    assert result.returncode == 1 and result.stdout == ""
    [error] = error_lines(result)
    assert "validation split is empty" in error and "at least 2 photos" in error, error
    assert "Traceback" not in result.stderr
    assert RunStore(tmp_path / "runs").runs() == []


def test_cancel_of_an_unknown_run_is_a_clear_error(tmp_path):
    result = catdog("cancel", "nope", "--runs-dir", str(tmp_path))
    assert result.returncode == 1 and error_lines(result) == ["error: no run 'nope' in " + str(tmp_path)]


def test_runs_prints_an_aligned_table(trained_run_dir):
    result = catdog("runs", "--runs-dir", str(trained_run_dir))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["RUN", "ARCH", "STATUS", "EPOCHS", "BEST", "VAL", "ACC", "SECONDS", "ERROR"]
    for column, cell in (("ARCH", "model1"), ("STATUS", "finished"), ("EPOCHS", "2/2")):
        assert row[header.index(column) :].split()[0] == cell, (header, row)


def stored_run(runs_dir, tiny_data, state: str) -> str:
    run = RunStore(runs_dir).create(RunConfig("model1", data_dir=str(tiny_data)).to_dict())
    run.mark(state)
    return run.id


def test_delete_removes_an_ended_run_and_refuses_an_active_one(tmp_path, tiny_data):
    finished, queued = stored_run(tmp_path, tiny_data, "finished"), stored_run(tmp_path, tiny_data, "queued")
    result = catdog("delete", finished, "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / finished).exists()
    result = catdog("delete", queued, "--runs-dir", str(tmp_path))
    assert result.returncode == 1 and len(error_lines(result)) == 1 and "Traceback" not in result.stderr
    assert (tmp_path / queued).is_dir()


def test_train_wait_progress_in_a_log_is_plain_lines(tmp_path, tiny_data):
    result = catdog(
        "train",
        "--arch",
        "model1",
        "--epochs",
        "2",
        "--data-dir",
        str(tiny_data),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == "training 100% finished after 2/2 epochs", lines
    assert len(lines) < 20, lines


def test_progress_on_a_terminal_is_a_live_bar(tmp_path, tiny_data):
    parent, child = pty.openpty()
    env = {**os.environ, "CATDOG_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "100"}
    process = subprocess.Popen(
        [sys.executable, "-m", "catdog", "data", "--data-dir", str(tiny_data), "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=child,
    )
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(parent)
    assert process.wait(timeout=120) == 0
    text = shown.decode(errors="replace")
    assert "scanning" in text and "100%" in text and "\x1b[" in text, text


def test_dataset_verbs_import_scan_fix_restore_rename_and_delete(tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(tmp_path / "datasets"))
    archive = tmp_path / "pets.zip"
    archive.write_bytes(corpus.ARCHIVES["junk-and-nested"].make())
    imported = catdog("dataset", "import", str(archive), "--name", "pets")
    assert imported.returncode == 0 and imported.stdout.strip() == "pets", imported.stderr
    assert "skipped dogs/more.zip: an archive inside the archive (not opened)" in imported.stderr

    counts = lambda: json.loads(catdog("data", "--dataset", "pets", "--json").stdout)["splits"]["train"]
    assert counts() == {"cats": 3, "dogs": 3}
    assert catdog("dataset", "remove", "pets", "cats/cats-0.jpg").stdout.strip() == "removed cats/cats-0.jpg"
    moved = catdog("dataset", "move", "pets", "dogs/dogs-1.jpg", "cats")
    assert moved.stdout.strip() == "moved dogs/dogs-1.jpg to cats/dogs-1.jpg", moved.stderr
    assert json.loads(catdog("data", "--dataset", "pets", "--json").stdout)["splits"]["validation"] == {
        "cats": 1,
        "dogs": 1,
    }
    trash = json.loads(catdog("dataset", "trash", "pets", "--json").stdout)
    assert [item["file"] for item in trash] == ["cats/cats-0.jpg"]
    assert catdog("dataset", "restore", "pets", "cats/cats-0.jpg").stdout.strip() == "restored cats/cats-0.jpg"
    assert json.loads(catdog("dataset", "trash", "pets", "--json").stdout) == []

    assert catdog("dataset", "rename", "pets", "my pets").returncode == 0
    listed = json.loads(catdog("dataset", "list", "--json").stdout)
    assert [(row["name"], row["classes"], row["files"], row["trash"]) for row in listed] == [
        ("my pets", ["cats", "dogs"], 8, 0)
    ]
    assert catdog("dataset", "delete", "my pets").returncode == 0
    assert catdog("dataset", "list").stdout.startswith("no data sets in ")


@pytest.mark.parametrize("name", ["traversal", "link", "bomb", "one-class"])
def test_dataset_import_refuses_unsafe_zips_in_one_line(name, tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(tmp_path / "datasets"))
    archive = tmp_path / "upload.zip"
    archive.write_bytes(corpus.ARCHIVES[name].make())
    result = catdog("dataset", "import", str(archive), "--name", "upload")
    assert result.returncode == 1 and len(error_lines(result)) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert catdog("dataset", "list", "--json").stdout.strip() == "[]"


def test_dataset_copy_of_a_folder_and_training_options_exclude_each_other(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(tmp_path / "datasets"))
    assert catdog("dataset", "copy", "--from", str(tiny_data), "--name", "copy").returncode == 0
    both = catdog("data", "--dataset", "copy", "--data-dir", str(tiny_data))
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    missing = catdog("train", "--arch", "model1", "--dataset", "nope", "--runs-dir", str(tmp_path / "runs"))
    assert missing.returncode == 1 and "no data set 'nope'" in missing.stderr


def test_predict_on_a_zip_of_near_limit_16_bit_photos_answers_each_within_2_gib(trained_run_dir, tmp_path):
    """Issue 19's hostile upload: 7 MB of 16-bit PNGs that decode to 170-230 MiB each. Every photo
    gets its one-line row, those past the pixel limit refused, and the process's peak memory,
    sampled from outside it, stays under 2 GiB (before: +1.7 GiB a photo, 12 GiB for the zip)."""
    run_id = json.loads(catdog("runs", "--runs-dir", str(trained_run_dir), "--json").stdout)[0]["id"]
    album = tmp_path / "album.zip"
    album.write_bytes(corpus.wide_png_zip([9450] * 16 + [10950] * 16))
    assert album.stat().st_size < 8 * 2**20
    command = [
        sys.executable,
        "-m",
        "catdog",
        "predict",
        "--run",
        run_id,
        "--runs-dir",
        str(trained_run_dir),
        str(album),
    ]
    peak, result = peak_rss(command, ceiling=2 * 2**30, timeout=600, cwd=ROOT)
    assert peak < 2 * 2**30, f"peak RSS {peak / 2**20:.0f} MiB"
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 32, result.stderr[-2000:]
    assert all(row["label"] in ("cats", "dogs") for row in rows[:16])
    assert all("89 megapixel limit" in row["error"] for row in rows[16:])


def test_what_training_prints_goes_to_stderr_so_stdout_stays_json(capsys):
    """Keras announces a download ("Downloading data from …") on stdout; `train --wait` and
    `lesson --wait` train in the background of a command whose stdout is its JSON."""
    from catdog.cli import _in_background

    worker, done = _in_background(lambda: print("Downloading data from somewhere"))
    assert done.wait(60)
    worker.join()
    captured = capsys.readouterr()
    assert captured.out == "" and "Downloading data from somewhere" in captured.err
