"""Training runs on a Ray cluster: each run is one Ray job, and Ray's queue replaces the local one.

With CATDOG_RAY_ADDRESS set to a Ray head's job-server address (http://HEAD:8265, the port of
Ray's dashboard), `RunStore.submit` hands each run to Ray as a job: its submission id is the run
id and its entrypoint the training command the local queue runs. Ray starts as many as the
cluster has room for, one GPU each when the cluster has GPUs, else one CPU each; the others wait
in Ray's queue and read as queued. The training process writes its run folder as it does on one
machine, so the runs, data and cache folders must be on storage every node sees, at the same
path. A run records its head's address at submission, so it reads the same wherever it is read.

Ray is imported here only, and only when a run uses it: the default install has no Ray.
"""

from __future__ import annotations

import functools
import shlex
import sys
from typing import TYPE_CHECKING

from catdog import config
from catdog.messages import Message
from catdog.runs.states import ACTIVE, RunError

if TYPE_CHECKING:
    from catdog.access import Actor
    from catdog.runs.record import Run
    from catdog.runs.store import RunStore
    from catdog.settings import RunConfig

# Ray's message for a failed entrypoint goes on with the job's whole log; the run keeps the reason.
_LOG_IN_MESSAGE = ", last available logs"


def submit(store: RunStore, run_config: RunConfig | dict, *, owner: Actor) -> Run:
    """Records a queued run and submits it as a Ray job; returns at once."""
    address = config.ray_address()
    # An unreachable cluster is refused before a run is recorded.
    client, resources = _client(address), _resources_per_run(address)
    run = store.create(run_config, owner=owner, ray_address=address)
    try:
        client.submit_job(
            entrypoint=shlex.join([sys.executable, "-m", "catdog.training", str(run.path)]),
            submission_id=run.id,
            runtime_env={"env_vars": config.folder_env(store.root)},
            **resources,
        )
    except (OSError, RuntimeError) as error:
        run.mark("failed", error=f"the Ray cluster did not take the run: {error}")
        raise RunError(
            Message("the Ray cluster at {address} did not take the run ({error})", address=address, error=str(error))
        ) from None
    return run


def job_status(run: Run, recorded: dict) -> dict:
    """A Ray run's status while its record says queued or running, as its job stands.

    A job that ended without the run recording its end (its process killed, the node lost, the
    job stopped) is recorded now: cancelled, or failed with Ray's reason. While the cluster
    cannot be asked, the record stands.
    """
    try:
        job = _client(recorded["ray_address"]).get_job_info(run.id)
    except (RunError, OSError, RuntimeError):
        return recorded
    if job.status == "PENDING":
        return {**recorded, "state": "queued"}
    if job.status == "RUNNING":
        # Ray's word until the training process, still importing TensorFlow, marks itself running.
        return {**recorded, "state": "running"}
    # The job has ended, and a training process records its end before it exits.
    if run.recorded_status().get("state") not in ACTIVE:
        return run.status()
    if job.status == "STOPPED" or run.cancel_requested:
        return run.mark("cancelled")
    reason = (job.message or job.status).splitlines()[0].split(_LOG_IN_MESSAGE)[0]
    return run.mark("failed", error=f"the Ray job failed: {reason} (its log: ray job logs {run.id})")


def stop(run: Run, recorded: dict) -> None:
    """Stops a run's job: Ray takes it out of its queue, or ends its process within seconds."""
    address = recorded["ray_address"]
    try:
        _client(address).stop_job(run.id)
    except (OSError, RuntimeError) as error:
        raise RunError(
            Message("the Ray cluster at {address} did not stop the job ({error})", address=address, error=str(error))
        ) from None


@functools.cache
def _client(address: str):
    """One job client per head: it checks the head's Ray version when made."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise RunError(
            Message(
                "{variable} is set but Ray is not installed: {command}",
                variable=config.RAY_ADDRESS_VAR,
                command="pip install 'catdog[ray]'",
            )
        ) from None
    try:
        return JobSubmissionClient(address)
    except (OSError, RuntimeError) as error:
        raise RunError(
            Message("no Ray job server answers at {address} ({error})", address=address, error=str(error))
        ) from None


def _resources_per_run(address: str) -> dict[str, int]:
    """One GPU when any live node has one, else one CPU: the state API on the same address, no driver."""
    from ray.util.state import list_nodes
    from ray.util.state.exception import RayStateApiException

    try:
        nodes = list_nodes(address=address, filters=[("state", "=", "ALIVE")], detail=True)
    except (RayStateApiException, OSError) as error:
        raise RunError(
            Message("the Ray cluster at {address} did not list its nodes ({error})", address=address, error=str(error))
        ) from None
    if any(node.resources_total.get("GPU", 0) > 0 for node in nodes):
        return {"entrypoint_num_gpus": 1}
    return {"entrypoint_num_cpus": 1}
