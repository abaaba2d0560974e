"""Files written while others read or write them too."""

import os
import threading

import numpy as np
import pytest

from catdog.storage import save_npy_atomic
from tests.helpers.support import held_open_refusal


def test_concurrent_npy_writers_of_one_file_all_succeed_and_leave_one_whole_file(tmp_path):
    """Two queues (or two sessions) computing the same features write the same cache file at once."""
    path = tmp_path / "cache" / "train-features.npy"
    arrays = [np.full((256, 1280), writer, np.float32) for writer in range(8)]
    start, errors = threading.Barrier(len(arrays)), []

    def write(array):
        start.wait()
        try:
            for _ in range(5):
                save_npy_atomic(path, array)
        except Exception as error:  # noqa: BLE001 -- reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(array,)) for array in arrays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    saved = np.load(path)
    assert saved.shape == (256, 1280) and len(np.unique(saved)) == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file is left behind"


def test_a_file_a_reader_holds_open_is_replaced_once_the_reader_lets_go(tmp_path, monkeypatch):
    """Windows refuses os.replace while another process has the target open (a page loading the
    model, a reader of a status): as Windows answers, the first two tries here are refused."""
    from catdog import storage

    real_replace, refusals = os.replace, iter([held_open_refusal()] * 2)

    def as_windows(source, target):
        if (refused := next(refusals, None)) is not None:
            raise refused
        real_replace(source, target)

    monkeypatch.setattr(storage, "REPLACE_WAIT_S", 0.001)
    monkeypatch.setattr(os, "replace", as_windows)
    path = tmp_path / "status.json"
    storage.write_json_atomic(path, {"state": "finished"})
    assert storage.read_json(path) == {"state": "finished"} and [p.name for p in tmp_path.iterdir()] == ["status.json"]
    refusals = iter([held_open_refusal()] * storage.REPLACE_TRIES)
    with pytest.raises(PermissionError):
        storage.write_json_atomic(path, {"state": "failed"})
    assert storage.read_json(path) == {"state": "finished"} and [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_real_permission_error_is_raised_at_once(tmp_path, monkeypatch):
    """Only Windows's refusal for a file held open is waited out: a folder the server may not
    write to is said at once, not after 2 s of retries."""
    from catdog import storage

    tries = []

    def refused(source, target):
        tries.append(target)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(PermissionError):
        storage.write_json_atomic(tmp_path / "status.json", {"state": "finished"})
    assert len(tries) == 1 and list(tmp_path.iterdir()) == []
