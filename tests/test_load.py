"""A class at once: many sessions in one server, through Streamlit's own protocol (tests/protocol.py).

Browsers would load the machine more than the server does; the protocol client makes the same
requests a tab makes. Speed goals live in benchmarks/classroom.py; this test only asks that
every session gets its answer, without an error.
"""

import asyncio

from browser import Dashboard
from protocol import classroom
from support import synthetic_photos

SESSIONS = 10
# Generous: on 2 shared cores the first session imports TensorFlow and loads the model.
STEP_TIMEOUT_S = 300


def test_a_class_of_sessions_at_once_all_get_their_answer(trained_run_dir, tiny_data, tmp_path):
    env = {"CATDOG_RUNS_DIR": str(trained_run_dir), "CATDOG_DATA_DIR": str(tiny_data)}
    with Dashboard(env, tmp_path / "streamlit.log") as server:
        visits = asyncio.run(
            classroom(server.url, "predict", synthetic_photos(SESSIONS), ["cats", "dogs"], STEP_TIMEOUT_S)
        )
    assert [visit.errors for visit in visits] == [[]] * SESSIONS
    assert [visit.answer in ("cats", "dogs") for visit in visits] == [True] * SESSIONS
    assert all(visit.page_ready_s and visit.answer_s for visit in visits)
