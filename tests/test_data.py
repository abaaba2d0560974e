"""Data folders: messy content is listed not fatal, splits are seeded and leak-free, scans are cached."""

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from catdog import config
from catdog.access import Forbidden
from catdog.data import images, pixels
from catdog.data import scan as scanning
from catdog.data.errors import DataError
from catdog.data.scan import Scan, scan
from catdog.runs.store import RunStore
from tests.helpers import corpus
from tests.helpers.support import assert_clean, catdog, open_app, session_actor, synthetic_image

TECHNICAL = re.compile(r"Error\b|Exception|Traceback|struct\.|object at 0x|Errno")


def write_images(folder: Path, label: int, count: int, start: int = 0, fmt: str = "JPEG", suffix: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        synthetic_image(label, i).save(folder / f"{folder.name}.{i}{suffix}", format=fmt)


def image_bytes(label: int = 0, fmt: str = "JPEG") -> bytes:
    return corpus.encode(synthetic_image(label, 99), fmt)


def all_files(result: Scan) -> dict[str, set[str]]:
    return {split: {name for name, _ in items} for split, items in result.files.items()}


def assert_disjoint(result: Scan) -> None:
    files = all_files(result)
    assert not files["train"] & files["validation"]
    assert not files["train"] & files["test"]
    assert not files["validation"] & files["test"]
    for items in result.files.values():
        assert len(items) == len({name for name, _ in items}), "a file listed twice in one split"


def held_out(total: int, fraction: float) -> int:
    return round(total * fraction)


class Counting:
    """Wraps one of data's per-file steps to count the files it is called on (thread-safe)."""

    def __init__(self, real) -> None:
        self.paths: list[Path] = []
        self.lock = threading.Lock()
        self.real = real

    def __call__(self, path: Path, *args):
        with self.lock:
            self.paths.append(path)
        return self.real(path, *args)


@pytest.fixture
def checks(monkeypatch) -> Counting:
    """Files a scan checks (decodes at a reduced scale to see they are whole)."""
    counter = Counting(scanning._check)
    monkeypatch.setattr(scanning, "_check", counter)
    return counter


@pytest.fixture
def decodes(monkeypatch) -> Counting:
    """Files decoded into model-size pixels."""
    counter = Counting(pixels._decode)
    monkeypatch.setattr(pixels, "_decode", counter)
    return counter


# --- splits ---------------------------------------------------------------------------------


def test_missing_test_folder_is_split_from_validation(tiny_data: Path) -> None:
    result = scan(tiny_data)
    assert result.classes == ["cats", "dogs"]
    test_count = held_out(10, config.TEST_FRACTION)
    assert result.counts() == {
        "train": {"cats": 12, "dogs": 12},
        "validation": {"cats": 10 - test_count, "dogs": 10 - test_count},
        "test": {"cats": test_count, "dogs": test_count},
    }
    assert_disjoint(result)
    files = all_files(result)
    assert all(name.startswith("train/") for name in files["train"])
    assert all(name.startswith("validation/") for name in files["validation"] | files["test"])
    for split, items in result.files.items():
        for name, label in items:
            assert name.split("/")[1] == result.classes[label], f"{name} labelled {label} in {split}"


def test_same_seed_same_files_other_seed_other_test_files(tiny_data: Path) -> None:
    first, again = scan(tiny_data, seed=11), scan(tiny_data, seed=11)
    assert first.files == again.files
    others = [scan(tiny_data, seed=seed) for seed in range(12, 17)]
    assert any(all_files(other)["test"] != all_files(first)["test"] for other in others)
    for other in others:
        assert_disjoint(other)
        assert all_files(other)["train"] == all_files(first)["train"], "train/ is never reshuffled"
        assert other.counts() == first.counts(), "stratified: same counts per class whatever the seed"


def test_class_folders_only_are_split_by_seeded_ratio(tmp_path: Path) -> None:
    write_images(tmp_path / "cats", 0, 20)
    write_images(tmp_path / "dogs", 1, 30)
    result = scan(tmp_path, seed=5)
    assert result.classes == ["cats", "dogs"]
    expected = {}
    for name, total in (("cats", 20), ("dogs", 30)):
        validation = held_out(total, config.VALIDATION_FRACTION)
        test = held_out(validation, config.TEST_FRACTION)
        expected[name] = (total - validation, validation - test, test)
    counts = result.counts()
    for name, (train, validation, test) in expected.items():
        assert (counts["train"][name], counts["validation"][name], counts["test"][name]) == (train, validation, test)
    assert_disjoint(result)
    everything = set().union(*all_files(result).values())
    assert everything == {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.jpg")}
    assert scan(tmp_path, seed=5).files == result.files


def test_train_only_gets_validation_and_test_held_out(tmp_path: Path) -> None:
    write_images(tmp_path / "train" / "cats", 0, 10)
    write_images(tmp_path / "train" / "dogs", 1, 10)
    result = scan(tmp_path)
    validation = held_out(10, config.VALIDATION_FRACTION)
    test = held_out(validation, config.TEST_FRACTION)
    assert result.counts()["train"] == {"cats": 10 - validation, "dogs": 10 - validation}
    assert result.counts()["test"] == {"cats": test, "dogs": test}
    assert_disjoint(result)


def test_existing_test_folder_is_used_as_is(tmp_path: Path) -> None:
    for split, count in (("train", 6), ("validation", 5), ("test", 3)):
        write_images(tmp_path / split / "cats", 0, count, start=100 * len(split))
        write_images(tmp_path / split / "dogs", 1, count, start=100 * len(split))
    result = scan(tmp_path)
    assert result.counts() == {
        split: {"cats": n, "dogs": n} for split, n in (("train", 6), ("validation", 5), ("test", 3))
    }
    assert all(name.startswith("test/") for name in all_files(result)["test"])


def test_arrays_give_model_size_pixels_and_labels(tiny_data: Path) -> None:
    result = scan(tiny_data)
    pixels, labels = result.arrays("train")
    assert pixels.shape == (24, *config.IMAGE_SIZE, 3) and pixels.dtype == np.uint8
    assert labels.tolist() == [label for _, label in result.files["train"]]
    assert result.content_key("train") != result.content_key("test")


# --- messy folders ---------------------------------------------------------------------------


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """Good images under odd names, and every kind of junk a real folder collects."""
    root = tmp_path / "messy data"
    cats, dogs = root / "train" / "cats", root / "train" / "dogs"
    write_images(cats, 0, 4)
    write_images(dogs, 1, 4)
    write_images(root / "validation" / "cats", 0, 3, start=50)
    write_images(root / "validation" / "dogs", 1, 3, start=50)
    (cats / "my cät photo.JPG").write_bytes(image_bytes(0))
    (cats / "really-a-jpeg.png").write_bytes(image_bytes(0))
    (cats / "no_extension").write_bytes(image_bytes(0, "PNG"))
    (cats / os.fsdecode(b"caf\xe9.jpeg")).write_bytes(image_bytes(0))  # not UTF-8, as from old zips
    (cats / "nested" / "deeper").mkdir(parents=True)
    (cats / "nested" / "deeper" / "cat.WEBP").write_bytes(image_bytes(0, "WEBP"))
    (cats / "nested" / "readme.md").write_text("# notes\n")
    (cats / "corrupt.jpg").write_bytes(corpus.truncated(corpus.encode(corpus.gradient((200, 150)), "JPEG")))
    (cats / "empty.jpg").write_bytes(b"")
    (cats / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 200)
    (dogs / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500)
    (dogs / "notes.txt").write_text("good boy\n")
    (dogs / "archive.jpg").write_bytes(corpus.zip_bytes())
    (dogs / "bomb.png").write_bytes(corpus.png_bomb())
    with open(dogs / "video.jpg", "wb") as video:  # sparse: huge on paper, nothing on disk
        video.truncate(config.MAX_UPLOAD_BYTES + 1)
    (dogs / "gone.jpg").symlink_to(root / "nowhere.jpg")
    (root / "train" / "birds").mkdir()
    (root / "train" / "birds" / "feather.txt").write_text("no images here")
    write_images(root / "validation" / "foxes", 0, 2)
    (root / "stray.txt").write_text("files beside the split folders are ignored")
    return root


def test_a_run_on_a_messy_folder_trains_on_the_good_images_and_shows_the_rest(messy, tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    result = catdog(
        "train", "--arch", "model1", "--epochs", "1", "--data-dir", str(messy), "--runs-dir", str(runs_dir), "--wait"
    )
    assert result.returncode == 0, result.stderr
    (run,) = RunStore(runs_dir).runs()
    recorded = run.data()
    assert recorded["counts"]["train"] == {"cats": 9, "dogs": 4}
    assert sorted(entry["file"] for entry in recorded["skipped"]) == sorted(e["file"] for e in scan(messy).skipped)

    monkeypatch.setenv("CATDOG_RUNS_DIR", str(runs_dir))
    app = open_app("pages/train.py")
    assert_clean(app)
    assert any(
        f"{len(recorded['skipped'])} files or folders in the data folder were not used for training" in e.label
        for e in app.expander
    )


def test_messy_folder_trains_on_good_images_and_lists_the_rest(messy: Path) -> None:
    result = scan(messy)
    assert result.classes == ["cats", "dogs"]
    train = all_files(result)["train"]
    for name in (
        "my cät photo.JPG",
        "really-a-jpeg.png",
        "no_extension",
        os.fsdecode(b"caf\xe9.jpeg"),
        "nested/deeper/cat.WEBP",
    ):
        assert f"train/cats/{name}" in train, name
    assert result.counts()["train"] == {"cats": 9, "dogs": 4}
    reasons = {entry["file"]: entry["reason"] for entry in result.skipped}
    expected = {
        "train/cats/corrupt.jpg": "truncated",
        "train/cats/empty.jpg": "empty",
        "train/cats/.DS_Store": "not an image",
        "train/cats/nested/readme.md": "text file",
        "train/dogs/Thumbs.db": "not an image",
        "train/dogs/notes.txt": "text file",
        "train/dogs/archive.jpg": "zip",
        "train/dogs/bomb.png": "decompression bomb",
        "train/dogs/video.jpg": "too large",
        "train/dogs/gone.jpg": "cannot be read",
        "train/birds/feather.txt": "text file",
        "train/birds/": "no usable images",
        "validation/foxes/": "no training images",
    }
    for file, words in expected.items():
        assert file in reasons, f"{file} not listed in skipped"
        assert words in reasons[file].lower(), (file, reasons[file])
    assert len(result.skipped) == len(expected)
    for entry in result.skipped:
        assert set(entry) == {"file", "reason"}
        assert "\n" not in entry["reason"] and not TECHNICAL.search(entry["reason"]), entry
    assert_disjoint(result)
    assert not any(name.startswith("validation/foxes") for items in all_files(result).values() for name in items)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_listed(tmp_path: Path) -> None:
    write_images(tmp_path / "cats", 0, 4)
    write_images(tmp_path / "dogs", 1, 4)
    locked = tmp_path / "cats" / "cats.0.jpg"
    locked.chmod(0)
    try:
        result = scan(tmp_path)
    finally:
        locked.chmod(0o644)
    assert {"file": "cats/cats.0.jpg", "reason": "cannot be read (permission denied)"} in result.skipped
    assert "cats/cats.0.jpg" in set().union(*all_files(scan(tmp_path)).values()), "readable again: used again"


def test_permission_denied_is_listed_even_as_root(tmp_path: Path, monkeypatch) -> None:
    """The same path as chmod 000, simulated, so that it is tested where permissions don't bite."""
    write_images(tmp_path / "cats", 0, 4)
    write_images(tmp_path / "dogs", 1, 4)
    locked = tmp_path / "cats" / "cats.0.jpg"

    def guarded_open(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(images, "open", guarded_open, raising=False)
    result = scan(tmp_path)
    assert {"file": "cats/cats.0.jpg", "reason": "cannot be read (permission denied)"} in result.skipped
    assert sum(result.counts()[split]["cats"] for split in config.SPLITS) == 3


def test_symlinked_files_and_class_folders_are_followed(tmp_path: Path) -> None:
    """On one's own machine (no shared roots, no teacher password) a link may lead anywhere."""
    elsewhere = tmp_path / "elsewhere"
    write_images(elsewhere / "dogs", 1, 4)
    root = tmp_path / "data"
    write_images(root / "cats", 0, 4)
    (root / "dogs").symlink_to(elsewhere / "dogs")
    (root / "cats" / "linked.jpg").symlink_to(elsewhere / "dogs" / "dogs.0.jpg")
    result = scan(root)
    assert result.classes == ["cats", "dogs"]
    assert sum(result.counts()[split]["dogs"] for split in config.SPLITS) == 4
    assert sum(result.counts()[split]["cats"] for split in config.SPLITS) == 5


def test_links_inside_a_shared_root_never_lead_out_of_it(tmp_path: Path, monkeypatch) -> None:
    """A link in a CATDOG_DATA_ROOTS folder to a photo or folder outside is not followed: its
    photos are not used or shown, and no name outside the root appears among the skipped files."""
    secret = tmp_path / "private"
    write_images(secret / "dogs", 1, 3)
    (secret / "passwords.txt").write_text("hunter2\n")
    share = tmp_path / "share"
    root = share / "pets"
    write_images(root / "cats", 0, 4)
    write_images(root / "dogs", 1, 4)
    (root / "cats" / "stolen.jpg").symlink_to(secret / "dogs" / "dogs.0.jpg")
    (root / "cats" / "inside.jpg").symlink_to(root / "dogs" / "dogs.1.jpg")
    (root / "dogs" / "more").symlink_to(secret)
    (root / "etc").symlink_to(secret)
    monkeypatch.setenv("CATDOG_DATA_ROOTS", str(share))
    result = scan(root)
    assert result.classes == ["cats", "dogs"], "a linked class folder outside the root is no class"
    used = {name for items in result.files.values() for name, _ in items}
    assert {name for name in used if name.startswith("cats/")} == {f"cats/cats.{i}.jpg" for i in range(4)} | {
        "cats/inside.jpg"
    }, "a link within the root is followed, one leading out is not"
    assert not any(name.startswith("dogs/more") for name in used)
    out = "a link to outside the folder (not followed)"
    assert {"file": "cats/stolen.jpg", "reason": out} in result.skipped
    assert {"file": "dogs/more", "reason": out} in result.skipped and {"file": "etc", "reason": out} in result.skipped
    assert not any("passwords" in entry["file"] or "private" in entry["file"] for entry in result.skipped)


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ("missing", "does not exist"),
        ("file", "is a file"),
        ("empty", "no class folders"),
        ("one-class", "at least two class folders"),
        ("all-junk", "at least two class folders"),
        ("no-train", "no train/"),
        ("empty-train", "no class folders"),
    ],
)
def test_unusable_folders_raise_one_clear_line(tmp_path: Path, layout: str, words: str) -> None:
    root = tmp_path / "data set"
    if layout == "file":
        root.write_bytes(image_bytes())
    elif layout != "missing":
        root.mkdir()
    if layout == "one-class":
        write_images(root / "cats", 0, 3)
    elif layout == "all-junk":
        for name in ("cats", "dogs"):
            (root / name).mkdir()
            (root / name / "a.jpg").write_text("not a picture")
    elif layout == "no-train":
        write_images(root / "validation" / "cats", 0, 2)
        write_images(root / "validation" / "dogs", 1, 2)
    elif layout == "empty-train":
        (root / "train").mkdir()
    with pytest.raises(DataError) as raised:
        scan(root)
    message = str(raised.value)
    assert words in message
    assert "\n" not in message and not TECHNICAL.search(message)
    assert str(root) in message


# --- the scan cache --------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> Path:
    write_images(tmp_path / "cats", 0, 5)
    write_images(tmp_path / "dogs", 1, 5)
    return tmp_path


def test_a_scan_checks_every_file_and_decodes_none(small: Path, checks: Counting, decodes: Counting) -> None:
    """The home page says what is there without decoding the photos: pixels wait until needed."""
    result = scan(small)
    assert len(checks.paths) == 10 and decodes.paths == []
    assert sum(len(items) for items in result.files.values()) == 10


def test_a_truncated_jpeg_fails_the_check(small: Path) -> None:
    whole = (small / "cats" / "cats.0.jpg").read_bytes()
    (small / "cats" / "cats.0.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    result = scan(small)
    assert [item["file"] for item in result.skipped] == ["cats/cats.0.jpg"]
    assert "cats/cats.0.jpg" not in result.index


def test_decode_caches_every_photo_once_per_size(small: Path, decodes: Counting) -> None:
    first = scan(small)
    first.decode((96, 96))
    assert len(decodes.paths) == 10
    pixels, labels = scan(small).arrays("train", size=(96, 96))
    assert pixels.shape == (len(labels), 96, 96, 3) and pixels.dtype == np.uint8
    assert labels.tolist() == first.labels("train").tolist()
    scan(small).decode((96, 96))
    assert len(decodes.paths) == 10, "a second look at 96 px decoded files again"
    scan(small).decode((64, 64))
    assert len(decodes.paths) == 20, "another size is decoded from the files"


def test_without_the_cache_only_the_photos_asked_for_are_decoded(small: Path, decodes: Counting) -> None:
    result = scan(small)
    test, _ = result.arrays("test")
    assert len(decodes.paths) == len(test) < 10, "a split is decoded alone"
    picked, _ = result.arrays("train", [0, 2])
    assert picked.shape == (2, *config.IMAGE_SIZE, 3) and len(decodes.paths) == len(test) + 2
    np.testing.assert_array_equal(result.photo(result.files["train"][2][0]), picked[1])
    before = len(decodes.paths)
    result.decode()
    np.testing.assert_array_equal(result.arrays("train", [0, 2])[0], picked)
    result.photo(result.files["train"][2][0])
    assert len(decodes.paths) == before + 10, "once cached, pixels come from the cache"


def test_a_scan_for_training_now_keeps_the_pixels_it_checked(small: Path, checks: Counting, decodes: Counting) -> None:
    """`catdog train --wait` checks and decodes each photo once, not once each."""
    kept = scan(small, keep=(96, 96))
    pixels, _ = kept.arrays("train", [0, 1], size=(96, 96))
    assert len(checks.paths) == 10 and decodes.paths == []
    np.testing.assert_array_equal(pixels, scan(small).arrays("train", [0, 1], size=(96, 96))[0])
    assert len(decodes.paths) == 2, "the pixels were kept by that scan only"


def test_unchanged_folder_is_served_from_cache_without_checking(small: Path, checks: Counting) -> None:
    first = scan(small)
    assert len(checks.paths) == 10
    again = scan(small)
    assert len(checks.paths) == 10, "second scan checked files again"
    assert again.files == first.files and again.skipped == first.skipped
    assert again.sizes == first.sizes and again.digests == first.digests


def test_changed_file_invalidates_the_cache(small: Path, checks: Counting) -> None:
    scan(small)
    (small / "cats" / "cats.0.jpg").write_text("overwritten by a text editor")
    changed = scan(small)
    assert len(checks.paths) > 10
    assert {"file": "cats/cats.0.jpg", "reason": "not an image: a text file"} in changed.skipped
    write_images(small / "dogs", 1, 1, start=7)
    assert "dogs/dogs.7.jpg" in set().union(*all_files(scan(small)).values())


def test_permission_change_invalidates_the_cache(small: Path, checks: Counting) -> None:
    """A file that was unreadable is read again once readable (chmod changes no mtime)."""
    first = scan(small)
    (small / "cats" / "cats.0.jpg").chmod(0o600)
    assert scan(small).key != first.key
    assert len(checks.paths) == 10, "the same contents were checked again"


def test_a_rescan_after_a_fix_decodes_only_new_contents(
    small: Path, checks: Counting, decodes: Counting, tmp_path_factory, monkeypatch
) -> None:
    """Removing, moving and restoring photos, as the mistakes view does, reuses the checks and the
    decoded pixels of every photo whose content the folder has had before."""
    first = scan(small)
    first.decode()
    old_pixels = config.cache_dir() / "scans" / f"{first.key}-160x160.npy"
    assert old_pixels.exists()
    (small / "cats" / "cats.1.jpg").rename(tmp_path_factory.mktemp("trash") / "cats.1.jpg")
    (small / "dogs" / "dogs.2.jpg").rename(small / "cats" / "dogs.2.jpg")
    write_images(small / "dogs", 1, 1, start=7)
    fixed = scan(small)
    fixed.decode()
    assert [path.name for path in checks.paths[10:]] == ["dogs.7.jpg"]
    assert [path.name for path in decodes.paths[10:]] == ["dogs.7.jpg"]
    assert "cats/cats.1.jpg" not in fixed.index and "cats/dogs.2.jpg" in fixed.index
    assert not old_pixels.exists(), "the earlier state's pixels are not kept beside"
    monkeypatch.setenv("CATDOG_CACHE_DIR", str(tmp_path_factory.mktemp("fresh-cache")))
    fresh = scan(small)
    assert fresh.files == fixed.files and fresh.sizes == fixed.sizes and fresh.digests == fixed.digests
    np.testing.assert_array_equal(fixed.arrays("train")[0], fresh.arrays("train")[0])


def test_damaged_caches_are_rebuilt(small: Path, checks: Counting, decodes: Counting) -> None:
    first = scan(small)
    first.decode()
    expected = np.array(first.arrays("train")[0])
    (config.cache_dir() / "scans" / f"{first.key}.json").write_text("{not json")
    pixels = config.cache_dir() / "scans" / f"{first.key}-160x160.npy"
    pixels.unlink()  # a new file, not a rewrite: first's pixels still map the old one
    pixels.write_bytes(b"not numpy")
    again = scan(small)
    assert len(checks.paths) == 20 and again.files == first.files
    again.decode()
    np.testing.assert_array_equal(again.arrays("train")[0], expected)
    assert len(decodes.paths) == 20


def test_concurrent_scans_of_one_folder_agree(small: Path) -> None:
    """The dashboard may scan the same new folder from two sessions at once."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: scan(small), range(3)))
    assert all(result.files == results[0].files for result in results)
    assert sum(len(items) for items in results[0].files.values()) == 10
    assert not list((config.cache_dir() / "scans").glob("*partial*"))


# --- the real data set -------------------------------------------------------------------------


def test_real_data_counts_and_disjoint_splits(real_data: Path) -> None:
    result = scan(real_data)
    assert result.classes == ["cats", "dogs"]
    assert result.counts() == {
        "train": {"cats": 1000, "dogs": 1000},
        "validation": {"cats": 400, "dogs": 400},
        "test": {"cats": 100, "dogs": 100},
    }
    assert result.skipped == []
    assert_disjoint(result)
    digests = [result.digests[name] for items in result.files.values() for name, _ in items]
    assert len(digests) == 3000


# --- a shared server: only shared folders, bounded scans, one scan per folder -------------------


def test_a_folder_outside_the_data_roots_is_refused_before_anything_is_read(small: Path, monkeypatch, checks) -> None:
    monkeypatch.setenv("CATDOG_DATA_ROOTS", os.pathsep.join([str(small / "cats"), "/nonexistent/share"]))
    walked = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: walked.append(path) or real_scandir(path))
    with pytest.raises(DataError) as raised:
        scan("/usr")
    assert str(raised.value) == "/usr is outside the folders this server shares (CATDOG_DATA_ROOTS)"
    assert walked == [] and checks.paths == []


def test_a_link_inside_a_data_root_to_a_folder_outside_is_refused(small: Path, tmp_path_factory, monkeypatch) -> None:
    share = tmp_path_factory.mktemp("share")
    (share / "photos").symlink_to(small)
    monkeypatch.setenv("CATDOG_DATA_ROOTS", str(share))
    with pytest.raises(DataError, match="outside the folders this server shares"):
        scan(share / "photos")
    monkeypatch.setenv("CATDOG_DATA_ROOTS", str(small.parent))
    assert scan(share / "photos").classes == ["cats", "dogs"], "a link to a shared folder is fine"


def test_with_a_teacher_password_and_no_data_roots_typed_folders_are_refused(small: Path, monkeypatch) -> None:
    monkeypatch.delenv("CATDOG_DATA_ROOTS", raising=False)
    teacher, student, visitor = session_actor("teacher"), session_actor("student"), session_actor("visitor")
    for reader in (teacher, student):
        with pytest.raises(DataError, match="CATDOG_DATA_ROOTS is not set"):
            scan(small, actor=reader)
    with pytest.raises(Forbidden, match="visitors may not choose the data folder"):
        scan(small, actor=visitor)
    monkeypatch.setenv("CATDOG_DATA_DIR", str(small))
    assert scan(small, actor=student).classes == ["cats", "dogs"], "the server's own CATDOG_DATA_DIR is not typed"
    monkeypatch.delenv("CATDOG_DATA_DIR")
    assert scan(small).classes == ["cats", "dogs"], "the owner (the command line) reads any folder"


def test_a_folder_with_more_entries_than_the_cap_is_one_line_error(small: Path, monkeypatch, checks) -> None:
    write_images(small / "dogs" / "more", 1, 45)
    monkeypatch.setenv("CATDOG_MAX_SCAN_FILES", "50")
    with pytest.raises(DataError) as raised:
        scan(small)
    message = str(raised.value)
    assert message == f"{small} has more than 50 files and folders, more than this server scans (CATDOG_MAX_SCAN_FILES)"
    assert checks.paths == [], "nothing is read once the cap is hit"


def test_the_walk_stops_at_the_cap(tmp_path: Path, monkeypatch) -> None:
    """A folder of a million files must not be listed to the end before it is refused."""
    write_images(tmp_path / "cats", 0, 2)
    for i in range(300):
        (tmp_path / "cats" / f"{i}.txt").touch()
    monkeypatch.setenv("CATDOG_MAX_SCAN_FILES", "20")
    seen = []
    real_scandir = os.scandir

    class Counting:
        def __init__(self, path):
            self.listing = real_scandir(path)

        def __enter__(self):
            return (seen.append(entry) or entry for entry in self.listing)

        def __exit__(self, *exc):
            self.listing.close()

    monkeypatch.setattr(os, "scandir", Counting)
    with pytest.raises(DataError, match="more than 20 files"):
        scan(tmp_path)
    assert len(seen) == 21


def test_folders_nested_deeper_than_the_limit_are_a_one_line_error(small: Path) -> None:
    deep = small / "cats" / Path(*[f"level{i}" for i in range(1, config.MAX_SCAN_DEPTH + 1)])
    write_images(deep, 0, 1)
    deepest = (deep / "level8.0.jpg").relative_to(small).as_posix()
    assert deepest in set().union(*all_files(scan(small)).values()), "the deepest allowed level is scanned"
    write_images(deep / "too-deep", 0, 1)
    with pytest.raises(DataError) as raised:
        scan(small)
    message = str(raised.value)
    assert f"more than {config.MAX_SCAN_DEPTH} folders below its class folder" in message and "\n" not in message


def test_an_unreadable_subfolder_is_listed_not_skipped_silently(small: Path, monkeypatch) -> None:
    locked = small / "cats" / "private"
    write_images(locked, 0, 2)
    real_scandir = os.scandir

    def guarded_scandir(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    result = scan(small)
    assert {"file": "cats/private/", "reason": "folder cannot be read (Permission denied)"} in result.skipped
    assert sum(result.counts()[split]["cats"] for split in config.SPLITS) == 5


def test_concurrent_scans_of_a_new_folder_check_it_once(small: Path, checks: Counting) -> None:
    """Several sessions asking for one new folder at once: one checks, the others read its cache."""
    totals = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: scan(small, progress=lambda done, total: totals.append(total)), range(4)))
    assert len(checks.paths) == 10
    assert totals == [10], "only one scan reports its progress"
    assert all(result.files == results[0].files for result in results)
