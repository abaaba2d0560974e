"""A data folder's layout: the files below each class folder of each split, walked with a cap on
entries and depth, following only the links the reader may follow."""

import os
from collections.abc import Callable
from pathlib import Path

from catdog import access, config
from catdog.data.errors import DataError
from catdog.messages import N_, Message


def _link_judge(root: Path, actor: access.Actor) -> Callable[[Path], bool]:
    """Whether a link below `root` may be followed: into root itself, or where a typed folder
    may lie (a shared root; anywhere on one's own machine, see `confine`). A link out of a shared
    folder would otherwise show photos, and name files, that the server does not share."""
    root, roots = root.resolve(), config.data_roots()

    def may_follow(link: Path) -> bool:
        target = Path(os.path.realpath(link))
        if target.is_relative_to(root):
            return True
        return (
            any(target.is_relative_to(shared) for shared in roots)
            if roots
            else access.allowed(actor, access.Action.READ_ANY_FOLDER)
        )

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
                            Message(
                                "{root} has more than {limit} files and folders, more than this server scans "
                                "(CATDOG_MAX_SCAN_FILES)",
                                root=self.root,
                                limit=f"{self.limit:,}",
                            )
                        )
                    if _is_link(entry) and not self.may_follow(Path(entry.path)):
                        self.skip(Path(entry.path), N_("a link to outside the folder (not followed)"))
                    else:
                        found.append(entry)
        except OSError as error:
            self.skip(folder, Message("folder cannot be read ({error})", error=error.strerror or str(error)), "/")
        return found

    def skip(self, path: Path, reason: str, suffix: str = "") -> None:
        """Listed by its own name inside the root, never by where a link leads."""
        self.unreadable.append({"file": f"{path.relative_to(self.root).as_posix()}{suffix}", "reason": reason})

    def subfolders(self, path: Path) -> list[Path]:
        return sorted(Path(e.path) for e in self.entries(path) if not e.name.startswith(".") and _is_dir(e))

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
                            Message(
                                "{path} is more than {depth} folders below its class folder in {root}, deeper "
                                "than this server scans",
                                path=Path(entry.path).relative_to(self.root),
                                depth=config.MAX_SCAN_DEPTH,
                                root=self.root,
                            )
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


def layout_of(
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
        raise DataError(Message("{root} has {found} but no train/ folder", root=root, found=found))
    if "train" in split_dirs:
        layout = {
            split: {folder.name: walk.class_files(folder) for folder in walk.subfolders(path)}
            for split, path in split_dirs.items()
        }
    else:
        layout = {"": {folder.name: walk.class_files(folder) for folder in walk.subfolders(root)}}
    return layout, walk.unreadable
