"""The app's own data sets: uploaded zips, classes built from photos, editable copies, and their fixes.

Each data set is a folder in the datasets folder (config.datasets_dir()) named as the data set,
in a layout catdog.data.scan reads: `train/` (and `validation/`, `test/`) with one folder per class,
or one folder per class. A new data set is written into a hidden `.incoming-…` folder beside
them and renamed into place only once complete, so a failed upload leaves nothing behind. The
writer holds a lock file beside that folder while it fills it; the OS lets go of the lock when
the process dies, so a folder left by a crash is one whose lock can be taken, and listing or
making data sets sweeps it away (with any `.deleted-…` folder a crash left mid-delete).

Each data set carries a hidden `.dataset.json` with its owner, who made it, and an id that stays
when it is renamed: runs record the id, so that a run trained before a rename still finds its
photos (catdog.inference.lineage). A student changes their own data sets alone and sees those
access.can_see lets them.

Photos are never deleted: removing one moves it into the data set's hidden `.trash/` folder,
and `.trash/journal.json` records every move and removal so that each can be undone or
restored. Scans skip hidden folders, so the trash is never trained on. Every change to a data
set (a fix, undo, restore, rename or delete) holds the data set's own lock, a file beside its
folder (inside it, a rename would carry it away): a fix that waited for a rename finds its folder
gone and stops in one line, never writing into a new folder under the old name. Nothing here
imports TensorFlow.
"""

import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import filelock

from catdog import classroom, config
from catdog.access import OWNER, Action, Actor, actor_record, authorize, can_see, file_key, is_same
from catdog.data.archives import ArchiveError, Limits, Skipped, zip_members
from catdog.data.errors import DataError
from catdog.data.images import ImageError, open_image
from catdog.data.location import METADATA_FILE, dataset_owner, resolve_data_dir
from catdog.data.split import min_photos_per_class
from catdog.messages import N_, Message, Messages
from catdog.progress import Progress
from catdog.runs.states import ACTIVE
from catdog.runs.store import RunStore
from catdog.storage import read_json, write_json_atomic

# Letters, digits, spaces, dots, dashes and underscores; a letter or digit first and last, so a
# name is the same folder on every system (no trailing dot or space, which Windows drops).
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9])?$")
# Names Windows reserves for devices, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
TRASH = ".trash"
JOURNAL = "journal.json"
_INCOMING, _DELETED = ".incoming-", ".deleted-"
# Photos are checked at no more than this side: enough to prove they decode, quick for big JPEGs.
_CHECK_SIDE = 2 * max(config.IMAGE_SIZE)
REMOVE, MOVE = "remove", "move"


class DatasetError(DataError):
    """A data set that cannot be made, found or changed; the message is one line for the user."""


def check_name(name: str, what: str = N_("data set")) -> str:
    """A name that is one safe folder on every system, or a one-line refusal."""
    name = (name or "").strip()
    if not _NAME.match(name) or name.split(".")[0].lower() in _RESERVED:
        raise DatasetError(
            Message(
                "{name} cannot name a {what}: use up to 64 letters, digits, spaces, dots, dashes or "
                "underscores, starting and ending with a letter or digit",
                name=repr(name),
                what=Message(what),
            )
        )
    return name


def check_classes(counts: dict[str, int]) -> None:
    """At least two classes, each with enough photos for training to hold some out for validation."""
    minimum = min_photos_per_class()
    if len(counts) < 2:
        raise DatasetError(
            Message("a data set needs at least two classes with photos; this one has {count}", count=len(counts))
        )
    short = [Message("{name} has {count}", name=name, count=count) for name, count in counts.items() if count < minimum]
    if short:
        raise DatasetError(
            Message("each class needs at least {minimum} photos: {short}", minimum=minimum, short=Messages(short))
        )


@dataclass(frozen=True)
class Change:
    """One move or removal of a photo, as the journal records it; `to` is where the photo went."""

    id: str
    action: str
    file: str
    to: str
    time: float
    undone: bool = False

    def describe(self) -> str:
        if self.action == REMOVE:
            return Message("removed {file}", file=self.file)
        return Message("moved {file} to {to}", file=self.file, to=self.to)


@dataclass(frozen=True)
class Made:
    """A new data set and the files of its source that were left out, each with the reason."""

    dataset: "Dataset"
    skipped: list[dict[str, str]]


def gone(name: str) -> Message:
    """Why a data set a page chose earlier cannot be changed now: another session renamed or deleted it."""
    return Message("data set {name} was renamed or deleted meanwhile: choose it again", name=name)


@dataclass(frozen=True)
class Dataset:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def _split_layout(self) -> bool:
        return (self.root / "train").is_dir()

    def classes(self) -> list[str]:
        """The class folders, as a photo can be moved between them."""
        top = self.root / "train" if self._split_layout else self.root
        return sorted(p.name for p in top.iterdir() if p.is_dir() and not p.name.startswith("."))

    def summary(self) -> dict:
        """What a list of data sets shows: name, folder, classes, files (without decoding) and trash."""
        files = sum(
            1
            for path in self.root.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(self.root).parts)
        )
        return {
            "name": self.name,
            "path": str(self.root),
            "classes": self.classes(),
            "files": files,
            "trash": len(self.trash()),
        }

    def _metadata(self) -> dict:
        recorded = read_json(self.root / METADATA_FILE)
        return recorded if isinstance(recorded, dict) else {}

    @property
    def owner(self) -> Actor:
        return dataset_owner(self.root)

    def size(self) -> int:
        """The bytes the data set was made with, its trash included: fixes only move photos, so
        that stays what it takes on disk. Walked for a data set made before it was recorded."""
        recorded = self._metadata().get("bytes")
        if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 0:
            return recorded
        return _bytes_below(self.root)

    def recorded_id(self) -> str | None:
        """The data set's id, None while nothing has asked for one (see `id`)."""
        found = self._metadata().get("id")
        return found if isinstance(found, str) and found else None

    @property
    def id(self) -> str:
        """A name that stays when the data set is renamed, made the first time it is asked for."""
        if found := self.recorded_id():
            return found
        with self._locked():
            found = self.recorded_id() or secrets.token_hex(8)
            write_json_atomic(self.root / METADATA_FILE, {**self._metadata(), "id": found}, make_folder=False)
        return found

    def version(self) -> int:
        """Changes with every move, removal, undo and restore: scans of the data set key on it."""
        try:
            return self._journal_path.stat().st_mtime_ns
        except OSError:
            return 0

    # --- moving and removing photos, never destructively -------------------------------

    @property
    def _journal_path(self) -> Path:
        return self.root / TRASH / JOURNAL

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Holds the data set's lock (see `lock`), once sure its folder is still there."""
        with lock(self.root):
            if not self.root.is_dir():
                raise DatasetError(gone(self.name))
            yield

    def changes(self) -> list[Change]:
        """Every move and removal, oldest first."""
        recorded = read_json(self._journal_path, [])
        return [Change(**change) for change in recorded] if isinstance(recorded, list) else []

    def _record(self, changes: list[Change]) -> None:
        """Never makes the data set's folder: a journal written into a recreated folder would be a ghost."""
        try:
            self._journal_path.parent.mkdir(exist_ok=True)
            write_json_atomic(self._journal_path, [asdict(change) for change in changes], make_folder=False)
        except FileNotFoundError:
            raise DatasetError(gone(self.name)) from None

    def photo(self, file: str) -> Path:
        """A photo of this data set by its path as scans name it; nothing outside it, nor in the trash."""
        parts = PurePosixPath(file).parts
        bad = not file or file.startswith(("/", "\\")) or len(parts) < 2
        if bad or any(part in ("..", ".") or part.startswith(".") or "\\" in part for part in parts):
            raise DatasetError(Message("{file} is not a photo of data set {name}", file=repr(file), name=self.name))
        path = self.root.joinpath(*parts)
        if path.is_symlink() or not path.is_file():
            raise DatasetError(Message("{file} is not in data set {name}", file=file, name=self.name))
        return path

    def remove(self, file: str, *, actor: Actor) -> Change:
        """Moves a photo into the trash, from where undo or restore brings it back."""
        authorize(actor, Action.FIX_PHOTO, owner=self.owner)
        with self._locked():
            self.photo(file)
            change_id = f"{time.time_ns()}-{secrets.token_hex(2)}"
            change = Change(change_id, REMOVE, file, f"{TRASH}/{change_id}/{file}", time.time())
            self._rename(file, change.to)
            self._record([*self.changes(), change])
        return change

    def move(self, file: str, to_class: str, *, actor: Actor) -> Change:
        """Moves a photo into another class's folder of the same split."""
        authorize(actor, Action.FIX_PHOTO, owner=self.owner)
        with self._locked():
            self.photo(file)
            if to_class not in self.classes():
                raise DatasetError(Message("data set {name} has no class {to}", name=self.name, to=repr(to_class)))
            parts = list(PurePosixPath(file).parts)
            parts[1 if self._split_layout else 0] = to_class
            target = self._free("/".join(parts))
            if target == file:
                raise DatasetError(Message("{file} is already in class {name}", file=file, name=to_class))
            change = Change(f"{time.time_ns()}-{secrets.token_hex(2)}", MOVE, file, target, time.time())
            self._rename(file, target)
            self._record([*self.changes(), change])
        return change

    def latest(self) -> Change | None:
        """The change Undo reverses: the latest not yet undone; None when there is none."""
        return next((change for change in reversed(self.changes()) if not change.undone), None)

    def undo(self, change_id: str, *, actor: Actor) -> Change:
        """Reverses the change named, refused unless it is still the latest: Undo reverses what
        it showed, and two clicks of it at once reverse one change, not two."""
        authorize(actor, Action.UNDO, owner=self.owner)
        with self._locked():
            changes = self.changes()
            latest = next((i for i in reversed(range(len(changes))) if not changes[i].undone), None)
            if latest is None or changes[latest].id != change_id:
                named = next((change for change in changes if change.id == change_id), None)
                if named is None:
                    late = Message(
                        "the change is no longer the latest of data set {name}: nothing undone", name=self.name
                    )
                else:
                    late = Message(
                        "the change {change} is no longer the latest of data set {name}: nothing undone",
                        change=named.describe(),
                        name=self.name,
                    )
                raise DatasetError(late)
            changes[latest] = self._reverse(changes[latest])
            self._record(changes)
        return changes[latest]

    def trash(self) -> list[Change]:
        """The removed photos still in the trash, oldest first."""
        return [change for change in self.changes() if change.action == REMOVE and not change.undone]

    def restore(self, files: Sequence[str] = (), *, actor: Actor) -> list[Change]:
        """Brings photos back from the trash to where they were: those named, or all."""
        authorize(actor, Action.RESTORE, owner=self.owner)
        with self._locked():
            changes = self.changes()
            trashed = {
                change.file: i for i, change in enumerate(changes) if change.action == REMOVE and not change.undone
            }
            unknown = [file for file in files if file not in trashed]
            if unknown:
                raise DatasetError(
                    Message("not in the trash of data set {name}: {files}", name=self.name, files=", ".join(unknown))
                )
            restored = []
            for file, i in trashed.items():
                if not files or file in files:
                    changes[i] = self._reverse(changes[i])
                    restored.append(changes[i])
            self._record(changes)
        return restored

    def _reverse(self, change: Change) -> Change:
        """Puts the photo back where it was (beside it, renamed, if another photo took its place)."""
        back = self._free(change.file)
        self._rename(change.to, back)
        return Change(change.id, change.action, back, change.to, change.time, undone=True)

    def _free(self, file: str) -> str:
        """`file`, or the first `name-N.ext` beside it that no photo uses."""
        path = PurePosixPath(file)
        candidate, n = file, 1
        while (self.root / candidate).exists():
            candidate, n = str(path.with_name(f"{path.stem}-{n}{path.suffix}")), n + 1
        return candidate

    def _rename(self, source: str, target: str) -> None:
        destination = self.root / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            (self.root / source).rename(destination)
        except OSError as error:
            raise DatasetError(
                Message("{source} could not be moved ({error})", source=source, error=error.strerror or str(error))
            ) from None


class DatasetStore:
    """The datasets folder as `viewer` sees it (access.can_see): list, find, make, rename and
    delete data sets. One they may not see is no data set to them."""

    def __init__(self, root: str | os.PathLike | None = None, *, viewer: Actor = OWNER):
        self.root = Path(root).expanduser().resolve() if root else config.datasets_dir()
        self.viewer = viewer

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        self._sweep()
        return sorted(
            (
                p.name
                for p in self.root.iterdir()
                if p.is_dir() and not p.is_symlink() and _NAME.match(p.name) and self._sees(self.viewer, p)
            ),
            key=str.lower,
        )

    def get(self, name: str) -> Dataset:
        return self._seen_by(name, self.viewer)

    def _sees(self, actor: Actor, root: Path) -> bool:
        return can_see(actor, dataset_owner(root), classroom.load().show_classmates_runs)

    def _seen_by(self, name: str, actor: Actor) -> Dataset:
        """The data set `actor` names, if they see it: a forged name learns nothing of another's."""
        path = self.root / check_name(name)
        if path.is_symlink() or not path.is_dir() or not self._sees(actor, path):
            raise DatasetError(Message("no data set {name} in {folder}", name=repr(name), folder=self.root))
        return Dataset(path)

    def find(self, folder: str | os.PathLike | None) -> Dataset | None:
        """The data set a data folder is, if it is one of these (else None: not editable here)."""
        if not folder:
            return None
        path = Path(folder).expanduser().resolve()
        if path.parent != self.root or path.name not in self.names():
            return None
        return Dataset(path)

    def with_id(self, dataset_id: str) -> Dataset | None:
        """The data set with this id, whatever it is called now; None if there is none."""
        for name in self.names():
            dataset = Dataset(self.root / name)
            if dataset.recorded_id() == dataset_id:
                return dataset
        return None

    def users(self, dataset: Dataset) -> list[str]:
        """The queued and running runs that train on this data set."""
        runs = RunStore().runs()
        return [
            run.id
            for run in runs
            if run.state in ACTIVE
            and any(Path(p).resolve() == dataset.root for p in (run.config.data_dir, run.data().get("root")) if p)
        ]

    def _refuse_if_used(self, dataset: Dataset, doing: str) -> None:
        if users := self.users(dataset):
            raise DatasetError(
                Message(
                    "data set {name} is used by {users}: {doing} when they end",
                    name=dataset.name,
                    users=", ".join(users),
                    doing=Message(doing),
                )
            )

    def rename(self, old: str, new: str, *, actor: Actor) -> Dataset:
        dataset = self._seen_by(old, actor)
        authorize(actor, Action.RENAME_DATASET, owner=dataset.owner)
        with dataset._locked(), self._lock():
            self._refuse_if_used(dataset, N_("rename it"))
            target = self._new_path(new)
            try:
                dataset.root.rename(target)
            except OSError as error:
                raise DatasetError(
                    Message(
                        "data set {name} could not be renamed ({error})", name=old, error=error.strerror or str(error)
                    )
                ) from None
        return Dataset(target)

    def delete(self, name: str, *, actor: Actor) -> None:
        """Removes a data set with its photos and trash; refused while a queued or running run uses it."""
        dataset = self._seen_by(name, actor)
        authorize(actor, Action.DELETE_DATASET, owner=dataset.owner)
        with dataset._locked(), self._lock():
            self._refuse_if_used(dataset, N_("delete it"))
            # Renamed first, at once, so that no reader ever lists half a data set.
            doomed = self.root / f"{_DELETED}{name}-{secrets.token_hex(2)}"
            try:
                dataset.root.rename(doomed)
            except OSError as error:
                raise DatasetError(
                    Message(
                        "data set {name} could not be deleted ({error})", name=name, error=error.strerror or str(error)
                    )
                ) from None
        shutil.rmtree(doomed, ignore_errors=True)

    # --- making data sets ----------------------------------------------------------------

    def import_zip(
        self,
        archive: str | os.PathLike | BinaryIO,
        name: str,
        progress: Progress | None = None,
        *,
        actor: Actor,
        limits: Limits | None = None,
    ) -> Made:
        """A data set from a zip of class folders (either layout), unpacked safely (see `unpack`),
        within an upload's limits or tighter ones (a project file's)."""
        authorize(actor, Action.MAKE_DATASET)
        with self._incoming(name, actor) as room:
            skipped = unpack(archive, room, progress, limits)
            _check_layout(room.folder)
        return Made(self.get(name), skipped)

    def create(self, name: str, photos: dict[str, Sequence[tuple[str, bytes]]], *, actor: Actor) -> Made:
        """A data set from photos per class name, as the class builder collects them."""
        authorize(actor, Action.MAKE_DATASET)
        for class_name in photos:
            check_name(class_name, N_("class"))
        folded = [class_name.casefold() for class_name in photos]
        if len(set(folded)) < len(folded):
            # On Windows and macOS they would be one folder, each photo of one overwriting the other's.
            raise DatasetError(
                Message("class names must differ in more than upper and lower case: {names}", names=", ".join(photos))
            )
        counts = {class_name: 0 for class_name in photos}
        skipped = []
        with self._incoming(name, actor) as room:
            for class_name, items in photos.items():
                for i, (file_name, data) in enumerate(items):
                    shown = f"{class_name}/{file_name}"
                    try:
                        open_image(data, _CHECK_SIDE)
                    except ImageError as error:
                        skipped.append({"file": shown, "reason": str(error)})
                        continue
                    target = room.folder / class_name / _photo_name(file_name, i)
                    target.parent.mkdir(exist_ok=True)
                    room.take(len(data))
                    target.write_bytes(data)
                    counts[class_name] += 1
            check_classes(counts)
        return Made(self.get(name), skipped)

    def copy(
        self, source: str | os.PathLike | None, name: str, progress: Progress | None = None, *, actor: Actor
    ) -> Made:
        """An editable copy of a data folder (None: the default set), confined as typed folders are
        for `actor`. Regular files only: links are left out, so a copy never reaches outside its source."""
        authorize(actor, Action.MAKE_DATASET)
        source_root = resolve_data_dir(source, progress, actor)
        files, skipped = listing(source_root)
        total = sum(size for _, size in files) or 1
        done = 0
        with self._incoming(name, actor) as room:
            for relative, size in files:
                target = room.folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                room.take(size)
                shutil.copyfile(source_root / relative, target)
                done += size
                if progress:
                    progress(done, total)
            _check_layout(room.folder)
        return Made(self.get(name), skipped)

    def _lock(self) -> filelock.BaseFileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(self.root / ".lock")

    def _new_path(self, name: str) -> Path:
        path = self.root / check_name(name)
        if path.exists():
            raise DatasetError(Message("a data set named {name} already exists", name=repr(name)))
        return path

    @contextmanager
    def _incoming(self, name: str, owner: Actor) -> Iterator["Room"]:
        """A hidden folder to fill, within `owner`'s room, renamed to the data set of `owner`'s
        named `name` only once filled without error. Its lock is taken before the folder exists and
        held until it is gone: see `_sweep`."""
        self._new_path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep()
        folder = self.root / f"{_INCOMING}{secrets.token_hex(8)}"
        lock = _incoming_lock(folder)
        with self._room(folder, owner) as room:
            try:
                with lock:
                    folder.mkdir()
                    try:
                        yield room
                        write_json_atomic(
                            folder / METADATA_FILE,
                            {"owner": actor_record(owner), "bytes": room.written},
                            make_folder=False,
                        )
                        with self._lock():
                            folder.rename(self._new_path(name))
                    finally:
                        shutil.rmtree(folder, ignore_errors=True)
            finally:
                _remove_lock_file(lock)

    @contextmanager
    def _room(self, folder: Path, owner: Actor) -> Iterator["Room"]:
        """The room `owner`'s new data set has in `folder`: what is left of their share."""
        with self.student_turn(owner) as left:
            yield Room(folder, left, classroom.dataset_share(owner))

    @contextmanager
    def student_turn(self, owner: Actor) -> Iterator[int | None]:
        """What is left of `owner`'s share (None: no share), theirs alone until the block ends: two
        tabs adding at once would each see the whole of it. Taken again within it by the same
        thread, as a project file's data sets are made inside the turn that counted the file."""
        share = classroom.dataset_share(owner)
        if share is None:
            yield None
            return
        self.root.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.root / f".share-{file_key(owner)}.lock", is_singleton=True)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise DatasetError(
                Message(N_("another of your data sets is still being made: wait for it to finish, then try again"))
            ) from None
        try:
            yield share - self.usage(owner)
        finally:
            lock.release()
            if not lock.is_locked:
                _remove_lock_file(lock)

    def usage(self, owner: Actor) -> int:
        """The bytes `owner` brought in, counted against their share (classroom.dataset_share):
        their data sets, and the runs they opened from project files."""
        datasets = (
            sum(
                Dataset(path).size()
                for path in self.root.iterdir()
                if not path.name.startswith(".")
                and path.is_dir()
                and not path.is_symlink()
                and is_same(dataset_owner(path), owner)
            )
            if self.root.is_dir()
            else 0
        )
        return datasets + RunStore().opened_bytes(owner)

    def _sweep(self) -> None:
        """Removes what crashed imports and deletes left: `.incoming-…` folders whose lock nobody
        holds (their writer died, and the OS let go of its lock) and `.deleted-…` folders. A
        folder being filled right now keeps its lock taken and is passed over."""
        for entry in self.root.iterdir():
            if entry.name.startswith(_DELETED) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(_INCOMING) and entry.is_dir():
                lock = _incoming_lock(entry)
                try:
                    with lock.acquire(timeout=0):
                        shutil.rmtree(entry, ignore_errors=True)
                except filelock.Timeout:
                    continue
                _remove_lock_file(lock)
            elif entry.name.startswith(_INCOMING) and entry.suffix == ".lock" and not entry.with_suffix("").exists():
                _remove_lock_file(_incoming_lock(entry.with_suffix("")))


def lock(root: Path) -> filelock.BaseFileLock:
    """A data set's lock: a hidden file beside its folder, named after it, so that a rename or
    delete, holding it, leaves a fix that waited for it no folder to recreate."""
    return filelock.FileLock(root.with_name(f".{root.name}.lock"))


def _incoming_lock(folder: Path) -> filelock.BaseFileLock:
    return filelock.FileLock(folder.with_name(f"{folder.name}.lock"))


def _remove_lock_file(lock: filelock.BaseFileLock) -> None:
    """Deletes a lock file nobody holds; one held, or open on Windows, stays for a later sweep."""
    try:
        with lock.acquire(timeout=0):
            Path(lock.lock_file).unlink(missing_ok=True)
    except (filelock.Timeout, OSError):
        pass


def _photo_name(file_name: str, index: int) -> str:
    """A safe file name for an uploaded photo: its own where safe, else a numbered one."""
    stem, suffix = os.path.splitext(os.path.basename(file_name.replace("\\", "/")))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")[:60] or "photo"
    suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else ".jpg"
    return f"{index:04d}-{safe}{suffix}"


def _bytes_below(root: Path) -> int:
    """The bytes of the regular files below a folder, hidden ones too, links not followed; a file
    another tab moves meanwhile is passed over."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def listing(source: Path) -> tuple[list[tuple[str, int]], list[dict[str, str]]]:
    """The regular files below a data folder (relative path, size), hidden ones left out, and
    the entries skipped; refused past the scan's entry limit or the archive byte limit."""
    limit, seen, total = config.max_scan_files(), 0, 0
    files, skipped = [], []
    for folder, folders, names in os.walk(source):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for entry in sorted(names):
            seen += 1
            if seen > limit:
                raise DatasetError(
                    Message(
                        "{source} has more than {limit} files, more than this server copies",
                        source=source,
                        limit=f"{limit:,}",
                    )
                )
            path = Path(folder, entry)
            relative = path.relative_to(source).as_posix()
            if entry.startswith("."):
                continue
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                skipped.append({"file": relative, "reason": N_("a link or special file, not copied")})
                continue
            total += info.st_size
            if total > config.ZIP_MAX_TOTAL_BYTES:
                raise DatasetError(
                    Message(
                        "{source} holds more than {size} GB, more than a data set may",
                        source=source,
                        size=f"{config.ZIP_MAX_TOTAL_BYTES / 2**30:.0f}",
                    )
                )
            files.append((relative, info.st_size))
    return files, skipped


def _check_layout(folder: Path) -> None:
    """Enough classes and photos to train on, counted from the files without decoding them."""
    split = (folder / "train").is_dir()
    top = folder / "train" if split else folder
    counts = {
        p.name: sum(1 for f in p.rglob("*") if f.is_file())
        for p in top.iterdir()
        if p.is_dir() and not p.name.startswith(".")
    }
    counts = {name: n for name, n in counts.items() if n}
    if split and (folder / "validation").is_dir():
        # Validation photos come from their own folder: one training photo per class is enough.
        if len(counts) < 2:
            raise DatasetError(
                Message("a data set needs at least two classes with photos; this one has {count}", count=len(counts))
            )
        return
    check_classes(counts)


# --- unpacking uploads ------------------------------------------------------------------


def unpack(
    archive: str | os.PathLike | BinaryIO, room: "Room", progress: Progress | None = None, limits: Limits | None = None
) -> list[dict[str, str]]:
    """Unpacks the photos of a zip of class folders into `room`; returns the entries skipped.

    The zip is read through `archives.zip_members`, which refuses it as a whole (here in one
    line, before anything is written) for its size, a zip bomb or a path trick, and skips unsafe
    entries; non-images and damaged images are skipped too, each photo checked by decoding it.
    A single folder wrapping the class folders (as zipping a folder makes) is unwrapped.
    One bad entry never stops the import: it is skipped and listed with its reason. Class folder
    names are checked as names typed on the page are, and compared case-folded (`Cats/` beside
    `cats/` is one class, spelled as first met).
    """
    try:
        members = zip_members(archive, limits)
        depth = _wrapping_depth(members.paths)
        skipped, classes = [], _ClassNames()
        for done, entry in enumerate(members, 1):
            if isinstance(entry, Skipped):
                skipped.append({"file": entry.name, "reason": entry.reason})
            else:
                reason = _write_photo(entry.data, classes.inside(PurePosixPath(*entry.path.parts[depth:])), room)
                if reason:
                    skipped.append({"file": str(entry.path), "reason": reason})
            if progress:
                progress(done, len(members))
    except ArchiveError as error:
        raise DatasetError(*error.args) from None
    return skipped


@dataclass
class Room:
    """What a data set being made may still write into its folder: never the disk's last
    config.DATASET_KEEP_FREE_BYTES (runs and every other session need them), and for a student
    no more than what their share leaves (`left` bytes; None: no share)."""

    folder: Path
    left: int | None = None
    share: int | None = None
    written: int = 0

    def take(self, size: int) -> None:
        """Counts `size` more bytes written, or refuses the data set in one line."""
        free = shutil.disk_usage(self.folder).free
        if free - size < config.DATASET_KEEP_FREE_BYTES:
            raise DatasetError(
                Message(
                    "the server's disk has {free} MB free, and data sets must leave {keep} MB: ask the teacher to "
                    "delete data sets no one uses",
                    free=f"{free / 2**20:,.0f}",
                    keep=config.DATASET_KEEP_FREE_BYTES // 2**20,
                )
            )
        self.written += size
        if self.left is None:
            return
        if size > self.left:
            raise share_exceeded(self.share)
        self.left -= size


def share_exceeded(share: int) -> DatasetError:
    return DatasetError(
        Message(
            "Your teacher allows {most} MB per student for data sets and project files, and yours would take more "
            "with this one: delete one you no longer need, or ask the teacher for more room.",
            most=f"{share / 2**20:,.0f}",
        )
    )


def _wrapping_depth(paths: list[PurePosixPath]) -> int:
    """How many single folders wrap the class folders, as zipping a folder wraps them in it."""
    depth = 0
    while (
        paths and len({path.parts[depth] for path in paths}) == 1 and min(len(path.parts) for path in paths) > depth + 2
    ):
        depth += 1
    return depth


class _ClassNames:
    """An archive's class folder names, each checked as a typed name and spelled as first met."""

    def __init__(self):
        self._spelled: dict[str, str] = {}

    def inside(self, path: PurePosixPath) -> PurePosixPath | str:
        """The path with its split and class folders as the data set names them, or why it cannot be used."""
        if len(path.parts) < 2:
            return "not inside a class folder"
        split = path.parts[0].casefold() in config.SPLITS and len(path.parts) > 2
        at = 1 if split else 0
        try:
            name = check_name(path.parts[at], N_("class"))
        except DatasetError as error:
            return str(error)
        name = self._spelled.setdefault(name.casefold(), name)
        folders = (path.parts[0].casefold(), name) if split else (name,)
        return PurePosixPath(*folders, *(portable_name(part) for part in path.parts[at + 1 :]))


# What a Windows folder cannot hold in a name: a teacher's laptop may be the server.
_UNPORTABLE = re.compile(r'[<>:"|?*\x00-\x1f]')


def portable_name(part: str) -> str:
    """A file's or folder's own name, made one that every system stores as given: Windows
    refuses some characters, drops trailing dots and spaces (so two names become one), and opens
    a device for CON, nul.jpg and the like."""
    part = _UNPORTABLE.sub("_", part).rstrip(". ") or "_"
    return f"_{part}" if part.split(".")[0].lower() in _RESERVED else part


def _write_photo(data: bytes, path: PurePosixPath | str, room: "Room") -> str | None:
    """Writes one photo at its checked path in `room`; returns why it was skipped instead, if it
    was. Only a photo written takes room: a skipped one never counts against the share."""
    if isinstance(path, str):
        return path
    try:
        open_image(data, _CHECK_SIDE)
    except ImageError as error:
        return str(error)
    file = room.folder.joinpath(*path.parts)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "xb") as out:
            room.take(len(data))
            out.write(data)
    except FileExistsError:
        if file.is_dir() or not file.parent.is_dir():
            return "its path is both a file and a folder in the archive"
        return "a second entry with the same name (names differing only in case count as the same)"
    except NotADirectoryError:
        return "its path is both a file and a folder in the archive"
    except OSError as error:
        return f"cannot be written ({error.strerror or error})"
    return None
