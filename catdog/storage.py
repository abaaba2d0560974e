"""Files that several processes read while one writes: never seen half-written."""

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Windows refuses to replace a file another process holds open (a page loading the model, a
# reader of a status) where POSIX lets the reader keep the old one: a short wait, then again.
REPLACE_TRIES, REPLACE_WAIT_S = 20, 0.1
# How Windows words that refusal: access denied, sharing violation.
HELD_OPEN_WINERRORS = frozenset({5, 32})


def replace_file(source: Path | str, target: Path | str) -> None:
    """os.replace, waiting out a reader that has the target open on Windows (about 2 s at most).
    Any other refusal, and every one on POSIX (where no reader blocks a replace), is raised at once."""
    for _ in range(REPLACE_TRIES - 1):
        try:
            return os.replace(source, target)
        except PermissionError as error:
            if getattr(error, "winerror", None) not in HELD_OPEN_WINERRORS:
                raise
            time.sleep(REPLACE_WAIT_S)
    os.replace(source, target)


@contextmanager
def _replaced_atomically(path: Path, mode: str, mtime_ns: int | None = None, make_folder: bool = True) -> Iterator[IO]:
    """Readers see the old file or the new one, never a torn write (rename is atomic).

    The temporary name is unique per call, so writers in other processes or threads (two
    queues filling one cache, two sessions of one web server) never write into each other's.
    mtime_ns, when given, is the file's time from the moment it appears. Without make_folder, a
    missing folder is FileNotFoundError, for records that must not outlive their folder.
    """
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as out:
            yield out
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        replace_file(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    with _replaced_atomically(path, "wb", mtime_ns) as out:
        out.write(data)


def write_json_atomic(path: Path, data: Any, make_folder: bool = True) -> None:
    with _replaced_atomically(path, "w", make_folder=make_folder) as out:
        json.dump(data, out, indent=1)


def save_npy_atomic(path: Path, array) -> None:
    """An .npy file that a reader (another queue, a memory map) never sees half-written."""
    import numpy as np  # here, so that reading runs and statuses never pays numpy's import

    with _replaced_atomically(path, "wb") as out:
        np.save(out, array)


def read_json(path: Path, default: Any = None) -> Any:
    """The file's data, or default when it is missing or damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def append_jsonl(path: Path, record: dict) -> None:
    """One whole line per write, so a reader sees at most a half-written last line."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every complete record; a torn or damaged line (a writer killed mid-line) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
