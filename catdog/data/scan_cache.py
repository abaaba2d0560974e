"""The scans folder: each folder state's report and decoded pixels on disk, the latest of each per
folder (so that a changed folder reuses them), and one lock per folder state."""

import hashlib
import re
import threading
from pathlib import Path

from catdog import config
from catdog.messages import from_record, to_record
from catdog.storage import read_json, write_json_atomic

_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def lock_for(key: str) -> threading.Lock:
    """One lock per folder state (or its pixels at one size); a few bytes each, kept for the life
    of the process."""
    with _locks_lock:
        return _locks.setdefault(key, threading.Lock())


def scans_dir() -> Path:
    return config.cache_dir() / "scans"


def read_report(report_path: Path) -> dict | None:
    """The cached report, or None when it is missing or damaged (it is made again)."""
    report = read_json(report_path)
    if not isinstance(report, dict) or not {"good", "sizes", "digests", "skipped"} <= report.keys():
        return None
    try:
        skipped = [{**row, "reason": from_record(row["reason"])} for row in report["skipped"]]
    except (TypeError, KeyError, ValueError):
        return None
    return {**report, "skipped": skipped}


def write_report(report_path: Path, report: dict) -> None:
    """Skipped files' reasons are kept as their messages' templates and values, so that a page
    shows a reason read back from here in its user's language."""
    skipped = [{**row, "reason": to_record(row["reason"])} for row in report["skipped"]]
    write_json_atomic(report_path, {**report, "skipped": skipped})


def _latest_path(root: Path) -> Path:
    """Names a folder's latest scan, whose checks and decoded photos its next scan after a change reuses."""
    folder = hashlib.sha256(utf8(str(root))).hexdigest()[:24]
    return scans_dir() / f"latest-{folder}.json"


def latest(root: Path) -> dict:
    latest = read_json(_latest_path(root))
    return latest if isinstance(latest, dict) else {}


def record_latest(root: Path, **changes) -> None:
    """Records the folder's latest scan key, or the key whose pixels were last decoded at a size.
    Two writers at once may lose one record: it only saves work, it decides nothing."""
    write_json_atomic(_latest_path(root), latest(root) | changes)


def valid_key(key) -> bool:
    return isinstance(key, str) and re.fullmatch(r"[0-9a-f]{24}", key) is not None


def utf8(text: str) -> bytes:
    # File names that are not valid UTF-8 (old zips, Windows shares) arrive as surrogates.
    return text.encode("utf-8", "surrogateescape")
