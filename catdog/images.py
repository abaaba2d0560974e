"""Turning bytes from anywhere (uploads, data folders) into RGB pixels, or one clear error."""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from catdog.config import IMAGE_SIZE, MAX_PIXELS, MAX_UPLOAD_BYTES

# Only these decoders ever see user bytes: no PostScript, PSD, ICO or other rarely-audited parsers.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
Image.init()  # registers all decoders, so FORMATS can name those Pillow loads lazily (WebP, TIFF)
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
    (b"%PDF", "a PDF document"),
)


class ImageError(ValueError):
    """A file that cannot be used as an image; the message is one line for the user."""


def _describe(data: bytes) -> str:
    """Names what a non-image file most likely is, so the error says more than 'invalid'."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "an SVG drawing (vector images are not supported)"
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "not a supported image (JPEG, PNG, GIF, BMP, WebP or TIFF)"
    return "a text file"


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a viewer shows them, instead of their hidden colour."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Wide-range pixels: a plain convert("RGB") would clip them to white.
        values = np.asarray(image, dtype=np.float64)
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        return _flatten_alpha(image)
    return image.convert("RGB")


def open_image(data: bytes, max_side: int | None = None) -> Image.Image:
    """Decodes an upright RGB image; with max_side, big photos are decoded at reduced size."""
    if not data:
        raise ImageError("empty file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(
            f"file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"image is {width} × {height} pixels, over the {MAX_PIXELS // 10**6} megapixel "
                    "limit (possible decompression bomb)"
                )
            if max_side and image.format in ("JPEG", "MPO"):
                # DCT scaling decodes a 12 MP JPEG at 1/2-1/8 size, several times faster.
                image.draft("RGB", (max_side, max_side))
            image.load()
            image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("image has too many pixels (possible decompression bomb)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(_describe(data)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as error:
        reason = "truncated" if "truncated" in str(error) else "corrupt"
        raise ImageError(f"{reason} image data ({str(error).splitlines()[0][:80]})") from None
    except MemoryError:
        raise ImageError("image is too large to decode") from None
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return image


def stored_size(data: bytes) -> tuple[int, int]:
    """Width and height as stored in the header, without decoding the pixels."""
    with Image.open(io.BytesIO(data), formats=FORMATS) as image:
        return image.size


def load_image(data: bytes, max_side: int | None = 1024) -> np.ndarray:
    """RGB uint8 pixels (H, W, 3) of any supported file; ImageError for anything else."""
    return np.asarray(open_image(data, max_side))


def to_model_input(image: Image.Image | np.ndarray) -> np.ndarray:
    """The IMAGE_SIZE pixels a model sees, made the same way for training and prediction."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return np.asarray(image.resize(IMAGE_SIZE[::-1], Image.Resampling.BILINEAR))
