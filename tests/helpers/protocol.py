"""A light dashboard client that speaks Streamlit's own websocket protocol, for load tests.

A browser tab costs a core of its own to render the page; thirty of them on the server's machine
would measure the browsers. This client does what a tab does on the wire and nothing more:

- opens `/_stcore/stream` with the "streamlit" subprotocol and asks for script runs with
  `rerun_script` BackMsgs (a page is a run with that page's script hash);
- reruns each fragment at the interval its AutoRerun ForwardMsg asks for, as the frontend's
  timers do (the sidebar's run-status badge polls this way);
- fetches each image a run shows as its element arrives, once per URL, as a browser does;
- uploads a photo as the file_uploader widget does: a FileURLsRequest BackMsg for an upload URL,
  a multipart PUT with the XSRF token, then a rerun with the widget's FileUploaderState.

Times are wall clock in this process; `run_page` returns when the page's script run has finished
(the script_finished ForwardMsg of a full run), `upload` when the rerun the widget causes has: the
page's, or, for a widget inside a fragment, that fragment's.
"""

import asyncio
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Common_pb2 import FileUploaderState, FileURLsRequest, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

XSRF_COOKIE = "_streamlit_xsrf"
FULL_RUN_FINISHED = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
FRAGMENT_RUN_FINISHED = ForwardMsg.ScriptFinishedStatus.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
STOPPED_FOR_RERUN = ForwardMsg.ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN
COMPILE_ERROR = ForwardMsg.ScriptFinishedStatus.FINISHED_WITH_COMPILE_ERROR
ERROR_ALERT = 1  # Alert.Format.ERROR


class ProtocolError(Exception):
    """The server answered in a way a browser tab would show as broken, or not at all."""


@dataclass
class Run:
    """What one full script run sent: the texts and alerts shown, the file uploader's widget id, errors."""

    markdown: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    uploader_id: str | None = None
    errors: list[str] = field(default_factory=list)


def xsrf_token(url: str) -> str:
    """The XSRF cookie the server sets on its health check, as the frontend gets it."""
    response = requests.get(f"{url}/_stcore/health", timeout=30)
    response.raise_for_status()
    return response.cookies.get(XSRF_COOKIE, "")


class Session:
    """One browser tab's worth of protocol: a websocket session, its fragments and uploads."""

    def __init__(self, url: str, xsrf: str):
        self.url, self.xsrf = url, xsrf
        self.session_id = ""
        self.pages: dict[str, str] = {}  # url path name -> page script hash
        self.page_hash = ""
        self.widgets: dict[str, WidgetState] = {}
        # A widget inside a fragment reruns that fragment alone, as in a browser.
        self.widget_fragments: dict[str, str] = {}
        self.errors: list[str] = []
        # Not errors of the session: an image of a run that a newer run replaced may be gone
        # before a busy client asks for it, and a browser then simply shows the newer one.
        self.missing_images: list[str] = []
        self._run = Run()
        self._finished: asyncio.Future[Run] | None = None
        self._awaited_fragment = ""
        self._awaited_run_started = False
        self._file_urls: dict[str, asyncio.Future] = {}
        self._fragment_timers: dict[str, asyncio.Task] = {}
        self._fetched: set[str] = set()
        self._background: set[asyncio.Task] = set()
        self._socket = None
        self._reader: asyncio.Task | None = None

    async def open(self) -> None:
        ws_url = self.url.replace("http://", "ws://", 1) + "/_stcore/stream"
        self._socket = await connect(ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=120)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        for task in [*self._fragment_timers.values(), *self._background]:
            task.cancel()
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def run_page(self, page: str = "", timeout: float = 300) -> Run:
        """Opens a page by its URL path name ("" is the default page) and waits for its run to end."""
        self.page_hash = self.pages[page] if page else ""
        self.widgets = {}
        return await self._rerun(timeout)

    async def upload(self, uploader: str, name: str, data: bytes, timeout: float = 300) -> Run:
        """Uploads one file into the file uploader widget `uploader` and waits for the rerun it causes to end."""
        request_id = uuid.uuid4().hex
        answer = self._file_urls[request_id] = asyncio.get_running_loop().create_future()
        await self._send(
            BackMsg(
                file_urls_request=FileURLsRequest(request_id=request_id, file_names=[name], session_id=self.session_id)
            )
        )
        try:
            response = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise ProtocolError(f"no upload URL within {timeout:.0f} s") from None
        if response.error_msg:
            raise ProtocolError(f"no upload URL: {response.error_msg}")
        urls = response.file_urls[0]
        await asyncio.to_thread(self._put, urls.upload_url, name, data)
        info = UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id, file_urls=urls)
        self.widgets[uploader] = WidgetState(
            id=uploader, file_uploader_state_value=FileUploaderState(uploaded_file_info=[info])
        )
        return await self._rerun(timeout, self.widget_fragments.get(uploader, ""))

    def _put(self, upload_url: str, name: str, data: bytes) -> None:
        url = upload_url if upload_url.startswith("http") else self.url + upload_url
        response = requests.put(
            url,
            files={"file": (name, data, "application/octet-stream")},
            timeout=120,
            headers={"X-Xsrftoken": self.xsrf},
            cookies={XSRF_COOKIE: self.xsrf},
        )
        if response.status_code != 204:
            raise ProtocolError(f"upload refused: HTTP {response.status_code} {response.text[:200]}")

    async def _rerun(self, timeout: float, fragment_id: str = "") -> Run:
        """A full run of the page, or a run of one fragment; waits for it to end."""
        self._finished = asyncio.get_running_loop().create_future()
        self._awaited_fragment = fragment_id
        self._awaited_run_started = False
        await self._send(BackMsg(rerun_script=self._client_state(fragment_id)))
        try:
            return await asyncio.wait_for(self._finished, timeout)
        except TimeoutError:
            raise ProtocolError(f"no finished script run within {timeout:.0f} s") from None

    def _client_state(self, fragment_id: str = "", timed: bool = False) -> ClientState:
        return ClientState(
            query_string="",
            page_script_hash=self.page_hash,
            fragment_id=fragment_id,
            is_auto_rerun=timed,
            widget_states=WidgetStates(widgets=list(self.widgets.values())),
        )

    async def _send(self, message: BackMsg) -> None:
        await self._socket.send(message.SerializeToString())

    async def _read(self) -> None:
        reason = "the server closed the connection"
        try:
            async for data in self._socket:
                message = ForwardMsg()
                message.ParseFromString(data)
                self._handle(message)
        except ConnectionClosedError as error:
            reason = f"connection lost: {error}"
        finally:  # whatever ended the session, its waiter learns it now, not at its timeout
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_exception(ProtocolError(reason))

    def _handle(self, message: ForwardMsg) -> None:
        kind = message.WhichOneof("type")
        if kind == "new_session":  # the start of every run, of the page or of fragments
            self.session_id = message.new_session.initialize.session_id or self.session_id
            fragments = message.metadata.run.fragment_ids
            awaiting_page = self._finished is not None and not self._finished.done() and not self._awaited_fragment
            if awaiting_page and fragments and self._awaited_run_started:
                # A session runs one script at a time: the page's run is over, and its end never came.
                self._fail("the end of the page's run was lost: a later run started before it finished")
            if not fragments:  # the whole page runs again: its fragments start anew
                self._awaited_run_started = awaiting_page
                self._run = Run()
                for timer in self._fragment_timers.values():
                    timer.cancel()
                self._fragment_timers.clear()
            elif self._awaited_fragment in fragments:
                self._run = Run()
        elif kind == "navigation":
            self.pages = {page.url_pathname: page.page_script_hash for page in message.navigation.app_pages}
            self.page_hash = message.navigation.page_script_hash
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            self._element(message.delta.new_element, message.delta.fragment_id)
        elif kind == "auto_rerun":
            self._repeat(message.auto_rerun.fragment_id, message.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in message.stop_auto_rerun.fragment_ids:
                if timer := self._fragment_timers.pop(fragment_id, None):
                    timer.cancel()
        elif kind == "file_urls_response":
            if answer := self._file_urls.pop(message.file_urls_response.response_id, None):
                answer.set_result(message.file_urls_response)
        elif kind == "script_finished":
            self._script_finished(message.script_finished, message.metadata.run.fragment_ids)

    def _element(self, element, fragment_id: str) -> None:
        kind = element.WhichOneof("type")
        if kind == "markdown":
            self._run.markdown.append(element.markdown.body)
        elif kind == "file_uploader":
            self._run.uploader_id = element.file_uploader.id
            self.widget_fragments[element.file_uploader.id] = fragment_id
        elif kind == "imgs":
            self._fetch_images([image.url for image in element.imgs.imgs])
        elif kind == "exception":
            self._error(f"exception: {element.exception.type}: {element.exception.message[:200]}")
        elif kind == "alert":
            self._run.alerts.append(element.alert.body)
            if element.alert.format == ERROR_ALERT:
                self._error(f"error: {element.alert.body[:200]}")

    def _error(self, text: str) -> None:
        self._run.errors.append(text)
        self.errors.append(text)

    def _script_finished(self, status: int, fragments) -> None:
        if status == COMPILE_ERROR:
            self._error("the script did not compile")
        if self._finished is None or self._finished.done():
            return
        # A fragment's rerun may be served by a run of the whole page (the server's choice), and a
        # timed rerun of another fragment may stop it early: a tab then shows what had arrived.
        done = status in (FULL_RUN_FINISHED, COMPILE_ERROR) or (
            status in (FRAGMENT_RUN_FINISHED, STOPPED_FOR_RERUN) and self._awaited_fragment in fragments
        )
        if done:
            self._finished.set_result(self._run)

    def _repeat(self, fragment_id: str, interval: float) -> None:
        """Reruns a fragment every `interval` seconds, as the frontend's timer does."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval)
                await self._send(BackMsg(rerun_script=self._client_state(fragment_id, timed=True)))

        if timer := self._fragment_timers.pop(fragment_id, None):
            timer.cancel()
        self._fragment_timers[fragment_id] = asyncio.create_task(tick())

    def _fetch_images(self, urls: list[str]) -> None:
        """Fetches each new image in the background: the server's work a browser causes."""
        new = [url for url in urls if url not in self._fetched]
        self._fetched.update(new)
        if new:
            task = asyncio.create_task(asyncio.to_thread(self._get_all, new))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _get_all(self, urls: list[str]) -> None:
        for url in urls:
            full = url if url.startswith("http") else f"{self.url}/{url.lstrip('/')}"
            try:
                with urllib.request.urlopen(full, timeout=120) as response:
                    response.read()
            except OSError as error:
                self.missing_images.append(f"{url}: {error}")


@dataclass
class Visit:
    """One session's visit: Home, then a page with a file uploader, then one uploaded photo."""

    home_s: float | None = None
    page_ready_s: float | None = None
    answer_s: float | None = None
    answer: str | None = None
    errors: list[str] = field(default_factory=list)
    missing_images: int = 0


async def visit(
    url: str,
    xsrf: str,
    page: str,
    photo: tuple[str, bytes],
    labels: list[str],
    timeout: float = 300,
    together: asyncio.Barrier | None = None,
) -> Visit:
    """Opens Home, then `page`, uploads `photo`, and times each step.

    The answer is the rerun's markdown heading that names one of `labels` ("### cats"). With
    `together`, the tab stays open (its fragments polling) until every tab of the class is done.
    """
    result = Visit()
    session = Session(url, xsrf)
    try:
        start = time.perf_counter()
        await session.open()
        await session.run_page("", timeout)
        result.home_s = time.perf_counter() - start
        start = time.perf_counter()
        shown = await session.run_page(page, timeout)
        if shown.uploader_id is None:
            raise ProtocolError(f"{page} showed no file uploader")
        result.page_ready_s = time.perf_counter() - start
        start = time.perf_counter()
        answered = await session.upload(shown.uploader_id, *photo, timeout=timeout)
        headings = {f"### {label}": label for label in labels}
        result.answer = next((headings[text] for text in answered.markdown if text in headings), None)
        if result.answer is None:
            raise ProtocolError("the rerun after the upload showed no predicted label")
        result.answer_s = time.perf_counter() - start
    except (ProtocolError, OSError) as error:
        result.errors.append(str(error))
    finally:
        if together is not None:
            await together.wait()
        await session.close()
    result.errors.extend(session.errors)
    result.missing_images = len(session.missing_images)
    return result


async def classroom(
    url: str, page: str, photos: list[tuple[str, bytes]], labels: list[str], timeout: float = 300
) -> list[Visit]:
    """One session per photo, all at once: each opens Home, then `page`, and uploads its photo."""
    xsrf = await asyncio.to_thread(xsrf_token, url)
    together = asyncio.Barrier(len(photos))
    return await asyncio.gather(*(visit(url, xsrf, page, photo, labels, timeout, together) for photo in photos))
