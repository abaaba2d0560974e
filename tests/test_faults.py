"""Fault-proof: the dashboard and its training processes under restarts, races, load, odd uploads,
unusable run folders and damaged run files, against real processes on tiny data.

The browser tests skip, saying why, without Chromium or Playwright (see the browser fixture);
the run-folder tests use AppTest and always run.
"""

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from catdog.access import OWNER
from catdog.runs.record import PHASE_TRAIN
from catdog.runs.states import ACTIVE
from catdog.runs.store import RunStore
from tests.helpers.browser import PAGE_TITLES, SLOW_MS, Dashboard, assert_no_errors, heading, healthy, new_page, settle
from tests.helpers.corpus import BAD, GOOD
from tests.helpers.support import ROOT, assert_clean, open_app, synthetic_image, wait_for

LONG_RUN_EPOCHS = 500  # the most the form allows: the run is still training when a test ends
SESSIONS = 5
# Five Chromium tabs share the test machine's cores with the server and the training process, so
# this bounds the whole machine (2 cores in CI), not only the server: a hang or a crash, not a lag.
PAGE_DEADLINE_S = 300  # speed itself is measured by benchmarks/responsiveness.py
PAGE_PATHS = {"Home": "", "Dataset": "dataset", "Augmentation": "augmentation", "Train": "train", "Predict": "predict"}


def expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture
def store(tiny_data, monkeypatch):
    """The test's private runs folder, over tiny data; runs left active are cancelled at the end."""
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    store = RunStore()
    yield store
    for run in store.runs():
        if run.state in ACTIVE:
            store.cancel(run.id, actor=OWNER)
    wait_for(lambda: not any(run.state in ACTIVE for run in store.runs()), 60, message="every run to stop")


@pytest.fixture
def server(store, tmp_path):
    env = {key: os.environ[key] for key in ("CATDOG_DATA_DIR", "CATDOG_RUNS_DIR", "CATDOG_CACHE_DIR")}
    with Dashboard(env, tmp_path / "streamlit.log") as server:
        yield server


def training(run) -> bool:
    return run.state == "running" and (run.progress() or {}).get("phase") == PHASE_TRAIN


def position(run) -> tuple:
    """How far a run has got: epochs done, then the latest batch record."""
    progress = run.progress() or {}
    return len(run.history()), progress.get("epoch", 0), progress.get("batch", 0), progress.get("elapsed", 0)


def start_long_run(page) -> None:
    """Sets a long model1 run on the Train page and clicks Start (model1 is the default architecture)."""
    epochs = page.get_by_label("Epochs")
    epochs.fill(str(LONG_RUN_EPOCHS))
    epochs.press("Tab")
    page.get_by_role("button", name="Start training").click()


def open_train_page(browser, server):
    page = new_page(browser)
    page.goto(f"{server.url}/train")
    settle(page)
    return page


# --- 1. the web server restarts while a run trains ------------------------------------------


def test_run_keeps_training_through_a_server_restart_and_shows_live_again(browser, server, store):
    page = open_train_page(browser, server)
    start_long_run(page)
    run = wait_for(lambda: next(iter(store.runs()), None), 30, message="the run to be recorded")
    wait_for(lambda: training(run), 120, message="the run to train")
    page.close()
    pid = run.status()["pid"]

    server.stop()
    assert not healthy(server.url)
    before = position(run)
    wait_for(lambda: position(run) > before, 60, message="training to advance while the server is down")
    os.kill(pid, 0)  # raises if the training process died with the server
    assert run.status()["state"] == "running" and run.status()["pid"] == pid

    server.start()
    page = open_train_page(browser, server)
    expect()(page.get_by_role("heading", name="Live run: model1")).to_be_visible()
    # The live panel's caption names the run (the runs table below names it too).
    expect()(page.get_by_role("code").filter(has_text=run.id)).to_be_visible()
    assert_no_errors(page)
    page.close()
    assert run.status()["pid"] == pid, "the restart must not start the run again"


# --- 2. two sessions click Start at the same time -------------------------------------------


def test_two_sessions_starting_at_once_queue_one_run_behind_the_other(browser, server, store):
    pages = [open_train_page(browser, server) for _ in range(2)]  # each page is a session of its own
    try:
        for page in pages:
            epochs = page.get_by_label("Epochs")
            epochs.fill(str(LONG_RUN_EPOCHS))
            epochs.press("Tab")
        for page in pages:  # two clicks back to back, before either run has been recorded
            page.get_by_role("button", name="Start training").click()
        wait_for(lambda: len(store.runs()) == 2, 30, message=f"both runs to be recorded in {store.root}")
        first, second = store.runs()
        wait_for(lambda: training(first) or training(second), 120, message="one run to train")
        assert sorted(run.state for run in store.runs()) == ["queued", "running"]
        # Both sessions see the same queue, whichever started which run.
        for page in pages:
            expect()(page.get_by_text("Queue · 1 waiting")).to_be_visible(timeout=SLOW_MS)
            assert_no_errors(page)
        assert len(store.runs()) == 2, "no run lost, none doubled"
    finally:
        for page in pages:
            page.close()
    for run in store.runs():
        store.cancel(run.id, actor=OWNER)
    wait_for(lambda: all(run.state == "cancelled" for run in store.runs()), 60, message="both runs to cancel")


# --- 3. five sessions at once while a run trains --------------------------------------------


def test_five_sessions_open_every_page_while_a_run_trains(browser, server, store, capsys):
    from catdog.settings import RunConfig

    # Batches of 2 make tiny epochs slow enough that the run outlasts the test.
    run = store.submit(
        RunConfig("model1", epochs=LONG_RUN_EPOCHS, batch_size=2, data_dir=os.environ["CATDOG_DATA_DIR"]).to_dict(),
        actor=OWNER,
    )
    wait_for(lambda: training(run), 120, message="the run to train")
    warm = open_train_page(browser, server)  # the server's first visit imports TensorFlow: not load
    warm.close()

    pages = [new_page(browser) for _ in range(SESSIONS)]
    worst: dict[str, float] = {}
    try:
        for name, path in PAGE_PATHS.items():
            started = []
            for page in pages:  # every session asks before any answer is awaited
                started.append(time.perf_counter())
                page.goto(f"{server.url}/{path}", wait_until="commit")
            for page, start in zip(pages, started):
                expect()(heading(page, PAGE_TITLES[name])).to_be_visible(timeout=PAGE_DEADLINE_S * 1000)
                worst[name] = max(worst.get(name, 0.0), time.perf_counter() - start)
            # Not waiting for idle: with five live Train pages polling, some session is always running.
            for page in pages:
                assert_no_errors(page)
    finally:
        for page in pages:
            page.close()
    # The load must not break training; on a fast machine the run may even have finished.
    assert run.state in ("running", "finished") and position(run) > (0, 0, 0, 0)
    with capsys.disabled():
        print(
            f"\n{SESSIONS} sessions while training: slowest page answer per page (s): "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in worst.items())
        )
    assert max(worst.values()) < PAGE_DEADLINE_S


# --- 4 and 7. a folder's worth of odd files dropped on the Predict page ---------------------

IMAGE_SUFFIX = {
    "jpeg": ".jpg",
    "mpo": ".jpg",
    "png": ".png",
    "gif": ".gif",
    "webp": ".webp",
    "bmp": ".bmp",
    "tiff": ".tiff",
}


# Names such files really have: the uploader takes any name, the content decides.
NON_IMAGE_NAME = {
    "text": "README",
    "html": "index.html",
    "svg": "cat drawing.svg",
    "zip": "photos.zip",
    "gzip": "backup.tar.gz",
    "pdf": "vet bill.pdf",
    "random-binary": "data.bin",
    "ico": "favicon.ico",
    "psd-like": "poster.psd",
    "ds-store": ".DS_Store",
    "thumbs-db": "Thumbs.db",
    "heic": "IMG_0042.HEIC",
}

# Bad files that never reach the app: Streamlit's uploader refuses them in the browser.
REFUSED_BY_BROWSER = {"too-large": "File must be 25.0MB or smaller"}


def odd_name(key: str, index: int) -> str:
    """Names as real folders have them: spaces, non-ASCII, upper case, extensions that lie."""
    suffix = IMAGE_SUFFIX.get(key.split("-")[0], ".jpg")
    style = index % 4
    if style == 0:
        return f"my pet {key}{suffix}"
    if style == 1:
        return f"chat été 猫 {key}{suffix}"
    if style == 2:
        return f"{key.upper()}{suffix.upper()}"
    return f"{key}{'.png' if suffix != '.png' else '.jpg'}"  # the extension says another format


@pytest.fixture(scope="module")
def dropped(browser, tmp_path_factory, trained_run_dir):
    """The Predict page after every corpus file was dropped on it at once; the server and page stay up."""
    runs = tmp_path_factory.mktemp("faults-predict") / "runs"
    shutil.copytree(trained_run_dir, runs, ignore=shutil.ignore_patterns(".queue.lock"))
    cache = tmp_path_factory.getbasetemp() / "cache"
    env = {"CATDOG_RUNS_DIR": str(runs), "CATDOG_CACHE_DIR": str(cache)}
    good = {odd_name(key, i): key for i, key in enumerate(GOOD)}
    # Not the zip: the Predict page opens one and answers its photos (test_pages.py's zip tests).
    bad = {NON_IMAGE_NAME.get(key) or odd_name(key, i): key for i, key in enumerate(BAD) if key != "zip"}
    files = [
        {"name": name, "mimeType": "application/octet-stream", "buffer": GOOD[key].make()} for name, key in good.items()
    ]
    files += [
        {"name": name, "mimeType": "application/octet-stream", "buffer": BAD[key].make()} for name, key in bad.items()
    ]
    with Dashboard(env, runs.parent / "streamlit.log") as server:
        page = new_page(browser)
        page.goto(f"{server.url}/predict")
        settle(page)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(files)
        wait_for(
            lambda: page.locator('[data-testid="stImageCaption"]').count() >= len(good),
            SLOW_MS / 1000,
            message="every good file's result",
        )
        settle(page)
        uploads = {file["name"]: file["buffer"] for file in files}
        yield {
            "page": page,
            "server": server,
            "good": good,
            "bad": bad,
            "runs": runs,
            "cache": cache,
            "uploads": uploads,
        }
        page.close()


def labelled_captions(page) -> list[str]:
    return page.locator('[data-testid="stImageCaption"]').all_inner_texts()


def test_dropped_odd_files_each_get_a_label_or_a_one_line_error(dropped):
    page, good, bad = dropped["page"], dropped["good"], dropped["bad"]
    assert_no_errors(page)
    captions = labelled_captions(page)
    assert sorted(name for name in captions if name in good) == sorted(good), "a good image got no result"
    labels = page.get_by_role("heading", level=3, name=re.compile(r"^(cats|dogs)$"))
    assert labels.count() == len(good)
    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    for name, key in bad.items():
        if key in REFUSED_BY_BROWSER:
            # Over the server's upload limit: the browser refuses it before sending a byte and
            # marks its chip as an error, with the reason on the chip.
            chip = page.locator('[data-testid="stFileChip"][aria-invalid="true"]', has_text=name)
            assert chip.count() == 1 and REFUSED_BY_BROWSER[key] in chip.text_content()
            continue
        mine = [error for error in errors if error.startswith(f"{name}: ")]
        assert len(mine) == 1, f"{name}: expected one error, got {mine}"
        assert "\n" not in mine[0].strip(), mine[0]
        assert all(word in mine[0].lower() for word in BAD[key].words), mine[0]
    assert len(errors) == len(bad) - len(REFUSED_BY_BROWSER)

    assert healthy(dropped["server"].url)
    photo = {
        "name": "one more CAT.jpeg",
        "mimeType": "image/jpeg",
        "buffer": _jpeg(synthetic_image(0, 4321, size=(120, 90))),
    }
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([photo])
    expect()(page.locator('[data-testid="stImageCaption"]', has_text="one more CAT.jpeg")).to_be_visible()
    expect()(labels).to_have_count(len(good) + 1)
    settle(page)
    assert_no_errors(page)


def _jpeg(image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def test_uploads_are_never_written_under_their_file_names(dropped):
    """A file of the app's own may share an upload's name (the live camera's index.html): only one
    holding the uploaded bytes counts."""
    uploads = dropped["uploads"]
    found = [
        path
        for folder in (ROOT, dropped["runs"], dropped["cache"])
        for path in Path(folder).rglob("*")
        if ".git" not in path.parts
        and path.is_file()
        and (path.name == "one more CAT.jpeg" or path.read_bytes() == uploads.get(path.name))
    ]
    assert not found, f"uploaded bytes written to disk: {found}"


# --- 5. a runs folder that cannot take a run --------------------------------------------------


def start_in_app(app) -> None:
    app.selectbox(key="train_arch").select("model1").run()
    next(b for b in app.get("form_submit_button") if b.label == "Start training").click().run()


def test_unwritable_runs_folder_is_a_one_line_error_before_training(tiny_data, monkeypatch, tmp_path):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    blocker = tmp_path / "a file"
    blocker.write_text("")
    # Nobody, root included, can create a folder inside a file: unwritable wherever the tests run.
    monkeypatch.setenv("CATDOG_RUNS_DIR", str(blocker / "runs"))
    app = open_app("pages/train.py")
    start_in_app(app)
    assert_clean(app)
    (error,) = [e.value for e in app.error]
    assert error.startswith("Training could not start: runs directory") and "not writable" in error
    assert "\n" not in error
    assert not (blocker / "runs").exists()


def test_full_disk_is_a_one_line_error_before_training(tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    usage = shutil.disk_usage(RunStore().root.parent)
    # Stands in for a full disk: 5 MB left, below what a run's checkpoints and caches need.
    monkeypatch.setattr(
        "catdog.runs.store.shutil.disk_usage", lambda path: type(usage)(usage.total, usage.total - 5 * 2**20, 5 * 2**20)
    )
    app = open_app("pages/train.py")
    start_in_app(app)
    assert_clean(app)
    (error,) = [e.value for e in app.error]
    assert error.startswith("Training could not start: only 5 MB free") and "\n" not in error
    assert RunStore().runs() == []


# --- 6. damaged run files ---------------------------------------------------------------------


def append(path: Path, text: str) -> None:
    with path.open("a") as out:
        out.write(text)


def test_runs_with_damaged_status_or_torn_history_are_still_listed(trained_run_dir, tiny_data, monkeypatch):
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tiny_data))
    store = RunStore()
    (original,) = RunStore(trained_run_dir).runs()
    damage = {
        "torn-status": lambda run: (run / "status.json").write_text('{"state": "finished", "pid": nu'),
        "empty-status": lambda run: (run / "status.json").write_text(""),
        "odd-status": lambda run: (run / "status.json").write_text(
            json.dumps({"state": "finished", "started": "yesterday", "ended": None, "pid": "x"})
        ),
        "torn-history": lambda run: append(run / "history.jsonl", '{"type": "epoch", "epoch": 3, "acc'),
    }
    for name, spoil in damage.items():
        copy = store.root / f"{original.id}-{name}"
        shutil.copytree(original.path, copy, ignore=shutil.ignore_patterns(".queue.lock"))
        spoil(copy)
    app = open_app("pages/train.py")
    assert_clean(app)
    table = app.dataframe[-1].value
    listed = dict(zip(table["run"], table["status"]))
    assert set(listed) == {f"{original.id}-{name}" for name in damage}
    assert listed[f"{original.id}-torn-history"] == "finished"
    assert dict(zip(table["run"], table["epochs"]))[f"{original.id}-torn-history"] == "2/2"
    assert listed[f"{original.id}-torn-status"] == "failed"
    errors = dict(zip(table["run"], table["error"]))
    assert "status.json is damaged" in errors[f"{original.id}-torn-status"]


def test_many_sessions_starting_at_once_in_one_server_all_get_their_run(tiny_data):
    """Sessions are threads of one server process: their checks of the runs folder must not collide."""
    from catdog.settings import RunConfig

    store, sessions, clicks = RunStore(), 16, 4
    barrier = threading.Barrier(sessions)
    errors: list[Exception] = []

    def start() -> None:
        barrier.wait()
        for _ in range(clicks):
            try:
                store.create(RunConfig("model1", epochs=1, data_dir=str(tiny_data)).to_dict())
            except Exception as error:  # noqa: BLE001 -- collected and reported below
                errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(store.runs()) == sessions * clicks and all(run.state == "queued" for run in store.runs())
