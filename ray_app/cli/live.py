"""`ray-app live`, `ray-app status`, `ray-app down`: start the live platform's parts as Ray jobs, see the whole pipeline
on one screen, stop all of it in order."""

from __future__ import annotations

import logging
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ray_app.cli.common import console, err_console, fail, settings_of
from ray_app.config import Settings
from ray_app.live.parts import BY_NAME, PART_NAMES
from ray_app.operations.status import PipelineStatus

live_app = typer.Typer(no_args_is_help=True, help="The live platform: its parts as Ray jobs (`ray-app status`).")

PartName = Enum("PartName", {name: name for name in PART_NAMES if name != "stream"}, type=str)  # type: ignore[misc]


def start_live(settings: Settings, config_file: Path | None, names: list[str] | None = None) -> bool:
    """Submit every part (or ``names``) that is not running; print what was started; False when Ray refused."""
    from ray_app.live.jobs import start_parts
    from spark_jobs.control import StreamControlError

    try:
        started = start_parts(settings, str(config_file) if config_file else None, names)
    except (StreamControlError, RuntimeError, ConnectionError) as exc:
        err_console.print(f"[red]live: the parts could not be submitted:[/] {escape(str(exc))}")
        return False
    print_started(started)
    return True


def print_started(started) -> None:
    """Each live part's job: submitted now, or running already."""
    for item in started:
        state = "submitted" if item.submitted else "already running (not started again)"
        console.print(f"live: {item.part:<11} {item.submission_id} {state}", highlight=False)


@live_app.command("start")
def start(
    ctx: typer.Context,
    part: Annotated[
        list[str] | None, typer.Option("--part", "-p", help=f"Only this part: {', '.join(PART_NAMES)}.")
    ] = None,
) -> None:
    """Submit the live parts as Ray jobs (each at most once: a running part is left alone)."""
    unknown = sorted(set(part or []) - set(PART_NAMES))
    if unknown:
        fail(f"unknown part {', '.join(unknown)}: the parts are {', '.join(PART_NAMES)}")
    if not start_live(settings_of(ctx), ctx.find_root().obj, part):
        raise typer.Exit(1)


def _job_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    for noisy in ("elastic_transport", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@live_app.command("run")
def run(ctx: typer.Context, part: Annotated[PartName, typer.Argument(help="The part to run in this process.")]) -> None:
    """Run one part in this process until SIGTERM: what each live Ray job's entrypoint is."""
    from ray_app.lifecycle import StopFlag
    from ray_app.metrics import export_wait_s, series_note
    from ray_app.ray_cluster import connect

    settings = settings_of(ctx)
    _job_logging()
    connect(settings)  # the platform's metrics go through Ray; and ray.init installs its own SIGTERM handler first
    print(series_note(), flush=True)
    chosen = BY_NAME[part.value]
    with StopFlag().on_signals() as stop:
        report = chosen.stage()(settings, stop)
    print(report.line(), flush=True)
    if chosen.flushes_metrics:
        time.sleep(export_wait_s())  # the last counts reach Prometheus: they equal the line above
    raise typer.Exit(0 if report.ok else 1)


# --- ray-app status ------------------------------------------------------------------------------------------


def status_screen(reading: PipelineStatus, settings: Settings) -> list[Table | str]:
    """What `ray-app status` prints for one reading of the pipeline."""
    shown: list[Table | str] = []
    stack = Table(title="stack", title_justify="left")
    for column in ("service", "state", "address"):
        stack.add_column(column)
    for service in reading.stack:
        stack.add_row(service.name, "[green]up[/]" if service.healthy else "[red]DOWN[/]", escape(service.address))
    shown.append(stack)
    if not reading.parts:  # the stack is down: nothing else was read
        return shown
    jobs = Table(title="Ray jobs (the Ray dashboard's Jobs view)", title_justify="left")
    for column in ("part", "job", "state", "does"):
        jobs.add_column(column, overflow="fold")
    for part in reading.parts:
        jobs.add_row(
            part.part,
            "-" if part.submission_id is None else part.submission_id,
            f"[green]{part.state}[/]" if part.running else f"[red]{part.state}[/]",
            part.does,
        )
    shown.append(jobs)
    serve_line = f"Serve app '{settings.serve.app_name}': {reading.serve_status}   " + "   ".join(
        f"{name} {', '.join(f'{count} {state}' for state, count in counts.items()) or 'no replicas'}"
        for name, counts in reading.serve_replicas.items()
    )
    shown.append(escape(serve_line))
    for source, why in reading.unreadable.items():
        shown.append(f"[red]could not read {source}:[/] {escape(why)} (its numbers below are missing, not zero)")
    lag = Table(title="behind Kafka (messages the stream has not committed)", title_justify="left")
    for column in ("query", "topic", "messages"):
        lag.add_column(column, justify="right" if column == "messages" else "left")
    for item in reading.lags:
        lag.add_row(item.query, item.topic, "-" if item.messages is None else f"{item.messages:,}")
    shown.append(lag)
    ages = ", ".join(
        f"{symbol} {'-' if age is None else f'{age:.0f} s'}" for symbol, age in reading.trade_age_s.items()
    )
    shown.append(escape(f"newest trade searchable in Elasticsearch, age: {ages}"))
    shown.append(escape(f"latest forecast run: {reading.latest_run}"))
    letters = ", ".join(f"{reason} {count:,}" for reason, count in sorted(reading.dead_letters.items())) or "none"
    shown.append(escape(f"dead letters in the last {reading.dead_letter_window_s / 60:.0f} min: {letters}"))
    shown.append(
        escape(
            f"watch: Ray dashboard {settings.ray.dashboard_url}   Prometheus {settings.prometheus.url}   "
            "Grafana: docs/grafana.md (Trading, Forecasting, Pipeline health)"
        )
    )
    return shown


def status(ctx: typer.Context) -> None:
    """The whole pipeline on one screen: the stack, each live job, Serve's replicas, lag behind Kafka, the newest
    trade's age, the latest forecast run, dead letters of the last hour. Exit code 1 when a part is down."""
    from ray_app.operations.status import pipeline_status

    settings = settings_of(ctx)
    try:
        reading = pipeline_status(settings)
    except Exception as exc:  # an engine answered nonsense or went away half-way: still one line, not a traceback
        fail(f"status: {type(exc).__name__}: {exc}")
    for item in status_screen(reading, settings):
        console.print(item, highlight=False, soft_wrap=True)
    if reading.down:
        err_console.print("[red]down:[/] " + escape("; ".join(reading.down)), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print("[green]everything runs[/]")


def down(ctx: typer.Context) -> None:
    """Stop all of it, in order: the live jobs (sources first, the stream last), the Serve app, then the stack.
    Data, checkpoints and the simulator's progress are kept: `make run` goes on from there."""
    from ray_app.operations.down import shut_down

    def step(text: str, ok: bool) -> None:
        if ok:
            console.print(f"down: {escape(text)}", highlight=False)
        else:
            err_console.print(f"[yellow]down:[/] {escape(text)}")

    shut_down(settings_of(ctx), step)
