"""Ray as the platform uses it: joining the cluster from a driver (the CLI, the streaming job, forecast runs,
`ray-app serve`), and Ray jobs (the client of the Ray dashboard's job API, what a job's environment holds, how long
a job gets to stop)."""

from __future__ import annotations

import json
import logging
import os

from ray.job_submission import JobStatus, JobSubmissionClient

from ray_app.config import CONFIG_FILE_ENV, ENV_NESTED_DELIMITER, ENV_PREFIX, SECRET_FIELDS, Settings
from ray_app.config.redaction import without_credentials

ACTIVE = {JobStatus.PENDING, JobStatus.RUNNING}
STOP_WAIT_ENV = "RAY_JOB_STOP_WAIT_TIME_S"  # read by Ray's job supervisor from the job's own environment
CLOSE_MARGIN_S = 30  # after the producer's flush: the purge, the spill journal's write, the last metrics export


def stop_grace(settings: Settings) -> dict[str, str]:
    """How long Ray's job supervisor waits after SIGTERM before SIGKILL. Ray's default, 3 s, cuts a clean stop short
    (the stream's queries, the producer's flush, the last metrics export); an ingest's close flushes for up to
    ``ingest.flush_timeout_s`` and then writes what Kafka did not take to its spill journal, so the grace is longer
    than that flush (at least 60 s)."""
    return {STOP_WAIT_ENV: str(int(max(60, settings.ingest.flush_timeout_s + CLOSE_MARGIN_S)))}


# settings about the machine they are read on, never shipped to a job: the job's node has its own (its environment
# or config file); the CLI's paths may not exist there (docs/operations.md, "What is shared, and where")
NODE_LOCAL_SETTINGS = frozenset({"state_dir", "cache_dir", "stack"})


class JobApiError(RuntimeError):
    """The Ray dashboard's job API cannot be used (Ray is unreachable), or a job did not do what it should."""


def use_auth_mode(settings: Settings) -> None:
    """Make this process's Ray clients (ray.init, the job client, `ray` subprocesses) use ``ray.auth_mode``.

    Ray 2.60 turns token authentication on by itself whenever ``~/.ray/auth_token`` exists (any local ``ray.init()``
    writes one), so the mode is always set explicitly, for the head and for every client.
    """
    os.environ["RAY_AUTH_MODE"] = settings.ray.auth_mode


def dashboard_headers(settings: Settings) -> dict[str, str]:
    """What a request to the Ray dashboard's HTTP API must carry: the cluster's token when ``ray.auth_mode`` is
    ``token`` (Ray's own job client adds it the same way; without it the dashboard answers 401)."""
    if settings.ray.auth_mode != "token":
        return {}
    use_auth_mode(settings)
    from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled
    from ray._raylet import Config  # type: ignore[attr-defined]  # a Cython class, no stub

    Config.initialize("")  # Ray caches the mode: let it see RAY_AUTH_MODE=token
    return dict(get_auth_headers_if_auth_enabled({}))


def connect(settings: Settings) -> None:
    """Join the cluster once: inside a Ray job its own (RAY_ADDRESS), else ``ray.address``; auth mode explicit."""
    import ray

    if not ray.is_initialized():
        use_auth_mode(settings)
        address = os.environ.get("RAY_ADDRESS") or settings.ray.address
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)


def current_node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def job_client(settings: Settings) -> JobSubmissionClient:
    """The Ray dashboard's job API."""
    use_auth_mode(settings)
    try:
        return JobSubmissionClient(settings.ray.dashboard_url)
    except (ConnectionError, RuntimeError) as exc:
        raise JobApiError(
            f"cannot reach the Ray dashboard at {settings.ray.dashboard_url} ({exc}); is the stack up "
            "(`ray-app stack up`)?"
        ) from exc


def job_environment(settings: Settings, config_file: str | None) -> dict[str, str]:
    """A job's settings: every non-secret setting as parsed here, as RAY_APP_* variables (what the job would
    otherwise miss: the caller's environment), and the config file. Built from the settings, not by picking
    variable names, so no spelling of a secret (a lower-case name, a whole section as JSON, a URL's password)
    can reach the job's metadata, which the Ray dashboard shows. Secrets reach the job from the Ray head's own
    environment or the config file. Node-local settings (``NODE_LOCAL_SETTINGS``: paths on this machine) stay here:
    the job reads its own node's."""
    env: dict[str, str] = {}

    def put(path: list[str], value: object) -> None:
        if path[-1] in SECRET_FIELDS or value is None:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                put([*path, key], item)
            return
        name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(path).upper()
        env[name] = value if isinstance(value, str) else json.dumps(value)

    for key, value in without_credentials(json.loads(settings.model_dump_json())).items():
        if key not in NODE_LOCAL_SETTINGS:
            put([key], value)
    if config_file:
        env[CONFIG_FILE_ENV] = os.path.abspath(config_file)
    return env
