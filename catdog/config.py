"""The facts every other module reads: image size, batch size, seeds, data and folders."""

import os
from pathlib import Path

IMAGE_SIZE = (160, 160)
# Square sides a run may train at: the posts' 160 px, MobileNetV2's ImageNet 224 px, and 288 px,
# which keeps more of each photo's detail still: the most accurate (model4 --fast on
# cats_and_dogs_filtered, 5 seeds: validation 0.9868 at 224 px, 0.9905 at 288, 0.9902 at 320),
# at 1.65x the compute of 224 px. 64 px: the quick lesson's small CNNs, 2.25x less compute than 96
# px (benchmarks/lesson_settings.py).
IMAGE_SIDES = (64, 96, 128, 160, 192, 224, 288)
BATCH_SIZE = 32
SPLIT_SEED = 1337
# Share of the validation files held out as the test split when a data set has no test/.
TEST_FRACTION = 0.2
# Share of the images held out for validation (and then test) when a folder has class folders only.
VALIDATION_FRACTION = 0.3

SPLITS = ("train", "validation", "test")

DATASET_NAME = "cats_and_dogs_filtered"
DATASET_FILE = "cats_and_dogs.zip"
DATASET_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
DATASET_BYTES = 68_606_236
# The published files' SHA-256: a download or a cached copy that differs is refused (or fetched again).
DATASET_SHA256 = "4160253fbdd916e0a850f2937114e0d382a34d71c61ef54b964280e2028cdfa3"

# Keras publishes one MobileNetV2 weights file per input size; convolution weights do not depend
# on the size, so the one for IMAGE_SIZE serves every size and a user downloads it once.
BACKBONE_WEIGHTS_FILE = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{IMAGE_SIZE[0]}_no_top.h5"
BACKBONE_WEIGHTS_URL = (
    f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{BACKBONE_WEIGHTS_FILE}"
)
BACKBONE_WEIGHTS_SHA256 = "4ea99400c160369d23f9bfaf304d5deefa0cfb4fb8a297ee8998d1e126e72767"

# Uploads larger than this are refused before decoding.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
# Memory is a budget: a photo is refused before decoding past MAX_PIXELS (Pillow's own bomb guard,
# made a refusal instead of a warning) or past MAX_DECODED_BYTES of pixels as Pillow holds them
# (1 byte a pixel for grey or palette, 2 for 16-bit grey, 4 for colour, 32-bit and float), and each
# photo is reduced to the size the model and the page need as soon as it is decoded.
# The arithmetic for a class of 30 sessions on one server: one decode at the limit holds 256 MiB at
# its peak (the full-size pixels; the reduced copy is a few MB). Unbounded, 30 sessions sending such
# a photo at once would need 30 x 256 MiB = 7.5 GiB on top of the server's own ~1.5 GiB (TensorFlow,
# models): the OOM killer ends every session. Decodes over LARGE_DECODE_BYTES therefore take one of
# DECODE_SLOTS process-wide slots (the others wait their turn): 2 x 256 MiB = 0.5 GiB, plus at most
# 28 x 32 MiB = 0.9 GiB for the other sessions' ordinary photos (a 12 MP JPEG decodes at a fraction
# of its scale, a few MB): under 1.5 GiB more than an idle server, which a 4 GiB machine survives.
MAX_PIXELS = 89_478_485
MAX_DECODED_BYTES = 256 * 2**20
LARGE_DECODE_BYTES = 32 * 2**20
DECODE_SLOTS = 2
# The files the web server holds for the sessions' upload widgets, in memory until the user removes
# one or the session ends (two minutes after its tab closes), however many a forged client sends:
# sixteen at MAX_UPLOAD_BYTES a tab (the class builder's 40 phone photos take about 160 MB), 4 GiB
# for the whole server.
HELD_UPLOAD_BYTES_PER_SESSION = 16 * MAX_UPLOAD_BYTES
HELD_UPLOAD_BYTES = 4 * 1024**3

# Zip archives of photos (a data set's, or photos for the model) are refused past these limits
# before anything is unpacked: more entries, more bytes in all once unpacked, or an entry unpacking
# to over ZIP_MAX_RATIO times its packed size (photos barely compress; a zip bomb packs gigabytes
# of zeros into kilobytes). A copied data set may hold no more than ZIP_MAX_TOTAL_BYTES either.
ZIP_MAX_ENTRIES = 20_000
ZIP_MAX_TOTAL_BYTES = 2 * 1024**3
# A data set is never written past the point where the disk would have less than this free: its
# photos may be 100 times their zip (bitmaps pack well), and a full disk stops every run and session.
DATASET_KEEP_FREE_BYTES = 1024**3
ZIP_MAX_RATIO = 100

# Project files (catdog.project): a workspace's runs, models and data sets as one file, refused past
# PROJECT_MAX_BYTES packed or unpacked (a class's own photos and a few heads fit in a few MB; the
# whole cats_and_dogs_filtered as a typed folder's data, 68 MB), and each JSON record of it past
# PROJECT_MAX_JSON_BYTES (a run's data.json lists its photos: about 60 bytes each).
PROJECT_MAX_BYTES = 200 * 1024**2
PROJECT_MAX_JSON_BYTES = 8 * 1024**2
PROJECT_SUFFIX = ".catdog"

# A scan stops at this many files and folders (CATDOG_MAX_SCAN_FILES), and at folders nested
# deeper than this below a class folder: a typed "/" must not stall a shared server.
MAX_SCAN_FILES = 100_000
MAX_SCAN_DEPTH = 8

# Unlocking the teacher's controls: a browser session may fail this often before each further
# try waits twice as long as the last, from the first wait up to the longest.
UNLOCK_FREE_TRIES = 3
UNLOCK_FIRST_WAIT_S = 2.0
UNLOCK_LONGEST_WAIT_S = 300.0
# The same across all sessions of the server, so that opening new tabs does not buy new tries;
# the cap is short because it also delays the teacher's own unlock.
SERVER_FREE_TRIES = 20
SERVER_LONGEST_WAIT_S = 60.0
# Failures older than this are forgotten.
UNLOCK_FORGET_S = 15 * 60

# A student's display name, and the code they keep to sign in again: 8 characters of 30 unmistakable
# ones (no 0/O, 1/I/L, U) hold about 39 bits, hopeless to guess at a hash's pace (catdog.roster).
STUDENT_NAME_MAX_CHARS = 40
STUDENT_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
STUDENT_CODE_LENGTH = 8
# More joins than any class needs: what a script joining in a loop may fill the roster with.
MAX_STUDENTS = 500
# Joins a minute, the whole class together: thirty at the bell fit, and a script filling the roster
# under made-up names takes long enough for the teacher to see it and remove them (Class page).
JOINS_PER_MINUTE = 60
# The CLI's `--as NAME` reads the student's code from here.
STUDENT_CODE_VAR = "CATDOG_SECRET"


# The checkout's assets: the vendored browser runtime and the browser pages (catdog.inference.web).
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# `catdog export`: a folder for ONNX Runtime Web, or one offline page; float16 halves the weights.
WEB_FORMATS = ("web", "html")
WEB_PRECISIONS = ("float32", "float16")


def keras_home() -> Path:
    """Keras's own cache folder, where get_file keeps downloads and weights."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def data_dir() -> str | None:
    """The data folder used when none is given; None means the default download."""
    return os.environ.get("CATDOG_DATA_DIR") or None


def data_roots() -> list[Path]:
    """The folders a typed data folder must lie in (CATDOG_DATA_ROOTS, os.pathsep-separated),
    resolved; empty when unset."""
    paths = os.environ.get("CATDOG_DATA_ROOTS", "").split(os.pathsep)
    return [Path(path.strip()).expanduser().resolve() for path in paths if path.strip()]


def max_scan_files() -> int:
    return int(os.environ.get("CATDOG_MAX_SCAN_FILES") or MAX_SCAN_FILES)


def teacher_password() -> str | None:
    """The password that unlocks starting, cancelling and deleting runs and changing the data;
    None: everyone may. The dashboard also reads `teacher_password` from its secrets.toml."""
    return os.environ.get("CATDOG_TEACHER_PASSWORD") or None


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    return Path(override or os.environ.get("CATDOG_RUNS_DIR") or "runs").expanduser().resolve()


DATASETS_DIR_VAR = "CATDOG_DATASETS_DIR"
# The folder beside the runs that holds the data sets the app makes (uploads, copies, built classes).
DATASETS_DIR_NAME = "datasets"


def datasets_dir() -> Path:
    """The app's own data sets, one folder each; beside the runs unless CATDOG_DATASETS_DIR says otherwise."""
    override = os.environ.get(DATASETS_DIR_VAR)
    return Path(override).expanduser().resolve() if override else runs_dir().parent / DATASETS_DIR_NAME


CLASS_DIR_NAME = "class"


def class_dir() -> Path:
    """The class's own files (its roster and the teacher's settings), beside the runs."""
    return runs_dir().parent / CLASS_DIR_NAME


def cache_dir() -> Path:
    """Scans, decoded pixels and backbone features, reused across runs and processes."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catdog"
    return Path(os.environ.get("CATDOG_CACHE_DIR") or default).expanduser()


RAY_ADDRESS_VAR = "CATDOG_RAY_ADDRESS"


def ray_address() -> str | None:
    """The Ray head's job-server address (http://HEAD:8265) runs go to; None: this machine's own queue."""
    return os.environ.get(RAY_ADDRESS_VAR) or None


def folder_env(runs_root: Path) -> dict[str, str]:
    """The folder settings as this process resolves them, for a training process on another node.

    On a cluster these folders must be on storage every node sees, at the same path.
    """
    env = {
        "CATDOG_RUNS_DIR": str(runs_root),
        "CATDOG_CACHE_DIR": str(cache_dir().resolve()),
        "KERAS_HOME": str(keras_home().resolve()),
        DATASETS_DIR_VAR: str(datasets_dir()),
    }
    if data_dir():
        env["CATDOG_DATA_DIR"] = str(Path(data_dir()).expanduser().resolve())
    return env
