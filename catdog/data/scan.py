"""Finding, checking and splitting the images of a data set: a scan.

A data set is either the default `cats_and_dogs_filtered` download or a folder laid out as
`train/`, `validation/` (optional) and `test/` (optional), each with one subfolder per class,
or just one subfolder per class. A scan checks every file once per content (is it a whole
image?) and caches that report on disk; pixels are decoded only when something needs them, once per
content and size (catdog.data.pixels), so the home page can say what is there without decoding
three thousand photos.
"""

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catdog import access, config
from catdog.data.errors import DataError
from catdog.data.images import ImageError, open_image, stored_size, to_model_input
from catdog.data.location import resolve_data_dir
from catdog.data.pixels import cached_pixels, decode_all, decode_shrunk, read_file, read_pixels
from catdog.data.scan_cache import (
    latest,
    lock_for,
    read_report,
    record_latest,
    scans_dir,
    utf8,
    valid_key,
    write_report,
)
from catdog.data.split import assign_splits, min_photos_per_class
from catdog.data.walk import layout_of
from catdog.messages import N_, Message
from catdog.progress import Progress


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

    def majority_baseline(self) -> tuple[str, float]:
        """The most common training class, and the validation accuracy of always answering it:
        what a model must beat to have learnt anything."""
        counts = self.counts()
        train, validation = counts["train"], counts["validation"]
        majority = max(train, key=train.get)
        return majority, validation[majority] / max(sum(validation.values()), 1)

    def check_trainable(self) -> None:
        """A one-line refusal up front when training could not measure itself: no validation photos."""
        if not self.files["validation"]:
            raise DataError(
                Message(
                    "{root}: the validation split is empty: each class needs at least {count} photos (a {share} "
                    "share is held out for validation), or a validation/ folder",
                    root=self.root,
                    count=min_photos_per_class(),
                    share=f"{config.VALIDATION_FRACTION:.0%}",
                )
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
            return decode_all(self.root, names, tuple(size), progress), _labels(items)
        return cached[[self.index[name] for name in names]], _labels(items)

    def decode(self, size: tuple[int, int] = config.IMAGE_SIZE, progress: Progress | None = None) -> None:
        """Decodes every usable photo at a size now and caches them, once per folder state, for
        training that reads them every epoch."""
        self._all_pixels(tuple(size), progress)

    def photo(self, name: str, size: tuple[int, int] = config.IMAGE_SIZE) -> np.ndarray:
        """One usable photo's pixels at a model size, as training sees it."""
        cached = self._all_pixels(tuple(size), build=False)
        return cached[self.index[name]] if cached is not None else decode_all(self.root, [name], tuple(size))[0]

    def shrunk(self, split: str, sides: list[int], size: tuple[int, int], picks: range) -> np.ndarray:
        """Model-size pixels of the split's photos at positions `picks` as small uploads of them would
        be read: each shrunk to its long side in `sides` (one per photo of the split) first."""
        names = [self.files[split][i][0] for i in picks]
        return decode_shrunk(self.root, names, [sides[i] for i in picks], tuple(size))

    def labels(self, split: str) -> np.ndarray:
        """Integer labels of one split, in file order, without reading any pixels."""
        return _labels(self.files[split])

    def _all_pixels(
        self, size: tuple[int, int], progress: Progress | None = None, build: bool = True
    ) -> np.ndarray | None:
        """Every usable photo's pixels at one size, in index order: from memory, from the disk
        cache, or (with build) decoded now and cached; None when not built."""
        if size not in self._pixels:
            if build:
                pixels = cached_pixels(self.root, self.key, list(self.index), self.digests, size, progress)
            else:
                pixels = read_pixels(self.key, len(self.index), size)
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

    def content(self) -> str:
        """What training on this data depends on, names and folders aside: its classes and each
        split's files' content and labels. Two folders alike in these train alike (identical work
        is done once: catdog.runs.store)."""
        digest = hashlib.sha256(utf8("|".join(self.classes)))
        for split in sorted(self.files):
            digest.update(f"{split}:{self.content_key(split)};".encode())
        return digest.hexdigest()[:24]


def _labels(items: list[tuple[str, int]]) -> np.ndarray:
    return np.array([label for _, label in items], dtype=np.int32)


# Bumped when what the check accepts or the report keeps changes, so that cached reports are made
# again (3: skipped files' reasons kept as messages, to be translated).
_CHECK_VERSION = 3


def _check(path: Path, keep: tuple[int, int] | None = None) -> tuple[tuple[int, int], str, np.ndarray | None]:
    """Stored size and content digest of a usable file, and its pixels at size `keep` if asked;
    ImageError if it is not a whole image.

    A JPEG is decoded at an eighth of its size: every coded block is still read, so a damaged or
    truncated file fails as it would at full size, in a third of the time."""
    data = read_file(path)
    image = open_image(data, draft=keep[::-1] if keep else (1, 1))
    return stored_size(data), _content_digest(data), to_model_input(image, keep) if keep else None


def _content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _fingerprint(root: Path, layout: dict[str, dict[str, list[Path]]]) -> str:
    """Cheap identity of a folder's state (names, sizes, times) to find a cached scan.
    Mode and ctime change with chmod, so a file made readable again is checked again."""
    digest = hashlib.sha256(utf8(f"{root}|{_CHECK_VERSION}"))
    for split, classes in layout.items():
        for name, files in classes.items():
            for path in files:
                try:
                    stat = path.stat()
                    digest.update(
                        utf8(
                            f"{split}/{name}/{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_mode};"
                        )
                    )
                except OSError:
                    digest.update(utf8(f"{path}|missing;"))
    return digest.hexdigest()[:24]


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
    layout, unreadable = layout_of(root, actor)
    if not any(layout.values()):
        raise DataError(Message("{root} has no class folders (expected one subfolder per class)", root=root))
    key = _fingerprint(root, layout)
    report_path = scans_dir() / f"{key}.json"
    # Sessions asking for one new folder at once: the first checks it, the others wait and read its cache.
    kept = None
    with lock_for(key):
        report = read_report(report_path)
        if report is None:
            report, kept = _build_report(root, layout, progress, _latest_report(root), keep)
            write_report(report_path, report)
            record_latest(root, key=key)
    result = _make_scan(root, layout, report, key, seed)
    result.skipped.extend(unreadable)
    if kept is not None:
        result._pixels[tuple(keep)] = kept
    return result


def _latest_report(root: Path) -> dict:
    """The folder's latest report, so that removing or moving one photo of thousands checks none
    again; empty when there is none or it is damaged."""
    key = latest(root).get("key")
    return (valid_key(key) and read_report(scans_dir() / f"{key}.json")) or {}


def _build_report(
    root: Path,
    layout: dict[str, dict[str, list[Path]]],
    progress: Progress | None,
    latest: dict,
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
    good = [
        (path.relative_to(root).as_posix(), result)
        for path, result in zip(paths, results)
        if not isinstance(result, str)
    ]
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
            digest = _content_digest(read_file(path))
            if digest in known:
                return tuple(known[digest]), digest, None
        return _check(path, keep)
    except ImageError as error:
        return error.args[0] if len(error.args) == 1 else str(error)


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
                skipped.append({"file": where, "reason": N_("class folder has no usable images")})
            elif name not in classes:
                skipped.append({"file": where, "reason": Message("class '{name}' has no training images", name=name)})
    if len(classes) < 2:
        found = ", ".join(classes) or Message(N_("none"))
        raise DataError(
            Message(
                "{root} needs at least two class folders with images; found {count} ({found})",
                root=root,
                count=len(classes),
                found=found,
            )
        )
    return Scan(
        root=root,
        classes=classes,
        files=assign_splits(by_split, classes, seed),
        skipped=skipped,
        sizes={name: tuple(size) for name, size in report["sizes"].items()},
        digests=report["digests"],
        key=key,
        index={name: i for i, name in enumerate(report["good"])},
    )
