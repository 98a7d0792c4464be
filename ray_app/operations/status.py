"""The whole pipeline's health in one reading (what `ray-app status` renders): the stack, each live part's Ray job,
the Serve app's replicas, the stream's lag behind Kafka, the newest trade's age, the latest forecast run, the dead
letters of the last hour; and what of it is down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from ray_app.config import Settings
from ray_app.ray_cluster import dashboard_headers


@dataclass(frozen=True)
class ServiceState:
    name: str
    healthy: bool
    address: str


@dataclass(frozen=True)
class PartState:
    part: str
    submission_id: str | None  # None: never submitted
    state: str
    running: bool
    does: str


@dataclass
class PipelineStatus:
    """One reading of the pipeline; ``down`` lists what is not running (empty: everything runs). Past a stack that
    is down, nothing else is read (the other fields stay empty)."""

    stack: list[ServiceState] = field(default_factory=list)
    parts: list[PartState] = field(default_factory=list)
    serve_status: str = ""
    serve_replicas: dict[str, dict[str, int]] = field(default_factory=dict)
    lags: list[Any] = field(default_factory=list)  # spark_jobs.control.TopicLag
    trade_age_s: dict[str, float | None] = field(default_factory=dict)
    latest_run: str = ""
    dead_letters: dict[str, int] = field(default_factory=dict)
    dead_letter_window_s: float = 0.0
    down: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # source -> why the reading failed (no values from it)


def serve_replicas(settings: Settings) -> tuple[str, dict[str, dict[str, int]]]:
    """The Serve app's status and each deployment's replicas by state, from the Ray dashboard's REST API."""
    answer = httpx.get(
        f"{settings.ray.dashboard_url}/api/serve/applications/", timeout=10, headers=dashboard_headers(settings)
    )
    answer.raise_for_status()
    app = (answer.json().get("applications") or {}).get(settings.serve.app_name)
    if not app:
        return "NOT DEPLOYED", {}
    replicas: dict[str, dict[str, int]] = {}
    for name, deployment in (app.get("deployments") or {}).items():
        states: dict[str, int] = {}
        for replica in deployment.get("replicas") or []:
            states[replica.get("state", "?")] = states.get(replica.get("state", "?"), 0) + 1
        replicas[name] = states
    return str(app.get("status")), replicas


def latest_run_line(settings: Settings, es: Any) -> tuple[str, bool]:
    """The latest forecast run in a line, and whether it is complete (or partial)."""
    from ray_app.forecast import store

    run = store.latest_run(es, settings)
    if run is None:
        return "none yet", False
    text = (
        f"{run.get('run_id')} {run.get('status')}: {run.get('forecasted', 0)} of {len(run.get('symbols', []))} "
        f"symbols, cut-off {run.get('as_of')}, {run.get('duration_s', 0):.0f} s, finished {run.get('finished_at')}"
    )
    return text, run.get("status") in {"complete", "partial"}


def pipeline_status(settings: Settings) -> PipelineStatus:
    """Read the pipeline's health; see :class:`PipelineStatus`."""
    from ray_app.es_indices import es_client
    from ray_app.live.jobs import is_running, job_states
    from ray_app.live.monitor import read_health
    from ray_app.live.parts import PARTS
    from ray_app.stack.manager import status as stack_status

    status = PipelineStatus()
    for service in stack_status(settings):
        status.stack.append(ServiceState(service.name, service.healthy, service.address))
        if not service.healthy:
            status.down.append(f"stack: {service.name}")
    if status.down:
        return status

    states = job_states(settings)
    for part in PARTS:
        job = states.get(part.name)
        state = job.status.value if job else "NOT STARTED"
        running = is_running(job)
        status.parts.append(PartState(part.name, (job.submission_id or "") if job else None, state, running, part.does))
        if not running:
            status.down.append(f"job: {part.name} ({state})")

    try:
        status.serve_status, status.serve_replicas = serve_replicas(settings)
    except (httpx.HTTPError, ValueError) as exc:
        status.serve_status = f"unknown ({exc})"
    if status.serve_status != "RUNNING":
        status.down.append(f"serve: {status.serve_status}")

    es = es_client(settings)
    health = read_health(settings, es)
    status.unreadable = dict(health.unreadable)
    for source, why in health.unreadable.items():
        status.down.append(f"{source}: could not be read ({why})")
    status.lags = list(health.lags)
    status.trade_age_s = dict(health.trade_age_s)
    known = [age for age in health.trade_age_s.values() if age is not None]
    if "elasticsearch" not in health.unreadable and (not known or min(known) > settings.live.max_trade_age_s):
        status.down.append(f"flow: no trade newer than {settings.live.max_trade_age_s:.0f} s in Elasticsearch")
    if "elasticsearch" in health.unreadable:
        status.latest_run = "could not be read (Elasticsearch)"
    else:
        status.latest_run, run_ok = latest_run_line(settings, es)
        if not run_ok:
            status.down.append("forecast: no complete run")
    status.dead_letters = dict(health.dead_letters)
    status.dead_letter_window_s = health.window_s
    return status
