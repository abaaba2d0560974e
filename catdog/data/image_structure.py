"""How many parts a file asks its decoder to walk, counted from its bytes before Pillow opens it.

Pillow parses every JPEG metadata segment, TIFF strip and GIF extension block as it opens a file,
and decodes every JPEG scan, and nothing bounds how many there are: a few bytes each, 25 MB of
empty ones took hours of a core or gigabytes of memory before the pixel budget
(catdog.data.images) was ever checked. Photos have a handful of each; these limits are far above.
"""

import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catdog.messages import N_, Message

if TYPE_CHECKING:
    from PIL import Image

MAX_JPEG_SCANS = 100  # a progressive JPEG has about ten
MAX_JPEG_SEGMENTS = 1000  # metadata: EXIF, ICC (in chunks of 64 KB), XMP, comments
MAX_TIFF_STRIPS = 65_536  # a strip a row of a 64 K-row image
# Extension sub-blocks before the first frame: Adobe's XMP packet reads as one every ~80 bytes.
MAX_GIF_BLOCKS = 50_000
# Pillow decodes an RLE-compressed BMP in Python, a pixel at a time: 13 s of a core at 89 MP.
MAX_RLE_BMP_PIXELS = 4_000_000
_SEGMENT_MARKERS = (*range(0xE0, 0xF0), 0xFE)  # APP0-APP15, COM
_FRAMES = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_PROGRESSIVE_FRAMES = (0xC2, 0xC6, 0xCA, 0xCE)
_RESTARTS = tuple(range(0xD0, 0xD8))
# The next marker after compressed data: 0xFF not followed by a stuffed 0x00, a restart or a fill 0xFF.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


@dataclass(frozen=True)
class Structure:
    """What a file's bytes say before Pillow opens it."""

    refusal: Message | None = None  # why it has more parts than any photo
    whole_image: bool = False  # a JPEG libjpeg decodes holding every coefficient: progressive, or scanned by component


def structure(data: bytes) -> Structure:
    if data.startswith(b"\xff\xd8"):
        parts = _jpeg_parts(data)
        return Structure(_jpeg_refusal(parts), parts.whole_image)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return Structure(_tiff(data))
    if data.startswith(b"GIF8"):
        return Structure(_gif(data))
    return Structure()


def decoder_refusal(image: "Image.Image") -> Message | None:
    """Why an opened image would take its decoder far longer than a photo does, or None."""
    width, height = image.size
    if image.format == "BMP" and image.tile and image.tile[0][0] == "bmp_rle" and width * height > MAX_RLE_BMP_PIXELS:
        return Message(
            "an RLE-compressed BMP of {count} megapixels, over the {limit} such a file may have "
            "(it decodes a pixel at a time; save it as PNG or JPEG)",
            count=f"{width * height / 10**6:.0f}",
            limit=MAX_RLE_BMP_PIXELS // 10**6,
        )
    return None


def _too_many(count: int, what: str, limit: int) -> Message:
    return Message(
        "{count} {what} in one image, over the {limit} a photo has (possible decompression bomb)",
        count=count,
        what=Message(what),
        limit=limit,
    )


@dataclass(frozen=True)
class _JpegParts:
    scans: int
    segments: int  # APPn and COM, Pillow parses each as it opens the file
    whole_image: bool


def _jpeg_parts(data: bytes) -> _JpegParts:
    """A JPEG's parts, walked marker by marker up to its end (a motion photo's video after it is
    not the photo), stopping once past a limit."""
    scans = segments = 0
    frame_components, whole = 0, False
    at = 2
    while at + 4 <= len(data) and scans <= MAX_JPEG_SCANS and segments <= MAX_JPEG_SEGMENTS:
        if data[at] != 0xFF or data[at + 1] in (0xFF, 0x00, *_RESTARTS):
            found = _MARKER.search(data, at + 1)
            if found is None:
                break
            at = found.start()
            continue
        marker = data[at + 1]
        if marker == 0xD9:  # the end of the image
            break
        length = struct.unpack_from(">H", data, at + 2)[0]
        if marker in _SEGMENT_MARKERS:
            segments += 1
        elif marker in _FRAMES and at + 9 < len(data):
            frame_components = data[at + 9]
            whole = whole or marker in _PROGRESSIVE_FRAMES
        elif marker == 0xDA:
            scans += 1
            whole = whole or (scans == 1 and at + 4 < len(data) and data[at + 4] < frame_components)
        at += 2 + length
    return _JpegParts(scans, segments, whole)


def _jpeg_refusal(parts: _JpegParts) -> Message | None:
    if parts.scans > MAX_JPEG_SCANS:
        return _too_many(parts.scans, N_("JPEG scans"), MAX_JPEG_SCANS)
    if parts.segments > MAX_JPEG_SEGMENTS:
        return _too_many(parts.segments, N_("JPEG metadata segments"), MAX_JPEG_SEGMENTS)
    return None


def _tiff(data: bytes) -> Message | None:
    """The first page's strip or tile count (the only page Pillow reads)."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\0", b"\0+")
    try:
        ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        entries = struct.unpack_from(order + ("Q" if big else "H"), data, ifd)[0]
        size, first = (20, ifd + 8) if big else (12, ifd + 2)
        for index in range(min(entries, (len(data) - first) // size)):
            tag, _, count = struct.unpack_from(order + ("HHQ" if big else "HHI"), data, first + index * size)
            if tag in (273, 324) and count > MAX_TIFF_STRIPS:  # StripOffsets, TileOffsets
                return _too_many(count, N_("TIFF strips"), MAX_TIFF_STRIPS)
    except struct.error:
        return None  # cut short: Pillow says how
    return None


def _gif(data: bytes) -> Message | None:
    if len(data) < 13:
        return None
    flags, at, blocks = data[10], 13, 0
    if flags & 0x80:
        at += 3 << ((flags & 0x07) + 1)  # the global colour table
    while at + 1 < len(data) and data[at] not in (0x2C, 0x3B):  # up to the first frame or the end
        if data[at] != 0x21:  # a stray byte: Pillow passes over it, as here
            at += 1
            continue
        at += 2
        while at < len(data) and data[at]:
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                return _too_many(blocks, N_("GIF extension blocks"), MAX_GIF_BLOCKS)
            at += 1 + data[at]
        at += 1
    return None
