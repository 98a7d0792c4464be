"""`ray-app stream`: the Spark Structured Streaming job on Ray (RayDP) - start it as a Ray job, run its driver, stop
it, show its queries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ray_app.cli.common import console, fail, settings_of
from ray_app.config import Settings
from ray_app.jvm_artifacts import ArtifactError

stream_app = typer.Typer(
    invoke_without_command=True,
    help="The Spark streaming job on Ray: Kafka -> Elasticsearch (trades, bars-1m, bars-1h, dead-letters).",
)


def lag_text(lags) -> str:
    return ", ".join(f"{lag.query} {'-' if lag.messages is None else f'{lag.messages:,}'}" for lag in lags)


def start_stream(
    settings: Settings, config_file: Path | None, wait: bool, timeout_s: float, reset: bool = False
) -> None:
    from spark_jobs.control import StreamControlError, submit, wait_caught_up

    try:
        submission_id, submitted = submit(settings, str(config_file) if config_file else None, reset=reset)
        if reset:
            console.print("the job discards the stream's checkpoints before it starts: Kafka is read from the start")
        console.print(
            f"streaming job {submission_id} "
            + ("submitted" if submitted else "is already running (not started again)")
            + f"; logs: ray job logs --address {settings.ray.dashboard_url} -f {submission_id}",
            highlight=False,
        )
        if not wait:
            return
        with console.status("waiting for the streaming job") as spinner:

            def tick(state, lags) -> None:
                spinner.update(f"streaming job {state.value.lower()}; messages behind Kafka: {lag_text(lags) or '-'}")

            lags = wait_caught_up(settings, submission_id, timeout_s, on_tick=tick)
        console.print(f"caught up with Kafka ({lag_text(lags)} messages behind)", highlight=False)
    except StreamControlError as exc:
        fail(str(exc))


def index_table(settings: Settings, title: str) -> Table:
    from ray_app.es_indices import document_counts

    return document_table(document_counts(settings), title)


def document_table(documents: dict[str, int], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("index")
    table.add_column("documents", justify="right")
    for index, count in documents.items():
        table.add_row(index, f"{count:,}")
    return table


@stream_app.callback()
def stream(
    ctx: typer.Context,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Discard the checkpoints first: re-read Kafka from the "
            "start (documents are overwritten, not doubled).",
        ),
    ] = False,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run the driver in this process, not as a Ray job; Ctrl-C stops it.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the job has caught up with Kafka.")] = True,
    timeout: Annotated[float, typer.Option(help="--wait: give up waiting after this many seconds.")] = 900,
) -> None:
    """Start the streaming job as a Ray job (one at a time) and wait until it has caught up with Kafka.

    Subcommands: `stream status`, `stream stop`."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    config_file = ctx.find_root().obj
    if foreground:
        if reset:
            from spark_jobs.checkpoints import CheckpointInUse, reset_checkpoints

            try:
                if reset_checkpoints(settings):
                    console.print(f"discarded the checkpoints in {settings.stream_checkpoint_dir}")
            except CheckpointInUse as exc:
                fail(str(exc))
        raise typer.Exit(run_driver(settings))
    start_stream(settings, config_file, wait, timeout, reset=reset)
    console.print(index_table(settings, "Elasticsearch"))


@stream_app.command("stop")
def stream_stop(ctx: typer.Context) -> None:
    """Stop the streaming job (its queries stop; the checkpoints stay, so the next start goes on from there)."""
    from spark_jobs.control import StreamControlError, stop

    try:
        stopped = stop(settings_of(ctx))
    except StreamControlError as exc:
        fail(str(exc))
    console.print(f"stopped {', '.join(stopped)}" if stopped else "no streaming job was running")


@stream_app.command("status")
def stream_status(ctx: typer.Context) -> None:
    """The streaming job, its queries (batches, documents, restarts, lag behind Kafka) and the indices."""
    from ray_app.ray_cluster import job_client
    from spark_jobs.control import StreamControlError, lags, running_job
    from spark_jobs.status import read_status

    settings = settings_of(ctx)
    try:
        job = running_job(job_client(settings))
    except StreamControlError as exc:
        fail(str(exc))
    status = read_status(settings)
    # the driver's own view (its node's paths), from Elasticsearch: this machine may be neither the driver's nor a node
    checkpoints = status.checkpoint_dir if status else settings.stream_checkpoint_dir
    console.print(
        f"streaming job: {f'{job.submission_id} {job.status.value}' if job else 'not running'}; "
        f"checkpoints: {checkpoints}",
        highlight=False,
    )
    behind = {lag.query: lag.messages for lag in lags(settings)}
    table = Table(title="streaming queries (this driver)", title_justify="left")
    columns = (
        "query",
        "writes",
        "state",
        "batches",
        "rows",
        "rows/s",
        "last batch",
        "latency",
        "documents",
        "refused",
        "copies",
        "restarts",
        "behind",
        "last error",
    )
    for column in columns:
        table.add_column(
            column, justify="left" if column in {"query", "writes", "state", "last error"} else "right", overflow="fold"
        )
    for name, query in status.queries.items() if status else []:
        documents = sum(query.indexed.values())
        lag = behind.get(name)
        latency = "-" if query.last_batch_latency_s is None else f"{query.last_batch_latency_s:,.1f} s"
        table.add_row(
            name,
            ", ".join(query.writes),
            query.state,
            f"{query.batches:,}",
            f"{query.rows:,}",
            f"{query.rows_per_s:,.0f}",
            f"{query.last_batch_seconds:.2f} s",
            latency,
            f"{documents:,}",
            f"{query.rejected:,}",
            f"{query.duplicates:,}",
            str(query.restarts),
            "-" if lag is None else f"{lag:,}",
            escape(query.last_error or ""),
        )
    console.print(table)
    timed = [query for query in status.queries.values() if query.timed_batches] if status else []
    if timed:
        from spark_jobs.status import PHASES

        phases = Table(
            title="where a batch's time goes (mean per batch, ms; `bulk` and `state` are inside `write`)",
            title_justify="left",
        )
        phases.add_column("query")
        for phase in PHASES:
            phases.add_column(phase, justify="right")
        for query in timed:
            phases.add_row(
                query.name,
                *(f"{query.phase_seconds.get(phase, 0) / query.timed_batches * 1000:,.0f}" for phase in PHASES),
            )
        console.print(phases)
    console.print(index_table(settings, "Elasticsearch"))


def run_driver(settings: Settings, reset: bool = False) -> int:
    """The streaming job's driver in this process, until its queries stop; returns the exit code.

    Refusals a person can act on (the checkpoints in use by another driver, Kafka refusing or unreachable, Java
    or an artifact missing) end it with their one-line message."""
    from ray_app.kafka_clients import KafkaUnavailable
    from ray_app.lifecycle import StopFlag
    from spark_jobs.checkpoints import CheckpointInUse
    from spark_jobs.job import configure_logging, run
    from spark_jobs.shared_storage import NotSharedStorage

    configure_logging()
    try:
        report = run(settings, StopFlag(), reset=reset)  # SIGTERM and Ctrl-C set the flag once the query runs
        return 0 if report.ok else 1
    except (CheckpointInUse, KafkaUnavailable, NotSharedStorage) as exc:
        fail(str(exc))
    except ArtifactError as exc:
        fail(exc.one_line())


@stream_app.command("driver")
def stream_driver(
    ctx: typer.Context,
    reset: Annotated[bool, typer.Option("--reset", help="Discard the checkpoints first (re-read Kafka).")] = False,
) -> None:
    """The streaming job's driver itself: what `ray-app stream` submits as a Ray job (`python -m ray_app stream
    driver`), run here in the foreground. Also `python -m ray_app stream driver`."""
    raise typer.Exit(run_driver(settings_of(ctx), reset=reset))


@stream_app.command("upgrade")
def stream_upgrade(ctx: typer.Context) -> None:
    """Bring data an earlier version stored up to this one, in place (the stream stopped): stock trades under per-day
    ids, Alpaca's bars moved beside ours, every bar recomputed with the sale-condition rules. Running it again
    finds nothing to do."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from ray_app.bars.upgrade import UpgradeFailed, upgrade
    from ray_app.es_indices import es_client
    from ray_app.ray_cluster import job_client as jobs_client
    from spark_jobs.bar_recompute import IncompleteRead
    from spark_jobs.checkpoints import CheckpointInUse, checkpoint_lock
    from spark_jobs.control import StreamControlError, running_job

    settings = settings_of(ctx)
    try:
        current = running_job(jobs_client(settings))
    except StreamControlError:
        current = None  # no Ray to ask: the checkpoint lock below still keeps a local driver out
    if current is not None:
        fail(f"the streaming job {current.submission_id} is running: `ray-app stream stop` first, then upgrade")
    try:
        with checkpoint_lock(settings.stream_checkpoint_dir), console.status("upgrading") as spinner:

            def step(text: str) -> None:
                spinner.update(text)
                console.print(text, highlight=False)

            report = upgrade(settings, es_client(settings), step)
    except CheckpointInUse as exc:
        fail(str(exc))
    except (UpgradeFailed, IncompleteRead, TransportError, ApiError) as exc:
        fail(f"the upgrade stopped (run it again to go on): {exc}")
    console.print(
        f"upgraded in {report.seconds:.1f} s: {report.trades_renamed:,} stock trades under per-day ids, "
        f"{report.aliases:,} aliases of corrected ids, {report.vendor_bars_moved:,} of Alpaca's bars moved "
        f"to the vendor indices, {report.minutes:,} minute and {report.hours:,} hour bars recomputed",
        highlight=False,
    )
