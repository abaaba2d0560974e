"""The runs folder: every run in it, and what may be done to them: create, submit, cancel, delete.

A run is a folder here (catdog.runs.record). A submitted run goes to this machine's queue
(catdog.runs.queue), or with CATDOG_RAY_ADDRESS set to a Ray cluster (catdog.runs.cluster). Nothing
here imports TensorFlow: listing runs stays instant.

A student's run is checked against the teacher's limits (catdog.classroom) and, if a run with the
same settings, seed and data content is finished, queued or running, answered by it: recorded as
a share of it (catdog.runs.record), trained once. The owner and the teacher always train anew:
they may be measuring.
"""

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, replace

import filelock

from catdog import classroom, config
from catdog.access import OWNER, Action, Actor, authorize, can_see, file_key
from catdog.messages import Message
from catdog.runs import cluster
from catdog.runs import queue as local_queue
from catdog.runs.record import Run
from catdog.runs.states import ACTIVE, RunError
from catdog.settings import RunConfig

# A run's id, which names its folder: never a path's separator or a hidden name.
RUN_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_RUN_ID = re.compile(rf"^{RUN_ID}$")
# The status field of a run opened from a project file: how many bytes the file brought with it.
OPENED_BYTES = "opened_bytes"
# Refuse to start a run with less free space than a few checkpoints and caches need.
MIN_FREE_BYTES = 200 * 2**20
# What a run records about itself rather than what it trains: left out when runs are compared.
BOOKKEEPING = ("created", "experiment", "varied", "data_dir")


class RunStore:
    """The runs directory as `viewer` sees it (access.can_see): create, list, find, queue and
    cancel runs. A run they may not see is no run to them: not listed, and `get` finds none."""

    def __init__(self, root: str | os.PathLike | None = None, *, viewer: Actor = OWNER):
        self.root = config.runs_dir(root)
        self.viewer = viewer

    def visible(self, run: Run) -> bool:
        return can_see(self.viewer, run.owner, classroom.load().show_classmates_runs)

    def runs(self) -> list[Run]:
        """The runs the viewer sees, oldest first. A folder whose config.json is missing or damaged
        is no run: `get` says why, and `delete` still removes it."""
        shown = classroom.load().show_classmates_runs  # once per listing: every open tab polls it
        return [run for run in self.every_run() if can_see(self.viewer, run.owner, shown)]

    def every_run(self) -> list[Run]:
        """All runs, whoever sees them: what the queue serves."""
        if not self.root.is_dir():
            return []
        # A link could point anywhere: only the folders the app made here are runs.
        folders = [p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink() and _RUN_ID.match(p.name)]
        runs = []
        for run in map(Run, folders):
            try:
                runs.append((run.config.created or 0, run))
            except RunError:
                continue
        return [run for _, run in sorted(runs, key=lambda created_run: (created_run[0], created_run[1].id))]

    def get(self, run_id: str) -> Run:
        """The run with this id; ids are checked so no path outside the runs directory is reached."""
        if not _RUN_ID.match(run_id or ""):
            raise RunError(Message("invalid run id {id}", id=repr(run_id)))
        path = self.root / run_id
        if path.is_symlink() or not (path / "config.json").is_file() or not self.visible(Run(path)):
            raise RunError(Message("no run {id} in {folder}", id=repr(run_id), folder=self.root))
        return Run(path)

    def acted_on(self, run_id: str, actor: Actor) -> Run:
        """The run `actor` names, if they see it: one they may not see is no run to them, so a
        forged id learns nothing of it."""
        run = self.get(run_id)
        if not can_see(actor, run.owner, classroom.load().show_classmates_runs):
            raise RunError(Message("no run {id} in {folder}", id=repr(run_id), folder=self.root))
        return run

    def live(self) -> list[Run]:
        """Every running run (several train at once on a cluster), else the newest alone."""
        runs = self.runs()
        return [run for run in runs if run.state == "running"] or runs[-1:]

    def latest(self) -> Run | None:
        """The run a status badge shows: the running one, else the newest."""
        return (self.live() or [None])[-1]

    def queue(self) -> list[Run]:
        return [run for run in self.runs() if run.state == "queued"]

    def check_writable(self) -> None:
        """A clear error now rather than a crash mid-training."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Unique per call: sessions of one web server are threads of one process, starting at once.
            probe = self.root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise RunError(
                Message(
                    "runs directory {folder} is not writable ({error})",
                    folder=self.root,
                    error=error.strerror or str(error),
                )
            ) from None
        free = shutil.disk_usage(self.root).free
        if free < MIN_FREE_BYTES:
            raise RunError(
                Message(
                    "only {free} MB free in {folder}; training needs at least {least} MB",
                    free=format(free / 2**20, ".0f"),
                    folder=self.root,
                    least=MIN_FREE_BYTES // 2**20,
                )
            )

    def create(self, run_config: RunConfig | dict, *, owner: Actor = OWNER, **status) -> Run:
        """Records a queued run of `owner`'s, with any further status fields; `submit` also gets
        it trained. `run_config`: a RunConfig or its `to_dict` record. Every run is made here,
        so `owner` is authorized here, whoever trains it."""
        authorize(owner, Action.START_RUN)
        if isinstance(run_config, dict):
            run_config = RunConfig.from_dict(run_config)
        self.check_writable()
        created = time.time()
        run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{run_config.arch}-{secrets.token_hex(2)}"
        run = Run(self.root / run_id)
        run.path.mkdir()
        turn = local_queue.next_round(owner.id, self.every_run())
        run.write_config(replace(run_config, created=created))
        run.record_owner(owner)
        run.mark("queued", pid=None, created=created, started=None, ended=None, error=None, round=turn, **status)
        return run

    def submit(self, run_config: RunConfig | dict, *, actor: Actor, content: str | None = None) -> Run:
        """Records a queued run and makes sure a queue process (or a Ray cluster) will train it; returns at once.
        A student's run must be within the teacher's limits, and is answered by an identical run
        if there is one; `content`: the data's Scan.content, from the caller's scan of the folder
        (without it the run trains)."""
        return self.submit_all([run_config], actor=actor, content=content)[0]

    def submit_all(self, run_configs: list[RunConfig | dict], *, actor: Actor, content: str | None = None) -> list[Run]:
        """`submit` for runs that go together, an experiment's: within a student's limits as a
        whole, or none is queued."""
        authorize(actor, Action.START_RUN)
        run_configs = [RunConfig.from_dict(c) if isinstance(c, dict) else c for c in run_configs]
        with self._turn(actor):
            classroom.check_limits(actor, run_configs, self.active_count(actor))
            return [self._submit(run_config, actor, content) for run_config in run_configs]

    def _turn(self, actor: Actor) -> contextlib.AbstractContextManager:
        """A student's submissions one at a time: tabs submitting at once would each count the
        runs already queued before any of theirs, and each pass the teacher's limit."""
        if not classroom.limited(actor):
            return contextlib.nullcontext()
        self.root.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(self.root / f".turn-{file_key(actor)}.lock")

    def _submit(self, run_config: RunConfig, actor: Actor, content: str | None) -> Run:
        if not (classroom.limited(actor) and content):
            return self._start(run_config, actor, content)
        # One at a time: students pressing the same lesson at once share one run, not train two.
        self.root.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(self.root / ".submit.lock"):
            if source := self.identical(run_config, content):
                return self.create(run_config, owner=actor, same_as=source.id, data_content=content)
            return self._start(run_config, actor, content)

    def _start(self, run_config: RunConfig, actor: Actor, content: str | None) -> Run:
        """Records a run and hands it to a cluster or to this machine's queue."""
        if config.ray_address():
            return cluster.submit(self, run_config, owner=actor)
        run = self.create(run_config, owner=actor, **({"data_content": content} if content else {}))
        local_queue.start_process(self.root)
        return run

    def opened_bytes(self, owner: Actor) -> int:
        """The bytes of `owner`'s runs that came from project files (catdog.project records them):
        part of what they brought in, as their data sets are. Read as recorded: the Dataset page
        asks on every rerun, and a live status may ask a cluster about each running run."""
        return sum(
            opened
            for run in self.every_run()
            if run.owner.id == owner.id and isinstance(opened := run.recorded_status().get(OPENED_BYTES), int)
        )

    def active_count(self, actor: Actor) -> int:
        """How many of `actor`'s runs are queued or training: what the teacher's limit counts."""
        return sum(1 for run in self.every_run() if run.owner.id == actor.id and run.state in ACTIVE)

    def identical(self, run_config: RunConfig, content: str) -> Run | None:
        """A run that trains or trained what `run_config` asks, on data of this content: finished
        first, else queued or running; never a share itself, nor one asked to cancel."""
        wanted, found = trained_settings(run_config), []
        for run in self.every_run():
            status = run.status()
            if status.get("same_as") or status["state"] not in ("finished", *ACTIVE) or run.cancel_requested:
                continue
            # The settings first: a few hundred bytes, where the data's record may be a large file.
            if trained_settings(run.config) == wanted and recorded_content(run) == content:
                found.append((status["state"] != "finished", run))
        return min(found, key=lambda candidate: candidate[0], default=(None, None))[1]

    @contextlib.contextmanager
    def queue_free(self) -> Iterator[bool]:
        """Holds this machine's queue when no run is queued or training here (and runs do not go to
        a Ray cluster): yields whether it does. Its holder may then train a run of its own in its
        process, as `catdog train --wait` does, saving a queue process, a training process and
        their imports. Runs submitted meanwhile wait, and get a queue process when it is let go."""
        if config.ray_address():
            yield False
            return
        lock = local_queue.lock(self.root)
        try:
            lock.acquire(blocking=False)
        except filelock.Timeout:
            yield False
            return
        try:
            yield not local_queue.waiting(self.every_run())
        finally:
            lock.release()
            self.resume()

    def resume(self) -> None:
        """Starts a queue process if runs are waiting with none to serve them (after a reboot)."""
        if local_queue.waiting(self.every_run()) and local_queue.is_idle(self.root):
            local_queue.start_process(self.root)

    def cancel(self, run_id: str, *, actor: Actor) -> dict:
        """A queued run is cancelled now; a running one at its next batch, or within seconds if still starting."""
        run = self.acted_on(run_id, actor)
        authorize(actor, Action.CANCEL_RUN, owner=run.owner)
        status = run.status()
        if status["state"] not in ACTIVE:
            raise RunError(Message("run {id} is already {state}", id=run_id, state=Message(status["state"])))
        if status.get("same_as"):  # a share: only its own record ends; the run others wait on trains on
            return run.mark("cancelled", error=None)
        run.request_cancel()
        if status.get("ray_address"):
            cluster.stop(run, status)
        self._hand_over(run)
        if status["state"] == "queued":
            return run.mark("cancelled", error=None)
        return status

    def shares_of(self, run: Run) -> list[Run]:
        """The runs recorded as shares of `run`, oldest first."""
        return [other for other in self.every_run() if other.same_as == run.id]

    def _hand_over(self, cancelled: Run) -> None:
        """The shares waiting on a cancelled run train after all: the oldest itself, the others as its shares."""
        waiting = [share for share in self.shares_of(cancelled) if share.recorded_status().get("state") in ACTIVE]
        if not waiting:
            return
        heir, *others = waiting
        heir.mark("queued", same_as=None, started=None)
        for share in others:
            share.mark("queued", same_as=heir.id)
        self.resume()

    def delete(self, run_id: str, *, actor: Actor) -> None:
        """Removes a run's folder: model, history, logs and all; refused while it is queued or running."""
        run = self.acted_on(run_id, actor)
        authorize(actor, Action.DELETE_RUN, owner=run.owner)
        state = run.state
        if state in ACTIVE:
            raise RunError(
                Message("run {id} is {state}: cancel it before deleting it", id=run_id, state=Message(state))
            )
        for share in self.shares_of(run):
            share.status()  # a share settles now, taking the files it reads while it can
        # Renamed first, at once, to a name that is no run id: no reader ever lists half a run.
        doomed = run.path.with_name(f".deleted-{run_id}-{secrets.token_hex(2)}")
        try:
            run.path.rename(doomed)
        except OSError as error:
            raise RunError(
                Message("run {id} could not be deleted ({error})", id=run_id, error=error.strerror or str(error))
            ) from None
        shutil.rmtree(doomed, ignore_errors=True)


def trained_settings(run_config: RunConfig) -> dict:
    """What a run trains with, seed included, bookkeeping left out: equal for identical work."""
    return {name: value for name, value in asdict(run_config).items() if name not in BOOKKEEPING}


def recorded_content(run: Run) -> str | None:
    """The content of the data a run trains on: recorded at submission, or by its training."""
    content = run.recorded_status().get("data_content") or run.data().get("content")
    return content if isinstance(content, str) else None
