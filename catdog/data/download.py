"""The default data set, cats_and_dogs_filtered: where it lies in the Keras cache, and its checked download."""

import ssl
import urllib.error
import urllib.request
from pathlib import Path

from catdog import access, config
from catdog.data.errors import DataError
from catdog.messages import Message
from catdog.progress import Progress
from catdog.storage import replace_file


def default_dataset_dir() -> Path:
    return config.keras_home() / "datasets" / "cats_and_dogs_extracted" / config.DATASET_NAME


def default_dataset_available() -> bool:
    """Whether the default set is on disk (unpacking a cached archive needs no network)."""
    archive = config.keras_home() / "datasets" / config.DATASET_FILE
    return default_dataset_dir().is_dir() or archive.is_file()


def download_default_dataset(progress: Progress | None = None, *, actor: access.Actor) -> Path:
    """Fetches cats_and_dogs_filtered into the Keras cache (once) and returns its folder."""
    folder = default_dataset_dir()
    if folder.is_dir():
        return folder
    access.authorize(actor, access.Action.DOWNLOAD)
    archive = config.keras_home() / "datasets" / config.DATASET_FILE
    if not archive.exists():
        _download(config.DATASET_URL, archive, progress)
    import keras  # here, so that scanning folders never pays TensorFlow's start-up time

    try:
        # A cached archive whose hash differs is downloaded again; one that still differs is refused.
        extracted = keras.utils.get_file(
            config.DATASET_FILE,
            origin=config.DATASET_URL,
            extract=True,
            cache_dir=str(config.keras_home()),
            file_hash=config.DATASET_SHA256,
        )
    except Exception as error:  # noqa: BLE001 -- get_file raises a bare Exception for network failures
        reason = failure_reason(error)
        raise DataError(
            Message(
                "{archive} is not the published {file} (its SHA-256 differs) and could not be downloaded again "
                "({reason})",
                archive=archive,
                file=config.DATASET_FILE,
                reason=reason,
            )
        ) from None
    return Path(extracted) / config.DATASET_NAME


def _download(url: str, target: Path, progress: Progress | None) -> None:
    """Streams to a partial file first, so an interrupted download never looks complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or config.DATASET_BYTES)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        if certificate := certificate_failure(error):
            raise DataError(Message("could not download {url}: {reason}", url=url, reason=certificate)) from None
        reason = getattr(error, "reason", error)
        raise DataError(
            Message("could not download {url}: {reason} (is the network reachable?)", url=url, reason=str(reason))
        ) from None
    replace_file(partial, target)


def failure_reason(error: BaseException) -> Message | str:
    """Why a download failed, in one line: what to do about a certificate this Python cannot
    verify, else the error's own first line."""
    return certificate_failure(error) or (str(error).splitlines()[0] if str(error) else type(error).__name__)


def certificate_failure(error: BaseException) -> Message | None:
    """The reason to show when a download failed because the server's certificate could not be
    verified, else None. Its usual cause is a python.org Python on macOS whose certificates were
    never installed: the network is fine, so asking about it would send the user the wrong way.
    urllib hides the SSL error in a URLError's reason, and Keras's get_file in the context of its own."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, ssl.SSLCertVerificationError):
            return Message(
                "this Python could not verify the server's certificate: on macOS, run "
                '"Install Certificates.command" from the Python folder in Applications once; on a network that '
                "inspects secure connections, install its certificate"
            )
        seen.add(id(current))
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__]
    return None
