"""Photos decoded into model-size pixels, on every core, and cached on disk once per folder state and size."""

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from catdog.data.errors import DataError
from catdog.data.images import ImageError, as_small_upload, open_image, read_upload, to_model_input
from catdog.data.scan_cache import latest, lock_for, read_report, record_latest, scans_dir, valid_key
from catdog.messages import N_, Message
from catdog.progress import Progress
from catdog.storage import save_npy_atomic


def read_file(path: Path) -> bytes:
    try:
        return read_upload(path)
    except PermissionError:
        raise ImageError(Message(N_("cannot be read (permission denied)"))) from None
    except OSError as error:
        raise ImageError(Message("cannot be read ({error})", error=error.strerror or str(error))) from None


def _decode(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Model-size pixels of a file the scan found usable."""
    return _from_checked_file(path, lambda data: to_model_input(open_image(data, draft=size[::-1]), size))


def _from_checked_file(path: Path, pixels_of: Callable[[bytes], np.ndarray]) -> np.ndarray:
    try:
        return pixels_of(read_file(path))
    except ImageError as error:
        raise DataError(
            Message(
                "{path} changed since the data set was checked ({error}); check it again",
                path=str(path),
                error=error.args[0],
            )
        ) from None


def decode_all(root: Path, names: list[str], size: tuple[int, int], progress: Progress | None = None) -> np.ndarray:
    """Decodes files into one array, one thread per core (Pillow decodes outside the GIL)."""
    return _each_photo(len(names), size, lambda i: _decode(root / names[i], size), progress)


def decode_shrunk(
    root: Path, names: list[str], sides: list[int], size: tuple[int, int], progress: Progress | None = None
) -> np.ndarray:
    """Model-size pixels of each file as a small upload of it would be read: its long side shrunk to
    `sides[i]` and saved as JPEG (as_small_upload), then decoded and resized as an upload is."""

    def shrunk(i: int) -> np.ndarray:
        def pixels_of(data: bytes) -> np.ndarray:
            small = as_small_upload(open_image(data), sides[i])
            return to_model_input(open_image(small, draft=size[::-1]), size)

        return _from_checked_file(root / names[i], pixels_of)

    return _each_photo(len(names), size, shrunk, progress)


def _each_photo(
    count: int, size: tuple[int, int], pixels_of: Callable[[int], np.ndarray], progress: Progress | None
) -> np.ndarray:
    out = np.empty((count, *size, 3), np.uint8)

    def decode(i: int) -> None:
        out[i] = pixels_of(i)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for done, _ in enumerate(pool.map(decode, range(count)), start=1):
            if progress and (done % 25 == 0 or done == count):
                progress(done, count)
    return out


def _size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _pixels_path(key: str, size: tuple[int, int]) -> Path:
    return scans_dir() / f"{key}-{_size_name(size)}.npy"


def read_pixels(key: str, count: int, size: tuple[int, int]) -> np.ndarray | None:
    """The cached pixels of a folder state's `count` usable photos at one size; None if not cached."""
    try:
        pixels = np.load(_pixels_path(key, size), mmap_mode="r")
    except (OSError, ValueError):
        return None
    return pixels if pixels.shape == (count, *size, 3) else None


def cached_pixels(
    root: Path,
    key: str,
    names: list[str],
    digests: dict[str, str],
    size: tuple[int, int],
    progress: Progress | None = None,
) -> np.ndarray:
    """The pixels at one size of a folder state's usable photos `names` (with their content
    `digests`), decoded from the originals (never upscaled from smaller ones) once per folder state
    and kept on disk. Photos whose content the folder's earlier state decoded at this size are
    copied, not decoded: a fix in the mistakes view costs only the photos it added, and the earlier
    copy is then removed."""
    path = _pixels_path(key, size)
    with lock_for(path.name):
        pixels = read_pixels(key, len(names), size)
        if pixels is not None:
            return pixels
        out = np.empty((len(names), *size, 3), np.uint8)
        decoded_at = latest(root).get("pixels")
        decoded_at = decoded_at if isinstance(decoded_at, dict) else {}
        earlier_key = decoded_at.get(_size_name(size))
        earlier = _earlier_pixels(earlier_key, size) if valid_key(earlier_key) else {}
        new = []
        for i, name in enumerate(names):
            if digests[name] in earlier:
                out[i] = earlier[digests[name]]
            else:
                new.append(i)
        if new:
            out[new] = decode_all(root, [names[i] for i in new], size, progress)
        save_npy_atomic(path, out)
        record_latest(root, pixels={**decoded_at, _size_name(size): key})
        if earlier_key not in (None, key):
            earlier.clear()
            # Another process may still map it (Windows then refuses): it is only disk space.
            with contextlib.suppress(OSError):
                _pixels_path(earlier_key, size).unlink()
        return np.load(path, mmap_mode="r")


def _earlier_pixels(key: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The pixels at this size of an earlier scan of the folder, by content digest."""
    report = read_report(scans_dir() / f"{key}.json")
    try:
        pixels = np.load(_pixels_path(key, size), mmap_mode="r")
        if report is None or len(pixels) != len(report["good"]):
            return {}
        return {report["digests"][name]: pixels[i] for i, name in enumerate(report["good"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
