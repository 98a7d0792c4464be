"""`ray-app live`, `ray-app status`, `ray-app down`: start the live platform's parts as Ray jobs, see the whole pipeline
on one screen, stop all of it in order."""

from __future__ import annotations

import logging
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from ray_app.cli.common import console, err_console, fail, settings_of
from ray_app.config import Settings
from ray_app.live.jobs import PART_NAMES, PARTS

live_app = typer.Typer(no_args_is_help=True, help="The live platform: its parts as Ray jobs (`ray-app status`).")

PartName = Enum("PartName", {name: name for name in PART_NAMES if name != "stream"}, type=str)  # type: ignore[misc]


def start_live(settings: Settings, config_file: Path | None, names: list[str] | None = None) -> bool:
    """Submit every part (or ``names``) that is not running; print what was started; False when Ray refused."""
    from ray_app.live.jobs import start_parts
    from ray_app.stream_control import StreamControlError

    try:
        started = start_parts(settings, str(config_file) if config_file else None, names)
    except (StreamControlError, RuntimeError, ConnectionError) as exc:
        err_console.print(f"[red]live: the parts could not be submitted:[/] {escape(str(exc))}")
        return False
    for item in started:
        state = "submitted" if item.submitted else "already running (not started again)"
        console.print(f"live: {item.part:<11} {item.submission_id} {state}", highlight=False)
    return True


@live_app.command("start")
def start(
    ctx: typer.Context,
    part: Annotated[list[str] | None, typer.Option("--part", "-p", help=f"Only this part: {', '.join(PART_NAMES)}.")]
    = None,
) -> None:
    """Submit the live parts as Ray jobs (each at most once: a running part is left alone)."""
    unknown = sorted(set(part or []) - set(PART_NAMES))
    if unknown:
        fail(f"unknown part {', '.join(unknown)}: the parts are {', '.join(PART_NAMES)}")
    if not start_live(settings_of(ctx), ctx.find_root().obj, part):
        raise typer.Exit(1)


def _job_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)  # fmt: skip
    for noisy in ("elastic_transport", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@live_app.command("run")
def run(ctx: typer.Context, part: Annotated[PartName, typer.Argument(help="The part to run in this process.")]) -> None:
    """Run one part in this process until SIGTERM: what each live Ray job's entrypoint is."""
    from ray_app.lifecycle import StopFlag
    from ray_app.ray_cluster import connect

    settings = settings_of(ctx)
    _job_logging()
    connect(settings)  # the platform's metrics go through Ray; and ray.init installs its own SIGTERM handler first
    from ray_app.metrics import series_note

    print(series_note(), flush=True)
    name = part.value
    with StopFlag().on_signals() as stop:
        if name == "simulator":
            from ray_app.ingest import IngestOptions, SourceName, run_ingest
            from ray_app.metrics import export_wait_s

            report = run_ingest(settings, IngestOptions(source=SourceName.SIMULATE, live=True, progress=False),
                                stop, on_message=print)  # fmt: skip
            print(report.line(), flush=True)
            time.sleep(export_wait_s())  # the last counts reach Prometheus: they equal the line above
            raise typer.Exit(0 if report.ok else 1)
        if name == "indicators":
            from ray_app.indicators.runner import run_indicators

            def cycle(report) -> None:
                written = sum(report.written.values())
                if written:
                    print(f"indicators: {written} documents in {report.seconds:.2f} s", flush=True)

            run_indicators(settings, stop, on_cycle=cycle)
        elif name == "forecaster":
            from ray_app.live.schedule import run_forecaster

            run_forecaster(settings, stop)
        elif name == "recommender":
            from ray_app.live.schedule import run_recommender

            run_recommender(settings, stop)
        elif name == "monitor":
            from ray_app.live.monitor import run_monitor

            run_monitor(settings, stop)


# --- ray-app status ------------------------------------------------------------------------------------------


def serve_replicas(settings: Settings) -> tuple[str, dict[str, dict[str, int]]]:
    """The Serve app's status and each deployment's replicas by state, from the Ray dashboard's REST API."""
    answer = httpx.get(f"{settings.ray.dashboard_url}/api/serve/applications/", timeout=10)
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
    from ray_app.forecast import store

    run = store.latest_run(es, settings)
    if run is None:
        return "none yet", False
    text = (f"{run.get('run_id')} {run.get('status')}: {run.get('forecasted', 0)} of {len(run.get('symbols', []))} "
            f"symbols, cut-off {run.get('as_of')}, {run.get('duration_s', 0):.0f} s, finished {run.get('finished_at')}")
    return text, run.get("status") in {"complete", "partial"}


def pipeline_status(settings: Settings) -> tuple[list[Table | str], list[str]]:
    """The screen `ray-app status` prints, and what is down (empty: everything runs)."""
    from ray_app.es_indices import client
    from ray_app.live.jobs import is_running, job_states
    from ray_app.live.monitor import read_health
    from ray_app.stack.manager import status as stack_status

    down: list[str] = []
    shown: list[Table | str] = []
    stack = Table(title="stack", title_justify="left")
    for column in ("service", "state", "address"):
        stack.add_column(column)
    for service in stack_status(settings):
        stack.add_row(service.name, "[green]up[/]" if service.healthy else "[red]DOWN[/]", escape(service.address))
        if not service.healthy:
            down.append(f"stack: {service.name}")
    shown.append(stack)
    if down:
        return shown, down

    jobs = Table(title="Ray jobs (the Ray dashboard's Jobs view)", title_justify="left")
    for column in ("part", "job", "state", "does"):
        jobs.add_column(column, overflow="fold")
    states = job_states(settings)
    for part in PARTS:
        job = states.get(part.name)
        state = job.status.value if job else "NOT STARTED"
        jobs.add_row(part.name, (job.submission_id or "") if job else "-",
                     f"[green]{state}[/]" if is_running(job) else f"[red]{state}[/]", part.does)  # fmt: skip
        if not is_running(job):
            down.append(f"job: {part.name} ({state})")
    shown.append(jobs)

    try:
        app_status, replicas = serve_replicas(settings)
    except (httpx.HTTPError, ValueError) as exc:
        app_status, replicas = f"unknown ({exc})", {}
    serve_line = f"Serve app '{settings.serve.app_name}': {app_status}   " + "   ".join(
        f"{name} {', '.join(f'{count} {state}' for state, count in counts.items()) or 'no replicas'}"
        for name, counts in replicas.items()
    )
    shown.append(escape(serve_line))
    if app_status != "RUNNING":
        down.append(f"serve: {app_status}")

    es = client(settings)
    health = read_health(settings, es)
    lag = Table(title="behind Kafka (messages the stream has not committed)", title_justify="left")
    for column in ("query", "topic", "messages"):
        lag.add_column(column, justify="right" if column == "messages" else "left")
    for item in health.lags:
        lag.add_row(item.query, item.topic, "-" if item.messages is None else f"{item.messages:,}")
    shown.append(lag)
    ages = ", ".join(f"{symbol} {'-' if age is None else f'{age:.0f} s'}" for symbol, age in health.trade_age_s.items())
    shown.append(escape(f"newest trade searchable in Elasticsearch, age: {ages}"))
    known = [age for age in health.trade_age_s.values() if age is not None]
    if not known or min(known) > settings.live.max_trade_age_s:
        down.append(f"flow: no trade newer than {settings.live.max_trade_age_s:.0f} s in Elasticsearch")
    run_text, run_ok = latest_run_line(settings, es)
    shown.append(escape(f"latest forecast run: {run_text}"))
    if not run_ok:
        down.append("forecast: no complete run")
    letters = ", ".join(f"{reason} {count:,}" for reason, count in sorted(health.dead_letters.items())) or "none"
    shown.append(escape(f"dead letters in the last {health.window_s / 60:.0f} min: {letters}"))
    shown.append(escape(f"watch: Ray dashboard {settings.ray.dashboard_url}   Prometheus {settings.prometheus.url}   "
                        "Grafana: docs/grafana.md (Trading, Forecasting, Pipeline health)"))  # fmt: skip
    return shown, down


def status(ctx: typer.Context) -> None:
    """The whole pipeline on one screen: the stack, each live job, Serve's replicas, lag behind Kafka, the newest
    trade's age, the latest forecast run, dead letters of the last hour. Exit code 1 when a part is down."""
    settings = settings_of(ctx)
    try:
        shown, down = pipeline_status(settings)
    except Exception as exc:  # an engine answered nonsense or went away half-way: still one line, not a traceback
        fail(f"status: {type(exc).__name__}: {exc}")
    for item in shown:
        console.print(item, highlight=False, soft_wrap=True)
    if down:
        err_console.print("[red]down:[/] " + escape("; ".join(down)), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print("[green]everything runs[/]")


def down(ctx: typer.Context) -> None:
    """Stop all of it, in order: the live jobs (sources first, the stream last), the Serve app, then the stack.
    Data, checkpoints and the simulator's progress are kept: `make run` goes on from there."""
    from ray_app.live.jobs import stop_parts
    from ray_app.stack import manager
    from ray_app.stream_control import StreamControlError

    settings = settings_of(ctx)
    ray_up = any(state.name == "ray" and state.healthy for state in manager.status(settings))
    if ray_up:
        try:
            for submission_id in stop_parts(settings):
                console.print(f"down: stopped job {submission_id}", highlight=False)
        except StreamControlError as exc:
            err_console.print(f"[yellow]down: could not list the jobs:[/] {escape(str(exc))}")
        try:
            answer = httpx.delete(f"{settings.ray.dashboard_url}/api/serve/applications/", timeout=120)
            console.print(f"down: Serve shut down (HTTP {answer.status_code})", highlight=False)
        except httpx.HTTPError as exc:
            err_console.print(f"[yellow]down: Serve did not answer:[/] {escape(str(exc))}")
    for name, was_running in manager.down(settings, progress=lambda text: None):
        console.print(f"down: {name} {'stopped' if was_running else 'was not running'}", highlight=False)
