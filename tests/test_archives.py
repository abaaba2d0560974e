"""Zip archives of photos: a corpus of good and hostile archives made here, read in memory."""

import io
import stat
import zipfile
from pathlib import PurePosixPath

import pytest

from catdog.data.archives import ArchiveError, Limits, Member, Skipped, is_zip, safe_path, zip_members
from tests.helpers.support import synthetic_image


def photo(label: int = 0, seed: int = 1) -> bytes:
    out = io.BytesIO()
    synthetic_image(label, seed).save(out, format="JPEG")
    return out.getvalue()


def make_zip(entries: dict[str, bytes], links: dict[str, str] = {}, method: int = zipfile.ZIP_DEFLATED) -> bytes:  # noqa: B006
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return out.getvalue()


def encrypted(data: bytes, name: str) -> bytes:
    """The archive with one entry marked as encrypted in its central directory, as zipfile cannot write one."""
    record = data.rindex(b"PK\x01\x02", 0, data.rindex(name.encode()))
    flags = int.from_bytes(data[record + 8 : record + 10], "little") | 0x1
    return data[: record + 8] + flags.to_bytes(2, "little") + data[record + 10 :]


def read(data: bytes, limits: Limits = Limits()) -> tuple[dict[str, bytes], dict[str, str]]:
    members, skipped = {}, {}
    for entry in zip_members(data, limits):
        if isinstance(entry, Member):
            members[str(entry.path)] = entry.data
        else:
            assert isinstance(entry, Skipped)
            skipped[entry.name] = entry.reason
    return members, skipped


def test_good_photos_come_out_whole_in_stored_order_without_folders_hidden_files_or_metadata():
    cat, dog = photo(0), photo(1)
    data = make_zip(
        {
            "pets/cats/": b"",
            "pets/cats/a.jpg": cat,
            "pets/dogs/b.jpg": dog,
            "__MACOSX/pets/._a.jpg": b"x",
            "pets/cats/.DS_Store": b"\0\0\0\1Bud1",
            "pets/dogs/Thumbs.db": b"x",
        }
    )
    assert is_zip(data) and not is_zip(cat)
    assert len(zip_members(data)) == 2
    assert zip_members(data).paths == [PurePosixPath("pets/cats/a.jpg"), PurePosixPath("pets/dogs/b.jpg")]
    members, skipped = read(data)
    assert list(members) == ["pets/cats/a.jpg", "pets/dogs/b.jpg"]
    assert members["pets/cats/a.jpg"] == cat and not skipped


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../evil.jpg", "outside"),
        ("cats/../../evil.jpg", "outside"),
        ("/etc/evil.jpg", "outside"),
        ("\\windows\\evil.jpg", "outside"),
        ("C:/evil.jpg", "outside"),
        ("cats\\..\\..\\evil.jpg", "outside"),
        ("cats/a.jpg:stream", "outside"),
    ],
)
def test_paths_that_could_leave_the_folder_refuse_the_whole_archive(name, words):
    with pytest.raises(ArchiveError, match=words) as refusal:
        zip_members(make_zip({"cats/good.jpg": photo(1), name: photo()}))
    assert name in str(refusal.value) and "\n" not in str(refusal.value)


def test_a_link_refuses_the_whole_archive():
    with pytest.raises(ArchiveError, match="link.jpg is a link"):
        zip_members(make_zip({"cats/good.jpg": photo(1)}, {"link.jpg": "/etc/passwd"}))


def test_nested_archives_encrypted_and_control_character_entries_are_skipped_and_junk_passes_on():
    nested = make_zip({"inner.jpg": photo()})
    data = make_zip(
        {
            "junk.txt": b"hello",
            "more.zip": nested,
            "gz.jpg": b"\x1f\x8b\x08rest",
            "secret.jpg": b"scrambled",
            "bell\x07.jpg": photo(),
        },
    )
    members, skipped = read(encrypted(data, "secret.jpg"))
    assert members == {"junk.txt": b"hello"}, "content checks are the caller's: a text file is passed on"
    assert "control characters" in skipped["bell\x07.jpg"]
    assert "archive inside" in skipped["more.zip"] and "archive inside" in skipped["gz.jpg"]
    assert "encrypted" in skipped["secret.jpg"]


def test_a_zip_bomb_is_refused_before_anything_is_unpacked():
    bomb = make_zip({"zeros.jpg": bytes(20 * 2**20)})
    assert len(bomb) < 2**20 // 10
    with pytest.raises(ArchiveError, match="zip bomb"):
        zip_members(bomb)


def test_limits_on_entries_total_size_and_member_size():
    data = make_zip({f"cats/{i}.jpg": photo(0, i) for i in range(6)}, method=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveError, match="6 entries; the limit is 5"):
        zip_members(data, Limits(entries=5))
    with pytest.raises(ArchiveError, match="unpacks to"):
        zip_members(data, Limits(total_bytes=len(photo()) * 3))
    members, skipped = read(make_zip({"big.jpg": bytes(5000), "small.jpg": photo()}), Limits(member_bytes=4096))
    assert list(members) == ["small.jpg"] and "larger than" in skipped["big.jpg"]


def test_not_a_zip_is_one_clear_error():
    with pytest.raises(ArchiveError, match="not a readable zip"):
        zip_members(b"PK\x03\x04 truncated")


def test_safe_path_keeps_names_relative():
    assert safe_path("./cats//a.jpg") == PurePosixPath("cats/a.jpg")
    assert safe_path("cats\\a.jpg") == PurePosixPath("cats/a.jpg")
    assert safe_path("..") is None and safe_path("") is None
