"""Good and bad upload files, made by code so that no binary file is committed.

Each good file comes with the (width, height) that load_image must return at full size;
each bad one with words its one-line ImageError message must contain.
"""

import functools
import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from catdog import config


def gradient(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    """Distinct, smooth pixels (red grows left to right, green top to bottom)."""
    width, height = size
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0] = (np.arange(width) * 255 // max(width - 1, 1)).astype(np.uint8)[None, :]
    pixels[..., 1] = (np.arange(height) * 255 // max(height - 1, 1)).astype(np.uint8)[:, None]
    pixels[..., 2] = 128
    return Image.fromarray(pixels).convert(mode)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def marked_jpeg(orientation: int, size: tuple[int, int] = (40, 20)) -> bytes:
    """A grey JPEG, red in its stored top-left quarter, with an EXIF orientation tag."""
    width, height = size
    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[: height // 2, : width // 2] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 30_000, height: int = 30_000, colour: bool = False) -> bytes:
    """A few hundred bytes whose header claims a giant grey (or RGB) image (one zlib stream of zeros)."""
    rows = zlib.compressobj(9)
    data = b"".join(rows.compress(b"\0" * (width * (3 if colour else 1) + 1)) for _ in range(16)) + rows.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if colour else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


@functools.cache
def wide_png(side: int) -> bytes:
    """A 16-bit grey PNG of side × side pixels, bands of flat grey: a few hundred KB to send, but
    side² × 2 bytes to decode (10 950 px: 252 KiB, 229 MiB). Made row by row, never held decoded."""
    packer = zlib.compressobj(9)
    rows = (packer.compress(b"\0" + (y // 512 * 4099 % 65536).to_bytes(2, "big") * side) for y in range(side))
    data = b"".join(rows) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def wide_png_zip(sides: list[int]) -> bytes:
    """A zip of one wide_png per side, stored (the PNGs are packed already), as a student would upload them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for i, side in enumerate(sides):
            archive.writestr(f"photos/{i:02d}-{side}px.png", wide_png(side))
    return out.getvalue()


def rgba_png() -> bytes:
    """Left half fully transparent black, right half opaque blue."""
    pixels = np.zeros((10, 20, 4), np.uint8)
    pixels[:, 10:] = (0, 0, 255, 255)
    return encode(Image.fromarray(pixels, "RGBA"), "PNG")


def la_png() -> bytes:
    pixels = np.zeros((10, 20, 2), np.uint8)
    pixels[:, 10:] = (40, 255)
    return encode(Image.fromarray(pixels, "LA"), "PNG")


def palette_png_transparent() -> bytes:
    """A palette image whose index 0 (black) is transparent: the left half must come back white."""
    image = Image.new("P", (20, 10), 0)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    image.paste(1, (10, 0, 20, 10))
    return encode(image, "PNG", transparency=0)


def palette_png() -> bytes:
    return encode(gradient().convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


def gray16_png(value: int | None = None) -> bytes:
    """16-bit greyscale: a full-range ramp, or one flat value."""
    if value is None:
        pixels = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (8, 1))
    else:
        pixels = np.full((8, 32), value, np.uint16)
    return encode(Image.fromarray(pixels), "PNG")


def float_tiff() -> bytes:
    pixels = np.tile(np.linspace(0.0, 1.0, 32, dtype=np.float32), (8, 1))
    return encode(Image.fromarray(pixels, "F"), "TIFF")


def gray16_tiff() -> bytes:
    pixels = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (8, 1))
    return encode(Image.fromarray(pixels), "TIFF")


def animated_gif() -> bytes:
    """Two frames: red then blue; only the first (red) may come back."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def transparent_gif() -> bytes:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (8, 0, 16, 16))
    return encode(image, "GIF", transparency=0)


def big_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel phone-sized photo (smooth, so it compresses to a few hundred KB)."""
    return encode(gradient((width, height)), "JPEG", quality=80)


# Phone EXIF that Pillow reads but cannot write back (ImageOps.exif_transpose raised struct.error).
ODD_EXIF = (
    b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x03\x01\x0f\x00\x02\x00\x00\x00\x0c\x00\x00\x002"
    b"\x01B\x00\x02\x00\x00\x00\x08\x00\x00\x00>\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00"
    b"\x00\x00\x00\x00\x00Phone ma\x08er\x00\x16odel X\x00"
)


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("cat.jpg", encode(gradient(), "JPEG"))
    return out.getvalue()


@dataclass(frozen=True)
class Good:
    make: Callable[[], bytes]
    size: tuple[int, int]  # (width, height) after EXIF rotation, at full size


@dataclass(frozen=True)
class Bad:
    make: Callable[[], bytes]
    words: tuple[str, ...]  # lower-case words the message must contain


GOOD: dict[str, Good] = {
    "jpeg": Good(lambda: encode(gradient(), "JPEG"), (40, 30)),
    "jpeg-progressive": Good(lambda: encode(gradient(), "JPEG", progressive=True), (40, 30)),
    "jpeg-cmyk": Good(lambda: encode(gradient(mode="CMYK"), "JPEG"), (40, 30)),
    "jpeg-grey": Good(lambda: encode(gradient(mode="L"), "JPEG"), (40, 30)),
    "jpeg-exif-6": Good(lambda: marked_jpeg(6), (20, 40)),
    "jpeg-odd-exif": Good(lambda: encode(gradient(), "JPEG", exif=ODD_EXIF), (30, 40)),
    "jpeg-12mp": Good(big_jpeg, (4000, 3000)),
    "mpo": Good(lambda: encode(gradient(), "MPO", save_all=True, append_images=[gradient()]), (40, 30)),
    "png": Good(lambda: encode(gradient(), "PNG"), (40, 30)),
    "png-grey": Good(lambda: encode(gradient(mode="L"), "PNG"), (40, 30)),
    "png-16bit": Good(gray16_png, (32, 8)),
    "png-palette": Good(palette_png, (40, 30)),
    "png-palette-transparent": Good(palette_png_transparent, (20, 10)),
    "png-rgba": Good(rgba_png, (20, 10)),
    "png-la": Good(la_png, (20, 10)),
    "png-1bit": Good(lambda: encode(gradient(mode="1"), "PNG"), (40, 30)),
    "png-1x1": Good(lambda: encode(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"), (1, 1)),
    "png-3000x2": Good(lambda: encode(gradient((3000, 2)), "PNG"), (3000, 2)),
    "jpeg-2x3000": Good(lambda: encode(gradient((2, 3000)), "JPEG"), (2, 3000)),
    "gif": Good(lambda: encode(gradient(), "GIF"), (40, 30)),
    "gif-animated": Good(animated_gif, (16, 16)),
    "gif-transparent": Good(transparent_gif, (16, 16)),
    "webp": Good(lambda: encode(gradient(), "WEBP"), (40, 30)),
    "webp-lossless-alpha": Good(lambda: encode(Image.open(io.BytesIO(rgba_png())), "WEBP", lossless=True), (20, 10)),
    "bmp": Good(lambda: encode(gradient(), "BMP"), (40, 30)),
    "tiff": Good(lambda: encode(gradient(), "TIFF"), (40, 30)),
    "tiff-float": Good(float_tiff, (32, 8)),
    "tiff-16bit": Good(gray16_tiff, (32, 8)),
    "tiff-cmyk": Good(lambda: encode(gradient(mode="CMYK"), "TIFF"), (40, 30)),
    "tiff-jpeg-compressed": Good(lambda: encode(gradient(), "TIFF", compression="jpeg"), (40, 30)),
}

BAD: dict[str, Bad] = {
    "empty": Bad(lambda: b"", ("empty",)),
    "text": Bad(lambda: b"just some notes about my cat\n" * 20, ("not an image", "text")),
    "html": Bad(lambda: b"<!DOCTYPE html>\n<html><body>404</body></html>\n", ("not an image", "html")),
    "svg": Bad(
        lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>',
        ("not an image", "svg"),
    ),
    "zip": Bad(zip_bytes, ("not an image", "zip")),
    "gzip": Bad(lambda: gzip.compress(encode(gradient(), "JPEG")), ("not an image", "gzip")),
    "pdf": Bad(lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", ("not an image", "pdf")),
    "random-binary": Bad(lambda: bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8)), ("not",)),
    "jpeg-truncated": Bad(lambda: truncated(encode(gradient((200, 150)), "JPEG")), ("truncated",)),
    "jpeg-header-only": Bad(lambda: encode(gradient(), "JPEG")[:20], ("truncated or corrupt jpeg",)),
    "png-truncated": Bad(lambda: truncated(encode(gradient((200, 150)), "PNG")), ("truncated",)),
    "png-header-only": Bad(lambda: encode(gradient(), "PNG")[:30], ("truncated or corrupt png",)),
    "gif-truncated": Bad(lambda: truncated(encode(gradient((200, 150)), "GIF"), 0.3), ("truncated",)),
    "png-bomb": Bad(png_bomb, ("900 megapixels", "decompression bomb")),
    "png-bomb-just-over-limit": Bad(lambda: png_bomb(9_500, 9_500), ("90 megapixels", "89 megapixel limit")),
    # Under the pixel limit, over the bytes: 64 MP of colour is 256 MiB as Pillow holds it.
    "png-too-many-bytes": Bad(lambda: png_bomb(8_200, 8_200, colour=True), ("8200 × 8200", "256 mb limit")),
    "too-large": Bad(lambda: b"\xff\xd8\xff" + b"\0" * config.MAX_UPLOAD_BYTES, ("too large", "limit")),
    "ico": Bad(lambda: encode(gradient((16, 16)), "ICO"), ("not an image", "icon")),
    "psd-like": Bad(lambda: b"8BPS\x00\x01" + b"\0" * 100, ("not an image", "photoshop")),
    "webp-header-only": Bad(lambda: encode(gradient(), "WEBP")[:16], ("webp",)),
    "ds-store": Bad(lambda: b"\0\0\0\x01Bud1" + b"\0" * 2048, ("not an image",)),
    "thumbs-db": Bad(lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 2048, ("not an image",)),
    "heic": Bad(lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64, ("heic",)),
}


# --- zips of class folders, as a user uploads them ------------------------------------------------


def photo(label: int, index: int) -> bytes:
    """A small synthetic JPEG of class 0 (warm) or 1 (cool), different per index."""
    from tests.helpers.support import synthetic_image

    return encode(synthetic_image(label, index), "JPEG")


def noisy_photo(seed: int, side: int = 600) -> bytes:
    """A PNG of random pixels: about a megabyte that no compression shrinks, as phone photos are."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "PNG")


def noisy_pets(seed: int) -> dict[str, list[tuple[str, bytes]]]:
    """Three noisy photos a class, cats and dogs: 6.5 MB, for data-set shares of 10 MB."""
    return {
        name: [(f"{i}.png", noisy_photo(seed + 10 * label + i)) for i in range(3)]
        for label, name in enumerate(("cats", "dogs"))
    }


def pets_zip(pets: dict[str, list[tuple[str, bytes]]]) -> bytes:
    """A zip of class folders from photos per class, as the class builder takes them."""
    return make_zip({f"{name}/{file}": data for name, photos in pets.items() for file, data in photos})


def make_zip(entries: dict[str, bytes], links: dict[str, str] | None = None, stored: bool = False) -> bytes:
    """A zip of these files (and symbolic links, as Unix zip stores them: mode bits in external_attr)."""
    out = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = 0o120777 << 16
            archive.writestr(info, target)
    return out.getvalue()


def class_photos(classes=("cats", "dogs"), per_class: int = 4, prefix: str = "") -> dict[str, bytes]:
    return {
        f"{prefix}{name}/{name}-{i}.jpg": photo(label % 2, 100 * label + i)
        for label, name in enumerate(classes)
        for i in range(per_class)
    }


def bomb_zip() -> bytes:
    """One entry of 64 MB of zeros, packed to a few dozen KB."""
    return make_zip({**class_photos(), "cats/zeros.jpg": b"\0" * (64 * 2**20)})


@dataclass(frozen=True)
class Archive:
    make: Callable[[], bytes]
    refused: tuple[str, ...] = ()  # lower-case words of the one-line refusal; empty: accepted
    skipped: tuple[str, ...] = ()  # entries that must be listed as skipped when accepted
    classes: tuple[str, ...] = ("cats", "dogs")


ARCHIVES: dict[str, Archive] = {
    "good": Archive(lambda: make_zip(class_photos())),
    "good-wrapped": Archive(lambda: make_zip(class_photos(prefix="my photos/"))),
    "good-splits": Archive(
        lambda: make_zip({**class_photos(prefix="train/"), **class_photos(prefix="validation/", per_class=2)})
    ),
    "good-three-classes": Archive(
        lambda: make_zip(class_photos(("cats", "dogs", "rabbits"))), classes=("cats", "dogs", "rabbits")
    ),
    "junk-and-nested": Archive(
        lambda: make_zip(
            {
                **class_photos(),
                "cats/notes.txt": b"my cats\n",
                "dogs/more.zip": zip_bytes(),
                "dogs/broken.jpg": truncated(encode(gradient((200, 150)), "JPEG")),
                "readme.md": b"hello",
                "__MACOSX/cats/._cat.jpg": b"\0\5\26\7",
                "cats/.DS_Store": b"\0\0\0\1Bud1",
            }
        ),
        skipped=("cats/notes.txt", "dogs/more.zip", "dogs/broken.jpg", "readme.md"),
    ),
    # One bad entry never aborts an import: each is skipped, listed with its reason.
    "odd": Archive(
        lambda: make_zip({**class_photos(), "Cats/Cat-9.jpg": photo(0, 9), f"cats/{'n' * 300}.jpg": photo(0, 10)}),
        skipped=(f"cats/{'n' * 300}.jpg",),
    ),
    "file-and-folder": Archive(
        lambda: make_zip({**class_photos(), "dogs/dogs-0.jpg/inner.jpg": photo(1, 9)}),
        skipped=("dogs/dogs-0.jpg/inner.jpg",),
    ),
    "odd-class-names": Archive(
        lambda: make_zip({**class_photos(), "con/a.jpg": photo(0, 11), "-x-/b.jpg": photo(1, 12)}),
        skipped=("con/a.jpg", "-x-/b.jpg"),
    ),
    "odd-splits": Archive(
        lambda: make_zip({**class_photos(prefix="train/"), **class_photos(("Cats", "DOGS"), 2, "Validation/")}),
    ),
    "bomb": Archive(bomb_zip, refused=("zip bomb",)),
    "traversal": Archive(
        lambda: make_zip({**class_photos(), "cats/../../evil.jpg": photo(0, 1)}), refused=("outside",)
    ),
    "traversal-backslash": Archive(
        lambda: make_zip({**class_photos(), "cats\\..\\..\\evil.jpg": photo(0, 1)}), refused=("outside",)
    ),
    "absolute": Archive(lambda: make_zip({**class_photos(), "/tmp/evil.jpg": photo(0, 1)}), refused=("absolute",)),
    "absolute-drive": Archive(lambda: make_zip({**class_photos(), "C:/evil.jpg": photo(0, 1)}), refused=("absolute",)),
    "link": Archive(lambda: make_zip(class_photos(), links={"cats/passwd.jpg": "/etc/passwd"}), refused=("link",)),
    "one-class": Archive(lambda: make_zip(class_photos(("cats",))), refused=("two classes",)),
    "too-few": Archive(lambda: make_zip(class_photos(per_class=1)), refused=("at least", "photos")),
    "not-a-zip": Archive(lambda: encode(gradient(), "JPEG"), refused=("not a readable zip",)),
    "only-junk": Archive(lambda: make_zip({"cats/a.txt": b"a", "dogs/b.txt": b"b"}), refused=("two classes",)),
}


def head_weights_file(external: dict | None = None, declared: dict | None = None) -> bytes:
    """model.weights.h5 laid out as catdog.fast.head.save writes it for 1280 features and 2 classes,
    but with the datasets named in `external` read from that file (written here, as big as the
    array) and those in `declared` given that shape and never written (read, they are the fill value)."""
    import h5py

    from catdog.fast import head

    external, declared = external or {}, declared or {}
    arrays = head.Head.initial(1280, 2, np.random.default_rng(0)).weights
    out = io.BytesIO()
    with h5py.File(out, "w") as file:
        file.create_group("vars").attrs["name"] = head.MODEL_NAME
        for layer, pair in (("dense", arrays[:2]), ("dense_1", arrays[2:])):
            for index, array in zip("01", pair):
                name = f"layers/{layer}/vars/{index}"
                if name in external:
                    external[name].write_bytes(b"\x42" * array.nbytes)
                    file.create_dataset(
                        name, array.shape, np.float32, external=[(str(external[name]), 0, array.nbytes)]
                    )
                elif name in declared:
                    file.create_dataset(name, declared[name], np.float32, chunks=True)
                else:
                    file[name] = array.astype(np.float32)
    return out.getvalue()


def rle_bmp(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP of one pixel a row (each row ends early; the rest is the first colour):
    a few bytes a row, however wide."""
    pixels = b"\x01\x05\x00\x00" * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(header) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + palette + pixels
