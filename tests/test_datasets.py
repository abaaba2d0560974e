"""Managed data sets: safe zip uploads, the class builder's library side, copies, fixes and undo."""

import io
import json
import os
import subprocess
import sys
import threading

import pytest

from catdog import config
from catdog.access import OWNER
from catdog.data.datasets import DatasetError, DatasetStore, check_name
from catdog.data.errors import DataError
from catdog.data.scan import scan
from catdog.data.split import min_photos_per_class
from catdog.runs.store import RunStore
from tests.helpers.corpus import ARCHIVES, bomb_zip, class_photos, make_zip, noisy_pets, pets_zip, photo
from tests.helpers.support import ROOT, catdog, make_dataset, session_actor, synthetic_image, train_model1


def everything_below(folder) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_zip_corpus_is_unpacked_or_refused_in_one_line(name, tmp_path):
    archive = ARCHIVES[name]
    store = DatasetStore(tmp_path / "datasets")
    if archive.refused:
        with pytest.raises(DatasetError) as refusal:
            store.import_zip(io.BytesIO(archive.make()), "upload", actor=OWNER)
        message = str(refusal.value)
        assert "\n" not in message and all(word in message.lower() for word in archive.refused), message
        # A failed upload leaves nothing behind: no data set, no half-unpacked folder, nothing outside.
        assert store.names() == []
        assert everything_below(store.root) <= {".lock"}
        assert not (tmp_path / "evil.jpg").exists()
        return
    made = store.import_zip(io.BytesIO(archive.make()), "upload", actor=OWNER)
    assert store.names() == ["upload"]
    assert sorted(item["file"] for item in made.skipped) == sorted(archive.skipped)
    assert all(item["reason"] for item in made.skipped)
    scanned = scan(made.dataset.root)
    assert scanned.classes == list(archive.classes)
    assert not scanned.skipped  # what the scan trains on is photos only
    assert all(path.resolve().is_relative_to(made.dataset.root) for path in made.dataset.root.rglob("*"))


def test_zip_limits_on_entries_and_bytes_are_refused(tmp_path, monkeypatch):
    store = DatasetStore(tmp_path)
    good = make_zip(class_photos())
    monkeypatch.setattr(config, "ZIP_MAX_ENTRIES", 5)
    with pytest.raises(DatasetError, match="8 entries; the limit is 5"):
        store.import_zip(io.BytesIO(good), "many", actor=OWNER)
    monkeypatch.setattr(config, "ZIP_MAX_ENTRIES", 100)
    monkeypatch.setattr(config, "ZIP_MAX_TOTAL_BYTES", 1000)
    with pytest.raises(DatasetError, match="the limit is 0 MB"):
        store.import_zip(io.BytesIO(good), "big", actor=OWNER)
    assert store.names() == []


def test_a_bomb_or_a_path_trick_is_refused_before_anything_is_unpacked(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr("catdog.data.datasets._write_photo", lambda *args: written.append(args))
    with pytest.raises(DatasetError, match="zip bomb"):
        DatasetStore(tmp_path).import_zip(io.BytesIO(bomb_zip()), "bomb", actor=OWNER)
    # The trick comes last in the archive, after photos that would otherwise be written first.
    with pytest.raises(DatasetError, match="outside"):
        DatasetStore(tmp_path).import_zip(io.BytesIO(ARCHIVES["traversal"].make()), "trick", actor=OWNER)
    assert written == []


def test_unpacking_reports_progress_to_the_end(tmp_path):
    seen = []
    DatasetStore(tmp_path).import_zip(
        io.BytesIO(make_zip(class_photos())), "p", lambda done, total: seen.append((done, total)), actor=OWNER
    )
    assert len(seen) == 8 and seen[-1][0] == seen[-1][1]


@pytest.mark.parametrize("bad", ["", "..", ".hidden", "a/b", "con", "x" * 65, "trailing.", "évier", "a\\b"])
def test_unsafe_names_are_refused(bad):
    with pytest.raises(DatasetError, match="cannot name"):
        check_name(bad)


def test_names_are_unique_and_renaming_and_deleting_work(tmp_path):
    store = DatasetStore(tmp_path)
    store.import_zip(io.BytesIO(make_zip(class_photos())), "pets", actor=OWNER)
    with pytest.raises(DatasetError, match="already exists"):
        store.import_zip(io.BytesIO(make_zip(class_photos())), "pets", actor=OWNER)
    renamed = store.rename("pets", "my pets", actor=OWNER)
    assert store.names() == ["my pets"] and scan(renamed.root).classes == ["cats", "dogs"]
    store.delete("my pets", actor=OWNER)
    # Nothing left but the locks, hidden files beside where the data sets were.
    assert store.names() == [] and everything_below(tmp_path) <= {".lock", ".pets.lock", ".my pets.lock"}
    with pytest.raises(DatasetError, match="no data set"):
        store.get("my pets")


def test_a_data_set_in_use_by_a_queued_run_is_neither_deleted_nor_renamed(tmp_path):
    store = DatasetStore(tmp_path)
    dataset = store.import_zip(io.BytesIO(make_zip(class_photos())), "pets", actor=OWNER).dataset
    run = RunStore().create({"arch": "model1", "data_dir": str(dataset.root)})
    for action in (lambda: store.delete("pets", actor=OWNER), lambda: store.rename("pets", "other", actor=OWNER)):
        with pytest.raises(DatasetError, match=f"used by {run.id}"):
            action()
    run.mark("cancelled")
    store.delete("pets", actor=OWNER)
    assert store.names() == []


def test_class_builder_needs_two_classes_and_enough_photos_each(tmp_path):
    store = DatasetStore(tmp_path)
    minimum = min_photos_per_class()
    photos = lambda n, label: [(f"shot-{i}.jpg", photo(label, i)) for i in range(n)]
    with pytest.raises(DatasetError, match="at least two classes"):
        store.create("one", {"cats": photos(5, 0)}, actor=OWNER)
    with pytest.raises(DatasetError, match=f"at least {minimum} photos: dogs has {minimum - 1}"):
        store.create("few", {"cats": photos(5, 0), "dogs": photos(minimum - 1, 1)}, actor=OWNER)
    with pytest.raises(DatasetError, match="cannot name a class"):
        store.create("bad", {"../cats": photos(5, 0), "dogs": photos(5, 1)}, actor=OWNER)
    made = store.create("built", {"cats": [*photos(3, 0), ("notes.txt", b"hello")], "dogs": photos(3, 1)}, actor=OWNER)
    assert made.skipped == [{"file": "cats/notes.txt", "reason": "not an image: a text file"}]
    assert store.names() == ["built"]
    assert scan(made.dataset.root).counts()["train"] == {"cats": 2, "dogs": 2}


def test_editable_copy_of_a_folder_keeps_its_layout_and_leaves_links_out(tmp_path, monkeypatch):
    source = make_dataset(tmp_path / "source")
    os.symlink("/etc/passwd", source / "train" / "cats" / "passwd.jpg")
    store = DatasetStore(tmp_path / "datasets")
    made = store.copy(source, "copy", actor=OWNER)
    assert made.skipped == [{"file": "train/cats/passwd.jpg", "reason": "a link or special file, not copied"}]
    assert scan(made.dataset.root).counts() == scan(source).counts()
    monkeypatch.setenv("CATDOG_DATA_ROOTS", str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="outside the folders this server shares"):
        store.copy(source, "confined", actor=OWNER)
    assert store.names() == ["copy"]


def test_remove_move_undo_and_restore_with_the_scan_after_each(tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_DATASETS_DIR", str(tmp_path))
    store = DatasetStore()
    dataset = store.copy(make_dataset(tmp_path / "source"), "fixable", actor=OWNER).dataset
    counts = lambda: scan(dataset.root).counts()["train"]
    assert counts() == {"cats": 12, "dogs": 12}
    before = dataset.version()

    removed = dataset.remove("train/cats/cats.0.jpg", actor=OWNER)
    assert counts() == {"cats": 11, "dogs": 12} and dataset.version() != before
    assert [change.file for change in dataset.trash()] == ["train/cats/cats.0.jpg"]
    assert (dataset.root / removed.to).is_file()  # in the trash, not deleted

    moved = dataset.move("train/cats/cats.1.jpg", "dogs", actor=OWNER)
    assert moved.to == "train/dogs/cats.1.jpg" and counts() == {"cats": 10, "dogs": 13}

    assert dataset.undo(moved.id, actor=OWNER).describe() == "moved train/cats/cats.1.jpg to train/dogs/cats.1.jpg"
    assert counts() == {"cats": 11, "dogs": 12}
    assert dataset.undo(removed.id, actor=OWNER).file == "train/cats/cats.0.jpg"
    assert counts() == {"cats": 12, "dogs": 12} and dataset.trash() == []
    assert dataset.latest() is None

    dataset.remove("train/cats/cats.0.jpg", actor=OWNER)
    dataset.remove("train/dogs/dogs.3.jpg", actor=OWNER)
    assert [change.file for change in dataset.restore(["train/dogs/dogs.3.jpg"], actor=OWNER)] == [
        "train/dogs/dogs.3.jpg"
    ]
    assert counts() == {"cats": 11, "dogs": 12}
    with pytest.raises(DatasetError, match="not in the trash"):
        dataset.restore(["train/dogs/dogs.3.jpg"], actor=OWNER)
    dataset.restore(actor=OWNER)
    assert counts() == {"cats": 12, "dogs": 12} and dataset.trash() == []


def test_fixes_refuse_paths_outside_the_data_set_and_into_the_trash(tmp_path):
    store = DatasetStore(tmp_path)
    dataset = store.import_zip(io.BytesIO(make_zip(class_photos())), "pets", actor=OWNER).dataset
    dataset.remove("cats/cats-0.jpg", actor=OWNER)
    for bad in ("../outside.jpg", "/etc/passwd", ".trash/journal.json", "cats/missing.jpg", "cats"):
        with pytest.raises(DatasetError):
            dataset.remove(bad, actor=OWNER)
    with pytest.raises(DatasetError, match="no class 'rabbits'"):
        dataset.move("cats/cats-1.jpg", "rabbits", actor=OWNER)


def test_a_restored_photo_never_overwrites_one_that_took_its_place(tmp_path):
    dataset = DatasetStore(tmp_path).import_zip(io.BytesIO(make_zip(class_photos())), "pets", actor=OWNER).dataset
    original = (dataset.root / "cats/cats-0.jpg").read_bytes()
    dataset.remove("cats/cats-0.jpg", actor=OWNER)
    (dataset.root / "cats/cats-0.jpg").write_bytes(photo(0, 999))
    assert dataset.undo(dataset.latest().id, actor=OWNER).file == "cats/cats-0-1.jpg"
    assert (dataset.root / "cats/cats-0-1.jpg").read_bytes() == original


def test_managed_data_sets_may_be_read_where_typed_folders_are_confined(tmp_path, monkeypatch):
    dataset = DatasetStore().import_zip(io.BytesIO(make_zip(class_photos())), "pets", actor=OWNER).dataset
    assert scan(dataset.root, actor=session_actor("student")).classes == ["cats", "dogs"]
    with pytest.raises(DataError, match="reads no typed folders"):
        scan(make_dataset(tmp_path / "typed"), actor=session_actor("teacher"))


def test_a_classmate_s_private_data_set_is_not_read_by_a_path_inside_it(monkeypatch):
    """Where CATDOG_DATA_ROOTS holds the app's own folders, a data set's root is checked for whose
    it is: a split inside it, or the folder of them all, must not slip past that check."""
    from catdog.access import Actor, Role

    alice, bob = Actor("alice", "Alice", Role.STUDENT), Actor("bob", "Bob", Role.STUDENT)
    dataset = DatasetStore().import_zip(io.BytesIO(make_zip(class_photos())), "alices", actor=alice).dataset
    monkeypatch.setenv("CATDOG_DATA_ROOTS", str(config.datasets_dir().parent))
    assert scan(dataset.root, actor=alice).classes == ["cats", "dogs"]
    with pytest.raises(DataError, match="no data set 'alices'"):
        scan(dataset.root, actor=bob)
    for typed in (dataset.root / "cats", config.datasets_dir(), config.runs_dir()):
        with pytest.raises(DataError, match="inside catdog's own folders"):
            scan(typed, actor=bob)


def test_a_run_keeps_the_files_it_trained_on(tmp_path):
    scanned = scan(make_dataset(tmp_path / "d"))
    run = RunStore().create({"arch": "model1"})
    run.record_data(scanned)
    recorded = run.data()["files"]
    assert {split: [tuple(item) for item in items] for split, items in recorded.items()} == scanned.files


def test_photo_names_a_windows_server_could_not_store_are_made_ones_it_can(tmp_path):
    """A teacher's Windows laptop may be the server: CON.jpg would open a device there, a trailing
    dot would be dropped (two names, one file), and some characters are refused."""
    photos = class_photos()
    odd = ["CON.jpg", "nul.png", "kitten.jpg.", "a|b?.jpg", "lpt1"]
    for index, name in enumerate(odd):
        photos[f"cats/{name}"] = photos.pop(f"cats/cats-{index % 4}.jpg") if index < 4 else photo(0, 7)
    made = DatasetStore(tmp_path / "datasets").import_zip(io.BytesIO(make_zip(photos)), "pets", actor=OWNER)
    cats = sorted(path.name for path in (made.dataset.root / "cats").iterdir())
    assert cats == ["_CON.jpg", "_lpt1", "_nul.png", "a_b_.jpg", "kitten.jpg"] and made.skipped == []


def test_a_data_set_never_fills_the_disk(tmp_path, monkeypatch):
    """Bitmaps pack a hundredfold: a 4 MB zip wrote 2 GB. Each way of making a data set stops
    before the disk has less than config.DATASET_KEEP_FREE_BYTES free, and leaves nothing behind."""
    store, source = DatasetStore(tmp_path / "datasets"), make_dataset(tmp_path / "folder")
    zipped = make_zip(class_photos())
    monkeypatch.setattr(config, "DATASET_KEEP_FREE_BYTES", 2**62)  # more than any disk has
    with pytest.raises(DatasetError, match="data sets must leave"):
        store.import_zip(io.BytesIO(zipped), "zipped", actor=OWNER)
    with pytest.raises(DatasetError, match="data sets must leave"):
        store.create("built", {"cats": [("c.jpg", photo(0, 1))] * 9, "dogs": [("d.jpg", photo(1, 1))] * 9}, actor=OWNER)
    with pytest.raises(DatasetError, match="data sets must leave"):
        store.copy(source, "copied", actor=OWNER)
    assert store.names() == [] and [path for path in store.root.iterdir() if path.name != ".lock"] == []
    monkeypatch.setattr(config, "DATASET_KEEP_FREE_BYTES", 0)
    assert store.import_zip(io.BytesIO(zipped), "zipped", actor=OWNER).dataset.classes() == ["cats", "dogs"]


def test_a_student_s_data_sets_stay_within_the_teacher_s_share(ten_mb_share):
    """One student's imports never use up the room the class needs: past the teacher's share per
    student a data set is refused in one line with nothing left, and a classmate and the teacher
    still make theirs."""
    teacher, ana, ben = ten_mb_share
    store = DatasetStore()
    store.create("first", noisy_pets(0), actor=ana)  # 6.5 MB
    assert 6 * 2**20 < store.usage(ana) < 7 * 2**20
    for make in (
        lambda name: store.create(name, noisy_pets(100), actor=ana),
        lambda name: store.import_zip(io.BytesIO(pets_zip(noisy_pets(200))), name, actor=ana),
    ):
        with pytest.raises(DatasetError, match="allows 10 MB per student"):
            make("second")
    assert store.names() == ["first"] and [p.name for p in store.root.iterdir() if p.name.startswith(".incoming")] == []
    store.create("bens", noisy_pets(300), actor=ben)
    store.create("teachers", noisy_pets(400), actor=teacher)
    store.create("teachers-too", noisy_pets(500), actor=teacher)
    assert store.names() == ["bens", "first", "teachers", "teachers-too"]


def test_photos_in_the_trash_still_take_their_room(ten_mb_share):
    """Removed photos wait in the trash for undo and restore: emptying a data set into it and
    importing again must not make room the disk does not have."""
    _, ana, _ = ten_mb_share
    store = DatasetStore()
    dataset = store.create("first", noisy_pets(0), actor=ana).dataset
    used = store.usage(ana)
    for file in [name for name in scan(dataset.root).index]:
        dataset.remove(file, actor=ana)
    assert store.usage(ana) == used
    with pytest.raises(DatasetError, match="allows 10 MB per student"):
        store.create("second", noisy_pets(100), actor=ana)


def test_a_student_importing_in_two_tabs_at_once_gets_the_share_once(ten_mb_share):
    """The share left is reckoned when an import starts: a second one beside it would see the
    whole of it too, so it waits its turn, refused in one line. A classmate's is not held up."""
    _, ana, ben = ten_mb_share
    store, started, release, made = DatasetStore(), threading.Event(), threading.Event(), []

    def held(done: int, total: int) -> None:
        started.set()
        assert release.wait(timeout=60)

    archive = pets_zip(noisy_pets(0))
    first = threading.Thread(target=lambda: made.append(store.import_zip(io.BytesIO(archive), "tab1", held, actor=ana)))
    first.start()
    try:
        assert started.wait(timeout=60)
        with pytest.raises(DatasetError, match="still being made"):
            store.import_zip(io.BytesIO(archive), "tab2", actor=ana)
        store.import_zip(io.BytesIO(pets_zip(noisy_pets(100))), "bens", actor=ben)
    finally:
        release.set()
        first.join()
    assert len(made) == 1 and store.names() == ["bens", "tab1"]
    with pytest.raises(DatasetError, match="allows 10 MB"):
        store.import_zip(io.BytesIO(archive), "tab2", actor=ana)


def test_entries_an_import_leaves_out_take_no_room(ten_mb_share):
    _, ana, _ = ten_mb_share
    pets = noisy_pets(0)  # 6.5 MB, and the same photos again as a second spelling of each class
    archive = pets_zip({**pets, **{name.upper(): photos for name, photos in pets.items()}})
    made = DatasetStore().import_zip(io.BytesIO(archive), "pets", actor=ana)
    assert len(made.skipped) == 6 and DatasetStore().usage(ana) < 7 * 2**20


def test_class_names_that_differ_only_in_case_are_one_class_on_windows_and_macos(tmp_path):
    photos = {
        "Cat": [("c.jpg", photo(0, 1))] * 5,
        "cat": [("c.jpg", photo(0, 2))] * 5,
        "dog": [("d.jpg", photo(1, 1))] * 5,
    }
    with pytest.raises(DatasetError, match="differ in more than upper and lower case: Cat, cat, dog"):
        DatasetStore(tmp_path / "datasets").create("pets", photos, actor=OWNER)


def test_a_zip_is_read_from_a_path_too(tmp_path):
    path = tmp_path / "pets.zip"
    path.write_bytes(make_zip(class_photos()))
    assert DatasetStore(tmp_path / "datasets").import_zip(path, "pets", actor=OWNER).dataset.classes() == [
        "cats",
        "dogs",
    ]


@pytest.fixture
def trained_run(copied_runs):
    """A private copy of the trained model1 run: top losses write their scores beside its model."""
    return RunStore().runs()[0]


def test_top_losses_find_a_mislabeled_photo_and_follow_fixes_without_rescoring(trained_run, tiny_data, monkeypatch):
    from catdog.inference import top_losses as ranking

    dataset = DatasetStore().copy(tiny_data, "fixable", actor=OWNER).dataset
    # A cat among the dogs the run trained on, under the dog's name.
    synthetic_image(0, 999).save(dataset.root / "train/dogs/dogs.0.jpg")
    scored = []
    original = ranking.probabilities
    monkeypatch.setattr(
        ranking, "probabilities", lambda model, pixels, *a: scored.append(len(pixels)) or original(model, pixels, *a)
    )

    top = ranking.top_losses(trained_run, scan(dataset.root), 3)
    assert top[0].file == "train/dogs/dogs.0.jpg" and top[0].predicted == "cats"
    assert top[0].loss > top[1].loss >= top[2].loss and scored == [24]
    assert ranking.top_losses(trained_run, scan(dataset.root), 3) == top and scored == [24]

    # Fixed, it is no longer one of the photos the run trained on under their labels.
    dataset.move("train/dogs/dogs.0.jpg", "cats", actor=OWNER)
    after = ranking.top_losses(trained_run, scan(dataset.root), 24)
    assert len(after) == 23 and "train/dogs/dogs.0.jpg" not in [s.file for s in after]
    assert scored == [24]  # the same photos less one: nothing scored again
    dataset.undo(dataset.latest().id, actor=OWNER)
    assert ranking.top_losses(trained_run, scan(dataset.root), 1) == top[:1] and scored == [24]


def test_an_older_run_keeps_its_own_splits_after_the_data_set_changes(tmp_path):
    """In a folder of class folders alone the splits are a seeded shuffle of the files present:
    after a removal a fresh split differs, and the run's test photos must still be its own."""
    from catdog.inference.evaluation import evaluate
    from catdog.inference.top_losses import top_losses

    source = make_dataset(tmp_path / "pets", per_split=(("", 15),))
    dataset = DatasetStore().copy(source, "pets", actor=OWNER).dataset
    runs = train_model1(tmp_path / "runs", dataset.root, 1, config.cache_dir())
    run = RunStore(runs).runs()[0]
    recorded = {split: [tuple(item) for item in items] for split, items in run.data()["files"].items()}
    removed = recorded["test"][0][0]
    dataset.remove(removed, actor=OWNER)

    now = scan(dataset.root)
    assert now.files["test"] != [item for item in recorded["test"] if item[0] != removed], "a fresh split moved"
    result = evaluate(run, data=now)
    assert [image.file for image in result.images] == [name for name, _ in recorded["test"] if name != removed]
    assert result.gone == 1 and result.n == len(recorded["test"]) - 1
    assert evaluate(run) == result, "scanning the folder itself gives the same"
    ranked = top_losses(run, now, len(recorded["train"]))
    assert sorted(s.file for s in ranked) == sorted(name for name, _ in recorded["train"])
    said = catdog("evaluate", "--run", run.id, "--runs-dir", str(runs), "--json")
    assert json.loads(said.stdout)["gone"] == 1 and json.loads(said.stdout)["n"] == result.n, said.stderr

    dataset.undo(dataset.latest().id, actor=OWNER)
    again = evaluate(run)
    assert [image.file for image in again.images] == [name for name, _ in recorded["test"]] and again.gone == 0


def test_an_older_run_follows_its_data_set_when_it_is_renamed(tmp_path):
    from catdog.inference.evaluation import evaluate
    from catdog.inference.lineage import run_data_dir

    store = DatasetStore()
    dataset = store.copy(make_dataset(tmp_path / "pets", per_split=(("", 15),)), "pets", actor=OWNER).dataset
    run = RunStore(train_model1(tmp_path / "runs", dataset.root, 1, config.cache_dir())).runs()[0]
    assert run.data()["dataset"] == dataset.id and run_data_dir(run) == str(dataset.root)
    before = evaluate(run)

    renamed = store.rename("pets", "my pets", actor=OWNER)
    # A new data set under the old name is another data set: the run follows its own.
    store.copy(make_dataset(tmp_path / "others", per_split=(("", 15),)), "pets", actor=OWNER)
    assert run_data_dir(run) == str(renamed.root) and renamed.id == run.data()["dataset"]
    now = scan(run_data_dir(run))
    after = evaluate(run, data=now)
    assert after.images == before.images and after.gone == 0
    assert all(image.file in now.index for image in after.images), "its photos can be shown"
    assert evaluate(run) == after, "scanning the run's folder itself finds them too"


def test_a_run_on_a_folder_of_its_own_keeps_that_folder(tmp_path):
    from catdog.inference.lineage import run_data_dir

    run = RunStore().create({"arch": "model1", "data_dir": str(tmp_path / "photos")})
    run.record_data(scan(make_dataset(tmp_path / "photos")))
    assert "dataset" not in run.data() and run_data_dir(run) == str(tmp_path / "photos")


def test_an_import_killed_midway_leaves_a_folder_the_next_listing_sweeps_away(tmp_path):
    """A crash leaves the hidden folder an import fills; the OS lets go of its lock, and that
    is how the sweep tells it from an import still running (no process table, no fcntl)."""
    archive = tmp_path / "pets.zip"
    archive.write_bytes(make_zip(class_photos()))
    root = tmp_path / "datasets"
    crash = (
        "import os, sys; from catdog.access import OWNER; from catdog.data.datasets import DatasetStore; "
        "DatasetStore(sys.argv[1]).import_zip(sys.argv[2], 'pets', progress=lambda done, total: done == 3 and os._exit(9), "
        "actor=OWNER)"
    )
    killed = subprocess.run(
        [sys.executable, "-c", crash, str(root), str(archive)],
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == 9, killed.stderr
    [left] = [path for path in root.iterdir() if path.name.startswith(".incoming-") and path.is_dir()]
    assert list(left.rglob("*.jpg")), "the crash left photos behind"
    (root / ".deleted-old-1a2b").mkdir()  # and a delete cut short

    store = DatasetStore(root)
    assert store.names() == []
    assert not [path.name for path in root.iterdir() if path.name.startswith((".incoming-", ".deleted-"))]


def test_the_sweep_passes_over_an_import_still_running(tmp_path):
    store = DatasetStore(tmp_path / "datasets")
    seen = []

    def progress(done: int, total: int) -> None:
        # Another session lists the data sets while this import is filling its folder.
        DatasetStore(store.root).names()
        seen.append(sorted(path.name for path in store.root.iterdir() if path.name.startswith(".incoming-")))

    made = store.import_zip(io.BytesIO(make_zip(class_photos())), "pets", progress, actor=OWNER)
    assert all(len(names) == 2 for names in seen), "the folder and its lock survive every sweep"
    assert sum(map(len, scan(made.dataset.root).files.values())) == 8
    assert not [path for path in store.root.iterdir() if path.name.startswith(".incoming-")], "nothing left after"


def test_the_odd_zip_imports_with_one_entry_skipped_and_one_cats_class(tmp_path):
    """`Cats/` beside `cats/` is one class, as the skip message says case is ignored; a 300-character
    name is skipped with its reason instead of aborting the import."""
    made = DatasetStore(tmp_path).import_zip(io.BytesIO(ARCHIVES["odd"].make()), "odd", actor=OWNER)
    [skipped] = made.skipped
    assert skipped["file"] == f"cats/{'n' * 300}.jpg" and skipped["reason"].startswith("cannot be written (")
    assert made.dataset.classes() == ["cats", "dogs"]
    assert sorted(path.name for path in (made.dataset.root / "cats").iterdir()) == [
        "Cat-9.jpg",
        *(f"cats-{i}.jpg" for i in range(4)),
    ]
