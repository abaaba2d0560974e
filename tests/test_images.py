"""Every kind of upload: good files become RGB pixels, anything else one clear ImageError."""

import io
import os
import random
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from catdog import config
from catdog.data import image_structure, images
from catdog.data.images import FORMATS, ImageError, load_image, open_image, stored_size, to_model_input
from tests.helpers import corpus
from tests.helpers.support import ROOT, peak_rss

RED = (255, 0, 0)
WHITE = (255, 255, 255)
# What a user must never read: Python's exception names, tracebacks, object reprs.
TECHNICAL = re.compile(r"Error\b|Exception|Traceback|struct\.|<_io|object at 0x|Errno")


def assert_user_message(message: str) -> None:
    assert message, "empty message"
    assert "\n" not in message and "\r" not in message, message
    assert not TECHNICAL.search(message), message
    assert len(message) < 200, message


def close(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= tolerance))


@pytest.mark.parametrize("name", corpus.GOOD)
def test_good_files_decode_to_rgb_uint8(name: str) -> None:
    case = corpus.GOOD[name]
    pixels = load_image(case.make(), max_side=None)
    width, height = case.size
    assert pixels.shape == (height, width, 3)
    assert pixels.dtype == np.uint8
    model_input = to_model_input(pixels)
    assert model_input.shape == (*config.IMAGE_SIZE, 3)
    assert model_input.dtype == np.uint8


@pytest.mark.parametrize("name", corpus.BAD)
def test_bad_files_raise_one_clear_line(name: str) -> None:
    case = corpus.BAD[name]
    with pytest.raises(ImageError) as raised:
        load_image(case.make())
    message = str(raised.value)
    assert_user_message(message)
    for word in case.words:
        assert word in message.lower(), f"{word!r} not in {message!r}"


def test_default_load_shrinks_a_12_megapixel_photo() -> None:
    pixels = load_image(corpus.big_jpeg())
    assert pixels.shape == (768, 1024, 3)
    # The gradient survives the reduced (draft) decode: red grows left to right.
    assert pixels[384, 10, 0] < 20 and pixels[384, -10, 0] > 235
    assert to_model_input(pixels).shape == (*config.IMAGE_SIZE, 3)


@pytest.mark.parametrize(
    ("orientation", "shape", "red_corner"),
    [
        (1, (20, 40), (0, 0)),  # as stored: red top-left
        (3, (20, 40), (-1, -1)),  # upside down: red bottom-right
        (6, (40, 20), (0, -1)),  # phone held upright: rotate clockwise, red top-right
        (8, (40, 20), (-1, 0)),  # rotate counter-clockwise: red bottom-left
        (2, (20, 40), (0, -1)),  # mirrored: red top-right
    ],
)
def test_exif_orientation_is_applied(orientation: int, shape: tuple[int, int], red_corner: tuple[int, int]) -> None:
    pixels = load_image(corpus.marked_jpeg(orientation))
    assert pixels.shape[:2] == shape
    row, col = red_corner
    assert close(pixels[row, col], RED, 40), pixels[row, col]
    assert close(pixels[-1 - row, -1 - col], (128, 128, 128), 40)


def test_exif_orientation_survives_reduced_jpeg_decode() -> None:
    """draft() decodes a big JPEG at 1/8 size; the rotation must still be applied afterwards."""
    pixels = np.full((2000, 3000, 3), 128, np.uint8)
    pixels[:1000, :1500] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    data = corpus.encode(Image.fromarray(pixels), "JPEG", exif=exif.tobytes())
    upright = load_image(data, max_side=256)
    assert upright.shape == (256, 171, 3)
    assert close(upright[5, -5], RED, 40)
    assert close(upright[5, 5], (128, 128, 128), 40)
    assert stored_size(data) == (3000, 2000)


def test_damaged_exif_keeps_the_photo() -> None:
    pixels = load_image(corpus.encode(corpus.gradient(), "JPEG", exif=corpus.ODD_EXIF))
    assert pixels.shape == (40, 30, 3)  # its orientation (6) is still read and applied


@pytest.mark.parametrize("name", ["png-rgba", "png-la", "png-palette-transparent", "webp-lossless-alpha"])
def test_transparency_is_composited_on_white(name: str) -> None:
    pixels = load_image(corpus.GOOD[name].make())
    assert close(pixels[5, 2], WHITE, 2), "transparent half must be white, not its hidden colour"
    assert not close(pixels[5, 17], WHITE, 30), "opaque half keeps its colour"


def test_transparent_gif_is_white_where_transparent() -> None:
    pixels = load_image(corpus.transparent_gif())
    assert close(pixels[8, 2], WHITE, 0)
    assert close(pixels[8, 12], RED, 0)


def test_animated_gif_gives_its_first_frame() -> None:
    pixels = load_image(corpus.animated_gif())
    assert close(pixels[8, 8], RED, 0)


@pytest.mark.parametrize("name", ["png-16bit", "tiff-16bit", "tiff-float"])
def test_wide_range_pixels_are_scaled_not_clipped(name: str) -> None:
    row = load_image(corpus.GOOD[name].make())[4, :, 0].astype(int)
    assert row[0] <= 2 and row[-1] >= 253
    assert np.all(np.diff(row) >= 0), "a ramp stays a ramp"
    assert len(set(row)) > 20, "levels are kept, not clipped to black and white"


def test_flat_16bit_image_keeps_its_brightness() -> None:
    """Scaling is by the 16-bit range: mid-grey stays mid-grey (a min-max stretch made it black)."""
    pixels = load_image(corpus.gray16_png(32768))
    assert close(pixels[0, 0], (128, 128, 128), 1)
    assert close(load_image(corpus.gray16_png(65535))[0, 0], WHITE, 0)


@pytest.mark.parametrize("name", ["jpeg-cmyk", "tiff-cmyk", "jpeg-progressive", "bmp", "webp", "tiff-jpeg-compressed"])
def test_colour_is_preserved(name: str) -> None:
    reference = np.asarray(corpus.gradient()).astype(int)
    pixels = load_image(corpus.GOOD[name].make()).astype(int)
    assert np.abs(pixels - reference).mean() < 8


def test_one_pixel_and_extreme_aspect_images_reach_model_size() -> None:
    for name in ("png-1x1", "png-3000x2", "jpeg-2x3000"):
        pixels = load_image(corpus.GOOD[name].make())
        assert max(pixels.shape[:2]) <= 1024 and min(pixels.shape[:2]) >= 1
        assert to_model_input(pixels).shape == (*config.IMAGE_SIZE, 3)
    assert close(to_model_input(load_image(corpus.GOOD["png-1x1"].make()))[80, 80], (9, 8, 7), 0)


def test_size_limit_is_checked_before_decoding() -> None:
    exactly = corpus.encode(corpus.gradient(), "PNG")
    padded = exactly + b"\0" * (config.MAX_UPLOAD_BYTES - len(exactly))
    assert load_image(padded).shape == (30, 40, 3)  # trailing bytes after IEND are harmless
    with pytest.raises(ImageError, match="too large"):
        load_image(padded + b"\0")


def test_only_the_audited_decoders_are_used() -> None:
    assert set(FORMATS) == {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"}
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    with pytest.raises(ImageError, match="not an image"):
        load_image(eps)


def test_stored_size_reads_the_header_or_raises_image_error() -> None:
    assert stored_size(corpus.marked_jpeg(6)) == (40, 20)
    with pytest.raises(ImageError, match="text file"):
        stored_size(b"hello")
    with pytest.raises(ImageError, match="decompression bomb"):
        stored_size(corpus.png_bomb())


def test_to_model_input_accepts_grey_and_rgba_images() -> None:
    assert to_model_input(np.zeros((10, 20), np.uint8)).shape == (*config.IMAGE_SIZE, 3)
    rgba = Image.open(io.BytesIO(corpus.rgba_png()))
    assert close(to_model_input(rgba)[80, 10], WHITE, 2)


def test_open_image_respects_max_side() -> None:
    image = open_image(corpus.encode(corpus.gradient((900, 300)), "PNG"), max_side=300)
    assert image.size == (300, 100) and image.mode == "RGB"


def test_damaged_files_never_escape_as_other_exceptions() -> None:
    """Random byte damage to real files: each either decodes or fails with a user message."""
    rng = random.Random(7)
    bases = [corpus.GOOD[name].make() for name in ("jpeg", "png", "gif", "webp", "bmp", "tiff", "jpeg-exif-6")]
    for base in bases:
        for _ in range(40):
            data = bytearray(base)
            start = rng.randrange(len(data))
            data[start : start + rng.randint(1, 16)] = rng.randbytes(rng.randint(0, 16))
            try:
                pixels = load_image(bytes(data))
            except ImageError as error:
                assert_user_message(str(error))
            else:
                assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3


def test_concurrent_decoding_matches_serial() -> None:
    """The data scan decodes in a thread pool: results must not depend on interleaving."""
    datas = [case.make() for name, case in corpus.GOOD.items() if name != "jpeg-12mp"]
    datas += [case.make() for name, case in corpus.BAD.items() if name != "too-large"]

    def outcome(data: bytes) -> tuple:
        try:
            pixels = load_image(data)
        except ImageError as error:
            return ("error", str(error))
        return ("ok", pixels.shape, int(pixels.astype(np.int64).sum()))

    serial = [outcome(data) for data in datas]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(outcome, datas * 3)) == serial * 3


def test_a_big_png_is_reduced_to_the_size_asked_for_as_it_is_decoded() -> None:
    """Not only JPEG (DCT scaling): a 16-bit PNG comes back just covering the size asked for."""
    assert open_image(corpus.wide_png(2000), draft=(224, 224)).size == (250, 250)
    assert open_image(corpus.wide_png(2000), max_side=1024).size == (1024, 1024)


def test_a_progressive_jpeg_counts_what_libjpeg_holds_at_full_size(monkeypatch) -> None:
    """A progressive JPEG keeps every DCT coefficient of the whole image while it decodes, at any
    scale: an 88 MP one of 1 MB took 512 MB, counted as the 0.3 MB its drafted pixels take."""
    photo = corpus.gradient((2000, 1500))
    baseline, progressive = corpus.encode(photo, "JPEG"), corpus.encode(photo, "JPEG", progressive=True)
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 8 * 2**20)  # the coefficients: 2000 x 1500 x 3 bytes
    assert open_image(baseline, draft=(224, 224)).size == (500, 375)
    with pytest.raises(ImageError, match=r"2000 × 1500 pixels, 9 MB to decode at 3 bytes a pixel"):
        open_image(progressive, draft=(224, 224))
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 10 * 2**20)
    assert open_image(progressive, draft=(224, 224)).size == (500, 375)


@pytest.mark.parametrize(
    ("make", "limit", "words"),
    [
        (lambda: corpus.encode(corpus.gradient(), "JPEG", progressive=True), "MAX_JPEG_SCANS", "JPEG scans"),
        (lambda: corpus.encode(corpus.gradient(), "JPEG", comment=b"x"), "MAX_JPEG_SEGMENTS", "JPEG metadata segments"),
        (
            lambda: corpus.encode(corpus.gradient((14, 40), "L"), "TIFF", tiffinfo={278: 1}),
            "MAX_TIFF_STRIPS",
            "TIFF strips",
        ),
        (
            lambda: corpus.encode(corpus.gradient(), "GIF", comment=b"x" * 3000),
            "MAX_GIF_BLOCKS",
            "GIF extension blocks",
        ),
    ],
)
def test_a_file_of_more_parts_than_a_photo_has_is_refused_before_it_is_parsed(make, limit, words, monkeypatch) -> None:
    """Thousands of empty JPEG scans took hours of a core, and empty metadata segments, TIFF strips
    or GIF comment blocks gigabytes, each a few bytes of a 25 MB upload: here a few, over a lowered limit."""
    data = make()
    assert open_image(data, draft=(16, 16)) and stored_size(data)
    monkeypatch.setattr(image_structure, limit, 1)
    for read in (lambda: open_image(data, draft=(16, 16)), lambda: stored_size(data)):
        with pytest.raises(ImageError, match=f"{words} in one image, over the 1 a photo has"):
            read()


def test_the_parts_counted_are_the_photo_s_own_as_its_decoder_walks_them(monkeypatch) -> None:
    """A motion photo's video after the JPEG's end holds "scan" bytes by chance (a Pixel's 8 MB
    counted 138); a stray byte between GIF blocks, which Pillow passes over, must not end the count."""
    photo = corpus.encode(corpus.gradient(), "JPEG")
    assert open_image(photo + b"\xff\xda\x00\x08" * 500, draft=(16, 16)).size == (40, 30)
    gif = corpus.encode(corpus.gradient(), "GIF", comment=b"x" * 3000)
    colours = 3 << ((gif[10] & 0x07) + 1) if gif[10] & 0x80 else 0
    stray = gif[: 13 + colours] + b"\x00" + gif[13 + colours :]
    monkeypatch.setattr(image_structure, "MAX_GIF_BLOCKS", 1)
    with pytest.raises(ImageError, match="GIF extension blocks"):
        stored_size(stray)


def test_a_big_rle_bmp_is_refused_before_its_slow_decoder_runs() -> None:
    """Pillow decodes RLE in Python, a pixel at a time: a 40 KB 89 MP file took 13 s of a core."""
    with pytest.raises(ImageError, match="RLE-compressed BMP of 6 megapixels, over the 4"):
        open_image(corpus.rle_bmp(3000, 2000), draft=(224, 224))
    assert open_image(corpus.rle_bmp(300, 200)).size == (300, 200)


def test_sessions_decoding_big_photos_at_once_take_turns_within_a_memory_ceiling(tmp_path) -> None:
    """Six sessions decoding a near-limit 16-bit PNG (170 MiB of pixels each) at the same moment:
    at most config.DECODE_SLOTS decode at once, so the process's peak memory, sampled from outside
    it, stays near two decodes, not six."""
    photo = tmp_path / "wide.png"
    photo.write_bytes(corpus.wide_png(9450))
    code = (
        "import sys; from concurrent.futures import ThreadPoolExecutor; from catdog.data.images import open_image; "
        "data = open(sys.argv[1], 'rb').read(); "
        "print([im.size for im in ThreadPoolExecutor(6).map(lambda _: open_image(data, draft=(224, 224)), range(6))])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    peak, result = peak_rss([sys.executable, "-c", code, str(photo)], ceiling=700 * 2**20, timeout=300, env=env)
    assert peak < 700 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
    assert result.stdout.strip() == str([(225, 225)] * 6), result.stderr[-2000:]
