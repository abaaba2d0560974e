"""Files written while others read or write them too."""

import threading

import numpy as np

from catdog.storage import save_npy_atomic


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
