"""`ray-app stack`: the local stack of real engines (Kafka, Elasticsearch, a Ray head) - up, down, status, fetch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ray_app.cli.common import console, fail, settings_of
from ray_app.config import Settings
from ray_app.errors import ActionableError
from ray_app.jvm_artifacts import BUNDLES, ArtifactError, ensure_bundle
from spark_jobs.stream_jar import ensure_stream_jar

stack_app = typer.Typer(no_args_is_help=True, help="The local stack of real engines: Kafka, Elasticsearch, Ray.")


def _short(path: Path, settings: Settings) -> str:
    return str(path.relative_to(settings.state_dir)) if path.is_relative_to(settings.state_dir) else str(path)


def status_table(states, title: str, settings: Settings) -> Table:
    table = Table(title=f"{title}   (paths under {settings.state_dir})", title_justify="left")
    for column in ("service", "pid", "address", "healthy", "data", "log"):
        table.add_column(column, overflow="fold")
    for state in states:
        health = "[green]yes[/]" if state.healthy else "[red]no[/]"
        pid = str(state.pid) if state.pid else "-"
        note = f" ({state.action})" if getattr(state, "action", "") else ""
        table.add_row(
            state.name + note,
            pid,
            state.address,
            health,
            _short(state.data_dir, settings),
            _short(state.log_file, settings),
        )
    return table


def start_stack(settings: Settings) -> None:
    """Bring the local stack up with a spinner, then print its table; StackError/ArtifactError propagate."""
    from ray_app.stack import manager

    with console.status("starting the local stack") as spinner:
        report = manager.up(settings, progress=lambda step: spinner.update(step))
    show_stack(settings, report)


def show_stack(settings: Settings, report) -> None:
    """The stack's table after `stack up`, what was downloaded, its notes."""
    console.print(status_table(report.services, f"local stack up in {report.seconds:.1f} s", settings))
    if report.downloaded:
        console.print(f"downloaded once into {settings.cache_dir}: {', '.join(report.downloaded)}")
    for note in report.notes:
        console.print(f"  {note}")


@stack_app.command("up")
def stack_up(ctx: typer.Context) -> None:
    """Start Kafka (KRaft), Elasticsearch and a Ray head; create topics and index templates. Safe to repeat."""
    settings = settings_of(ctx)
    try:
        start_stack(settings)
    except ActionableError as exc:
        fail(exc.one_line())


@stack_app.command("fetch")
def stack_fetch(
    ctx: typer.Context,
    bundles: Annotated[
        list[str] | None, typer.Argument(help="kafka, elasticsearch, spark (default: all)", show_default=False)
    ] = None,
) -> None:
    """Resolve the engines' artifacts with Maven into the cache, starting nothing (cluster nodes run this once)."""
    settings = settings_of(ctx)
    unknown = sorted(set(bundles or []) - set(BUNDLES))
    if unknown:
        fail(f"unknown bundle(s) {', '.join(unknown)}: choose from {', '.join(BUNDLES)}", code=2)
    for bundle in bundles or BUNDLES:
        try:
            with console.status(f"resolving {bundle} with Maven"):
                path, fresh = ensure_bundle(settings, bundle)  # type: ignore[arg-type]
        except ArtifactError as exc:
            fail(exc.one_line())
        console.print(f"{bundle}: {'fetched into' if fresh else 'already in'} {path}", highlight=False)
        if bundle == "spark":
            try:
                jar, built = ensure_stream_jar(settings)
            except ArtifactError as exc:
                fail(exc.one_line())
            console.print(
                f"the streaming job's JVM code: {'compiled into' if built else 'already in'} {jar}", highlight=False
            )


@stack_app.command("down")
def stack_down(ctx: typer.Context) -> None:
    """Stop what `stack up` started (by pid file): gracefully, then by force. Data is kept."""
    from ray_app.stack import manager

    settings = settings_of(ctx)
    with console.status("stopping the local stack") as spinner:
        stopped = manager.down(settings, progress=lambda step: spinner.update(step))
    for name, was_running in stopped:
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")


@stack_app.command("status")
def stack_status(ctx: typer.Context) -> None:
    """Each service: pid, address, healthy or not, data folder, log. Exit 1 unless all are healthy."""
    from ray_app.stack import manager

    settings = settings_of(ctx)
    states = manager.status(settings)
    console.print(status_table(states, "local stack", settings))
    if not all(state.healthy for state in states):
        raise typer.Exit(1)
