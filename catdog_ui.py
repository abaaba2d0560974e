"""What every dashboard page shares: the error boundary, the run-status badge and cached loaders.

Pages stay thin views over the catdog library; anything here is about showing things, never
about training or data rules.
"""

import datetime
import gettext
import hashlib
import io
import json
import logging
import os
import re
import runpy
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache, cached_property, wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import streamlit.components.v1 as components
from babel import Locale, dates, numbers
from babel.messages import mofile, pofile
from PIL import Image
from starlette.exceptions import HTTPException
from streamlit.runtime.app_session import AppSession, AppSessionState
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx, script_runner

from catdog import access, config, roster
from catdog.access import Action, Forbidden
from catdog.data import datasets
from catdog.data.download import download_default_dataset
from catdog.data.errors import DataError
from catdog.data.location import confine
from catdog.data.scan import Scan, scan
from catdog.messages import N_, Message, Messages
from catdog.runs.lessons import Experiment, arms, gaps, run_label
from catdog.runs.queue_times import preparing, time_left
from catdog.runs.record import PREPARING, Run
from catdog.runs.states import ACTIVE
from catdog.runs.store import RunStore
from catdog.settings import AugmentConfig, RunConfig

ROUTER = Path(__file__).resolve().parent / "dashboard.py"
ASSETS = ROUTER.parent / "assets"
LOGO = ASSETS / "logo.svg"
# Contrast, keyboard and touch fixes Streamlit has no option for (README: Accessibility).
ACCESSIBILITY_CSS = ASSETS / "a11y.css"
ANNOUNCE_JS = ASSETS / "announce.js"
UPLOADER_JS = ASSETS / "uploader.js"
STATE_COLORS = {"queued": "gray", "running": "blue", "finished": "green", "failed": "red", "cancelled": "orange"}
SPLIT_NAMES = {"train": N_("train"), "validation": N_("validation"), "test": N_("test")}
STATE_NAMES = {
    "queued": N_("queued"),
    "running": N_("running"),
    "finished": N_("finished"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
}
# Every open tab reruns the status badge this often; 30 tabs at 2 s kept the server busy.
STATUS_REFRESH_S = 5.0
# How long the runs table every session reads is kept while no run file changes: a training
# process that dies without a word is noticed this late at most (see shared_runs).
RUNS_TTL_S = 2.0
RESUME_EVERY_S = 30
# How long a scanned folder is kept: files changed on disk outside the app are seen this late at most.
SCAN_RENEWED_S = 60

log = logging.getLogger("catdog.dashboard")


def _keep_keras_state() -> None:
    """Streamlit calls keras.backend.clear_session() after every script and fragment run, for
    apps that build a new model each run. This app keeps its models loaded across runs, and that
    call's full garbage collection holds the server's interpreter for about 0.4 s each time:
    with a few tabs polling a live run, it starved the server (measured with py-spy, and in
    tests/test_faults.py's five-session test). So the server leaves Keras's state alone."""
    script_runner._clean_problem_modules = lambda: None


_keep_keras_state()


def _deliver_a_stopped_run_s_messages() -> None:
    """Streamlit 1.67 drops the end of a page's run when a fragment's timed rerun (the run-status
    badge every few seconds) reaches the session just after that run's thread has stopped, before
    the server loop has sent what the run produced: the rerun starts a new ScriptRunner, and the
    session then ignores the stopped runner's queued messages (its last elements, its "finished")
    as a stale runner's. The tab shows a page cut short, with what the page before left on it
    (cleared only by a run's "finished"). Under a class's load that befell 36 of 600 page runs (30
    protocol sessions, a 1 s fragment; 0 with this). Starting the new runner one loop turn later
    lets the queued messages go out first (tests/test_load.py)."""
    start_runner = AppSession._create_scriptrunner
    if getattr(start_runner, "delivers_queued_messages", False):
        return

    def start_after_queued_messages(session: AppSession, rerun_data) -> None:
        stopped = session._scriptrunner
        if stopped is None:  # no runner refused the rerun: nothing of another run is queued
            return start_runner(session, rerun_data)

        def start() -> None:
            if session._state == AppSessionState.SHUTDOWN_REQUESTED:
                return
            current = session._scriptrunner
            if current is None or current is stopped:
                start_runner(session, rerun_data)
            elif not current.request_rerun(rerun_data):  # a newer runner stopped meanwhile
                start_after_queued_messages(session, rerun_data)

        session._event_loop.call_soon(start)

    start_after_queued_messages.delivers_queued_messages = True
    AppSession._create_scriptrunner = start_after_queued_messages


_deliver_a_stopped_run_s_messages()


def _bound_held_uploads() -> None:
    """Streamlit 1.67 keeps every file PUT to its upload address in memory, checking only each
    file's size: forty 25 MB PUTs from one forged tab held 1 GB, freed two minutes after it closed.
    A file past its session's share or the server's (config.HELD_UPLOAD_BYTES*) is refused, 413."""
    add = MemoryUploadedFileManager.add_file
    if getattr(add, "bounded", False):
        return

    def add_within_bounds(manager: MemoryUploadedFileManager, session_id: str, file) -> None:
        with manager._lock:
            held = manager.file_storage.get(session_id, {})
            session = sum(len(other.data) for key, other in held.items() if key != file.file_id)
            replaced = len(held[file.file_id].data) if file.file_id in held else 0
            server = manager._total_bytes - replaced
        if (
            session + len(file.data) > config.HELD_UPLOAD_BYTES_PER_SESSION
            or server + len(file.data) > config.HELD_UPLOAD_BYTES
        ):
            raise HTTPException(status_code=413, detail="Too many files held for this session or server")
        add(manager, session_id, file)

    add_within_bounds.bounded = True
    MemoryUploadedFileManager.add_file = add_within_bounds


_bound_held_uploads()
P = ParamSpec("P")
T = TypeVar("T")


# --- the class's language -----------------------------------------------------------------
# Every text a user reads goes through _() or ngettext() here. The language is the session's, read
# from its Session State on each call: sessions in different languages share one server process, so
# no global gettext state is installed. The catalogs are compiled in memory from the .po files in
# locales/ once per process: no compiled binary to keep in step with its source.

LOCALES = ROUTER.parent / "locales"
DOMAIN = "catdog"
SOURCE_LANGUAGE = "en"
# Each language in its own words, as the picker lists them.
LANGUAGES = {"en": "English", "es": "Español", "de": "Deutsch"}
LANGUAGE_KEY, LANGUAGE_PICKED, LANGUAGE_PARAM = "language", "language_picked", "lang"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """A language's catalog; English, the source, translates to itself. Fuzzy entries are left out."""
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    with open(LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as po:
        catalog = pofile.read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    mofile.write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def language() -> str:
    """This session's language; English outside a session (a test calling a helper directly)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return SOURCE_LANGUAGE
    return st.session_state.get(LANGUAGE_KEY, SOURCE_LANGUAGE)


def _(message: str, **values: object) -> str:
    """`message` in the session's language, its {fields} filled with `values`."""
    text = translations(language()).gettext(message)
    return text.format(**values) if values else text


def ngettext(singular: str, plural: str, count: int, **values: object) -> str:
    """The singular or plural form the language uses for `count` ({count} filled in, as a number)."""
    text = translations(language()).ngettext(singular, plural, count)
    return text.format(count=number(count), **values)


def tr(error: BaseException | str) -> str:
    """A library message (an error's, a verdict) in the session's language: a catdog.messages.Message
    is translated from its template, then filled; other text is looked up as it is (English if absent)."""
    text = error.args[0] if isinstance(error, BaseException) and len(error.args) == 1 else error
    if isinstance(text, Messages):
        return text.separator.join(tr(part) for part in text.parts)
    if isinstance(text, Message):
        return _(text.template, **{name: _localized(value) for name, value in text.values.items()})
    return _(str(text))


def _localized(value: object) -> object:
    if isinstance(value, (Message, Messages)):
        return tr(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return number(value)


def capitalised(phrase: str) -> str:
    """A library phrase (lower case, as the command line prints it) starting a sentence."""
    return phrase[:1].upper() + phrase[1:]


def number(value: float) -> str:
    """A count or measure with the language's decimal sign; no grouping: counts stay short."""
    return numbers.format_decimal(value, locale=language(), group_separator=False)


def shown_as(options: list, name: Callable[[object], str] = _) -> Callable[[object], str]:
    """A widget's format_func: each option's name in the session's language, worked out now, in the
    session's own run, since Streamlit may call format_func again outside it (AppTest does)."""
    names = {option: name(option) for option in options}
    return names.__getitem__


def _supported(tag: str | None) -> str | None:
    """The language of a tag such as "es-ES" or "de", if the dashboard speaks it."""
    code = (tag or "").replace("_", "-").split("-")[0].strip().lower()
    return code if code in LANGUAGES else None


def _browser_language() -> str | None:
    """The browser's preferred language (navigator.language), else its Accept-Language header's first."""
    if found := _supported(st.context.locale):
        return found
    accepted = (part.split(";")[0] for part in (st.context.headers.get("Accept-Language") or "").split(","))
    return next((found for tag in accepted if (found := _supported(tag))), None)


def choose_language() -> None:
    """The session's language, once: a shared link's ?lang=, else the browser's, else English. A
    language picked stays in the address, so a teacher can hand out a link in the class's language."""
    if LANGUAGE_KEY not in st.session_state:
        from_link = _supported(st.query_params.get(LANGUAGE_PARAM))
        st.session_state[LANGUAGE_PICKED] = from_link is not None
        st.session_state[LANGUAGE_KEY] = from_link or _browser_language() or SOURCE_LANGUAGE
    if st.session_state[LANGUAGE_PICKED]:
        st.query_params[LANGUAGE_PARAM] = st.session_state[LANGUAGE_KEY]


def language_picker() -> None:
    """The sidebar's language choice, for every page of this session."""
    st.session_state.setdefault("language_picker", language())
    st.selectbox(
        _("Language"), list(LANGUAGES), format_func=LANGUAGES.get, key="language_picker", on_change=_pick_language
    )


def _pick_language() -> None:
    st.session_state[LANGUAGE_KEY] = st.session_state["language_picker"]
    st.session_state[LANGUAGE_PICKED] = True


@contextmanager
def error_boundary(where: str) -> Iterator[None]:
    """Turns an unexpected exception into one short line on the page and a logged traceback.

    Streamlit's own rerun and stop signals derive from BaseException, so they pass through. An
    action the session may not take is no problem of the app's: its one line is shown as it is.
    """
    try:
        yield
    except Forbidden as error:
        st.error(tr(error), icon=":material/lock:")
    except Exception as error:
        log.exception("unexpected error in %s", where)
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        st.error(
            _(
                "{where} hit an unexpected problem: {reason}. The details are in the server log.",
                where=_(where),
                reason=reason,
            ),
            icon=":material/error:",
        )


def with_error_boundary(where: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """The error boundary for fragments, which rerun on their own, outside the page's."""

    def decorate(func: Callable[P, None]) -> Callable[P, None]:
        @wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
            with error_boundary(where):
                func(*args, **kwargs)

        return wrapper

    return decorate


# Cats warm and dogs cool, as in the logo; further classes take the palette's next colours.
CLASS_PALETTE = ("#E4572E", "#2E86AB", "#76B041", "#FFC914", "#8E6C8A", "#17BEBB")


def class_colors(classes: list[str]) -> dict[str, str]:
    return {name: CLASS_PALETTE[i % len(CLASS_PALETTE)] for i, name in enumerate(classes)}


# --- the router workaround ----------------------------------------------------------------
# Kept, and kept here alone, because Streamlit 1.67 leaves no other way while pages/ sits beside
# dashboard.py. A folder named pages/ beside the entry point turns on the legacy multipage mode
# (PagesManager.uses_pages_directory) for the whole process until some session calls
# st.navigation ("As soon as any session of your app executes the st.navigation command, your
# app will ignore the pages/ directory", st.navigation's docs); no setting turns it off. In that
# mode a run for /train executes pages/train.py alone, so a tab reopening /train after a server
# restart got no navigation, badge or error boundary. AppTest resets the mode before every run, so
# there it applies each time. Removable when pages/ is renamed or Streamlit drops the legacy mode.

_router = threading.local()


@contextmanager
def routed() -> Iterator[None]:
    """Marks a page run as started by dashboard.py's router."""
    _router.active = True
    try:
        yield
    finally:
        _router.active = False


def ensure_router() -> None:
    """Runs a page that the legacy mode started alone through dashboard.py instead, which renders
    the requested page inside the router, with this run's widget events intact."""
    if getattr(_router, "active", False):
        return
    runpy.run_path(str(ROUTER))
    st.stop()


# --- the page frame -----------------------------------------------------------------------


def setup_page() -> None:
    choose_language()
    st.set_page_config(page_title="catdog", page_icon=str(LOGO), layout="wide")
    st.logo(str(LOGO), size="large")
    st.html(ACCESSIBILITY_CSS)
    st.html(f"<style>{uploader_css()}</style>")
    st.html(
        f"<script>{UPLOADER_JS.read_text(encoding='utf-8')}catdogNameUploaders({uploader_names()});</script>",
        unsafe_allow_javascript=True,
    )
    with error_boundary(N_("Signing in")):
        sign_in_from_link()
    with error_boundary(N_("Resuming queued runs")):
        resume_queue(str(config.runs_dir()), time_bucket(RESUME_EVERY_S))


def uploader_css() -> str:
    """Streamlit's file uploader in the session's language. Streamlit 1.67 has no option for its
    own texts (its "Upload" button and "25MB per file" hint; streamlit/streamlit#13500), so they are
    hidden (display: none: from screen readers too) and ours are shown in their place as generated
    content, which screen readers read, and which names the button."""
    hint = _("{size} MB per file", size=number(st.get_option("server.maxUploadSize")))
    button = '[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"]'
    instructions = '[data-testid="stFileUploaderDropzoneInstructions"] > div'
    return (
        f"{button} p, {instructions} span {{display: none}}"
        f" {button}::after {{content: {_css_string(_('Upload'))}}}"
        f" {instructions}::after {{content: {_css_string(hint)}; font-size: 0.875rem;"
        " color: light-dark(#575f68, #b2b7bc)}"
    )


def uploader_names() -> str:
    """What screen readers call the uploader's parts that Streamlit names itself, and the camera
    input's words (assets/uploader.js), in the session's language, as a script's object."""
    names = {
        "input": _("Choose files to upload"),
        "upload": _("Upload"),
        "remove": _("Remove {name}"),
        "cancel": _("Cancel the upload of {name}"),
        "add": _("Add files"),
        # Words Streamlit 1.67 writes itself: while a file is dragged over, a refused file's reason.
        "uploader": {
            "Drag and drop files here": _("Drag and drop files here"),
            "Drag and drop a file here": _("Drag and drop a file here"),
            "Error:": _("Error:"),
            "Upload failed": _("Upload failed"),
        },
        "tooLarge": _("File must be {size} or smaller."),
        "notAllowed": _("{type} files are not allowed."),
        # The camera input's own words, as Streamlit 1.67 writes them.
        "camera": {
            "Take Photo": _("Take Photo"),
            "Clear photo": _("Clear photo"),
            "Switch camera": _("Switch camera"),
            "This app would like to use your camera.": _("This app would like to use your camera."),
            "Learn how to allow access.": _("Learn how to allow access."),
        },
    }
    return json.dumps(names).replace("</", "<\\/")


def _css_string(text: str) -> str:
    """A CSS string holding `text`, which cannot end it or the <style> element around it."""
    return '"' + "".join(char if char.isalnum() or char in " .,-" else f"\\{ord(char):x} " for char in text) + '"'


def time_bucket(seconds: float) -> int:
    """Which stretch of `seconds` now falls in: as a cached function's argument, it renews the entry
    that often. Not Streamlit's ttl: in 1.67 an entry could expire between the cache's own check and
    its read, and the KeyError reached a page (once in a 30-student class period)."""
    return int(time.monotonic() // seconds)


@st.cache_resource(show_spinner=False, max_entries=2)
def resume_queue(runs_dir: str, period: int) -> None:
    """Runs left queued with no queue process (a reboot, a killed process) get one again.

    At most once a period (time_bucket(RESUME_EVERY_S)) per server and runs folder: a page view
    must stay cheap.
    """
    RunStore(runs_dir).resume()


@contextmanager
def progress_bar(text: Callable[[int, int], str], start: str | None = None) -> Iterator[Callable[[int, int], None]]:
    """A bar for a long task, gone when the task ends however it ends: yields the progress(done,
    total) callback the library's long tasks report through, `text(done, total)` its caption.
    `start`: the caption shown before the first report; without it the bar appears with that report."""
    bar = st.progress(0.0, text=start) if start else st.empty()

    def progress(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=text(done, total))

    try:
        yield progress
    finally:
        bar.empty()


# --- formatting -------------------------------------------------------------------------


def percent(value: float | None) -> str:
    """A share with one decimal, as the language writes percentages (84.2% or 84,2 %)."""
    return "–" if value is None else numbers.format_percent(value, _one_decimal(language()), locale=language())


@cache
def _one_decimal(language: str) -> str:
    pattern = Locale.parse(language).percent_formats[None].pattern
    return re.sub(r"0(?=[^0#]*$)", "0.0", pattern)


def grouped(count: int) -> str:
    """A large count with the language's thousands separator (parameters: 2,257,984 or 2.257.984)."""
    return numbers.format_decimal(count, locale=language())


def separators() -> str:
    """Plotly's decimal and thousands signs for the session's language."""
    return numbers.get_decimal_symbol(language()) + numbers.get_group_symbol(language())


def whole_percent(value: float) -> str:
    return numbers.format_percent(value, locale=language())


def skipped_table(skipped: list[dict[str, str]]) -> pd.DataFrame:
    """Files left out and why, in the session's language."""
    return pd.DataFrame(
        {_("file"): [row["file"] for row in skipped], _("reason"): [tr(row["reason"]) for row in skipped]}
    )


def clock_in(seconds: float) -> str:
    """The time of day `seconds` from now, as the session's language writes a short time (8:20 PM, 20:20)."""
    return dates.format_time(datetime.datetime.now() + datetime.timedelta(seconds=seconds), "short", locale=language())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_text(run_config: RunConfig, history: list[dict], progress: dict) -> str:
    left = _("about {time} left", time=duration(time_left(run_config, history, progress)))
    done, total = number(progress["batch"]), number(progress["batches"])
    if preparing(progress):
        what = _(PREPARING[progress["phase"]])
        return _(
            "{what}: {done} of {total} images · {left}",
            what=capitalised(what),
            done=done,
            total=total,
            left=left,
        )
    return _(
        "Epoch {epoch} of {epochs} ({phase}) · batch {done} of {total} · {left}",
        epoch=progress["epoch"],
        epochs=run_config.planned_epochs,
        phase=_(progress["phase"]),
        done=done,
        total=total,
        left=left,
    )


# --- the run-status badge shown on every page --------------------------------------------


def status_line(run: Run) -> tuple[str, str]:
    """The badge text and a one-line detail for the current or last run."""
    status, history, progress = run.status(), run.history(), run.progress()
    state = status["state"]
    total = run.config.planned_epochs
    if state == "running" and progress and preparing(progress):
        share = numbers.format_percent(progress["batch"] / max(progress["batches"], 1), locale=language())
        epoch = _("caching features {share}", share=share)
    elif state == "running" and progress:
        epoch = _("epoch {epoch}/{total}", epoch=progress["epoch"], total=total)
    else:
        epoch = _("{done}/{total} epochs", done=len(history), total=total)
    val = [h["val_accuracy"] for h in history if h.get("val_accuracy") is not None]
    accuracy = _("val acc {accuracy}", accuracy=percent(val[-1] if val else None))
    detail = f"{run.config.arch} · {epoch} · {accuracy}"
    return state, detail


@st.fragment(run_every=STATUS_REFRESH_S)
@with_error_boundary(N_("The run status"))
def run_status() -> None:
    store = shared_runs()
    run = store.latest()
    st.caption(_("Training"))
    if run is None:
        st.caption(_("No runs yet: start one on the Train page."))
        return
    state, detail = status_line(run)
    st.badge(_(STATE_NAMES[state]), color=STATE_COLORS[state], icon=":material/model_training:")
    st.caption(detail)
    if waiting := len(store.queue()):
        st.caption(_("{count} in the queue", count=number(waiting)))
    announce(
        "run",
        _("Training {state}: {arch}", state=_(STATE_NAMES[state]), arch=run.config.arch)
        + (f", {detail}" if state == "finished" else ""),
    )


# --- for screen readers and keyboards -------------------------------------------------------


def announce(channel: str, message: str, reveal: str | None = None) -> None:
    """Tells screen readers politely of a change they did not ask for, once per message and channel
    (assets/announce.js); Streamlit has no live region of its own. reveal: the key of a container to
    scroll into view with it."""
    arguments = ", ".join(json.dumps(value) for value in (channel, message, reveal))
    call = f"catdogAnnounce({arguments});".replace("</", "<\\/")
    st.html(f"<script>{ANNOUNCE_JS.read_text(encoding='utf-8')}{call}</script>", unsafe_allow_javascript=True)


def plotly_chart(figure: go.Figure, key: str, table: pd.DataFrame | None = None, name: str | None = None) -> None:
    """A Plotly chart and, for whoever cannot see it, its numbers in a table under it: the given
    table, else each named line's values by x (a chart's lines all share the x axis). The table is
    sent only while its expander is open: live charts redraw every few seconds in every tab."""
    st.plotly_chart(figure, key=key)
    label = _("{chart} as a table", chart=name or figure.layout.title.text)
    section = st.expander(label, key=f"{key}-table", on_change="rerun", icon=":material/table:")
    with section:
        if section.open:
            st.dataframe(curve_table(figure) if table is None else table, hide_index=True)


def curve_table(figure: go.Figure) -> pd.DataFrame:
    x_title = figure.layout.xaxis.title.text or "x"
    lines = [pd.Series(list(trace.y), index=list(trace.x), name=trace.name) for trace in figure.data if trace.name]
    return pd.concat(lines, axis=1).rename_axis(x_title).reset_index() if lines else pd.DataFrame()


# --- data -------------------------------------------------------------------------------


def download_panel() -> None:
    """The default set's download button, with progress and a one-line error when offline."""
    size = f"≈ {number(config.DATASET_BYTES // 10**6)} MB"
    st.info(_("The default data set, cats_and_dogs_filtered ({size}), is not downloaded yet.", size=size))
    locked = refused(Action.DOWNLOAD)
    clicked = st.button(
        _("Download cats_and_dogs_filtered ({size})", size=size),
        type="primary",
        icon=":material/download:",
        disabled=locked,
        help=_(LOCKED) if locked else None,
    )
    if locked:
        st.caption(_(LOCKED))
    if not clicked:
        return
    try:
        with progress_bar(
            lambda done, total: _(
                "Downloading… {done} of {total} MB", done=number(round(done / 1e6)), total=number(round(total / 1e6))
            ),
            _("Connecting…"),
        ) as progress:
            download_default_dataset(progress, actor=actor())
    except (DataError, Forbidden) as error:
        st.error(_("Download failed: {error}", error=tr(error)))
        return
    st.rerun()


def chosen_data_dir() -> str | None:
    """The folder picked on the Dataset page; else CATDOG_DATA_DIR; None means the default set."""
    return st.session_state.get("data_dir", config.data_dir())


def remember_data_dir(folder: str | None) -> None:
    st.session_state["data_dir"] = folder


def chosen_augmentation() -> AugmentConfig:
    return AugmentConfig.from_dict(st.session_state.get("augmentation"))


def remember_augmentation(augmentation: AugmentConfig) -> None:
    st.session_state["augmentation"] = augmentation.to_dict()


def load_scan(folder: str | None) -> Scan:
    """The scan of a folder (None = default set), with a progress bar the first time, as far as
    this session may read it (see catdog.data.location.confine). A data set of the app's own is scanned anew
    after every fix, in every session."""
    reader = actor()
    if folder:
        confine(folder, reader)  # on every call: a cached scan must not skip the check
    managed = datasets.DatasetStore().find(folder)
    # Keyed by what the reader may read, not who reads: sessions alike share one scan.
    version = managed.version() if managed else 0
    reads_any_folder = access.allowed(reader, Action.READ_ANY_FOLDER)
    return _scan(folder, reads_any_folder, version, time_bucket(SCAN_RENEWED_S), reader)


# A resource, not data: the pixels are a memory-mapped array that must not be copied per session.
# Made again each period (`period`, see time_bucket): files changed on disk are seen that late at most.
@st.cache_resource(show_spinner=False, max_entries=4)
def _scan(folder: str | None, reads_any_folder: bool, version: int, period: int, _reader: access.Actor) -> Scan:
    with progress_bar(
        lambda done, total: _("Checking the images… {done} of {total}", done=number(done), total=number(total)),
        _("Checking the images…"),
    ) as progress:
        return scan(folder, progress=progress, actor=_reader)


def fix_photo(dataset: datasets.Dataset | None, file: str, label: str, classes: list[str], key: str) -> None:
    """Move a photo to another class or remove it (into the trash); only on the app's own data sets."""
    if dataset is None:
        return
    locked = refused(Action.FIX_PHOTO, dataset.owner)
    with st.popover(
        _("Fix"), icon=":material/edit:", disabled=locked, help=_(LOCKED) if locked else None, width="stretch"
    ):
        for name in classes:
            if name != label:
                st.button(
                    _("Move to {name}", name=name), key=f"{key}-to-{name}", on_click=_fix, args=(dataset, file, name)
                )
        st.button(
            _("Remove"),
            icon=":material/delete:",
            key=f"{key}-remove",
            on_click=_fix,
            args=(dataset, file, None),
            help=_("Into the data set's trash: undo or restore brings it back."),
        )


def _fix(dataset: datasets.Dataset, file: str, to_class: str | None) -> None:
    """Runs before the page reruns, so the rerun already shows the data set changed."""
    if to_class:
        _change(lambda: dataset.move(file, to_class, actor=actor()))
    else:
        _change(lambda: dataset.remove(file, actor=actor()))


def _change(change: Callable[[], object]) -> None:
    """A change to a data set from a button's callback, which runs outside the page's error boundary:
    a refusal waits in Session State for undo_bar to show it in one line."""
    try:
        change()
    except (datasets.DatasetError, Forbidden) as error:
        st.session_state["fix_error"] = tr(error)


def undo_bar(dataset: datasets.Dataset | None, key: str = "undo") -> None:
    """The latest fix of the data set, with Undo; and the last fix's error, if it failed. A long
    page shows it beside each place photos are fixed, each with its own key."""
    if error := st.session_state.pop("fix_error", None):
        st.error(error)
    if dataset is None:
        return
    changes = dataset.changes()
    if not changes or changes[-1].undone:
        return
    shown = changes[-1]
    locked = refused(Action.UNDO, dataset.owner)
    text, button = st.columns([4, 1], vertical_alignment="center")
    text.info(
        _("Last change to {dataset}: {change}.", dataset=dataset.name, change=tr(shown.describe())),
        icon=":material/history:",
    )
    # The change shown is named: if another session changed the data set since, Undo is refused.
    button.button(
        _("Undo"),
        icon=":material/undo:",
        key=f"{key}-{dataset.name}",
        on_click=_change,
        args=(lambda: dataset.undo(shown.id, actor=actor()),),
        disabled=locked,
        help=_(LOCKED) if locked else None,
    )


def restore_all(dataset: datasets.Dataset) -> None:
    """The trash's Restore all, as a button's callback."""
    _change(lambda: dataset.restore(actor=actor()))


@st.cache_data(show_spinner=False, max_entries=4096)
def thumbnail(scan_key: str, name: str, _scan: Scan) -> bytes:
    """One data-set image as a small JPEG, as training sees it."""
    return jpeg(_scan.photo(name))


def page_of(items: list[T], page_size: int, key: str) -> list[T]:
    """The items of the page picked in a pagination widget (shown only when there are several)."""
    pages = (len(items) - 1) // page_size + 1
    # The count is part of the key: a new filter starts again at page 1 instead of past the end.
    page = st.pagination(pages, key=f"{key}-{len(items)}") if pages > 1 else 1
    return items[(page - 1) * page_size : page * page_size]


def jpeg(pixels: np.ndarray, quality: int = 85) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


# --- runs and models --------------------------------------------------------------------


def _read_once(method: Callable[[Run], object]) -> Callable[[Run], object]:
    """A Run method whose answer a snapshot reads from the run's files once and keeps."""

    @wraps(method)
    def once(run: Run):
        kept = run.__dict__.setdefault("_read_once", {})
        if method.__name__ not in kept:
            kept[method.__name__] = method(run)
        return kept[method.__name__]

    return once


class RunSnapshot(Run):
    """A run whose files are read at most once: what every session shows of it for a moment."""

    config = cached_property(Run.config.fget)
    owner = cached_property(Run.owner.fget)
    note = cached_property(Run.note.fget)
    recorded_status = _read_once(Run.recorded_status)
    status = _read_once(Run.status)
    history = _read_once(Run.history)
    progress = _read_once(Run.progress)
    data = _read_once(Run.data)
    _summary = _read_once(Run.summary)

    def summary(self) -> dict:
        # A copy: callers add to it.
        return dict(self._summary())


class SharedRuns(RunStore):
    """The runs folder as the pages read it: one snapshot per server while no run file changes,
    each session shown what its actor sees.

    Each open tab polls the run status; parsing every run's files once per poll and tab made the
    server's work grow with the class. A few stat calls tell whether the snapshot is current.
    """

    def every_run(self) -> list[Run]:
        return list(_runs_snapshot(str(self.root), _runs_version(self.root), time_bucket(RUNS_TTL_S)))

    def get(self, run_id: str) -> Run:
        return next((run for run in self.runs() if run.id == run_id), None) or super().get(run_id)


def _runs_version(root: Path) -> tuple:
    """Changes whenever a run's files do: writes replace files in its folder (so the folder's
    time changes), except history.jsonl, which grows in place."""
    stamps = []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                history = Path(entry.path, "history.jsonl")
                stamps.append((entry.name, entry.stat().st_mtime_ns, history.exists() and history.stat().st_mtime_ns))
    except OSError:  # no runs folder yet, or a run removed while looking: the next look is exact
        return ()
    return tuple(sorted(stamps))


@st.cache_resource(show_spinner=False, max_entries=4)
def _runs_snapshot(runs_dir: str, version: tuple, period: int) -> tuple[RunSnapshot, ...]:
    """Every run, its files read at most once; `version` (see _runs_version) keys it to their state,
    `period` (time_bucket(RUNS_TTL_S)) renews it while they do not change."""
    return tuple(RunSnapshot(run.path) for run in RunStore(runs_dir).runs())


def shared_runs() -> SharedRuns:
    """The runs this session sees; also what its actions on runs go through."""
    return SharedRuns(viewer=actor())


def runs_with_model() -> list[Run]:
    """Runs that have saved a model, newest first: the ones that can predict."""
    return [run for run in reversed(shared_runs().runs()) if run.model_path.is_file()]


def is_active(run: Run) -> bool:
    return run.state in ACTIVE


# --- experiments ------------------------------------------------------------------------

# Without augmentation red and with it blue, as the lesson was first drawn; then further runs' colours.
EXPERIMENT_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e")
# How often an experiment's charts look for new epochs while its runs train.
EXPERIMENT_REFRESH_S = 3.0


def experiment_view(experiment: Experiment, key: str) -> None:
    """An experiment's curves overlaid, its gaps, and at the end its verdict; live while it trains."""
    was_active, ids = experiment.active, [run.id for run in experiment.runs]

    @st.fragment(run_every=EXPERIMENT_REFRESH_S if was_active else None)
    @with_error_boundary(N_("The experiment"))
    def chart() -> None:
        store = shared_runs()  # one read of the run files per server while they do not change
        current = Experiment(experiment.id, tuple(store.get(run_id) for run_id in ids))
        if current.active != was_active:
            st.rerun()  # it ended: stop polling, and conclude
        states = ", ".join(
            _(
                "{run}, seed {seed}: {state}",
                run=tr(run_label(run)),
                seed=run.config.seed,
                state=_(STATE_NAMES[run.state]),
            )
            for run in current.runs
        )
        st.caption(
            _("Experiment `{id}` · {varied} varies · {states}", id=current.id, varied=_(current.varied), states=states)
        )
        accuracy, gap = st.columns(2)
        with accuracy:
            plotly_chart(accuracy_curves(current.runs), key=f"{key}-accuracy")
        with gap:
            plotly_chart(gap_curves(current.runs), key=f"{key}-gap")
        if verdict := current.conclusion():
            st.success(tr(verdict))
            announce(f"{key}-verdict", tr(verdict))

    chart()


# Each seed's curve is drawn faint, the mean over seeds bold: the spread shows without hiding the trend.
SEED_OPACITY = 0.25


def _mean_by_epoch(series: list[list[float | None]]) -> list[float | None]:
    """The mean over seeds at each epoch that every seed has reached (one still training stops the mean)."""
    reached = min((len(values) for values in series), default=0)
    columns = (
        [value for value in (values[epoch] for values in series) if value is not None] for epoch in range(reached)
    )
    return [float(np.mean(column)) if column else None for column in columns]


def _seed_curves(
    figure: go.Figure, series: list[list[float | None]], name: str, color: str, dash: str = "solid"
) -> None:
    """One arm's runs, faint, and their mean, bold; a lone run is drawn as its own mean."""
    if len(series) > 1:
        for values in series:
            figure.add_scatter(
                x=list(range(1, len(values) + 1)),
                y=values,
                mode="lines",
                opacity=SEED_OPACITY,
                showlegend=False,
                hoverinfo="skip",
                line={"color": color, "dash": dash, "width": 1},
            )
    mean = _mean_by_epoch(series)
    label = _("{name} (mean of {count} seeds)", name=name, count=len(series)) if len(series) > 1 else name
    figure.add_scatter(
        x=list(range(1, len(mean) + 1)),
        y=mean,
        name=label,
        mode="lines+markers",
        line={"color": color, "dash": dash, "width": 3},
    )


def accuracy_curves(runs: tuple[Run, ...]) -> go.Figure:
    """Training (solid) and validation (dotted) accuracy of every arm on one chart: each seed faint, their mean bold."""
    figure = go.Figure()
    for (label, members), color in zip(arms(runs).items(), EXPERIMENT_COLORS):
        histories = [run.history() for run in members]
        for metric, dash, name in (("accuracy", "solid", _("training")), ("val_accuracy", "dot", _("validation"))):
            _seed_curves(
                figure, [[h.get(metric) for h in history] for history in histories], f"{name}, {tr(label)}", color, dash
            )
    return _experiment_layout(figure, _("Accuracy"))


def gap_curves(runs: tuple[Run, ...]) -> go.Figure:
    """The generalisation gap per epoch, training minus validation accuracy: each seed faint, their mean bold."""
    figure = go.Figure()
    for (label, members), color in zip(arms(runs).items(), EXPERIMENT_COLORS):
        _seed_curves(figure, [gaps(run) for run in members], tr(label), color)
    return _experiment_layout(figure, _("Gap: training − validation accuracy"))


def _experiment_layout(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(
        title=title,
        height=400,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"orientation": "h", "y": -0.3},
        xaxis={"title": _("epoch"), "dtick": 1},
        separators=separators(),
    )
    return figure.update_yaxes(tickformat=".0%")


# --- inside the model -------------------------------------------------------------------


def inside_the_model(run: Run, pixels: np.ndarray, key: str) -> None:
    """A photo's feature maps, layer by layer, worked out only while their expander is open."""
    section = st.expander(_("Inside the model"), key=key, on_change="rerun", icon=":material/layers:")
    with section:
        if not section.open:
            return
        from catdog.inference.loading import model_version

        with st.spinner(_("Looking inside the model…")):
            layers = feature_maps(str(run.path), model_version(run), pixels)
        st.caption(
            _(
                "What each convolution layer makes of the photo: one map per channel (filter), bright where the "
                "photo matches what the filter learned to look for. The most active channels come first."
            )
        )
        for layer in layers:
            height, width = layer.grid
            channels = _("{count} channels of {height}×{width}", count=layer.channels, height=height, width=width)
            st.markdown(f"**{layer.name}** · {channels}")
            st.image(
                layer.sheet(),
                caption=_("channels {list}", list=", ".join(map(str, layer.top))),
                width="content",
                alt=_(
                    "The {count} most active feature maps of layer {layer}, side by side",
                    count=len(layer.top),
                    layer=layer.name,
                ),
            )
            st.caption(tr(layer.sentence))


@st.cache_data(show_spinner=False, max_entries=16)
def feature_maps(run_path: str, version: int, pixels: np.ndarray) -> list:
    """Kept per photo and saved model version, for every session, like the photo's answer."""
    # Imported here: the pages that show no model start without TensorFlow.
    from catdog.inference import feature_maps, loading

    return feature_maps.feature_maps(loading.load_model(Run(Path(run_path))), pixels)


# --- the live camera --------------------------------------------------------------------

LIVE_CAMERA_HEIGHT = 620


@st.cache_resource(show_spinner=False)
def _live_component() -> Callable[..., object]:
    """A component (assets/web/live.html) running the run's browser export on ONNX Runtime Web, fed
    by the browser's camera. The server writes a run's model once per saved version and serves it
    as a file the browser caches: answering frames costs the server nothing, so thirty live cameras
    weigh on it no more than one. Declared when first used: the pages that never show it start
    without the export's imports and the runtime's copy."""
    from catdog.inference import web

    return components.declare_component("catdog_live", path=str(web.live_folder()))


def live_camera(run: Run) -> None:
    """The camera view with the run's live answer; the model is written first if need be."""
    from catdog.inference import web

    with st.spinner(_("Preparing the model for your browser, once for this model…")):
        try:
            model = web.live_model(run)
        except web.ExportError as error:
            st.caption(_("The live camera is not available for this model: {error}", error=tr(error)))
            return
    _live_component()(
        model=model,
        texts=page_texts(),
        language=language(),
        key=f"live-{run.id}",
        default=None,
        height=LIVE_CAMERA_HEIGHT,
    )


def page_texts() -> dict[str, str]:
    """The browser pages' texts (the live camera's, the offline page's) in the session's language."""
    from catdog.inference import web

    return {key: _(text) for key, text in web.PAGE_TEXTS.items()}


# --- the teacher's lock -----------------------------------------------------------------

LOCKED = N_(
    "Not for this session: join the class in the sidebar (students change their own things only), "
    "or unlock as the teacher."
)
UNLOCKED_KEY = "teacher_unlocked"


def teacher_password() -> str | None:
    """CATDOG_TEACHER_PASSWORD, else `teacher_password` in the app's secrets.toml; None: no lock."""
    if password := config.teacher_password():
        return password
    if st.secrets.load_if_toml_exists() and (password := st.secrets.get("teacher_password")):
        return str(password)
    return None


def actor() -> access.Actor:
    """Who this browser session is, for every action it asks of the library: whoever signed in
    with the school's single sign-on; the owner on a server without a teacher password or
    sign-in; else the teacher once unlocked, else the student who joined or signed in (see
    class_panel), else a visitor, who only watches."""
    if signed_in := signed_in_actor():
        return signed_in
    if teacher_password() is None and not sign_in_providers():
        return access.OWNER
    if st.session_state.get(UNLOCKED_KEY, False):
        return access.TEACHER
    student = st.session_state.get(STUDENT_KEY)
    if student is not None and not roster.on_roster(student.id):
        # The teacher removed them: their open tabs watch from then on, as a visitor's do.
        st.session_state.pop(STUDENT_KEY, None)
        student = None
    return student or access.Actor(session_id(), "a visitor", access.Role.VISITOR)


def session_id() -> str:
    """This browser session's random id: what the throttles count its wrong tries by."""
    return st.session_state.setdefault("teacher_session", secrets.token_hex(8))


def refused(action: Action, owner: access.Actor | None = None) -> bool:
    """Whether this session may not take `action` (on a thing of `owner`'s): its widgets are
    disabled as a courtesy; the library refuses the action itself whatever is sent."""
    return not access.allowed(actor(), action, owner)


# Addresses only this machine can reach: anything else (Streamlit's default, all of them) serves others.
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
OPEN_SERVER = N_(
    "This dashboard can be reached from other computers and has no teacher password: every visitor "
    "may start, cancel and delete runs and change or delete every data set. Set CATDOG_TEACHER_PASSWORD "
    "(see the README), or serve it on this computer alone with --server.address localhost."
)


def served_without_password() -> bool:
    """Whether the server listens beyond this machine without a teacher password."""
    return st.get_option("server.address") not in LOOPBACK and teacher_password() is None and not sign_in_providers()


def open_server_warning() -> None:
    """The server log says it once per server; each browser session sees the banner once."""
    if not served_without_password() or st.session_state.get("open_server_warned"):
        return
    _log_open_server()
    st.session_state["open_server_warned"] = True
    st.warning(_(OPEN_SERVER), icon=":material/lock_open:")


@st.cache_resource(show_spinner=False)
def _log_open_server() -> None:
    log.warning(OPEN_SERVER)


def teacher_panel() -> None:
    """The sidebar's unlock form and Lock button, shown only when a teacher password is set."""
    password = teacher_password()
    if password is None:
        return
    st.caption(_("Teacher"))
    if st.session_state.get(UNLOCKED_KEY):
        st.badge(_("unlocked"), color="green", icon=":material/lock_open:")
        if st.button(_("Lock"), icon=":material/lock:", key="teacher_lock"):
            del st.session_state[UNLOCKED_KEY]
            st.rerun()
        return
    with st.form("teacher_unlock", clear_on_submit=True, border=False):
        attempt = st.text_input(_("Teacher password"), type="password", key="teacher_attempt")
        submitted = st.form_submit_button(_("Unlock"), icon=":material/lock_open:")
    if not submitted:
        return
    # The session's random id, so the throttle counts this session's tries apart from others'.
    verdict = access.GATE.unlock(attempt, password, session_id())
    if not verdict.unlocked:
        st.error(tr(verdict.message), icon=":material/lock:")
        return
    st.session_state[UNLOCKED_KEY] = True
    st.rerun()


# --- single sign-on ---------------------------------------------------------------------
# The school's OpenID Connect provider, through Streamlit's st.login, configured in the `[auth]`
# section of the app's secrets.toml (README, "Single sign-on"). A signed-in user is a student, or
# the teacher where their email is in `teacher_emails` there; a visitor not signed in is a student
# who is no one in particular, as on a server with a teacher password.

SIGNED_IN_PREFIX = "sso-"


def sign_in_providers() -> list[str | None]:
    """The providers of the secrets' `[auth]` section: None for the unnamed one (its settings
    right in `[auth]`), else each `[auth.NAME]`'s name; empty: no single sign-on."""
    if not st.secrets.load_if_toml_exists():
        return []
    auth = st.secrets.get("auth") or {}
    unnamed = [None] if "client_id" in auth else []
    return unnamed + [name for name, value in auth.items() if isinstance(value, Mapping) and "client_id" in value]


def teacher_emails() -> frozenset[str]:
    """`teacher_emails` in the app's secrets.toml, lower-cased: the sign-ins that are the teacher."""
    emails = st.secrets.get("teacher_emails", []) if st.secrets.load_if_toml_exists() else []
    emails = [emails] if isinstance(emails, str) else emails  # one address written without brackets
    return frozenset(str(email).strip().lower() for email in emails)


def signed_in_identity(claims: Mapping, teachers: frozenset[str], unlocked: bool = False) -> access.Actor:
    """The actor of an ID token's claims. Its id comes from the issuer and `sub`, the provider's
    own never-reused key for the person: an email can change hands or be renamed, and two
    providers may both vouch for one address. The teacher's email counts only where the provider
    says it verified it: some let anyone type any address and say nothing of it (Microsoft Entra's
    `email` is such an attribute), so silence is no proof."""
    digest = hashlib.sha256(f"{claims['iss']}\n{claims['sub']}".encode()).hexdigest()[:16]
    name = str(claims.get("name") or claims.get("email") or "a signed-in user")
    email = str(claims.get("email") or "").strip().lower()
    is_teacher = unlocked or (email in teachers and claims.get("email_verified") is True)
    return access.Actor(SIGNED_IN_PREFIX + digest, name, access.Role.TEACHER if is_teacher else access.Role.STUDENT)


def signed_in_actor() -> access.Actor | None:
    """The session's actor from single sign-on; None without it or before signing in. The
    teacher's password still unlocks a signed-in session."""
    if not sign_in_providers() or not st.user.is_logged_in:
        return None
    return signed_in_identity(st.user.to_dict(), teacher_emails(), st.session_state.get(UNLOCKED_KEY, False))


def sign_in_panel() -> None:
    """The sidebar's Sign in buttons, one per provider, or who is signed in and Sign out."""
    providers = sign_in_providers()
    if not providers:
        return
    st.caption(_("Sign-in"))
    if signed_in := signed_in_actor():
        role = _("teacher") if signed_in.role is access.Role.TEACHER else _("student")
        st.text(_("Signed in as {name} ({role})", name=signed_in.name, role=role))
        if st.button(_("Sign out"), icon=":material/logout:", key="sign_out"):
            st.logout()
        return
    for provider in providers:
        label = _("Sign in with {provider}", provider=provider.capitalize()) if provider else _("Sign in")
        if st.button(label, icon=":material/login:", key=f"sign_in_{provider or 'default'}"):
            st.login(provider)


# --- the class: students join by name and sign in with their code -------------------------

STUDENT_KEY = "student"
JOINED_KEY = "student_joined"  # the code and link just given, shown until the student has kept them
SIGN_IN_ERROR_KEY = "student_sign_in_error"
LINK_KEY = "key"  # the query parameter of a sign-in link


def sign_in_from_link() -> None:
    """A link's `?key=` signs the session in, then leaves the address bar, so that a screen
    shared or a photo of it shows no one's code."""
    key = st.query_params.get(LINK_KEY)
    if key is None:
        return
    del st.query_params[LINK_KEY]
    if teacher_password() is None:
        return
    try:
        st.session_state[STUDENT_KEY] = roster.sign_in_key(key, session_id())
    except roster.RosterError as error:
        st.session_state[SIGN_IN_ERROR_KEY] = error


def sign_in_link(joined: roster.Joined) -> str:
    """The app's home address with the student's key, whichever page they joined on."""
    address = urllib.parse.urlsplit(st.context.url)
    base = st.get_option("server.baseUrlPath").strip("/")
    root = f"/{base}/" if base else "/"
    return f"{address.scheme}://{address.netloc}{root}?{LINK_KEY}={joined.key}"


def class_panel() -> None:
    """The sidebar's Join and Sign in forms, or who is signed in with Sign out; only on a server
    with a teacher password (without one there is one user, the owner)."""
    if teacher_password() is None or st.session_state.get(UNLOCKED_KEY) or signed_in_actor():
        return
    st.caption(_("Class"))
    if error := st.session_state.pop(SIGN_IN_ERROR_KEY, None):
        st.error(tr(error), icon=":material/person_off:")
    student = st.session_state.get(STUDENT_KEY)
    if student is not None:
        st.badge(student.name, color="violet", icon=":material/person:")
        _show_code_once()
        if st.button(_("Sign out"), icon=":material/logout:", key="student_sign_out"):
            for key in (STUDENT_KEY, JOINED_KEY):
                st.session_state.pop(key, None)
            st.rerun()
        return
    join, sign_in = st.tabs([_("Join"), _("Sign in")])
    with join, st.form("class_join", clear_on_submit=True, border=False):
        name = st.text_input(_("Your name"), key="join_name", max_chars=config.STUDENT_NAME_MAX_CHARS)
        joined = st.form_submit_button(_("Join"), icon=":material/person_add:")
    with sign_in, st.form("class_sign_in", clear_on_submit=True, border=False):
        known = st.text_input(_("Your name"), key="sign_in_name", max_chars=config.STUDENT_NAME_MAX_CHARS)
        code = st.text_input(_("Your code"), type="password", key="sign_in_code")
        signed = st.form_submit_button(_("Sign in"), icon=":material/login:")
    try:
        if joined:
            made = roster.join(name, session_id())
            st.session_state[STUDENT_KEY], st.session_state[JOINED_KEY] = made.actor, made
        elif signed:
            st.session_state[STUDENT_KEY] = roster.sign_in(known, code, session_id())
        else:
            return
    except roster.RosterError as error:
        st.error(tr(error), icon=":material/person_off:")
        return
    st.rerun()


def _show_code_once() -> None:
    """The code and link of a student who just joined: never stored, so shown until they say they kept them."""
    joined = st.session_state.get(JOINED_KEY)
    if joined is None:
        return
    st.info(
        _(
            "Keep your code: it signs you in again after a reload or on another device. Copy it, or the link "
            "(the copy icon at the right of each), and keep it private."
        ),
        icon=":material/key:",
    )
    st.code(roster.shown_code(joined.code), language=None)
    st.code(sign_in_link(joined), language=None, wrap_lines=True)
    if st.button(_("I have kept my code"), key="student_code_kept"):
        del st.session_state[JOINED_KEY]
        st.rerun()
