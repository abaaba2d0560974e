"""Project files: a workspace as one file, taken home and opened on another catdog.

Like Teachable Machine's project files: a student (or the teacher) downloads their finished runs
with the photos they trained on, and opens them on another catdog, where the runs answer photos as
they did at home. A project file is a zip:

    manifest.json            format and version, the catdog that wrote it, what is inside, and
                             every other member's SHA-256
    runs/RUN_ID/FILE         a finished run's record and model (RUN_FILES): settings, history,
                             status, note, scores, model.keras, the unfamiliarity guard
    datasets/KEY.zip         the photos a run trained on, a zip of class folders (either layout):
                             the app's own data set, or the typed folder it read

A run on the default data set carries no photos: every catdog has that set, or downloads it.

Opening one is an upload like any other, and trusts nothing in it: the file is refused as a whole,
before anything is written, past the size limit or the archives module's entry, ratio and total
limits, for a path out of its folder or a link (catdog.data.archives), for a member whose name or
kind is not one of the above, a JSON record past its size limit, a hash that is not the
manifest's, or a manifest of another format version. Models are checked as archives first, then
loaded through the app's own loader with safe_mode on (a Lambda layer is refused, never run); the
photos go through a data-set upload (catdog.data.datasets.import_zip), each decoded. Paths the file
names are never used: an imported run reads the imported copy of its photos (or this server's
default set). Everything is new on this server and the opener's: run and experiment ids that are
taken here get new ones, data sets get new ids (and names, when taken), and runs open finished,
never queued. Runs are staged in a hidden folder inside the runs folder and renamed in only when
all of the file has been checked and the data sets made, so a refusal leaves nothing behind.
"""

import contextlib
import hashlib
import io
import json
import re
import secrets
import shutil
import time
import zipfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from catdog import __version__, classroom, config
from catdog.access import Action, Actor, Role, authorize, controls
from catdog.data.archives import ArchiveError, Limits, Member, Skipped, zip_members
from catdog.data.datasets import (
    Dataset,
    DatasetError,
    DatasetStore,
    check_name,
    listing,
    portable_name,
    share_exceeded,
)
from catdog.data.download import default_dataset_dir
from catdog.data.errors import DataError
from catdog.data.location import confine
from catdog.fast import head
from catdog.inference import familiarity
from catdog.inference.lineage import run_data_dir
from catdog.inference.loading import load_safely
from catdog.messages import N_, Message
from catdog.progress import Progress
from catdog.runs.record import NOTE_MAX_CHARS, Run
from catdog.runs.states import RunError
from catdog.runs.store import OPENED_BYTES, RUN_ID, RunStore
from catdog.settings import RunConfig, SettingsError

FORMAT, VERSION = "catdog-project", 1
MANIFEST = "manifest.json"
# What a run takes along: enough to list it, show its curves and scores, and answer photos.
RUN_JSON = ("config.json", "status.json", "data.json", "note.json", "evaluation.json", "evaluation-flip.json")
HISTORY, MODEL, GUARD = "history.jsonl", "model.keras", "familiarity.npz"
RUN_FILES = (*RUN_JSON, HISTORY, MODEL, GUARD)
REQUIRED = ("config.json", "status.json", "data.json", MODEL)
# The status fields a run keeps from home; state, process and error are this server's.
STATUS_FIELDS = ("created", "started", "ended", "best_val_accuracy", "collapsed")
_KEY = r"d[0-9]{1,4}"
_MEMBER = re.compile(rf"^(?:runs/(?P<run>{RUN_ID})/(?P<file>[a-z.-]+)|datasets/(?P<key>{_KEY})\.zip)$")
_STAGING = ".incoming-project-"
# A staging folder this much older than any opening takes was left by one that was killed.
STALE_STAGING_S = 24 * 3600


class ProjectError(RunError):
    """A project file (runs, and their photos) that cannot be made or opened; one line for the user."""


@dataclass(frozen=True)
class Opened:
    """What opening a project file added: the new runs' ids, the new data sets' names, and the
    photos of those that were left out, each with the reason."""

    runs: list[str]
    datasets: list[str]
    skipped: list[dict[str, str]]


# --- writing ---------------------------------------------------------------------------------


def exportable(actor: Actor, store: RunStore) -> list[Run]:
    """The finished runs a project file of `actor`'s holds by default: their own (the owner's
    reach, on a machine of their own, is every run)."""
    runs = [run for run in store.runs() if run.state == "finished"]
    if actor.role == Role.OWNER:
        return runs
    return [run for run in runs if run.owner.id == actor.id]


def export_project(
    actor: Actor,
    store: RunStore | None = None,
    datasets: DatasetStore | None = None,
    run_ids: Sequence[str] = (),
    progress: Progress | None = None,
) -> bytes:
    """The project file of the runs named (default: `exportable`), each with its photos."""
    store, datasets = store or RunStore(), datasets or DatasetStore()
    runs = [_chosen(store, run_id, actor) for run_id in run_ids] if run_ids else exportable(actor, store)
    if not runs:
        raise ProjectError(Message(N_("nothing to put in a project file: no finished runs of yours")))
    sources = _data_sources(runs, datasets, actor)
    members: dict[str, bytes] = {}
    keys: dict[Path, str] = {}
    total, done = len(runs) + len(sources), 0
    for folder in sources:
        keys[folder] = f"d{len(keys) + 1}"
        members[f"datasets/{keys[folder]}.zip"] = _photos_zip(folder)
        done += 1
        if progress:
            progress(done, total)
    manifest_runs = []
    for run in runs:
        for name in RUN_FILES:
            if (run.path / name).is_file():
                members[f"runs/{run.id}/{name}"] = (run.path / name).read_bytes()
        folder = _data_folder(run, datasets)
        manifest_runs.append({"id": run.id, "data": keys.get(folder) if folder else None})
        done += 1
        if progress:
            progress(done, total)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "catdog": __version__,
        "created": time.time(),
        "runs": manifest_runs,
        "datasets": [{"key": key, "name": _dataset_name(folder, datasets)} for folder, key in keys.items()],
        "members": {name: _sha256(data) for name, data in members.items()},
    }
    return _zip({MANIFEST: json.dumps(manifest, indent=1).encode(), **members})


def _chosen(store: RunStore, run_id: str, actor: Actor) -> Run:
    run = store.get(run_id)
    if not controls(actor, run.owner):
        raise ProjectError(Message("run {id} is not yours to take home", id=run_id))
    if run.state != "finished":
        raise ProjectError(
            Message(
                "run {id} is {state}: only finished runs go into a project file", id=run_id, state=Message(run.state)
            )
        )
    return run


def _data_folder(run: Run, datasets: DatasetStore) -> Path | None:
    """The folder of the photos the run trained on, where they are now; None for the default set."""
    try:
        folder = run_data_dir(run, datasets)
    except DataError as error:
        raise ProjectError(*error.args) from None
    return Path(folder).expanduser().resolve() if folder else None


def _data_sources(runs: list[Run], datasets: DatasetStore, actor: Actor) -> list[Path]:
    """The folders the runs' photos are in, each one `actor` may read now."""
    folders = []
    for run in runs:
        folder = _data_folder(run, datasets)
        if folder and folder not in folders:
            if not folder.is_dir():
                raise ProjectError(
                    Message(
                        "run {id} trained on {folder}, which is gone: its photos cannot go along",
                        id=run.id,
                        folder=str(folder),
                    )
                )
            try:
                confine(folder, actor)
            except DataError as error:
                raise ProjectError(*error.args) from None
            folders.append(folder)
    return folders


def _dataset_name(folder: Path, datasets: DatasetStore) -> str:
    found = datasets.find(folder)
    return found.name if found else folder.name


def _photos_zip(folder: Path) -> bytes:
    """A data folder's files, hidden ones (the trash, the id) left out: what a data-set upload reads."""
    try:
        files, _ = listing(folder)
    except DatasetError as error:
        raise ProjectError(*error.args) from None
    if sum(size for _, size in files) > config.PROJECT_MAX_BYTES:
        raise ProjectError(Message("the photos in {folder} are more than a project file may hold", folder=str(folder)))
    return _zip({relative: (folder / relative).read_bytes() for relative, _ in files})


def _zip(members: dict[str, bytes]) -> bytes:
    """Photos, models and zips are stored as they are (they barely compress); the records are deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            packed = name.endswith((".json", ".jsonl"))
            archive.writestr(name, data, zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED)
    return out.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- opening ---------------------------------------------------------------------------------


def open_project(
    data: bytes,
    *,
    actor: Actor,
    store: RunStore | None = None,
    datasets: DatasetStore | None = None,
    progress: Progress | None = None,
) -> Opened:
    """Adds a project file's runs and data sets to this server as `actor`'s, or refuses it whole
    in one line (ProjectError) with nothing added."""
    authorize(actor, Action.OPEN_PROJECT)
    store, datasets = store or RunStore(), datasets or DatasetStore()
    members = _checked_members(data)
    manifest = _manifest(members)
    runs = _runs(members, manifest)
    store.check_writable()
    try:
        with datasets.student_turn(actor) as left:
            if left is not None and _bytes_brought(members) > left:
                raise share_exceeded(classroom.dataset_share(actor))
            return _open(members, manifest, runs, actor, store, datasets, progress)
    except DatasetError as error:
        raise ProjectError(*error.args) from None


def _bytes_brought(members: dict[str, bytes]) -> int:
    """What opening a project file adds at most: its runs' files and its data sets' photos unpacked
    (as their zips declare them; archives.zip_members holds each entry to its declared size)."""
    photos = 0
    for name, data in members.items():
        if name.startswith("datasets/"):
            # One that is no zip is refused when it is unpacked, and counts nothing here.
            with contextlib.suppress(zipfile.BadZipFile), zipfile.ZipFile(io.BytesIO(data)) as archive:
                photos += sum(info.file_size for info in archive.infolist())
    return photos + _bytes_of({name: data for name, data in members.items() if name.startswith("runs/")})


def _bytes_of(files: dict[str, bytes]) -> int:
    return sum(len(data) for data in files.values())


def _open(
    members: dict[str, bytes],
    manifest: dict,
    runs: dict[str, dict[str, bytes]],
    actor: Actor,
    store: RunStore,
    datasets: DatasetStore,
    progress: Progress | None,
) -> Opened:
    steps, done = len(runs) + len(manifest["datasets"]), 0
    with _staging(store.root) as staging:
        ids = _fresh_ids(store, list(runs))
        staged = {}
        for run_id, files in runs.items():
            staged[run_id] = _stage_run(staging / ids[run_id], run_id, files, actor)
            done += 1
            if progress:
                progress(done, steps)
        experiments = _fresh_experiments(store, [run.config.experiment for run in staged.values()])
        made, skipped = {}, []
        # The photos of all its data sets together, as the file's own limit: bitmaps pack well.
        budget = config.PROJECT_MAX_BYTES
        try:
            for entry in manifest["datasets"]:
                dataset, left_out = _open_dataset(
                    members[f"datasets/{entry['key']}.zip"], entry["name"], datasets, actor, budget
                )
                budget -= sum(size for _, size in listing(dataset.root)[0])
                made[entry["key"]] = dataset
                skipped += [{**item, "file": f"{dataset.name}/{item['file']}"} for item in left_out]
                done += 1
                if progress:
                    progress(done, steps)
            for entry in manifest["runs"]:
                _point_at_data(staged[entry["id"]], made.get(entry["data"]), experiments)
            opened = _move_in(list(staged.values()), store.root)
        except BaseException:
            for dataset in made.values():
                shutil.rmtree(dataset.root, ignore_errors=True)
            raise
    return Opened(opened, [dataset.name for dataset in made.values()], skipped)


def _limits() -> Limits:
    return Limits(total_bytes=config.PROJECT_MAX_BYTES, member_bytes=config.PROJECT_MAX_BYTES, nested=True)


def _checked_members(data: bytes) -> dict[str, bytes]:
    """Every member by name, each a known kind of file; the file refused as a whole otherwise."""
    if len(data) > config.PROJECT_MAX_BYTES:
        raise ProjectError(
            Message(
                "the project file has {size} MB; the limit is {limit} MB",
                size=f"{len(data) / 2**20:,.0f}",
                limit=f"{config.PROJECT_MAX_BYTES // 2**20:,}",
            )
        )
    members: dict[str, bytes] = {}
    try:
        for entry in zip_members(data, _limits()):
            if isinstance(entry, Skipped):
                raise ProjectError(Message("{name} is refused: {reason}", name=entry.name, reason=entry.reason))
            name = str(entry.path)
            if name in members:
                raise ProjectError(Message("{name} is in the project file twice", name=name))
            if name != MANIFEST and not _known(entry):
                raise ProjectError(Message("{name} is no part of a catdog project file", name=name))
            members[name] = entry.data
    except ArchiveError as error:
        raise ProjectError(Message("not a usable project file: {error}", error=error.args[0])) from None
    return members


def _known(entry: Member) -> bool:
    match = _MEMBER.match(str(entry.path))
    return bool(match) and (match["key"] is not None or match["file"] in RUN_FILES)


def _json(data: bytes, name: str | Message):
    if len(data) > config.PROJECT_MAX_JSON_BYTES:
        raise ProjectError(
            Message(
                "{name} is larger than the {limit} MB a record may be",
                name=name,
                limit=config.PROJECT_MAX_JSON_BYTES // 2**20,
            )
        )
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise ProjectError(
            Message(
                "{name} is not readable JSON (line {line}, column {column})",
                name=name,
                line=error.lineno,
                column=error.colno,
            )
        ) from None
    except (ValueError, RecursionError):
        raise ProjectError(Message("{name} is not readable JSON", name=name)) from None


def _run_file(run_id: str, file: str) -> Message:
    """A file of a run in the project file, named as a refusal names it."""
    return Message("run {id}'s {file}", id=run_id, file=file)


def _manifest(members: dict[str, bytes]) -> dict:
    """The manifest, its format and version ours, listing exactly the other members with their hashes."""
    if MANIFEST not in members:
        raise ProjectError(Message(N_("not a catdog project file: it has no manifest.json")))
    manifest = _json(members[MANIFEST], MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ProjectError(Message(N_("not a catdog project file: its manifest names no catdog project format")))
    if manifest.get("version") != VERSION:
        raise ProjectError(
            Message(
                "the project file is format version {version} (catdog {made_by}); this catdog {ours} opens version "
                "{wanted}",
                version=repr(manifest.get("version")),
                made_by=str(manifest.get("catdog")),
                ours=__version__,
                wanted=VERSION,
            )
        )
    hashes = manifest.get("members")
    listed = set(hashes) if isinstance(hashes, dict) else set()
    present = set(members) - {MANIFEST}
    if listed != present:
        odd = min(listed ^ present)
        raise ProjectError(
            Message("{name} is missing from the file", name=odd)
            if odd in listed
            else Message("{name} is not in the manifest", name=odd)
        )
    for name in sorted(present):
        if hashes[name] != _sha256(members[name]):
            raise ProjectError(
                Message(
                    "{name} is not the file the manifest lists (its SHA-256 differs): damaged or altered", name=name
                )
            )
    runs, sets = manifest.get("runs"), manifest.get("datasets")
    if not isinstance(runs, list) or not isinstance(sets, list):
        raise ProjectError(Message(N_("the manifest does not list the runs and data sets")))
    keys = {entry.get("key") for entry in sets if isinstance(entry, dict)}
    for entry in sets:
        if not isinstance(entry, dict) or f"datasets/{entry.get('key')}.zip" not in members:
            raise ProjectError(
                Message("the manifest lists a data set the file does not hold: {entry}", entry=f"{entry!r:.80}")
            )
        if not isinstance(entry.get("name"), str):
            raise ProjectError(Message("data set {key} has no name in the manifest", key=str(entry["key"])))
    for entry in runs:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ProjectError(Message("the manifest lists a run without an id: {entry}", entry=f"{entry!r:.80}"))
        if entry.get("data") is not None and entry["data"] not in keys:
            raise ProjectError(
                Message(
                    "run {id} trained on data set {key}, which the file does not hold",
                    id=entry["id"],
                    key=repr(entry["data"]),
                )
            )
    return manifest


def _runs(members: dict[str, bytes], manifest: dict) -> dict[str, dict[str, bytes]]:
    """Each listed run's files, by name; every run of the file listed, each with what it needs."""
    runs: dict[str, dict[str, bytes]] = {}
    for name, data in members.items():
        match = _MEMBER.match(name)
        if match and match["run"]:
            runs.setdefault(match["run"], {})[match["file"]] = data
    listed = [entry["id"] for entry in manifest["runs"]]
    if sorted(listed) != sorted(runs) or len(set(listed)) != len(listed):
        raise ProjectError(Message(N_("the manifest's runs are not the runs the file holds")))
    for run_id, files in runs.items():
        if missing := [name for name in REQUIRED if name not in files]:
            raise ProjectError(Message("run {id} lacks {files}", id=run_id, files=", ".join(missing)))
    return runs


@contextmanager
def _staging(root: Path):
    """A hidden folder inside the runs folder (no run id starts with a dot, so no list shows it),
    removed however opening ends: what was renamed out of it by then is in. Those of openings that
    were killed (a server stopped mid-way) are removed by the next one."""
    for stale in root.glob(f"{_STAGING}*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(stale, ignore_errors=True)
    folder = root / f"{_STAGING}{secrets.token_hex(8)}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stage_run(folder: Path, run_id: str, files: dict[str, bytes], actor: Actor) -> Run:
    """The run written into `folder` (its id here) from checked records, its model and guard
    loaded as this app loads them; the opener's, finished."""
    run = Run(folder)
    run.path.mkdir()
    config_json = _run_file(run_id, "config.json")
    try:
        run_config = RunConfig.from_dict(_json(files["config.json"], config_json))
    except (SettingsError, TypeError, ValueError) as error:
        reason = error.args[0] if isinstance(error, SettingsError) else str(error).splitlines()[0]
        raise ProjectError(Message("{name} is refused: {error}", name=config_json, error=reason)) from None
    status = _json(files["status.json"], _run_file(run_id, "status.json"))
    if not isinstance(status, dict) or status.get("state") != "finished":
        raise ProjectError(Message("run {id} is not a finished run", id=run_id))
    run.write_config(run_config)
    run.record_owner(actor)
    run.mark("finished", pid=None, error=None, **_kept_status(status), **{OPENED_BYTES: _bytes_of(files)})
    _write_records(run, files, run_id)
    _stage_model(run, files[MODEL], run_id)
    if GUARD in files:
        _stage_guard(run, files[GUARD], run_id)
    return run


def _kept_status(status: dict) -> dict:
    kept = {name: status.get(name) for name in STATUS_FIELDS}
    numbers = {name: value for name, value in kept.items() if isinstance(value, int | float) and name != "collapsed"}
    collapsed = kept["collapsed"] if isinstance(kept["collapsed"], str) else None
    return {**numbers, "collapsed": collapsed[:500] if collapsed else None}


def _write_records(run: Run, files: dict[str, bytes], run_id: str) -> None:
    """The run's JSON records as parsed (never the bytes as sent), each of the shape a reader expects."""
    data_json = _run_file(run_id, "data.json")
    data = _json(files["data.json"], data_json)
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise ProjectError(Message("{name} names no classes", name=data_json))
    recorded = data.get("files")
    if not isinstance(recorded, dict) or not all(_pairs(items) for items in recorded.values()):
        raise ProjectError(Message("{name} lists its photos in no known shape", name=data_json))
    _write_json(run.path / "data.json", {"classes": classes, "files": recorded, **_shown(data)})
    for name in ("evaluation.json", "evaluation-flip.json"):
        if name in files and isinstance(scores := _json(files[name], _run_file(run_id, name)), dict):
            _write_json(run.path / name, scores)
    if "note.json" in files:
        note = _json(files["note.json"], _run_file(run_id, "note.json"))
        if isinstance(note, str) and note.strip():
            _write_json(run.path / "note.json", note[:NOTE_MAX_CHARS])
    if HISTORY in files:
        lines = [line for line in files[HISTORY].splitlines() if line.strip()]
        lines = _json(b"[" + b",".join(lines) + b"]", _run_file(run_id, HISTORY))
        records = [json.dumps(record) for record in lines if isinstance(record, dict)]
        (run.path / HISTORY).write_text("".join(f"{line}\n" for line in records), encoding="utf-8")


def _pairs(items) -> bool:
    return isinstance(items, list) and all(
        isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int)
        for item in items
    )


def _shown(data: dict) -> dict:
    """What pages show of the data beside the photos: counts and skipped files, when they are of their shapes."""
    counts, skipped = data.get("counts"), data.get("skipped")
    return {
        **({"counts": counts} if isinstance(counts, dict) else {}),
        **({"skipped": skipped} if isinstance(skipped, list) else {}),
    }


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")


def _check_inner(data: bytes, name: str | Message) -> None:
    """A model or guard is itself a zip: held to the same limits before anything reads it."""
    try:
        for entry in zip_members(data, _limits()):
            if isinstance(entry, Skipped):
                raise ProjectError(
                    Message("{name} is refused: {file} is {reason}", name=name, file=entry.name, reason=entry.reason)
                )
    except ArchiveError as error:
        raise ProjectError(Message("{name} is refused: {error}", name=name, error=error.args[0])) from None


def _stage_model(run: Run, data: bytes, run_id: str) -> None:
    name = _run_file(run_id, MODEL)
    _check_inner(data, name)
    run.model_path.write_bytes(data)
    try:
        load_safely(run.model_path)
        head.load(run.model_path)  # a head is also read without Keras: it must be one save() wrote
    except Exception as error:  # noqa: BLE001 -- whatever a crafted file makes Keras raise, it is refused
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ProjectError(Message("{name} is refused: {error}", name=name, error=reason)) from None


def _stage_guard(run: Run, data: bytes, run_id: str) -> None:
    name = _run_file(run_id, GUARD)
    _check_inner(data, name)
    run.familiarity_path.write_bytes(data)
    if familiarity.Guard.load(run.familiarity_path) is None:
        raise ProjectError(
            Message(
                "{name} is refused: {error}",
                name=name,
                error=Message(N_("not an unfamiliarity guard this catdog reads")),
            )
        )


def _open_dataset(
    data: bytes, name: str, datasets: DatasetStore, actor: Actor, budget: int
) -> tuple[Dataset, list[dict]]:
    """A data set made from the photos as any uploaded zip is, under a name free here, of at most
    `budget` bytes unpacked."""
    limits = Limits(total_bytes=max(budget, 0))
    try:
        made = datasets.import_zip(io.BytesIO(data), _free_name(name, datasets), actor=actor, limits=limits)
    except DatasetError as error:
        raise ProjectError(
            Message("data set {name} is refused: {error}", name=repr(name), error=error.args[0])
        ) from None
    made.dataset.id  # noqa: B018 -- a new id, made now: runs record it to follow renames
    return made.dataset, made.skipped


def _free_name(name: str, datasets: DatasetStore) -> str:
    try:
        base = check_name(name)
    except DatasetError:
        base = "imported"
    taken = {existing.casefold() for existing in datasets.names()}
    candidate, n = base, 2
    while candidate.casefold() in taken:
        candidate, n = f"{base[:58]} {n}", n + 1
    return candidate


def _fresh_ids(store: RunStore, run_ids: list[str]) -> dict[str, str]:
    """Each run's id here: its own where free, else a new one, never another run's folder. Free
    means on every system: Windows opens a device for CON and drops a trailing dot, and Windows
    and macOS take Run1 and run1 for one folder."""
    taken = {path.name.casefold() for path in store.root.iterdir()}
    ids = {}
    for run_id in run_ids:
        fresh = run_id
        while portable_name(fresh) != fresh or fresh.casefold() in taken:
            fresh = f"{run_id.split('.')[0][:100]}-{secrets.token_hex(3)}"
        taken.add(fresh.casefold())
        ids[run_id] = fresh
    return ids


def _fresh_experiments(store: RunStore, experiments: list[str | None]) -> dict[str, str]:
    """Each experiment's id here: its own where no run here has it, else a new one, so that the
    file's runs never join an experiment of this server's."""
    taken = {run.config.experiment for run in store.every_run()}
    return {
        experiment: f"{experiment[:100]}-{secrets.token_hex(3)}" if experiment in taken else experiment
        for experiment in set(filter(None, experiments))
    }


def _point_at_data(run: Run, dataset: Dataset | None, experiments: dict[str, str]) -> None:
    """The run's settings and data record rewritten to this server's copy of its photos (or its
    default set), never to a path the file named."""
    run_config = run.config
    experiment = experiments.get(run_config.experiment) if run_config.experiment else None
    run.write_config(replace(run_config, data_dir=str(dataset.root) if dataset else None, experiment=experiment))
    data = run.data()
    data["root"] = str(dataset.root if dataset else default_dataset_dir())
    data.pop("dataset", None)
    if dataset:
        data["dataset"] = dataset.id
    _write_json(run.path / "data.json", data)


def _move_in(staged: list[Run], root: Path) -> list[str]:
    """Each run renamed into the runs folder; those already in are taken back out if one cannot be."""
    moved: list[Path] = []
    try:
        for run in staged:
            target = root / run.id
            if target.exists():
                raise RunError(Message("run {id} appeared here meanwhile: open the file again", id=run.id))
            moved.append(run.path.rename(target))
    except BaseException:
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return [path.name for path in moved]


def describe(opened: Opened) -> Message:
    """One line for the user: what opening added."""
    runs, sets = len(opened.runs), len(opened.datasets)
    values = {
        "runs": Message("{count} run", count=runs) if runs == 1 else Message("{count} runs", count=runs),
        "sets": Message("{count} data set", count=sets) if sets == 1 else Message("{count} data sets", count=sets),
    }
    if opened.skipped:
        return Message("Opened {runs} and {sets}; {left} photos left out.", left=len(opened.skipped), **values)
    return Message("Opened {runs} and {sets}.", **values)


def file_name(actor: Actor) -> str:
    """The name a downloaded project file is offered under: whose and when."""
    who = "" if actor.role == Role.OWNER else re.sub(r"[^A-Za-z0-9]+", "-", actor.name).strip("-")
    return f"catdog-{who}{'-' * bool(who)}{time.strftime('%Y%m%d-%H%M')}{config.PROJECT_SUFFIX}"
