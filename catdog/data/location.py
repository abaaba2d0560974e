"""Which folder a data set is read from, and whether this server lets the reader read it."""

import os
from pathlib import Path

from catdog import access, classroom, config
from catdog.data.download import download_default_dataset
from catdog.data.errors import DataError
from catdog.messages import N_, Message
from catdog.progress import Progress
from catdog.storage import read_json

# Each of the app's own data sets keeps its id and owner in this hidden file (catdog.data.datasets).
METADATA_FILE = ".dataset.json"


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
        raise DataError(Message("{path} does not exist", path=path))
    if not path.is_dir():
        raise DataError(Message("{path} is a file, not a folder of class folders", path=path))
    if not os.access(path, os.R_OK | os.X_OK):
        raise DataError(Message("{path} cannot be read (permission denied)", path=path))
    return path


def confine(folder: str | os.PathLike, actor: access.Actor = access.OWNER) -> Path:
    """A typed folder, resolved with its links followed, if this server lets `actor` read it.

    With CATDOG_DATA_ROOTS set it must lie inside one of them. Without, any folder may be read
    by the owner (one's own machine); for the sessions of a server with a teacher password typed
    folders are refused altogether. CATDOG_DATA_DIR, set by whoever runs the server, is allowed,
    and so are the app's own data sets (catdog.data.datasets) that `actor` sees. Nothing inside the
    folder but a data set's metadata is read here.
    """
    path = Path(str(folder).strip()).expanduser().resolve()
    if config.data_dir() and path == Path(config.data_dir()).expanduser().resolve():
        return path
    if _same_folder(path.parent, config.datasets_dir()) and not path.name.startswith("."):
        if not access.can_see(actor, dataset_owner(path), classroom.load().show_classmates_runs):
            raise DataError(Message("no data set {name} in {folder}", name=repr(path.name), folder=path.parent))
        return path
    access.authorize(actor, access.Action.CHOOSE_FOLDER)
    if _inside_own_folders(path) and not access.allowed(actor, access.Action.READ_ANY_FOLDER):
        raise DataError(
            Message("{folder} is inside catdog's own folders: choose one of its data sets by name", folder=folder)
        )
    roots = config.data_roots()
    if roots and not any(path.is_relative_to(root) for root in roots):
        raise DataError(
            Message("{folder} is outside the folders this server shares (CATDOG_DATA_ROOTS)", folder=folder)
        )
    if not roots and not access.allowed(actor, access.Action.READ_ANY_FOLDER):
        raise DataError(Message(N_("this server reads no typed folders: its CATDOG_DATA_ROOTS is not set")))
    return path


def _inside_own_folders(path: Path) -> bool:
    """Whether a folder is, or is inside, the app's own data sets, runs, class or cache: a data set is
    read from its root only (above), so that a split of a classmate's private one, or the folder
    of them all, is never read by a typed path, even where CATDOG_DATA_ROOTS holds them."""
    own = (config.datasets_dir(), config.runs_dir(), config.class_dir(), config.cache_dir().resolve())
    return any(_same_folder(inside, folder) for inside in (path, *path.parents) for folder in own)


def _same_folder(one: Path, other: Path) -> bool:
    """Whether two paths are one folder, however spelt: on macOS a name's case is not the file's,
    and resolve() keeps the case typed, so "DATASETS/bob" passed for "datasets/bob"."""
    if one == other:
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def dataset_owner(root: Path) -> access.Actor:
    """Who made one of the app's own data sets; the owner's (the class's) when unrecorded."""
    metadata = read_json(root / METADATA_FILE, {})
    return access.recorded_actor(metadata.get("owner") if isinstance(metadata, dict) else None)
