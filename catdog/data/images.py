"""Turning bytes from anywhere (uploads, data folders) into RGB pixels, or one clear error."""

import base64
import contextlib
import io
import math
import os
import re
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from catdog.config import (
    DECODE_SLOTS,
    IMAGE_SIZE,
    LARGE_DECODE_BYTES,
    MAX_DECODED_BYTES,
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
)
from catdog.data import image_structure
from catdog.messages import N_, Message

# Only these decoders ever see user bytes: no PostScript, PSD, ICO or other rarely-audited parsers.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
Image.init()  # registers all decoders, so FORMATS can name those Pillow loads lazily (WebP, TIFF)
# Pillow's own decompression-bomb guard stays on (it warns past MAX_PIXELS and refuses past twice
# that, for anything in the process that opens an image); open_image refuses at MAX_PIXELS already.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Bytes a pixel takes at the peak of decoding and reducing, as Pillow stores modes: grey and palette
# 1, 16-bit grey 2; colour, 32-bit and float 4; with alpha 8 (reducing premultiplies into a copy).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "LA": 8, "PA": 8, "RGBA": 8}
# Large decodes across all sessions of the server, at once: see config.DECODE_SLOTS.
_large_decodes = threading.BoundedSemaphore(DECODE_SLOTS)

_SIGNATURES = (
    (b"PK\x03\x04", N_("a ZIP archive")),
    (b"\x1f\x8b", N_("a gzip archive")),
    (b"Rar!", N_("a RAR archive")),
    (b"7z\xbc\xaf", N_("a 7z archive")),
    (b"%PDF", N_("a PDF document")),
    (b"8BPS", N_("a Photoshop document (save it as JPEG or PNG)")),
    (b"\0\0\1\0", N_("an icon file (save it as JPEG or PNG)")),
)
# Files that start like a supported image but that Pillow could not even identify.
_IMAGE_SIGNATURES = (
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\0", "TIFF"),
    (b"MM\0*", "TIFF"),
)
# The JPEG quality of a shrunk copy (as_small_upload): what browsers and phones save by default.
SMALL_UPLOAD_QUALITY = 90
_FORMAT_NAMES = {"WEBP": "WebP", "MPO": "JPEG"}
_ORIENTATION = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(ValueError):
    """A file that cannot be used as an image; the message is one line for the user."""


def _describe(data: bytes) -> str:
    """Names what a non-image file most likely is, so the error says more than 'invalid'."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return Message("not an image: {name}", name=Message(name))
    fmt = _guess_format(data)
    if fmt:
        return Message("truncated or corrupt {format} file (its header cannot be read)", format=fmt)
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace").strip()
        if brand.startswith("avi"):
            return Message(N_("an AVIF file is not supported (save it as JPEG or PNG)"))
        if brand.startswith(("hei", "mif")):
            return Message(N_("a HEIC file is not supported (save it as JPEG or PNG)"))
        return Message(N_("a video or HEIF file is not supported (save it as JPEG or PNG)"))
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return Message(N_("not an image: an SVG drawing (vector images are not supported)"))
    if head.startswith((b"<!doctype html", b"<html")):
        return Message(N_("not an image: an HTML page"))
    if _is_text(data[:4096]):
        return Message(N_("not an image: a text file"))
    return Message(N_("not an image: an unsupported format (use JPEG, PNG, GIF, BMP, WebP or TIFF)"))


def _guess_format(data: bytes) -> str | None:
    """The supported format a file claims by its first bytes, to name it in errors."""
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for signature, name in _IMAGE_SIGNATURES if data.startswith(signature)), None)


def _is_text(head: bytes) -> bool:
    if any(byte < 32 and byte not in b"\t\n\r\f" for byte in head):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A character cut by the 4096-byte window is still text.
        return error.start >= len(head) - 3
    return True


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a viewer shows them, instead of their hidden colour."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _wide_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float pixels scaled by their format's range, so a photo keeps its
    brightness (a plain convert("RGB") clips them to white); values outside any known range
    are stretched to 0-255."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
        scaled = values / 257
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    return Image.fromarray(np.round(scaled).astype(np.uint8)).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_to_rgb(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        return _flatten_alpha(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _turn(image: Image.Image) -> Image.Transpose | None:
    """The EXIF orientation's transpose. Unlike ImageOps.exif_transpose this never rewrites the
    EXIF block, which raises on damaged phone EXIF; a photo with unreadable EXIF is used as stored.
    A PNG's EXIF may follow its pixels: read after load(), never before, or it decodes them unguarded."""
    try:
        return _UPRIGHT.get(int(image.getexif().get(_ORIENTATION, 1)))
    except Exception:  # noqa: BLE001 - any EXIF damage means "as stored"
        return None


def _too_large(size: int) -> str:
    megabytes = f"{size / 2**20:.1f}"
    return Message(
        "file is too large ({size} MB; the limit is {limit} MB)", size=megabytes, limit=MAX_UPLOAD_BYTES // 2**20
    )


def _decode_failure(error: BaseException, fmt: str | None) -> str:
    """One line that says what is wrong, without Python's exception names or multi-line text."""
    what = f"{_FORMAT_NAMES.get(fmt, fmt)} " if fmt else ""
    text = " ".join(str(error).split())
    if "truncated" in text.lower():
        return Message("truncated {format}image data (the file is cut off, e.g. an unfinished download)", format=what)
    if isinstance(error, (OSError, SyntaxError, ValueError, EOFError)) and text:
        return Message("corrupt {format}image data ({detail})", format=what, detail=text[:80])
    return Message("corrupt {format}image data (the decoder could not read it)", format=what)


def open_image(data: bytes, max_side: int | None = None, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decodes an upright RGB image; with max_side, big photos are decoded at reduced size.

    With draft, a JPEG is decoded at the smallest DCT scale that still covers that size (a
    quarter of the work at half scale) and left for the caller to resize, so no detail below the
    target is lost.
    """
    if not data:
        raise ImageError(Message(N_("empty file")))
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(_too_large(len(data)))
    fmt = None
    try:
        image, structure = _open(data)
        fmt = image.format
        width, height = image.size
        if width * height > MAX_PIXELS:
            megapixels = f"{width * height / 10**6:.0f}"
            raise ImageError(_too_many_pixels(Message("{count} megapixels", count=megapixels)))
        if (draft or max_side) and image.format in ("JPEG", "MPO"):
            # DCT scaling decodes a 12 MP JPEG at 1/2-1/8 size, several times faster.
            image.draft("RGB", _upright_size(image, draft) if draft else (max_side, max_side))
        cost = max(_decoded_bytes(image), _coefficient_bytes(image, width, height, structure.whole_image))
        if cost > MAX_DECODED_BYTES:
            raise ImageError(_too_many_bytes((width, height), cost))
        with _large_decodes if cost > LARGE_DECODE_BYTES else contextlib.nullcontext():
            image.load()
            turn = _turn(image)
            image = _reduced(image, _reduction(image, draft, max_side))
        image = _to_rgb(image.transpose(turn) if turn is not None else image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(_bomb(error)) from None
    except Image.UnidentifiedImageError:
        raise ImageError(_describe(data)) from None
    except MemoryError:
        raise ImageError(Message(N_("image is too large to decode (out of memory)"))) from None
    except Exception as error:  # noqa: BLE001 - see below
        # Damaged files make decoders fail in many ways (struct.error, KeyError, ...);
        # each must become a message, never crash a whole data scan.
        raise ImageError(_decode_failure(error, fmt or _guess_format(data))) from None
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return image


def _open(data: bytes) -> tuple[Image.Image, image_structure.Structure]:
    """Pillow's image of the bytes, opened only once their structure is a photo's, and that structure."""
    structure = image_structure.structure(data)
    if structure.refusal is not None:
        raise ImageError(structure.refusal)
    image = Image.open(io.BytesIO(data), formats=FORMATS)
    if (why := image_structure.decoder_refusal(image)) is not None:
        raise ImageError(why)
    return image, structure


def _decoded_bytes(image: Image.Image) -> int:
    width, height = image.size
    return width * height * _BYTES_PER_PIXEL.get(image.mode, 4)


def _coefficient_bytes(image: Image.Image, width: int, height: int, whole_image: bool) -> int:
    """What libjpeg holds for a progressive JPEG, or one scanned a component at a time, whatever
    scale it decodes at: every DCT coefficient of the whole image, 2 bytes each, per component at
    its sampling (3 bytes a pixel at 4:2:0)."""
    if image.format not in ("JPEG", "MPO") or not whole_image:
        return 0
    layers = getattr(image, "layer", None) or [(None, 1, 1, None)] * len(image.getbands())
    full = max(h for _, h, _, _ in layers) * max(v for _, _, v, _ in layers)
    return int(width * height * 2 * sum(h * v for _, h, v, _ in layers) / full)


def _reduction(image: Image.Image, draft: tuple[int, int] | None, max_side: int | None) -> int:
    """The whole factor a decoded image may shrink by: it still covers draft whichever way it is
    turned, or still fills max_side."""
    width, height = image.size
    if draft:
        return min(width, height) // max(*draft, 1)
    return max(width, height) // max_side if max_side else 1


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """The decoded pixels shrunk in the image's own mode (box averages; nearest for palette
    images), so no full-size copy is ever converted."""
    if factor < 2:
        return image
    width, height = image.size
    return image.resize((math.ceil(width / factor), math.ceil(height / factor)), Image.Resampling.BOX)


def _upright_size(image: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    """A (width, height) wanted after EXIF rotation, as the stored image must cover it."""
    try:
        turned = int(image.getexif().get(_ORIENTATION, 1)) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - damaged EXIF: used as stored, see _turn
        turned = False
    return size[::-1] if turned else size


def _too_many_pixels(found: str) -> str:
    return Message(
        "image is {found}, over the {limit} megapixel limit (possible decompression bomb)",
        found=found,
        limit=MAX_PIXELS // 10**6,
    )


def _too_many_bytes(size: tuple[int, int], cost: int) -> str:
    width, height = size
    return Message(
        "image is {width} × {height} pixels, {size} MB to decode at {bytes} bytes a pixel, over the {limit} MB "
        "limit (possible decompression bomb)",
        width=width,
        height=height,
        size=f"{cost / 2**20:,.0f}",
        bytes=cost // (width * height),
        limit=MAX_DECODED_BYTES // 2**20,
    )


def _bomb(error: Image.DecompressionBombError | Image.DecompressionBombWarning) -> str:
    # Pillow refuses before we see the size; its message carries the pixel count.
    found = re.search(r"\((\d+) pixels\)", str(error))
    if not found:
        return _too_many_pixels(Message(N_("too many pixels")))
    megapixels = f"{int(found.group(1)) / 10**6:.0f}"
    return _too_many_pixels(Message("{count} megapixels", count=megapixels))


def stored_size(data: bytes) -> tuple[int, int]:
    """Width and height as stored in the header, without decoding the pixels."""
    try:
        image, _ = _open(data)
        with image:
            return image.size
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(_bomb(error)) from None
    except Image.UnidentifiedImageError:
        raise ImageError(_describe(data)) from None
    except Exception as error:  # noqa: BLE001 - damaged headers fail in many ways
        raise ImageError(_decode_failure(error, _guess_format(data))) from None


def read_upload(path: Path) -> bytes:
    """A file's bytes, refused by its size before anything is read: a video or disk image
    among the photos must not be read into memory. OSError if it cannot be read at all."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_UPLOAD_BYTES:
            raise ImageError(_too_large(size))
        # read(n) sets n bytes aside first, and a scan reads thousands of photos: the file's size,
        # then the rest if it grew since, bounded.
        data = file.read(size + 1)
        if len(data) > size:
            data += file.read(MAX_UPLOAD_BYTES + 1 - len(data))
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(_too_large(len(data)))
    return data


def load_image(data: bytes, max_side: int | None = 1024) -> np.ndarray:
    """RGB uint8 pixels (H, W, 3) of any supported file; ImageError for anything else."""
    return np.asarray(open_image(data, max_side))


def to_model_input(image: Image.Image | np.ndarray, size: tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """The pixels a model sees, made the same way for training and prediction."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode != "RGB":
        image = _to_rgb(image)
    return np.asarray(image.resize(size[::-1], Image.Resampling.BILINEAR))


def as_small_upload(image: Image.Image, long_side: int) -> bytes:
    """A photo as a thumbnail, screenshot or messenger copy reaches us: its long side shrunk (Lanczos,
    as image editors shrink) and saved again as JPEG, with the blur and artefacts that come with it."""
    small = image.copy()
    small.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=SMALL_UPLOAD_QUALITY)
    return out.getvalue()


def data_url(pixels: np.ndarray, side: int, quality: int = 70) -> str:
    """RGB pixels as a small JPEG data URL at most `side` px a side: a picture a web page can
    show inline, as a chart's tooltip does, with no file to serve."""
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    image.thumbnail((side, side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
