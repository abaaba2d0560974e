"""Many photos answered as a table, and that table as CSV: the one owner of the CSV format
`catdog predict --csv` prints and the Predict page downloads."""

import csv
import hashlib
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from catdog.data.archives import ArchiveError, Member, is_zip, zip_members
from catdog.data.images import ImageError, open_image, read_upload, to_model_input
from catdog.inference import familiarity
from catdog.inference.answers import class_names, classifier, is_unfamiliar, unfamiliarity
from catdog.inference.loading import model_version
from catdog.inference.once import OncePerKey
from catdog.runs.record import Run

# Answers to many photos at once (rows only, no pixels), by the caller's digest of the photos.
_batches = OncePerKey(size=16)
# Photos decoded and answered together: one model call per this many.
ANSWER_BATCH = 32


@dataclass(frozen=True)
class PhotoAnswer:
    """One row of a table of many photos' answers: the answer, or why there is none."""

    file: str
    probabilities: dict[str, float] | None = None
    unfamiliarity: float | None = None
    error: str | None = None

    @property
    def label(self) -> str | None:
        return max(self.probabilities, key=self.probabilities.get) if self.probabilities else None

    @property
    def confidence(self) -> float | None:
        return self.probabilities[self.label] if self.probabilities else None

    @property
    def unfamiliar(self) -> bool | None:
        return is_unfamiliar(self.unfamiliarity)

    def to_dict(self) -> dict:
        """`catdog predict`'s JSON line."""
        if self.error is not None:
            return {"file": self.file, "error": self.error}
        return {
            "file": self.file,
            "label": self.label,
            "probabilities": self.probabilities,
            "unfamiliar": self.unfamiliar,
            "unfamiliarity": self.unfamiliarity,
        }

    def row(self) -> dict:
        """The table's and the CSV file's row: one per photo, errors included."""
        return {
            "file": self.file,
            "label": self.label,
            "confidence": self.confidence,
            "unfamiliar": self.unfamiliar,
            "unfamiliarity": self.unfamiliarity,
            "error": self.error,
        }


CSV_COLUMNS = tuple(PhotoAnswer("").row())


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(answers: Iterable[PhotoAnswer], out) -> None:
    """Answers as CSV, a header and then one row as each answer comes: what `predict --csv`
    prints and the Predict page downloads (`answers_download`)."""
    write_rows(_rows(answers), CSV_COLUMNS, out)


def answers_download(answers: Iterable[PhotoAnswer]) -> bytes:
    return csv_download(_rows(answers), CSV_COLUMNS)


def _rows(answers: Iterable[PhotoAnswer]) -> Iterator[dict]:
    return (answer.row() for answer in answers)


# Excel reads a CSV in the system's code page unless it starts with a byte-order mark ("Zoë" opens
# as "ZoÃ«"); other spreadsheets and CSV readers skip the mark.
DOWNLOAD_ENCODING = "utf-8-sig"


def csv_download(rows: Iterable[dict], columns: Iterable[str]) -> bytes:
    """A table as a CSV file to download from a page (the Predict page's answers, the Class page's
    results): `predict --csv` prints the same rows with no mark, for pipes and scripts."""
    out = io.StringIO()
    write_rows(rows, columns, out)
    return out.getvalue().encode(DOWNLOAD_ENCODING)


def write_rows(rows: Iterable[dict], columns: Iterable[str], out) -> None:
    """Any table as CSV (the Class page's results too), a row as each comes. Empty cells where
    there is no value; text cells that a spreadsheet would run as a formula (a file named
    `=HYPERLINK(...)`, a student called `=1+1`) start with a quote."""
    # CSV's own line end, CRLF: the writer then quotes a cell with a CR in it, which would otherwise
    # end the row early and start a forged one. Every text cell is quoted: a spreadsheet whose
    # locale separates with ";" splits an unquoted "Ann;=1+1" into a second cell, a formula.
    columns = tuple(columns)
    csv.writer(out, lineterminator="\r\n").writerow(columns)
    writer = csv.DictWriter(out, columns, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
        out.flush()


def _cell(value: object) -> object:
    """A value as a spreadsheet must read it: text as text, numbers (negative ones too) as numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


Photo = tuple[str, Callable[[], bytes]]


def photos_of(name: str, source: bytes | os.PathLike) -> Iterator[Photo]:
    """An upload's bytes or a file, or each file of a zip (known by its content), as the
    (name, read) pairs answer_photos takes; a zip's files are named NAME/PATH. A zip is read
    through archives.zip_members, member by member, never unpacked: read() raises ImageError for
    its skipped entries and for a zip refused as a whole, so each is a row with the reason."""
    if not _is_zip(source):
        yield name, (lambda: source) if isinstance(source, bytes) else (lambda: read_upload(Path(source)))
        return
    try:
        members = zip_members(source)
    except ArchiveError as error:
        yield name, _refused(str(error))
        return
    for entry in members:
        if isinstance(entry, Member):
            yield f"{name}/{entry.path}", lambda data=entry.data: data
        else:
            yield f"{name}/{entry.name}", _refused(entry.reason)


def photos_in(sources: Iterable[tuple[str, bytes | os.PathLike]]) -> Iterator[Photo]:
    """photos_of for each (name, source) in turn: every photo of several uploads or files."""
    return itertools.chain.from_iterable(photos_of(name, source) for name, source in sources)


def photo_count(source: bytes | os.PathLike) -> int:
    """How many (name, read) pairs photos_of gives for a source, known before any photo is read:
    a zip's members from its directory alone; a refused zip is one row, with its reason."""
    if not _is_zip(source):
        return 1
    try:
        return len(zip_members(source))
    except ArchiveError:
        return 1


def uploads_digest(uploads: Iterable[tuple[str, bytes]]) -> str:
    """Identifies uploads by each one's name and content: answered_batch's key for them."""
    digest = hashlib.sha256()
    for name, data in uploads:
        digest.update(hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest() + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _is_zip(source: bytes | os.PathLike) -> bool:
    if isinstance(source, bytes):
        return is_zip(source)
    try:
        with open(source, "rb") as file:
            return is_zip(file.read(4))
    except OSError:  # reading it as a photo then says why, in its row
        return False


def _refused(reason: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise ImageError(reason)

    return read


def _read_photo(read: Callable[[], bytes], size: tuple[int, int]) -> Image.Image | str:
    """The photo decoded no smaller than size (a big JPEG at a fraction of its scale), or the
    one-line reason it cannot be used."""
    try:
        return open_image(read(), draft=size[::-1])
    except ImageError as error:
        return str(error)
    except OSError as error:
        return error.strerror or str(error)


def answer_photos(
    run: Run, photos: Iterable[tuple[str, Callable[[], bytes]]], flip_average: bool = False
) -> Iterator[PhotoAnswer]:
    """An answer for each (name, read) in order, read() giving the photo's bytes; a photo that
    cannot be read or decoded answers with the reason. Photos are answered ANSWER_BATCH at a time,
    each read and decoded (reduced as it is) before the next is read, so only one photo's bytes
    are ever held: a long list, or a zip of big photos, needs little memory."""
    (size, classify), classes = classifier(run, flip_average), class_names(run)
    # Decoded large enough for the guard's features too.
    decode_size = max(size, familiarity.GUARD_IMAGE_SIZE)
    photos = iter(photos)
    while decoded := [(name, _read_photo(read, decode_size)) for name, read in itertools.islice(photos, ANSWER_BATCH)]:
        images = [image for _, image in decoded if not isinstance(image, str)]
        if images:
            probs = classify(np.stack([to_model_input(image, size) for image in images]))
            scores = unfamiliarity(run, images) or [None] * len(images)
            answered = iter(zip(probs, scores))
        for name, image in decoded:
            if isinstance(image, str):
                yield PhotoAnswer(name, error=image)
                continue
            p, score = next(answered)
            yield PhotoAnswer(name, {c: float(v) for c, v in zip(classes, p)}, score)


def answered_batch(
    run: Run,
    digest: str,
    photos: Iterable[tuple[str, Callable[[], bytes]]],
    flip_average: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[PhotoAnswer, ...]:
    """answer_photos's answers, kept per server under the caller's digest of the photos and the
    model version: a page rerun, or another session with the same photos, is answered at once.
    progress(done) follows the first asker's work."""

    def answer() -> tuple[PhotoAnswer, ...]:
        answers = []
        for answer in answer_photos(run, photos, flip_average):
            answers.append(answer)
            if progress:
                progress(len(answers))
        return tuple(answers)

    return _batches.get((str(run.path.resolve()), model_version(run), flip_average, digest), answer)
