"""Finding, checking, splitting and decoding the images of a data set.

A data set is either the default `cats_and_dogs_filtered` download or a folder laid out as
`train/`, `validation/` (optional) and `test/` (optional), each with one subfolder per class,
or just one subfolder per class. A scan checks every file once per content (is it a whole
image?) and caches that report on disk; pixels are decoded only when something needs them, once per
content and size, so the home page can say what is there without decoding three thousand photos.
"""

import contextlib
import hashlib
import itertools
import os
import random
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catdog import access, config
from catdog.data.images import ImageError, open_image, read_upload, stored_size, to_model_input
from catdog.progress import Progress
from catdog.storage import read_json, save_npy_atomic, write_json_atomic


class DataError(ValueError):
    """A data folder that cannot be used; the message is one line for the user."""


@dataclass
class Scan:
    """What is in a data folder: the usable files per split and class, and what was skipped."""

    root: Path
    classes: list[str]
    files: dict[str, list[tuple[str, int]]]
    skipped: list[dict[str, str]]
    sizes: dict[str, tuple[int, int]]
    digests: dict[str, str]
    key: str = ""
    index: dict[str, int] = field(default_factory=dict, repr=False)
    _pixels: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            split: {name: sum(1 for _, label in items if label == i) for i, name in enumerate(self.classes)}
            for split, items in self.files.items()
        }

    def check_trainable(self) -> None:
        """A one-line refusal up front when training could not measure itself: no validation photos."""
        if not self.files["validation"]:
            raise DataError(
                f"{self.root}: the validation split is empty: each class needs at least "
                f"{min_photos_per_class()} photos (a {config.VALIDATION_FRACTION:.0%} share is held out "
                "for validation), or a validation/ folder"
            )

    def arrays(
        self,
        split: str,
        picks: Sequence[int] | None = None,
        size: tuple[int, int] = config.IMAGE_SIZE,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Resized uint8 pixels and integer labels of one split, in file order, or of the split's
        files at positions `picks` only: from the cache `decode` made, else decoded now."""
        items = self.files[split] if picks is None else [self.files[split][i] for i in picks]
        names = [name for name, _ in items]
        cached = self._all_pixels(tuple(size), build=False)
        if cached is None:
            return _decode_all(self.root, names, tuple(size), progress), _labels(items)
        return cached[[self.index[name] for name in names]], _labels(items)

    def decode(self, size: tuple[int, int] = config.IMAGE_SIZE, progress: Progress | None = None) -> None:
        """Decodes every usable photo at a size now and caches them, once per folder state, for
        training that reads them every epoch."""
        self._all_pixels(tuple(size), progress)

    def photo(self, name: str, size: tuple[int, int] = config.IMAGE_SIZE) -> np.ndarray:
        """One usable photo's pixels at a model size, as training sees it."""
        cached = self._all_pixels(tuple(size), build=False)
        return cached[self.index[name]] if cached is not None else _decode_all(self.root, [name], tuple(size))[0]

    def labels(self, split: str) -> np.ndarray:
        """Integer labels of one split, in file order, without reading any pixels."""
        return _labels(self.files[split])

    def _all_pixels(
        self, size: tuple[int, int], progress: Progress | None = None, build: bool = True
    ) -> np.ndarray | None:
        """Every usable photo's pixels at one size, in index order: from memory, from the disk
        cache, or (with build) decoded now and cached; None when not built."""
        if size not in self._pixels:
            pixels = _cached_pixels(self, size, progress) if build else _read_pixels(self, size)
            if pixels is None:
                return None
            self._pixels[size] = pixels
        return self._pixels[size]

    def content_key(self, split: str) -> str:
        """Identifies a split by its files' content, for caches derived from its pixels."""
        digest = hashlib.sha256()
        for name, label in self.files[split]:
            digest.update(f"{self.digests[name]}:{label};".encode())
        return digest.hexdigest()[:24]


def _labels(items: list[tuple[str, int]]) -> np.ndarray:
    return np.array([label for _, label in items], dtype=np.int32)


def default_dataset_dir() -> Path:
    return config.keras_home() / "datasets" / "cats_and_dogs_extracted" / config.DATASET_NAME


def default_dataset_available() -> bool:
    """Whether the default set is on disk (unpacking a cached archive needs no network)."""
    archive = config.keras_home() / "datasets" / config.DATASET_FILE
    return default_dataset_dir().is_dir() or archive.is_file()


def download_default_dataset(progress: Progress | None = None, *, actor: access.Actor) -> Path:
    """Fetches cats_and_dogs_filtered into the Keras cache (once) and returns its folder."""
    folder = default_dataset_dir()
    if folder.is_dir():
        return folder
    access.authorize(actor, access.Action.DOWNLOAD)
    archive = config.keras_home() / "datasets" / config.DATASET_FILE
    if not archive.exists():
        _download(config.DATASET_URL, archive, progress)
    import keras  # here, so that scanning folders never pays TensorFlow's start-up time

    try:
        # A cached archive whose hash differs is downloaded again; one that still differs is refused.
        extracted = keras.utils.get_file(
            config.DATASET_FILE,
            origin=config.DATASET_URL,
            extract=True,
            cache_dir=str(config.keras_home()),
            file_hash=config.DATASET_SHA256,
        )
    except Exception as error:  # noqa: BLE001 -- get_file raises a bare Exception for network failures
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"{archive} is not the published {config.DATASET_FILE} (its SHA-256 differs) and could not be "
            f"downloaded again ({reason})"
        ) from None
    return Path(extracted) / config.DATASET_NAME


def _download(url: str, target: Path, progress: Progress | None) -> None:
    """Streams to a partial file first, so an interrupted download never looks complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or config.DATASET_BYTES)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise DataError(f"could not download {url}: {reason} (is the network reachable?)") from None
    partial.replace(target)


def resolve_data_dir(
    data_dir: str | os.PathLike | None, progress: Progress | None = None, actor: access.Actor = access.OWNER
) -> Path:
    """The folder to read: the default set (downloaded if needed) or a checked user folder,
    confined to the folders this server shares, as far as `actor` must be (see `confine`)."""
    data_dir = data_dir or config.data_dir()
    if data_dir is None or str(data_dir).strip() == "":
        return download_default_dataset(progress, actor=actor)
    path = confine(data_dir, actor)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if not path.is_dir():
        raise DataError(f"{path} is a file, not a folder of class folders")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DataError(f"{path} cannot be read (permission denied)")
    return path


def confine(folder: str | os.PathLike, actor: access.Actor = access.OWNER) -> Path:
    """A typed folder, resolved with its links followed, if this server lets `actor` read it.

    With CATDOG_DATA_ROOTS set it must lie inside one of them. Without, any folder may be read
    by the owner (one's own machine); for the sessions of a server with a teacher password typed
    folders are refused altogether. CATDOG_DATA_DIR, set by whoever runs the server, is allowed,
    and so are the app's own data sets (catdog.data.datasets). Nothing inside the folder is read here.
    """
    path = Path(str(folder).strip()).expanduser().resolve()
    if config.data_dir() and path == Path(config.data_dir()).expanduser().resolve():
        return path
    if path.parent == config.datasets_dir() and not path.name.startswith("."):
        return path
    access.authorize(actor, access.Action.CHOOSE_FOLDER)
    roots = config.data_roots()
    if roots and not any(path.is_relative_to(root) for root in roots):
        raise DataError(f"{folder} is outside the folders this server shares (CATDOG_DATA_ROOTS)")
    if not roots and not access.allowed(actor, access.Action.READ_ANY_FOLDER):
        raise DataError("this server reads no typed folders: its CATDOG_DATA_ROOTS is not set")
    return path


def _link_judge(root: Path, actor: access.Actor) -> Callable[[Path], bool]:
    """Whether a link below `root` may be followed: into root itself, or where a typed folder
    may lie (a shared root; anywhere on one's own machine, see `confine`). A link out of a shared
    folder would otherwise show photos, and name files, that the server does not share."""
    root, roots = root.resolve(), config.data_roots()

    def may_follow(link: Path) -> bool:
        target = Path(os.path.realpath(link))
        if target.is_relative_to(root):
            return True
        return any(target.is_relative_to(shared) for shared in roots) if roots else access.allowed(actor, access.Action.READ_ANY_FOLDER)

    return may_follow


class _Walk:
    """Lists the files below class folders, counting every entry as it goes, so that a huge or
    deeply nested folder is refused at the cap instead of being walked to its end."""

    def __init__(self, root: Path, may_follow: Callable[[Path], bool]):
        self.root, self.may_follow = root, may_follow
        self.limit = config.max_scan_files()
        self.seen = 0
        self.unreadable: list[dict[str, str]] = []

    def entries(self, folder: Path) -> list[os.DirEntry]:
        """The folder's entries, counted; an unreadable folder is listed as skipped."""
        found = []
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    self.seen += 1
                    if self.seen > self.limit:
                        raise DataError(
                            f"{self.root} has more than {self.limit:,} files and folders, more than this "
                            "server scans (CATDOG_MAX_SCAN_FILES)"
                        )
                    if _is_link(entry) and not self.may_follow(Path(entry.path)):
                        self.skip(Path(entry.path), "a link to outside the folder (not followed)")
                    else:
                        found.append(entry)
        except OSError as error:
            self.skip(folder, f"folder cannot be read ({error.strerror or error})", "/")
        return found

    def skip(self, path: Path, reason: str, suffix: str = "") -> None:
        """Listed by its own name inside the root, never by where a link leads."""
        self.unreadable.append({"file": f"{path.relative_to(self.root).as_posix()}{suffix}", "reason": reason})

    def subfolders(self, path: Path) -> list[Path]:
        return sorted(
            Path(e.path) for e in self.entries(path) if not e.name.startswith(".") and _is_dir(e)
        )

    def class_files(self, folder: Path) -> list[Path]:
        """Every file below a class folder; junk among them is reported by the scan, not hidden.
        Broken links are kept too, so that the scan lists them instead of dropping them silently."""
        files, pending = [], [(folder, 0)]
        while pending:
            current, depth = pending.pop()
            for entry in self.entries(current):
                if _is_dir(entry):
                    # Hidden folders (.thumbnails, .git) hold tool files, not training photos.
                    if entry.name.startswith("."):
                        continue
                    if depth == config.MAX_SCAN_DEPTH:
                        raise DataError(
                            f"{Path(entry.path).relative_to(self.root)} is more than {config.MAX_SCAN_DEPTH} "
                            f"folders below its class folder in {self.root}, deeper than this server scans"
                        )
                    pending.append((Path(entry.path), depth + 1))
                elif _is_file(entry):
                    files.append(Path(entry.path))
        return sorted(files)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path))
    except OSError:
        return False


def _layout(
    root: Path, actor: access.Actor = access.OWNER
) -> tuple[dict[str, dict[str, list[Path]]], list[dict[str, str]]]:
    """Files per split per class folder name, as laid out on disk (split '' = not yet split),
    and the folders that could not be read or links not followed."""
    walk = _Walk(root, _link_judge(root, actor))
    split_dirs = {
        split: root / split for split in config.SPLITS if (root / split).is_dir() and walk.may_follow(root / split)
    }
    if split_dirs and "train" not in split_dirs:
        # Otherwise validation/ and test/ would silently become two "classes".
        found = " and ".join(f"{split}/" for split in split_dirs)
        raise DataError(f"{root} has {found} but no train/ folder")
    if "train" in split_dirs:
        layout = {
            split: {folder.name: walk.class_files(folder) for folder in walk.subfolders(path)}
            for split, path in split_dirs.items()
        }
    else:
        layout = {"": {folder.name: walk.class_files(folder) for folder in walk.subfolders(root)}}
    return layout, walk.unreadable


def _fingerprint(root: Path, layout: dict[str, dict[str, list[Path]]]) -> str:
    """Cheap identity of a folder's state (names, sizes, times) to find a cached scan.
    Mode and ctime change with chmod, so a file made readable again is checked again."""
    digest = hashlib.sha256(_utf8(f"{root}|{_CHECK_VERSION}"))
    for split, classes in layout.items():
        for name, files in classes.items():
            for path in files:
                try:
                    stat = path.stat()
                    digest.update(
                        _utf8(f"{split}/{name}/{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_mode};")
                    )
                except OSError:
                    digest.update(_utf8(f"{path}|missing;"))
    return digest.hexdigest()[:24]


def _utf8(text: str) -> bytes:
    # File names that are not valid UTF-8 (old zips, Windows shares) arrive as surrogates.
    return text.encode("utf-8", "surrogateescape")


# Bumped when what the check accepts changes, so that cached reports are made again.
_CHECK_VERSION = 2


def _check(path: Path, keep: tuple[int, int] | None = None) -> tuple[tuple[int, int], str, np.ndarray | None]:
    """Stored size and content digest of a usable file, and its pixels at size `keep` if asked;
    ImageError if it is not a whole image.

    A JPEG is decoded at an eighth of its size: every coded block is still read, so a damaged or
    truncated file fails as it would at full size, in a third of the time."""
    data = _read(path)
    image = open_image(data, draft=keep[::-1] if keep else (1, 1))
    return stored_size(data), _content_digest(data), to_model_input(image, keep) if keep else None


def _decode(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Model-size pixels of a file the scan found usable."""
    try:
        return to_model_input(open_image(_read(path), draft=size[::-1]), size)
    except ImageError as error:
        raise DataError(f"{path} changed since the data set was checked ({error}); check it again") from None


def _decode_all(root: Path, names: list[str], size: tuple[int, int], progress: Progress | None = None) -> np.ndarray:
    """Decodes files into one array, one thread per core (Pillow decodes outside the GIL)."""
    out = np.empty((len(names), *size, 3), np.uint8)

    def decode(i: int) -> None:
        out[i] = _decode(root / names[i], size)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for done, _ in enumerate(pool.map(decode, range(len(names))), start=1):
            if progress and (done % 25 == 0 or done == len(names)):
                progress(done, len(names))
    return out


def _read(path: Path) -> bytes:
    try:
        return read_upload(path)
    except PermissionError:
        raise ImageError("cannot be read (permission denied)") from None
    except OSError as error:
        raise ImageError(f"cannot be read ({error.strerror or error})") from None


def _content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _held_out(count: int, fraction: float) -> int:
    return round(count * fraction)


def min_photos_per_class() -> int:
    """The fewest photos of a class from which a validation photo is held out: the least a class
    needs to be trained on (the class builder asks for it too)."""
    return next(n for n in itertools.count(1) if _held_out(n, config.VALIDATION_FRACTION))


def _assign_splits(
    layout: dict[str, dict[str, list[str]]], classes: list[str], seed: int
) -> dict[str, list[tuple[str, int]]]:
    """Seeded, stratified, file-level splits: the same seed always gives the same files."""

    def holdout(files: list[str], fraction: float, name: str) -> tuple[list[str], list[str]]:
        shuffled = sorted(files)
        random.Random(f"{seed}:{name}").shuffle(shuffled)
        count = _held_out(len(shuffled), fraction)
        return sorted(shuffled[count:]), sorted(shuffled[:count])

    splits: dict[str, list[tuple[str, int]]] = {split: [] for split in config.SPLITS}
    for label, name in enumerate(classes):
        per_split = {split: layout.get(split, {}).get(name, []) for split in ("", *config.SPLITS)}
        train, validation, test = per_split["train"], per_split["validation"], per_split["test"]
        if per_split[""]:
            train, validation = holdout(per_split[""], config.VALIDATION_FRACTION, f"all:{name}")
        elif not validation:
            train, validation = holdout(train, config.VALIDATION_FRACTION, f"train:{name}")
        if not test:
            validation, test = holdout(validation, config.TEST_FRACTION, f"validation:{name}")
        for split, files in zip(config.SPLITS, (train, validation, test)):
            splits[split].extend((file, label) for file in files)
    return splits


def scan(
    data_dir: str | os.PathLike | None = None,
    seed: int = config.SPLIT_SEED,
    progress: Progress | None = None,
    actor: access.Actor = access.OWNER,
    keep: tuple[int, int] | None = None,
) -> Scan:
    """Checks every file of a data set and splits the good ones; cached by folder state.
    `actor` is who reads (see `confine`). With `keep`, a
    caller about to train at that size has the photos decoded at it while they are checked (a
    decode checks a file as well), and kept in memory for this scan only."""
    root = resolve_data_dir(data_dir, progress, actor)
    layout, unreadable = _layout(root, actor)
    if not any(layout.values()):
        raise DataError(f"{root} has no class folders (expected one subfolder per class)")
    key = _fingerprint(root, layout)
    report_path = _scans_dir() / f"{key}.json"
    # Sessions asking for one new folder at once: the first checks it, the others wait and read its cache.
    kept = None
    with _lock_for(key):
        report = _read_report(report_path)
        if report is None:
            report, kept = _build_report(root, layout, progress, _latest_report(root), keep)
            write_json_atomic(report_path, report)
            _record_latest(root, key=key)
    result = _make_scan(root, layout, report, key, seed)
    result.skipped.extend(unreadable)
    if kept is not None:
        result._pixels[tuple(keep)] = kept
    return result


_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    """One lock per folder state (or its pixels at one size); a few bytes each, kept for the life
    of the process."""
    with _locks_lock:
        return _locks.setdefault(key, threading.Lock())


def _scans_dir() -> Path:
    return config.cache_dir() / "scans"


def _read_report(report_path: Path) -> dict | None:
    """The cached report, or None when it is missing or damaged."""
    report = read_json(report_path)
    if not isinstance(report, dict) or not {"good", "sizes", "digests", "skipped"} <= report.keys():
        return None
    return report


def _latest_path(root: Path) -> Path:
    """Names a folder's latest scan, whose checks and decoded photos its next scan after a change reuses."""
    folder = hashlib.sha256(_utf8(str(root))).hexdigest()[:24]
    return _scans_dir() / f"latest-{folder}.json"


def _latest(root: Path) -> dict:
    latest = read_json(_latest_path(root))
    return latest if isinstance(latest, dict) else {}


def _record_latest(root: Path, **changes) -> None:
    """Records the folder's latest scan key, or the key whose pixels were last decoded at a size.
    Two writers at once may lose one record: it only saves work, it decides nothing."""
    write_json_atomic(_latest_path(root), _latest(root) | changes)


def _valid_key(key) -> bool:
    return isinstance(key, str) and re.fullmatch(r"[0-9a-f]{24}", key) is not None


def _latest_report(root: Path) -> dict:
    """The folder's latest report, so that removing or moving one photo of thousands checks none
    again; empty when there is none or it is damaged."""
    key = _latest(root).get("key")
    return (_valid_key(key) and _read_report(_scans_dir() / f"{key}.json")) or {}


def _build_report(
    root: Path, layout: dict[str, dict[str, list[Path]]], progress: Progress | None, latest: dict,
    keep: tuple[int, int] | None,
) -> tuple[dict, np.ndarray | None]:
    """The report of every file, and the usable ones' pixels at size `keep` when asked."""
    paths = [path for classes in layout.values() for files in classes.values() for path in files]
    try:
        known = {} if keep else {latest["digests"][name]: latest["sizes"][name] for name in latest.get("good", [])}
    except (KeyError, TypeError):
        known = {}
    results: list = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for done, result in enumerate(pool.map(lambda path: _try_check(path, known, keep), paths), start=1):
            results.append(result)
            if progress and (done % 25 == 0 or done == len(paths)):
                progress(done, len(paths))
    good = [(path.relative_to(root).as_posix(), result) for path, result in zip(paths, results) if not isinstance(result, str)]
    kept = np.stack([result[2] for _, result in good]) if keep and good else None
    return {
        "good": [name for name, _ in good],
        "sizes": {name: list(result[0]) for name, result in good},
        "digests": {name: result[1] for name, result in good},
        "skipped": [
            {"file": path.relative_to(root).as_posix(), "reason": result}
            for path, result in zip(paths, results)
            if isinstance(result, str)
        ],
    }, kept


def _try_check(path: Path, known: dict[str, list[int]], keep: tuple[int, int] | None):
    """_check's result, or the reason the file is unusable; a file whose content an earlier
    scan checked is only read and hashed."""
    try:
        if known:
            digest = _content_digest(_read(path))
            if digest in known:
                return tuple(known[digest]), digest, None
        return _check(path, keep)
    except ImageError as error:
        return str(error)


def _size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _pixels_path(key: str, size: tuple[int, int]) -> Path:
    return _scans_dir() / f"{key}-{_size_name(size)}.npy"


def _read_pixels(data: Scan, size: tuple[int, int]) -> np.ndarray | None:
    try:
        pixels = np.load(_pixels_path(data.key, size), mmap_mode="r")
    except (OSError, ValueError):
        return None
    return pixels if pixels.shape == (len(data.index), *size, 3) else None


def _cached_pixels(data: Scan, size: tuple[int, int], progress: Progress | None = None) -> np.ndarray:
    """Every usable photo's pixels at one size, decoded from the originals (never upscaled from
    smaller ones) once per folder state and kept on disk. Photos whose content the folder's
    earlier state decoded at this size are copied, not decoded: a fix in the mistakes view costs
    only the photos it added, and the earlier copy is then removed."""
    path = _pixels_path(data.key, size)
    with _lock_for(path.name):
        pixels = _read_pixels(data, size)
        if pixels is not None:
            return pixels
        names = list(data.index)
        out = np.empty((len(names), *size, 3), np.uint8)
        decoded_at = _latest(data.root).get("pixels")
        decoded_at = decoded_at if isinstance(decoded_at, dict) else {}
        earlier_key = decoded_at.get(_size_name(size))
        earlier = _earlier_pixels(earlier_key, size) if _valid_key(earlier_key) else {}
        new = []
        for i, name in enumerate(names):
            if data.digests[name] in earlier:
                out[i] = earlier[data.digests[name]]
            else:
                new.append(i)
        if new:
            out[new] = _decode_all(data.root, [names[i] for i in new], size, progress)
        save_npy_atomic(path, out)
        _record_latest(data.root, pixels={**decoded_at, _size_name(size): data.key})
        if earlier_key not in (None, data.key):
            earlier.clear()
            # Another process may still map it (Windows then refuses): it is only disk space.
            with contextlib.suppress(OSError):
                _pixels_path(earlier_key, size).unlink()
        return np.load(path, mmap_mode="r")


def _earlier_pixels(key: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The pixels at this size of an earlier scan of the folder, by content digest."""
    report = _read_report(_scans_dir() / f"{key}.json")
    try:
        pixels = np.load(_pixels_path(key, size), mmap_mode="r")
        if report is None or len(pixels) != len(report["good"]):
            return {}
        return {report["digests"][name]: pixels[i] for i, name in enumerate(report["good"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _make_scan(
    root: Path,
    layout: dict[str, dict[str, list[Path]]],
    report: dict,
    key: str,
    seed: int,
) -> Scan:
    good = set(report["good"])
    skipped = list(report["skipped"])
    by_split: dict[str, dict[str, list[str]]] = {}
    for split, folders in layout.items():
        for name, files in folders.items():
            names = [path.relative_to(root).as_posix() for path in files]
            by_split.setdefault(split, {})[name] = [n for n in names if n in good]
    first = "train" if "train" in by_split else ""
    classes = [name for name, files in by_split[first].items() if files]
    for split, folders in by_split.items():
        for name, files in folders.items():
            where = f"{split}/{name}/" if split else f"{name}/"
            if not files:
                skipped.append({"file": where, "reason": "class folder has no usable images"})
            elif name not in classes:
                skipped.append({"file": where, "reason": f"class '{name}' has no training images"})
    if len(classes) < 2:
        found = ", ".join(classes) or "none"
        raise DataError(
            f"{root} needs at least two class folders with images; found {len(classes)} ({found})"
        )
    return Scan(
        root=root,
        classes=classes,
        files=_assign_splits(by_split, classes, seed),
        skipped=skipped,
        sizes={name: tuple(size) for name, size in report["sizes"].items()},
        digests=report["digests"],
        key=key,
        index={name: i for i, name in enumerate(report["good"])},
    )
