"""Project files: a workspace exported as one file and opened on another catdog, and every way a
crafted file is refused whole, leaving nothing behind."""

import hashlib
import io
import json
import os
import time
import tomllib
import zipfile

import numpy as np
import pytest
from PIL import Image

from catdog import project
from catdog.access import OWNER, Actor, Forbidden, Role
from catdog.data.datasets import DatasetStore
from catdog.data.scan import scan
from catdog.fast import head
from catdog.inference.lineage import trained_on
from catdog.runs.store import RunStore
from catdog.settings import RunConfig
from tests.helpers.corpus import class_photos, head_weights_file, make_zip
from tests.helpers.corpus import encode as corpus_encode
from tests.helpers.support import ROOT, session_actor

TEACHER, STUDENT, VISITOR = session_actor("teacher"), session_actor("student"), session_actor("visitor")


def home_run(name: str = "pets", experiment: str | None = None):
    """A finished fast-path run on a data set of the app's own, its head saved as training saves
    one (untrained weights: what is checked here is the file, not the answers)."""
    datasets = DatasetStore()
    dataset = datasets.import_zip(io.BytesIO(make_zip(class_photos(per_class=6))), name, actor=OWNER).dataset
    run_config = RunConfig("model4", fast=True, epochs=1, data_dir=str(dataset.root), experiment=experiment)
    run = RunStore().create(run_config)
    run.record_data(scan(str(dataset.root)), dataset.id)
    run.record_epoch(1, "head", 0.1, {"loss": 0.6, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.75})
    head.save(head.Head.initial(1280, 2, np.random.default_rng(0)), run.model_path)
    run.mark("finished", best_val_accuracy=0.75, collapsed=None)
    return run, dataset


def another_server(tmp_path, monkeypatch, name: str = "other") -> tuple[RunStore, DatasetStore]:
    """Empty runs and datasets folders, made this process's: another catdog."""
    runs, datasets = tmp_path / name / "runs", tmp_path / name / "datasets"
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(runs))
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(datasets))
    return RunStore(), DatasetStore()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def repacked(files: dict[str, bytes], rehash: bool = True, **manifest_changes) -> bytes:
    """A project file of these members, its manifest's hashes made to match them (a careful forger)."""
    manifest = json.loads(files[project.MANIFEST])
    if rehash:
        manifest["members"] = {
            name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name != project.MANIFEST
        }
    manifest.update(manifest_changes)
    return make_zip({**files, project.MANIFEST: json.dumps(manifest).encode()})


def nothing_added(store: RunStore, datasets: DatasetStore) -> None:
    assert store.runs() == [] and datasets.names() == []
    left = [p for p in store.root.iterdir() if p.name.startswith(".incoming")] if store.root.exists() else []
    assert not left, "a staging folder was left"


@pytest.fixture
def exported(tmp_path, monkeypatch) -> bytes:
    home_run()
    data = project.export_project(OWNER)
    another_server(tmp_path, monkeypatch)
    return data


def test_the_file_holds_a_manifest_the_runs_and_their_photos(exported):
    files = members(exported)
    manifest = json.loads(files[project.MANIFEST])
    assert manifest["format"] == project.FORMAT and manifest["version"] == project.VERSION
    (run,) = manifest["runs"]
    assert run["data"] == "d1" and manifest["datasets"] == [{"key": "d1", "name": "pets"}]
    assert {name.split("/")[-1] for name in files if name.startswith("runs/")} == {
        "config.json",
        "status.json",
        "data.json",
        "history.jsonl",
        "model.keras",
    }
    assert set(manifest["members"]) == set(files) - {project.MANIFEST}
    assert all(hashlib.sha256(files[name]).hexdigest() == sha for name, sha in manifest["members"].items())


def test_opened_on_another_server_the_run_is_the_openers_finished_and_reads_its_own_copy(exported, tmp_path):
    opener = Actor("teacher-2", "Ms Smith", Role.TEACHER)
    opened = project.open_project(exported, actor=opener)
    store, datasets = RunStore(), DatasetStore()
    (run,) = store.runs()
    assert opened.runs == [run.id] and opened.datasets == ["pets"] == datasets.names()
    assert run.state == "finished" and run.owner == opener and run.summary()["best_val_accuracy"] == 0.75
    assert len(run.history()) == 1
    copy = datasets.get("pets")
    assert run.config.data_dir == str(copy.root) and run.data()["root"] == str(copy.root)
    assert run.data()["dataset"] == copy.recorded_id()
    assert sorted(scan(str(copy.root)).index) == sorted(
        name for items in run.data()["files"].values() for name, _ in items
    )


def test_opening_twice_adds_new_ids_and_names_and_changes_nothing_there(exported):
    first = project.open_project(exported, actor=OWNER)
    before = {path.name: path.read_bytes() for path in RunStore().get(first.runs[0]).path.iterdir() if path.is_file()}
    second = project.open_project(exported, actor=OWNER)
    store, datasets = RunStore(), DatasetStore()
    assert second.runs[0] != first.runs[0] and second.datasets == ["pets 2"]
    old, new = store.get(first.runs[0]), store.get(second.runs[0])
    assert {path.name: path.read_bytes() for path in old.path.iterdir() if path.is_file()} == before
    assert new.config.data_dir == str(datasets.get("pets 2").root)
    assert datasets.get("pets").recorded_id() != datasets.get("pets 2").recorded_id() == new.data()["dataset"]


def test_an_opening_clears_what_a_killed_one_left_and_no_other_s(exported):
    """A server stopped while it opened a project leaves its hidden staging folder behind; the next
    opening removes it, but not the staging folder of one still going."""
    root = RunStore().root
    root.mkdir(parents=True, exist_ok=True)
    killed, going = root / f"{project._STAGING}killed", root / f"{project._STAGING}going"
    for folder in (killed, going):
        (folder / "run").mkdir(parents=True)
        (folder / "run" / "model.keras").write_bytes(b"half written")
    long_ago = time.time() - project.STALE_STAGING_S - 60
    os.utime(killed, (long_ago, long_ago))
    project.open_project(exported, actor=OWNER)
    assert not killed.exists() and (going / "run" / "model.keras").exists()


def test_an_experiments_runs_never_join_an_experiment_here(tmp_path, monkeypatch):
    home_run(experiment="20260101-000000-abcd")
    data = project.export_project(OWNER)
    run, _ = home_run("mine", experiment="20260101-000000-abcd")
    project.open_project(data, actor=OWNER)
    experiments = {r.config.experiment for r in RunStore().runs()}
    assert len(experiments) == 2 and run.config.experiment in experiments


def test_a_path_the_file_names_is_never_read(exported):
    """A forged config.json pointing at a folder of this server's: the run reads its own copy."""
    files = members(exported)
    name = next(n for n in files if n.endswith("config.json"))
    files[name] = json.dumps({**json.loads(files[name]), "data_dir": "/etc"}).encode()
    data_json = next(n for n in files if n.endswith("data.json"))
    files[data_json] = json.dumps({**json.loads(files[data_json]), "root": "/etc"}).encode()
    project.open_project(repacked(files), actor=OWNER)
    (run,) = RunStore().runs()
    assert run.config.data_dir == str(DatasetStore().get("pets").root) == run.data()["root"]


def refusal(data: bytes) -> str:
    with pytest.raises(project.ProjectError) as refused:
        project.open_project(data, actor=OWNER)
    message = str(refused.value)
    assert "\n" not in message
    nothing_added(RunStore(), DatasetStore())
    return message


def test_a_member_whose_path_leaves_the_folder_is_refused(exported):
    files = members(exported)
    assert "outside" in refusal(repacked({**files, "runs/../../evil.json": b"{}"}))


def test_a_link_member_is_refused(exported):
    files = members(exported)
    model = next(n for n in files if n.endswith("model.keras"))
    del files[model]
    assert "link" in refusal(make_zip(files, links={model: "/etc/passwd"}))


def test_a_zip_bomb_member_is_refused(exported):
    files = members(exported)
    assert "zip bomb" in refusal(repacked({**files, "runs/x/evaluation.json": b" " * (64 * 2**20)}))


def test_a_zip_bomb_inside_the_model_is_refused_before_keras_reads_it(exported):
    files = members(exported)
    model = next(n for n in files if n.endswith("model.keras"))
    inner = members(files[model])
    files[model] = make_zip({**inner, "model.weights.h5": b"\0" * (64 * 2**20)})
    assert "zip bomb" in refusal(repacked(files))


def test_a_json_record_past_its_limit_is_refused(exported, monkeypatch):
    files = members(exported)
    data_json = next(n for n in files if n.endswith("data.json"))
    record = json.loads(files[data_json])
    record["skipped"] = [{"file": hashlib.sha256(str(i).encode()).hexdigest(), "reason": "x"} for i in range(2000)]
    files[data_json] = json.dumps(record).encode()
    monkeypatch.setattr(project.config, "PROJECT_MAX_JSON_BYTES", 100_000)
    assert "larger than" in refusal(repacked(files))


def test_a_model_with_code_in_it_is_refused(exported, tmp_path):
    """A Lambda layer runs the file's code when loaded without safe_mode."""
    import keras

    inputs = keras.Input((1280,))
    tampered = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, :2] * 2)(inputs), name="model4_head")
    tampered.save(tmp_path / "tampered.keras")
    files = members(exported)
    model = next(n for n in files if n.endswith("model.keras"))
    files[model] = (tmp_path / "tampered.keras").read_bytes()
    assert "lambda" in refusal(repacked(files)).lower()


def _with_model(exported: bytes, **inner_changes) -> bytes:
    files = members(exported)
    model = next(n for n in files if n.endswith("model.keras"))
    files[model] = make_zip({**members(files[model]), **inner_changes})
    return repacked(files)


def test_a_head_whose_weights_read_a_server_file_is_refused(exported, tmp_path):
    """Named the head, its dense layers left out of its config, Keras's safe load opens none of its
    weights; catdog reads them without Keras, and h5py reads an "external" dataset from any path."""
    config = head.keras_config(1280, 2)
    config["config"]["layers"] = config["config"]["layers"][:1]
    config["config"]["output_layers"] = ["features", 0, 0]
    weights = head_weights_file(external={"layers/dense/vars/0": tmp_path / "secrets.toml"})
    changes = {"config.json": json.dumps(config).encode(), "model.weights.h5": weights}
    assert "not a head catdog saved" in refusal(_with_model(exported, **changes))


def test_a_data_set_s_photos_count_against_the_file_s_own_limit_unpacked(exported, monkeypatch):
    """Bitmaps pack a hundredfold: a 1.3 MB file wrote 600 MB of photos under an upload's 2 GB limit."""
    files = members(exported)
    photos = next(name for name in files if name.startswith("datasets/"))
    blank = corpus_encode(Image.new("RGB", (600, 600), "white"), "BMP")  # 1 MB, packs to a few KB
    files[photos] = make_zip({f"{kind}/{kind}-{i}.bmp": blank for kind in ("cats", "dogs") for i in range(6)})
    packed = repacked(files)
    monkeypatch.setattr(project.config, "PROJECT_MAX_BYTES", 8 * 2**20)
    assert len(packed) < 2**20 and "unpacks to 12 MB; the limit is 8 MB" in refusal(packed)


def test_a_member_that_is_not_the_one_the_manifest_lists_is_refused(exported):
    files = members(exported)
    name = next(n for n in files if n.endswith("config.json"))
    files[name] = files[name].replace(b'"epochs": 1', b'"epochs": 2')
    assert "SHA-256" in refusal(repacked(files, rehash=False))


def test_an_unknown_member_is_refused(exported):
    files = members(exported)
    run_folder = next(n for n in files if n.endswith("config.json")).rsplit("/", 1)[0]
    assert "no part of" in refusal(repacked({**files, f"{run_folder}/sitecustomize.py": b"import os"}))


def test_another_format_version_is_refused(exported):
    assert "format version 2" in refusal(repacked(members(exported), version=2))


def test_a_run_that_is_not_finished_is_refused(exported):
    files = members(exported)
    name = next(n for n in files if n.endswith("status.json"))
    files[name] = json.dumps({**json.loads(files[name]), "state": "queued"}).encode()
    assert "not a finished run" in refusal(repacked(files))


def test_a_file_past_the_size_limit_is_refused_before_it_is_read(exported, monkeypatch):
    monkeypatch.setattr(project.config, "PROJECT_MAX_BYTES", len(exported) - 1)
    assert refusal(exported).startswith(f"the project file has {len(exported) / 2**20:,.0f} MB; the limit is")


def test_a_visitor_may_not_open_a_project_file_a_student_and_the_teacher_may(exported):
    with pytest.raises(Forbidden, match="visitors may not open project files"):
        project.open_project(exported, actor=VISITOR)
    nothing_added(RunStore(), DatasetStore())
    project.open_project(exported, actor=STUDENT)
    assert [run.owner for run in RunStore().runs()] == [STUDENT], "opened into the student's own workspace"
    project.open_project(exported, actor=TEACHER)
    assert sorted(run.owner.id for run in RunStore().runs()) == sorted([STUDENT.id, TEACHER.id])


def test_a_project_holds_the_exporters_runs_and_no_one_elses(tmp_path, monkeypatch):
    run, _ = home_run()
    other = Actor("student-b", "Bea", Role.STUDENT)
    with pytest.raises(project.ProjectError, match="no finished runs of yours"):
        project.export_project(other)
    with pytest.raises(project.ProjectError, match="not yours"):
        project.export_project(other, run_ids=[run.id])
    run.record_owner(other)
    assert json.loads(members(project.export_project(other))[project.MANIFEST])["runs"][0]["id"] == run.id


def test_the_home_page_packs_the_file_and_another_server_opens_it(tmp_path, monkeypatch):
    from tests.helpers.support import assert_clean, open_app

    home_run()
    app = open_app()
    assert_clean(app)
    app.button(key="project_prepare").click().run()
    assert_clean(app)
    name, data = app.session_state["project_file"]
    assert name.endswith(".catdog") and app.get("download_button")
    another_server(tmp_path, monkeypatch)
    app = open_app()
    assert app.button(key="project_open").disabled
    # What the page offers is what the web server takes (a 200 MB offer met a 25 MB server).
    server_limit = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert app.file_uploader(key="project_upload").proto.max_upload_size_mb == server_limit
    app.file_uploader(key="project_upload").set_value((name, data, "application/zip")).run()
    app.button(key="project_open").click().run()
    assert_clean(app)
    assert app.success[-1].value == "Opened 1 run and 1 data set."
    assert {m.label: m.value for m in app.metric}["Runs"] == "1", "the page above lists the opened run"
    assert [run.state for run in RunStore().runs()] == ["finished"] and DatasetStore().names() == ["pets"]
    app.file_uploader(key="project_upload").set_value((name, b"this is no zip", "application/zip")).run()
    app.button(key="project_open").click().run()
    [error] = [e.value for e in app.error]
    assert error.startswith("The project file was not opened: not a usable project file") and "\n" not in error
    assert len(RunStore().runs()) == 1


def test_a_locked_out_visitor_cannot_open_a_project_file_on_the_home_page(exported, monkeypatch):
    """The widgets are disabled, and a forged click opens nothing (the library's own refusal is
    test_a_visitor_may_not_open_a_project_file_a_student_and_the_teacher_may)."""
    from tests.helpers.support import assert_clean, forged, open_app

    monkeypatch.setenv("CATDOG_TEACHER_PASSWORD", "a long teacher password")
    app = open_app()
    assert app.file_uploader(key="project_upload").disabled and app.button(key="project_open").disabled
    forged(app.file_uploader(key="project_upload")).set_value(("x.catdog", exported, "application/zip")).run()
    forged(app.button(key="project_open")).click().run()
    assert_clean(app)
    nothing_added(RunStore(), DatasetStore())


def test_a_trained_run_answers_a_photo_identically_on_another_server(
    backbone_weights, tiny_data, tmp_path, monkeypatch
):
    """A fast run trained for real on a data set of the app's own, taken home with the command
    line: on the other server it answers on the Predict page's path (its head on the backbone's
    features, the unfamiliarity guard it brought) exactly as at home."""
    from catdog.inference.answers import analyse_photo, predict_photo
    from catdog.inference.evaluation import evaluate
    from catdog.training import process
    from tests.helpers.support import catdog, synthetic_image

    dataset = DatasetStore().copy(str(tiny_data), "pets", actor=OWNER).dataset
    run = RunStore().create(RunConfig("model4", fast=True, epochs=2, data_dir=str(dataset.root)))
    assert process.execute(run)
    out = io.BytesIO()
    synthetic_image(1, 77, size=(300, 200)).save(out, format="JPEG")
    photo = out.getvalue()
    at_home = analyse_photo(run, photo)
    file = tmp_path / "work.catdog"
    done = catdog("project", "export", "--run", run.id, str(file))
    assert done.returncode == 0, done.stderr[-2000:]
    another_server(tmp_path, monkeypatch)
    done = catdog("project", "open", str(file))
    assert done.returncode == 0 and "Opened 1 run and 1 data set." in done.stderr, done.stderr[-2000:]
    (opened,) = RunStore().runs()
    assert done.stdout.split() == [opened.id]
    there = analyse_photo(opened, photo)
    assert there.probabilities == at_home.probabilities and there.unfamiliarity == at_home.unfamiliarity
    assert predict_photo(opened, photo) == predict_photo(run, photo)
    assert opened.familiarity_path.read_bytes() == run.familiarity_path.read_bytes()
    # Its held-out photos are the copy's: the same photos, scored the same, none gone.
    scores = evaluate(opened)
    assert scores.data_root == opened.config.data_dir and scores.gone == 0
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(run.path.parent))
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(dataset.root.parent))
    home_scores = evaluate(run)
    assert scores.confusion_matrix == home_scores.confusion_matrix and scores.test_key == home_scores.test_key


def test_the_command_line_refuses_a_bad_file_in_one_line(tmp_path):
    from tests.helpers.support import catdog

    file = tmp_path / "evil.catdog"
    file.write_bytes(make_zip({"../evil.json": b"{}"}))
    done = catdog("project", "open", str(file))
    assert done.returncode == 1 and done.stderr.strip().startswith("error: not a usable project file")
    assert "outside" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = catdog("project", "export", str(tmp_path / "empty.catdog"))
    assert done.returncode == 1 and "no finished runs" in done.stderr


def test_a_refusal_after_a_data_set_was_made_takes_it_back(tmp_path, monkeypatch):
    home_run("pets")
    home_run("toys")
    files = members(project.export_project(OWNER))
    another_server(tmp_path, monkeypatch)
    files["datasets/d2.zip"] = make_zip(class_photos(("cats",), per_class=6))
    assert "data set 'toys' is refused" in refusal(repacked(files))


def with_run_id(exported: bytes, run_id: str) -> bytes:
    """The project file with its run under another id (its folder and its manifest entry)."""
    files = members(exported)
    manifest = json.loads(files[project.MANIFEST])
    (entry,) = manifest["runs"]
    old = f"runs/{entry['id']}/"
    files = {name.replace(old, f"runs/{run_id}/", 1): data for name, data in files.items()}
    entry["id"] = run_id
    files[project.MANIFEST] = json.dumps(manifest).encode()
    return repacked(files)


def test_a_run_id_that_windows_or_macos_would_store_as_another_is_opened_under_a_fresh_one(exported):
    """A Windows server opens a device for CON and drops a trailing dot; Windows and macOS take
    RUN-1 and run-1 for one folder, so the second would land in the first's."""
    device = project.open_project(with_run_id(exported, "CON"), actor=OWNER).runs[0]
    dotted = project.open_project(with_run_id(exported, "run-1."), actor=OWNER).runs[0]
    lower = project.open_project(with_run_id(exported, "run-2"), actor=OWNER).runs[0]
    upper = project.open_project(with_run_id(exported, "RUN-2"), actor=OWNER).runs[0]
    assert device.startswith("CON-") and dotted.startswith("run-1-") and lower == "run-2"
    assert upper.casefold() != "run-2" and upper.startswith("RUN-2-")
    assert sorted(run.id for run in RunStore().runs()) == sorted([device, dotted, lower, upper])


def test_a_run_whose_data_set_was_deleted_never_packs_another_s_data_set_of_that_name():
    """Bob trained on his "pets" and deleted it; Ada, whose work Bob may not see, has made her own
    "pets" since. His run's photos are gone, and his project file must not carry hers instead."""
    bob, ada = Actor("student-bob", "Bob", Role.STUDENT), Actor("student-ada", "Ada", Role.STUDENT)
    run, _ = home_run()
    run.record_owner(bob)
    DatasetStore().delete("pets", actor=OWNER)
    DatasetStore().import_zip(io.BytesIO(make_zip(class_photos(per_class=6, prefix="ada-"))), "pets", actor=ada)
    with pytest.raises(project.ProjectError, match="trained on data set pets, which was deleted since"):
        project.export_project(bob)
    assert not trained_on(run, DatasetStore().get("pets").root)


def test_a_student_s_opened_project_files_count_against_their_share(exported, ten_mb_share):
    """Each opening adds the file's runs and photos: opened again and again, a project file would
    otherwise fill the runs' disk for the whole class outside the teacher's share."""
    _, ana, ben = ten_mb_share
    opened = 0
    with pytest.raises(project.ProjectError, match="allows 10 MB per student"):
        while opened < 200:
            project.open_project(exported, actor=ana)
            opened += 1
    used = DatasetStore().usage(ana)
    assert opened > 1 and used <= 10 * 2**20 < used + len(exported)
    assert RunStore().opened_bytes(ana) > 0 and len(RunStore().runs()) == opened
    project.open_project(exported, actor=ben)  # a classmate's share is their own
