"""Which photos a run trained on, wherever they are now: a run's data folder followed through
renames of the app's own data sets, and its splits as it recorded them when it trained."""

from dataclasses import replace
from pathlib import Path

from catdog.data.datasets import DatasetStore
from catdog.data.errors import DataError
from catdog.data.scan import Scan, scan
from catdog.messages import Message
from catdog.runs.record import Run


def run_data_dir(run: Run, store: DatasetStore | None = None) -> str | None:
    """The folder a run's photos are in now (None: the default set): the one it trained on, or,
    for a data set of the app's own renamed since, that data set's folder, found by the id the
    run recorded when it trained. DataError where that data set was deleted: its old name may now
    be another's data set, a classmate's perhaps, whose photos are not the run's to read."""
    folder = run.config.data_dir or run.data().get("root")
    dataset_id = run.data().get("dataset")
    if not dataset_id:
        return folder
    store = store or DatasetStore()
    trained_in = store.find(folder)
    if trained_in and trained_in.recorded_id() == dataset_id:
        return folder
    if moved := store.with_id(dataset_id):
        return str(moved.root)
    raise DataError(
        Message("run {id} trained on data set {name}, which was deleted since", id=run.id, name=Path(folder).name)
    )


def trained_on(run: Run, root: Path) -> bool:
    """Whether the run trained on the data folder at `root` (resolved), wherever that data set is now."""
    try:
        folder = run_data_dir(run)
    except DataError:
        return False
    return bool(folder) and Path(folder).expanduser().resolve() == root


def as_trained(run: Run, data: Scan | None = None) -> tuple[Scan, dict[str, int]]:
    """The run's data folder (`data`: as scanned now, if the caller has it) with each split's files
    as the run recorded them when it trained, those still there; and how many of each split are gone.

    A folder of class folders alone is split by a seeded shuffle over the files present, so after a
    photo is removed a fresh split would move photos the run trained on into its test split. Runs
    from before data.json kept the files get the fresh split with their seed.
    """
    recorded = run.data().get("files")
    if data is None or not isinstance(recorded, dict):
        data = scan(run_data_dir(run), run.config.split_seed)
    if not isinstance(recorded, dict):
        return data, dict.fromkeys(data.files, 0)
    files, gone = {}, {}
    for split in data.files:
        items = [(name, int(label)) for name, label in recorded.get(split, [])]
        files[split] = [(name, label) for name, label in items if name in data.index]
        gone[split] = len(items) - len(files[split])
    return replace(data, files=files), gone
