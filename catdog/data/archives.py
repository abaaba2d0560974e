"""Zip archives of photos, read safely: limits first, then member by member, in memory.

Whoever takes photos from a zip (the Predict page, a data-set import) reads them through
`zip_members`: the archive is refused as a whole, before anything is unpacked, when it has too
many entries or unpacks to too many bytes, when an entry unpacks to far more than it packs
(a zip bomb), or when an entry's path could leave a folder it is unpacked into (absolute, `..`,
a drive) or is a link: an archive that plays path tricks is not trusted for its other entries.
A member is skipped, with the reason, when it is encrypted, too large, not a regular file, has
control characters in its name, or is itself an archive (unless the caller checks archives
inside itself: `Limits.nested`, the project file). Folders, hidden files and the metadata
that Finder and Windows add are passed over silently. Members are read one at a time, as they
are iterated to, so a large archive is never held in memory; nothing is written to disk here:
a caller that writes members joins `Member.path` (already checked) to its own folder.
"""

import io
import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO

from catdog import config
from catdog.messages import N_, Message

# Below this size an entry's compression ratio says nothing: a few kilobytes of text pack 100:1.
_RATIO_FLOOR_BYTES = 1024 * 1024
_NESTED = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"Rar!", b"7z\xbc\xaf", b"BZh")
# Finder and Windows add these to the zips they make: metadata, never photos.
_METADATA = ("__MACOSX", "Thumbs.db", "desktop.ini")


class ArchiveError(ValueError):
    """An archive refused as a whole; the message is one line for the user."""


def _configured(name: str):
    # Read when the limits are made, not when this module is imported, so config stays the one place.
    return field(default_factory=lambda: getattr(config, name))


@dataclass(frozen=True)
class Limits:
    entries: int = _configured("ZIP_MAX_ENTRIES")
    total_bytes: int = _configured("ZIP_MAX_TOTAL_BYTES")
    ratio: float = _configured("ZIP_MAX_RATIO")
    member_bytes: int = _configured("MAX_UPLOAD_BYTES")
    # Whether archives inside are handed out rather than skipped: for a caller that checks each
    # one itself (a project file's models and data sets, catdog.project).
    nested: bool = False


@dataclass(frozen=True)
class Member:
    """A file of the archive: a relative path that stays inside any folder it is joined to."""

    path: PurePosixPath
    data: bytes


@dataclass(frozen=True)
class Skipped:
    """An entry left out, as the archive names it, and why."""

    name: str
    reason: str


def is_zip(data: bytes) -> bool:
    """Whether bytes are a zip archive, by content, whatever the file is called."""
    return data.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def zip_members(source: bytes | str | os.PathLike | BinaryIO, limits: Limits | None = None) -> "ZipMembers":
    """The archive's files in stored order, each read when iterated to; ArchiveError at once
    when the archive as a whole is refused."""
    limits = limits or Limits()
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise ArchiveError(Message("not a readable zip archive ({error})", error=str(error))) from None
    try:
        _check_limits(archive.infolist(), limits)
        _check_paths(archive.infolist())
    except ArchiveError:
        archive.close()
        raise
    return ZipMembers(archive, limits)


class ZipMembers:
    """zip_members' answer: iterate it once for the members and skipped entries; len() says how
    many it yields, for a progress bar, before any is read."""

    def __init__(self, archive: zipfile.ZipFile, limits: Limits):
        self._archive, self._limits = archive, limits
        self._entries = [entry for entry in archive.infolist() if not _passed_over(entry)]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def paths(self) -> list[PurePosixPath]:
        """The checked path of every entry it yields, in order, before any is read."""
        return [safe_path(entry.filename) for entry in self._entries]

    def __iter__(self) -> Iterator[Member | Skipped]:
        return _members(self._archive, self._entries, self._limits)


def _passed_over(entry: zipfile.ZipInfo) -> bool:
    path = safe_path(entry.filename)
    return entry.is_dir() or any(part.startswith(".") or part in _METADATA for part in path.parts)


def _check_paths(entries: list[zipfile.ZipInfo]) -> None:
    for entry in entries:
        if safe_path(entry.filename) is None and not entry.is_dir():
            raise ArchiveError(
                Message(
                    "{file} could lead outside the folder it is unpacked into (absolute, '..' or a drive): "
                    "the archive is refused",
                    file=entry.filename,
                )
            )
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise ArchiveError(
                Message("{file} is a link (links are not followed): the archive is refused", file=entry.filename)
            )


def _check_limits(entries: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(entries) > limits.entries:
        raise ArchiveError(
            Message(
                "the archive has {count} entries; the limit is {limit}",
                count=f"{len(entries):,}",
                limit=f"{limits.entries:,}",
            )
        )
    total = sum(entry.file_size for entry in entries)
    if total > limits.total_bytes:
        raise ArchiveError(
            Message(
                "the archive unpacks to {size} MB; the limit is {limit} MB",
                size=f"{total / 2**20:,.0f}",
                limit=f"{limits.total_bytes // 2**20:,}",
            )
        )
    for entry in entries:
        if entry.file_size > _RATIO_FLOOR_BYTES and entry.file_size > limits.ratio * max(entry.compress_size, 1):
            raise ArchiveError(
                Message(
                    "{file} unpacks to {ratio} times its packed size (over {limit}): refused as a possible zip bomb",
                    file=entry.filename,
                    ratio=f"{entry.file_size / max(entry.compress_size, 1):,.0f}",
                    limit=f"{limits.ratio:g}",
                )
            )


def _members(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limits: Limits) -> Iterator[Member | Skipped]:
    unpacked = 0
    with archive:
        for entry in entries:
            reason = _refusal(entry, limits)
            if reason:
                yield Skipped(entry.filename, reason)
                continue
            try:
                with archive.open(entry) as member:
                    # Bounded whatever the headers claim: the limits were checked on what they claim.
                    data = member.read(limits.member_bytes + 1)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as error:
                yield Skipped(entry.filename, Message("cannot be unpacked ({error})", error=str(error)))
                continue
            unpacked += len(data)
            if len(data) > limits.member_bytes:
                yield Skipped(entry.filename, _too_large(limits))
            elif unpacked > limits.total_bytes:
                limit = f"{limits.total_bytes // 2**20:,}"
                raise ArchiveError(Message("the archive unpacks to more than {limit} MB", limit=limit))
            elif data.startswith(_NESTED) and not limits.nested:
                yield Skipped(entry.filename, Message(N_("an archive inside the archive (not opened)")))
            else:
                yield Member(safe_path(entry.filename), data)


def _refusal(entry: zipfile.ZipInfo, limits: Limits) -> str | None:
    mode = entry.external_attr >> 16
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return Message(N_("not a regular file"))
    if any(ord(char) < 32 for char in entry.filename):
        return Message(N_("a file name with control characters"))
    if entry.flag_bits & 0x1:
        return Message(N_("encrypted (a password is needed)"))
    if entry.file_size > limits.member_bytes:
        return _too_large(limits)
    return None


def _too_large(limits: Limits) -> str:
    return Message("larger than {limit} MB unpacked", limit=limits.member_bytes // 2**20)


def safe_path(name: str) -> PurePosixPath | None:
    """An entry's name as a relative path that cannot leave the folder it is joined to; None when
    it is absolute, names a drive or a stream (':'), or climbs with '..'. Backslashes count as separators, as
    Windows tools write them."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or any(":" in part for part in parts):
        return None
    kept = [part for part in parts if part not in ("", ".")]
    return PurePosixPath(*kept) if kept else None
