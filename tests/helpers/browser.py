"""The dashboard as a user meets it: `streamlit run dashboard.py` on a free port, driven by Chromium.

Plain functions and classes, no pytest fixtures, so that the browser tests and
benchmarks/responsiveness.py drive the app the same way. Playwright is imported by whoever
launches a browser; this module only needs it for the page helpers.
"""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from tests.helpers.support import ROOT, ServerProcess, answers, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A camera that shows a test pattern, allowed without asking: the class builder's camera input.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
# Generous: on 2 shared cores TensorFlow alone takes seconds to import, in the app and in training.
SLOW_MS = 120_000
# Sidebar link names and the title each page shows.
PAGE_TITLES = {
    "Home": "catdog",
    "Dataset": "Dataset",
    "Augmentation": "Augmentation",
    "Train": "Train",
    "Predict": "Predict",
}
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    return answers(f"{url}/_stcore/health")


class Dashboard(ServerProcess):
    """A dashboard server process; stopping and starting it again keeps its port, as a restart does."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None, script: str = "dashboard.py"):
        self.env = {**os.environ, **env}
        self.script = script
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> Self:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streamlit",
                    "run",
                    self.script,
                    "--server.headless",
                    "true",
                    "--server.port",
                    str(self.port),
                    "--server.address",
                    "127.0.0.1",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: healthy(self.url) or self.process.poll() is not None, timeout, message="the server")
        assert self.process.poll() is None, self.log_path.read_text()[-2000:]
        return self


def launch_chromium(playwright, camera_video: Path | None = None):
    """Chromium from a Playwright instance, or from a running browser's `browser_type` (Playwright
    runs once per thread); with camera_video (a .y4m file, see write_y4m), its fake camera plays it."""
    video = [f"--use-file-for-fake-video-capture={camera_video}"] if camera_video else []
    chromium = getattr(playwright, "chromium", playwright)
    return chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *video])


def write_y4m(photos: list[bytes], path: Path, size: tuple[int, int] = (320, 240), frames_each: int = 10) -> Path:
    """A YUV4MPEG2 video (what Chromium's fake camera plays, in a loop) showing each photo in turn."""
    import io

    from PIL import Image

    width, height = size
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for data in photos:
            y, u, v = Image.open(io.BytesIO(data)).convert("RGB").resize(size).convert("YCbCr").split()
            planes = (
                y.tobytes()
                + u.resize((width // 2, height // 2)).tobytes()
                + v.resize((width // 2, height // 2)).tobytes()
            )
            out.writelines(b"FRAME\n" + planes for _ in range(frames_each))
    return path


def serve(tmp_path_factory, data_dir: Path, runs: Path, **more_env: str) -> Iterator[str]:
    """A fixture's body: a dashboard over this data and runs folder (and more_env, a teacher
    password say), its address while the fixture lasts."""
    env = {
        "CATDOG_DATA_DIR": str(data_dir),
        "CATDOG_RUNS_DIR": str(runs),
        "CATDOG_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "cache"),
        **more_env,
    }
    with Dashboard(env, runs.parent / "streamlit.log") as server:
        yield server.url


def new_page(browser, **options):
    """A tall page in a context of its own (cookies, storage: another user), slow-machine timeouts;
    options as Playwright's browser.new_page takes them (color_scheme, a phone's viewport and touch)."""
    page = browser.new_page(**{"viewport": {"width": 1400, "height": 1600}, **options})
    page.set_default_timeout(SLOW_MS)
    return page


def settle(page, timeout_ms: float = SLOW_MS) -> None:
    """Waits until the script run has finished and no spinner is left."""
    from playwright.sync_api import expect

    page.wait_for_selector(IDLE, timeout=timeout_ms)
    expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0, timeout=timeout_ms)


def create_data_set(page, name_field, name: str, button: str) -> None:
    """Names a new data set on the Dataset page, presses the button that makes it, waits until it is ready."""
    from playwright.sync_api import expect

    name_field.fill(name)
    name_field.press("Enter")
    settle(page)
    page.get_by_role("button", name=button).click()
    expect(page.get_by_text(f"Data set {name} is ready.")).to_be_visible(timeout=SLOW_MS)
    settle(page)


def heading(page, text: str):
    return page.get_by_role("heading", name=text, exact=True, level=1)


def nav_link(page, name: str):
    return page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name, exact=True)


def assert_no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    text = page.locator('[data-testid="stApp"]').inner_text()
    assert "Traceback" not in text and "unexpected problem" not in text
