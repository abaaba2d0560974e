"""Photos of things that are no pets, for measuring the unfamiliarity guard, all made offline.

Groups: scikit-image's bundled sample photos (objects, a person, science; its cat and horse left
out) in several crops, the faces of its bundled LFW subset (people), and Pillow renders made from
a seed: app screens (as screenshots and as photos of a screen), pages of text, and textures. A
seed gives the same renders on any machine; two seeds give disjoint ones, so one set may be used to
choose a guard and another, never looked at while choosing, to report it.
"""

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from catdog.data.images import load_image

# scikit-image's bundled samples that show no animal (chelsea is a cat, horse a horse).
SAMPLES = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chessboard_RGB",
    "clock_motion",
    "coffee",
    "coins",
    "color",
    "grass",
    "gravel",
    "hubble_deep_field",
    "ihc",
    "logo",
    "microaneurysms",
    "moon",
    "motorcycle_left",
    "motorcycle_right",
    "page",
    "phantom",
    "retina",
    "rocket",
    "text",
)
VIEWS = ("whole", "centre", "top-left", "bottom-right", "mirrored")
# lfw_subset.npy's faces are its first 100; the first 50 chose catdog.inference.familiarity's score.
FACES = slice(50, 100)
WORDS = [
    "file",
    "edit",
    "view",
    "help",
    "settings",
    "account",
    "search",
    "home",
    "profile",
    "share",
    "upload",
    "download",
    "cancel",
    "save",
    "open",
    "close",
    "total",
    "report",
    "weather",
    "today",
    "tomorrow",
    "message",
    "inbox",
    "sent",
    "draft",
    "calendar",
    "meeting",
    "photos",
    "music",
    "video",
    "news",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "that",
    "lesson",
    "model",
    "training",
    "accuracy",
    "loss",
    "epoch",
]
Photo = tuple[str, np.ndarray]


def as_upload(image: Image.Image | np.ndarray, fmt: str = "PNG") -> np.ndarray:
    """RGB pixels decoded from encoded bytes, the path an uploaded photo takes."""
    image = Image.fromarray(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    out = io.BytesIO()
    image.convert("RGB").save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return load_image(out.getvalue())


def _skimage_folder() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def samples() -> list[Photo]:
    """Each bundled sample in every view: whole, centre square, two corner crops, mirrored."""
    photos = []
    for name in SAMPLES:
        image = np.asarray(Image.open(next(_skimage_folder().glob(f"{name}.*"))).convert("RGB"))
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        crops = {
            "whole": image,
            "centre": image[top : top + side, left : left + side],
            "top-left": image[: height * 2 // 3, : width * 2 // 3],
            "bottom-right": image[height // 3 :, width // 3 :],
            "mirrored": image[:, ::-1],
        }
        photos += [(f"{name}/{view}", as_upload(crops[view])) for view in VIEWS]
    return photos


def faces() -> list[Photo]:
    """The bundled LFW faces: small grey portraits (25 px), as a thumbnail of a person would come."""
    faces = np.load(_skimage_folder() / "lfw_subset.npy")[FACES]
    grey = lambda face: np.repeat((face * 255).astype(np.uint8)[..., None], 3, -1)
    return [(f"face/{i}", as_upload(grey(face))) for i, face in enumerate(faces, FACES.start)]


def _colour(rng: np.random.Generator, light: bool | None = None) -> tuple[int, int, int]:
    low, high = {True: (180, 256), False: (0, 90), None: (0, 256)}[light]
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _sentence(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(WORDS, words))


def _screen(rng: np.random.Generator) -> Image.Image:
    """An app window: a title bar, a sidebar of menu items, text, buttons and a chart or photo box."""
    width, height = int(rng.integers(640, 1400)), int(rng.integers(400, 900))
    dark = rng.random() < 0.3
    page, ink = (_colour(rng, False), _colour(rng, True)) if dark else (_colour(rng, True), _colour(rng, False))
    image = Image.new("RGB", (width, height), page)
    draw = ImageDraw.Draw(image)
    accent = _colour(rng)
    bar = int(rng.integers(28, 60))
    draw.rectangle((0, 0, width, bar), fill=accent)
    draw.text((12, bar // 4), _sentence(rng, 3), fill=page, font=ImageFont.load_default(size=bar // 2))
    side = int(rng.integers(0, width // 4))
    if side:
        draw.rectangle((0, bar, side, height), fill=_colour(rng, not dark))
        for y in range(bar + 16, height - 20, 34):
            draw.text((10, y), _sentence(rng, 1), fill=ink, font=ImageFont.load_default(size=16))
    y, size = bar + 20, int(rng.integers(12, 22))
    font = ImageFont.load_default(size=size)
    while y < height - 40:
        kind = rng.random()
        if kind < 0.6:
            draw.text((side + 20, y), _sentence(rng, int(rng.integers(3, 12))), fill=ink, font=font)
            y += size + 8
        elif kind < 0.8:
            box = (side + 20, y, side + 20 + int(rng.integers(60, 160)), y + size + 14)
            draw.rounded_rectangle(box, radius=6, fill=accent)
            draw.text((box[0] + 8, y + 6), _sentence(rng, 1), fill=page, font=font)
            y += size + 24
        else:
            w, h = int(rng.integers(120, max(121, width - side - 60))), int(rng.integers(60, 200))
            draw.rectangle((side + 20, y, side + 20 + w, y + h), outline=ink)
            bars = int(rng.integers(4, 16))
            for i, v in enumerate(rng.random(bars)):
                x0 = side + 24 + i * (w - 8) // bars
                draw.rectangle(
                    (x0, y + h - 4 - int(v * (h - 8)), x0 + (w - 8) // bars - 4, y + h - 2), fill=_colour(rng)
                )
            y += h + 16
    return image


def _photo_of(screen: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The screen photographed: tilted on a dark surround, a little blurred, with glare and noise."""
    width, height = screen.size
    margin = int(max(width, height) * rng.uniform(0.05, 0.3))
    canvas = Image.new("RGB", (width + 2 * margin, height + 2 * margin), _colour(rng, False))
    canvas.paste(screen, (margin, margin))
    jitter = lambda: float(rng.uniform(-0.08, 0.08) * margin)
    W, H = canvas.size
    quad = (jitter(), jitter(), jitter(), H + jitter(), W + jitter(), H + jitter(), W + jitter(), jitter())
    canvas = canvas.transform(canvas.size, Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
    canvas = canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    pixels = np.asarray(canvas, np.float32)
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    glare = np.exp(-((xx - rng.random()) ** 2 + (yy - rng.random()) ** 2) * 8) * rng.uniform(20, 80)
    pixels = pixels + glare[..., None] + rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def screens(seed: int, count: int) -> list[Photo]:
    """App screens: every other one a screenshot, the rest photos of a screen."""
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        screen = _screen(rng)
        photo = i % 2 == 1
        photos.append(
            (
                f"screen/{'photo' if photo else 'shot'}-{i}",
                as_upload(_photo_of(screen, rng) if photo else screen, "JPEG" if photo else "PNG"),
            )
        )
    return photos


def _page(rng: np.random.Generator) -> Image.Image:
    width = int(rng.integers(500, 1000))
    height = int(width * rng.uniform(0.6, 1.5))
    image = Image.new("RGB", (width, height), _colour(rng, True))
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(10, 28))
    font = ImageFont.load_default(size=size)
    ink = _colour(rng, False)
    y = int(rng.integers(10, 60))
    while y < height - size:
        if rng.random() < 0.1:
            y += size
            continue
        draw.text((int(rng.integers(10, 50)), y), _sentence(rng, int(rng.integers(4, 14))), fill=ink, font=font)
        y += int(size * rng.uniform(1.2, 1.8))
    return image


def pages(seed: int, count: int) -> list[Photo]:
    """Pages of text, half of them photographed."""
    rng = np.random.default_rng(seed)
    return [(f"page/{i}", as_upload(_photo_of(_page(rng), rng) if i % 2 else _page(rng), "JPEG")) for i in range(count)]


def _texture(rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(200, 600))
    kind = int(rng.integers(0, 4))
    yy, xx = np.mgrid[0:side, 0:side] / side
    if kind == 0:  # smooth noise, like clouds, stone or foliage
        cells = int(rng.integers(3, 40))
        grid = rng.random((cells, cells, 3)) * 255
        field = np.asarray(
            Image.fromarray(grid.astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC), np.float32
        )
        field += rng.normal(0, rng.uniform(0, 30), field.shape)
    elif kind == 1:  # stripes at an angle, like fabric or blinds
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.02, 0.2)
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)[..., None]
        field = (wave + 1) / 2 * np.array(_colour(rng)) + (1 - wave) / 2 * np.array(_colour(rng))
    elif kind == 2:  # tiles, like floors and walls
        cells = int(rng.integers(4, 24))
        tiles = rng.integers(0, 2, (cells, cells))
        tiles = np.kron(tiles, np.ones((side // cells + 1, side // cells + 1)))[:side, :side, None]
        field = tiles * np.array(_colour(rng)) + (1 - tiles) * np.array(_colour(rng))
        field += rng.normal(0, 10, field.shape)
    else:  # a gradient, like sky, a wall or a blank screen
        field = xx[..., None] * np.array(_colour(rng)) + (1 - xx[..., None]) * np.array(_colour(rng))
        field = field * (0.7 + 0.3 * yy[..., None]) + rng.normal(0, 4, (side, side, 3))
    return np.clip(field, 0, 255).astype(np.uint8)


def textures(seed: int, count: int) -> list[Photo]:
    rng = np.random.default_rng(seed)
    return [(f"texture/{i}", as_upload(_texture(rng), "JPEG")) for i in range(count)]


# The groups the benchmark reports, made from REPORT_SEED; catdog.inference.familiarity's score was chosen
# on renders from seed 7.
REPORT_SEED = 2020
RENDERS = 40
Group = Callable[[], list[Photo]]


def groups(seed: int = REPORT_SEED, renders: int = RENDERS, bundled: bool = True) -> dict[str, Group]:
    """Each group's photos, made when called; bundled: scikit-image's samples and faces too."""
    made: dict[str, Group] = {
        "screens": lambda: screens(seed, renders),
        "pages of text": lambda: pages(seed + 1, renders),
        "textures": lambda: textures(seed + 2, renders),
    }
    if bundled:
        made = {"scikit-image samples": samples, "faces (LFW)": faces, **made}
    return made
