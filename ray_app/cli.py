"""The `ray-app` command line (also `python -m ray_app`): settings, the local stack, the smoke round trip, the demo."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from ray_app.cli_common import console, err_console, fail, settings_of
from ray_app.config import Settings
from ray_app.forecast.command import forecast_app
from ray_app.schemas import STORED_TIMEFRAMES
from ray_app.stack.processes import StackError
from serve_deployments.command import recommend, serve_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective settings.")
stack_app = typer.Typer(no_args_is_help=True, help="The local stack of real engines: Kafka, Elasticsearch, Ray.")
stream_app = typer.Typer(
    invoke_without_command=True,
    help="The Spark streaming job on Ray: Kafka -> Elasticsearch (trades, bars-1m, bars-1h, dead-letters).",
)
app.add_typer(config_app, name="config")
app.add_typer(stack_app, name="stack")
app.add_typer(stream_app, name="stream")
app.add_typer(forecast_app, name="forecast")
app.add_typer(serve_app, name="serve")
app.command()(recommend)


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML file merged over configs/default.yaml (or set RAY_APP_CONFIG)."),
    ] = None,
) -> None:
    ctx.obj = config


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
) -> None:
    """Print the effective settings (defaults, file and environment merged; secrets masked)."""
    data = settings_of(ctx).masked()
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(yaml.safe_dump(data, sort_keys=False), end="", highlight=False, soft_wrap=True)


def _short(path: Path, settings: Settings) -> str:
    return str(path.relative_to(settings.state_dir)) if path.is_relative_to(settings.state_dir) else str(path)


def _status_table(states, title: str, settings: Settings) -> Table:
    table = Table(title=f"{title}   (paths under {settings.state_dir})", title_justify="left")
    for column in ("service", "pid", "address", "healthy", "data", "log"):
        table.add_column(column, overflow="fold")
    for state in states:
        health = "[green]yes[/]" if state.healthy else "[red]no[/]"
        pid = str(state.pid) if state.pid else "-"
        note = f" ({state.action})" if getattr(state, "action", "") else ""
        table.add_row(state.name + note, pid, state.address, health, _short(state.data_dir, settings),
                      _short(state.log_file, settings))  # fmt: skip
    return table


def _stack_up(settings: Settings) -> None:
    from ray_app.stack import manager

    with console.status("starting the local stack") as spinner:
        report = manager.up(settings, progress=lambda step: spinner.update(step))
    console.print(_status_table(report.services, f"local stack up in {report.seconds:.1f} s", settings))
    if report.downloaded:
        console.print(f"downloaded once into {settings.cache_dir}: {', '.join(report.downloaded)}")
    for note in report.notes:
        console.print(f"  {note}")


@stack_app.command("up")
def stack_up(ctx: typer.Context) -> None:
    """Start Kafka (KRaft), Elasticsearch and a Ray head; create topics and index templates. Safe to repeat."""
    settings = settings_of(ctx)
    try:
        _stack_up(settings)
    except StackError as exc:
        fail(exc.one_line())


@stack_app.command("fetch")
def stack_fetch(
    ctx: typer.Context,
    bundles: Annotated[
        list[str] | None, typer.Argument(help="kafka, elasticsearch, spark (default: all)", show_default=False)
    ] = None,
) -> None:
    """Resolve the engines' artifacts with Maven into the cache, starting nothing (cluster nodes run this once)."""
    from ray_app.stack.artifacts import BUNDLES, ensure_bundle, ensure_stream_jar

    settings = settings_of(ctx)
    unknown = sorted(set(bundles or []) - set(BUNDLES))
    if unknown:
        fail(f"unknown bundle(s) {', '.join(unknown)}: choose from {', '.join(BUNDLES)}", code=2)
    for bundle in bundles or BUNDLES:
        try:
            with console.status(f"resolving {bundle} with Maven"):
                path, fresh = ensure_bundle(settings, bundle)  # type: ignore[arg-type]
        except StackError as exc:
            fail(exc.one_line())
        console.print(f"{bundle}: {'fetched into' if fresh else 'already in'} {path}", highlight=False)
        if bundle == "spark":
            try:
                jar, built = ensure_stream_jar(settings)
            except StackError as exc:
                fail(exc.one_line())
            console.print(f"the streaming job's JVM code: {'compiled into' if built else 'already in'} {jar}",
                          highlight=False)  # fmt: skip


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
    console.print(_status_table(states, "local stack", settings))
    if not all(state.healthy for state in states):
        raise typer.Exit(1)


def _smoke(settings: Settings) -> bool:
    from ray_app.smoke import run_smoke

    with console.status("round trip through Kafka, Elasticsearch and Ray"):
        results = run_smoke(settings)
    table = Table(title="smoke round trip", title_justify="left")
    for column in ("engine", "result", "detail", "seconds"):
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(result.engine, "[green]ok[/]" if result.ok else "[red]FAILED[/]", escape(result.detail),
                      f"{result.seconds:.2f}")  # fmt: skip
    console.print(table)
    return all(result.ok for result in results)


@app.command()
def ingest(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--source", "-s", help="simulate | alpaca | backfill | replay")] = "simulate",
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: settings' symbols).")] = None,
    history_days: Annotated[float | None, typer.Option(help="simulate: days of history to make first.")] = None,
    live: Annotated[bool, typer.Option("--live", help="simulate: then go on in real time (paced by --speed).")] = False,
    trades_per_minute: Annotated[float | None, typer.Option(help="simulate: average trades/min per symbol.")] = None,
    seed: Annotated[int | None, typer.Option(help="simulate: random seed (same seed, same trades, every run).")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume",
                                         help="simulate: go on from where earlier runs left each symbol.")] = True,
    duration: Annotated[float | None, typer.Option(help="alpaca, simulate --live: stop after N seconds.")] = None,
    speed: Annotated[float, typer.Option(help="replay, simulate --live: x real time; 0 = as fast as possible.")] = 1.0,
    record: Annotated[Path | None, typer.Option(help="alpaca: also write the raw websocket frames here.")] = None,
    days: Annotated[float | None, typer.Option(help="backfill: days of bars (default alpaca.backfill_days).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="backfill: 1Min | 1Hour (what the stream stores).")] = None,
    file: Annotated[Path | None, typer.Option(help="replay: the recording to play.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Live progress line.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="As `ray-app --config`.")] = None,
) -> None:
    """Market data into Kafka (topics trades, bars; bad records to dead-letters). Ctrl-C flushes and exits."""
    from ray_app.ingest import IngestFailed, IngestOptions, KafkaUnreachable, SourceName, run_ingest
    from ray_app.ingest.alpaca_stream import AlpacaStreamError
    from ray_app.ingest.backfill import BackfillError
    from ray_app.ingest.journal import JournalBusy

    if config:
        ctx.find_root().obj = config
    settings = settings_of(ctx)
    try:
        chosen = SourceName(source)
    except ValueError:
        fail(f"--source must be one of {', '.join(s.value for s in SourceName)} (got {source!r})", code=2)
    if timeframe is not None and timeframe not in STORED_TIMEFRAMES:
        fail(f"--timeframe must be {' or '.join(STORED_TIMEFRAMES)}, the bars the stream stores (got {timeframe!r})",
             code=2)  # fmt: skip
    options = IngestOptions(
        source=chosen,
        symbols=[s.strip() for s in symbols.split(",") if s.strip()] if symbols else None,
        history_days=history_days, live=live, trades_per_minute=trades_per_minute, seed=seed, duration_s=duration,
        speed=speed, record=record, days=days, timeframe=timeframe, file=file, progress=progress, resume=resume,
    )  # fmt: skip
    try:
        report = run_ingest(settings, options, on_message=lambda text: err_console.print(escape(text)))
    except IngestFailed as exc:
        console.print(exc.report.line(), highlight=False)
        fail(f"ingest stopped: {exc}")
    except (AlpacaStreamError, BackfillError, KafkaUnreachable, JournalBusy, ValueError, OSError) as exc:
        fail(str(exc))
    console.print(report.line() + (f"; recorded {report.recorded_frames} frames to {record}" if record else ""),
                  highlight=False)  # fmt: skip
    if not report.ok:
        counters = report.counters
        fail(f"{counters.failed + counters.dropped + report.undelivered + report.kept} messages were not delivered"
             + (f": {counters.errors[:3]}" if counters.errors else ""))


def _lag_text(lags) -> str:
    return ", ".join(f"{lag.query} {'-' if lag.messages is None else f'{lag.messages:,}'}" for lag in lags)


def _start_stream(settings: Settings, config_file: Path | None, wait: bool, timeout_s: float) -> None:
    from ray_app.stream_control import StreamControlError, submit, wait_caught_up

    try:
        submission_id, submitted = submit(settings, str(config_file) if config_file else None)
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
                spinner.update(f"streaming job {state.value.lower()}; messages behind Kafka: {_lag_text(lags) or '-'}")

            lags = wait_caught_up(settings, submission_id, timeout_s, on_tick=tick)
        console.print(f"caught up with Kafka ({_lag_text(lags)} messages behind)", highlight=False)
    except StreamControlError as exc:
        fail(str(exc))


def _index_table(settings: Settings, title: str) -> Table:
    from ray_app.es_indices import client

    es = client(settings)
    table = Table(title=title, title_justify="left")
    table.add_column("index")
    table.add_column("documents", justify="right")
    for index in settings.elasticsearch.indices.by_key().values():
        count = es.count(index=index)["count"] if es.indices.exists(index=index) else 0
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
    if reset:
        from ray_app.stream_control import StreamControlError, client, running_job
        from spark_jobs.stream_trades import CheckpointInUse, reset_checkpoints

        try:
            current = None if foreground else running_job(client(settings))
        except StreamControlError as exc:
            fail(str(exc))
        if current is not None:
            fail(f"the streaming job {current.submission_id} is running: `ray-app stream stop` first, then --reset")
        try:
            if reset_checkpoints(settings):
                console.print(f"discarded the checkpoints in {settings.stream_checkpoint_dir}")
        except CheckpointInUse as exc:
            fail(str(exc))
    if foreground:
        import logging

        from spark_jobs.stream_trades import CheckpointInUse, run

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            raise typer.Exit(run(settings))
        except CheckpointInUse as exc:
            fail(str(exc))
    _start_stream(settings, config_file, wait, timeout)
    console.print(_index_table(settings, "Elasticsearch"))


@stream_app.command("stop")
def stream_stop(ctx: typer.Context) -> None:
    """Stop the streaming job (its queries stop; the checkpoints stay, so the next start goes on from there)."""
    from ray_app.stream_control import StreamControlError, stop

    try:
        stopped = stop(settings_of(ctx))
    except StreamControlError as exc:
        fail(str(exc))
    console.print(f"stopped {', '.join(stopped)}" if stopped else "no streaming job was running")


@stream_app.command("status")
def stream_status(ctx: typer.Context) -> None:
    """The streaming job, its queries (batches, documents, restarts, lag behind Kafka) and the indices."""
    from ray_app.stream_control import StreamControlError, client, lags, running_job
    from spark_jobs.status import read_status

    settings = settings_of(ctx)
    try:
        job = running_job(client(settings))
    except StreamControlError as exc:
        fail(str(exc))
    status = read_status(settings)
    console.print(f"streaming job: {job.submission_id + ' ' + job.status.value if job else 'not running'}; "
                  f"checkpoints: {settings.stream_checkpoint_dir}", highlight=False)  # fmt: skip
    behind = {lag.query: lag.messages for lag in lags(settings)}
    table = Table(title="streaming queries (this driver)", title_justify="left")
    columns = ("query", "writes", "state", "batches", "rows", "rows/s", "last batch", "latency", "documents",
               "refused", "late", "restarts", "behind", "last error")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in {"query", "writes", "state", "last error"} else "right",
                         overflow="fold")  # fmt: skip
    for name, query in status.queries.items() if status else []:
        documents = sum(query.indexed.values())
        lag = behind.get(name)
        latency = "-" if query.last_batch_latency_s is None else f"{query.last_batch_latency_s:,.1f} s"
        table.add_row(name, ", ".join(query.writes), query.state, f"{query.batches:,}", f"{query.rows:,}",
                      f"{query.rows_per_s:,.0f}", f"{query.last_batch_seconds:.2f} s", latency, f"{documents:,}",
                      f"{query.rejected:,}", f"{query.dropped_late:,}", str(query.restarts),
                      "-" if lag is None else f"{lag:,}", escape(query.last_error or ""))  # fmt: skip
    console.print(table)
    timed = [query for query in status.queries.values() if query.timed_batches] if status else []
    if timed:
        from spark_jobs.status import PHASES

        phases = Table(title="where a batch's time goes (mean per batch, ms; `bulk` and `state` are inside `write`)",
                       title_justify="left")  # fmt: skip
        phases.add_column("query")
        for phase in PHASES:
            phases.add_column(phase, justify="right")
        for query in timed:
            phases.add_row(query.name, *(f"{query.phase_seconds.get(phase, 0) / query.timed_batches * 1000:,.0f}"
                                         for phase in PHASES))  # fmt: skip
        console.print(phases)
    console.print(_index_table(settings, "Elasticsearch"))


@app.command()
def smoke(ctx: typer.Context) -> None:
    """Produce and consume keyed Kafka messages, index and search a document, run a Ray job; print a report."""
    if not _smoke(settings_of(ctx)):
        raise typer.Exit(1)


def _demo_ingest(settings: Settings) -> bool:
    """Feed Kafka with the simulator's history; a second demo goes on from where the first left off."""
    from ray_app.ingest import IngestFailed, IngestOptions, SourceName, run_ingest
    from ray_app.kafka_topics import topic_sizes

    topics = settings.kafka.topics
    days = settings.simulator.history_days
    console.print(f"\ningest: simulating {days:g} days of trades for {', '.join(settings.symbols)} "
                  f"(seed {settings.simulator.seed}, source=simulator)", highlight=False)  # fmt: skip
    try:
        report = run_ingest(settings, IngestOptions(source=SourceName.SIMULATE),
                            on_message=lambda text: console.print(escape(text), highlight=False))  # fmt: skip
    except IngestFailed as exc:
        console.print(exc.report.line(), highlight=False)
        err_console.print(f"[red]ingest failed:[/] {escape(str(exc))}")
        return False
    console.print(report.line(), highlight=False)
    if not report.ok:
        return False
    table = Table(title="Kafka topics", title_justify="left")
    for column in ("topic", "partitions", "messages"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for name, (partitions, messages) in topic_sizes(settings, [t.name for t in topics.all()]).items():
        table.add_row(name, str(partitions), f"{messages:,}")
    console.print(table)
    return True


def _demo_forecast(settings: Settings) -> bool:
    """Forecast every symbol from the bars the stream wrote; the summary and CV tables, one plot per symbol."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.forecast.command import run_and_print

    plots = settings.state_dir / "forecast-plots"
    console.print(f"\nforecast: the last {settings.forecast.lookback_days:g} days of hourly bars -> the next "
                  f"{settings.forecast.horizon_days} days, {', '.join(settings.forecast.models)} cross-validated "
                  "against naive, one Ray task per symbol", highlight=False)  # fmt: skip
    try:
        return run_and_print(settings, list(settings.symbols), None, plots) in {"complete", "partial"}
    except (ApiError, ESConnectionError, ConnectionError) as exc:
        err_console.print(f"[red]forecast failed:[/] {escape(str(exc))}")
        return False


BACKTEST_DAYS = 3


def _demo_scored_forecast(settings: Settings) -> bool:
    """The same forecast from a cut-off some days back, scored against the bars that arrived since: so the
    Forecasting dashboard's "vs what happened" panels have real numbers on the first run."""
    import pandas as pd
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.forecast.command import evaluate_and_print
    from ray_app.forecast.report import run_line
    from ray_app.forecast.runner import cut_off, run_forecast

    as_of = cut_off() - pd.Timedelta(days=BACKTEST_DAYS)
    console.print(f"\nforecast, scored: the same forecast from a cut-off {BACKTEST_DAYS} days back "
                  f"({as_of:%Y-%m-%d %H:%M} UTC), then scored against the bars since (`ray-app forecast evaluate`)",
                  highlight=False)  # fmt: skip
    try:
        report = run_forecast(settings, symbols=list(settings.symbols), as_of=as_of)
        from ray_app.es_indices import client

        run = client(settings).get(index=settings.elasticsearch.indices.forecast_runs, id=report.run_id)["_source"]
        console.print(run_line(run), highlight=False)
        return evaluate_and_print(settings, [report.run_id]) > 0
    except (ApiError, ESConnectionError, ConnectionError) as exc:
        err_console.print(f"[red]forecast, scored: failed:[/] {escape(str(exc))}")
        return False


def _demo_serve(settings: Settings) -> bool:
    """Deploy the Serve app; print a forecast summary and every symbol's recommendation (also indexed)."""
    import httpx

    from serve_deployments.command import deploy, print_recommendation
    from serve_deployments.language_model import ModelUnavailable, available_model

    console.print("\nserve: Ray Serve app (FastAPI ingress, Forecast and Recommender deployments, autoscaled)")
    try:
        available_model(settings.recommend)  # deploy says which model it loads when it is not the configured one
    except ModelUnavailable as exc:
        err_console.print(f"[red]serve:[/] {escape(str(exc))}")
        return False
    try:
        deploy(settings, timeout=600)
    except typer.Exit:
        return False
    from serve_deployments.auth import API_KEY_HEADER, api_key

    url = settings.serve.url
    # the key goes with every request: reads need it too when the app listens beyond the loopback
    http = httpx.Client(headers={API_KEY_HEADER: api_key(settings)}, timeout=60)
    try:
        symbols = [row for row in http.get(f"{url}/symbols").json() if row["status"] == "ok"]
        if symbols:
            summary = http.get(f"{url}/forecast/{symbols[0]['slug']}/summary").json()
            console.print(f"\nGET {url}/forecast/{symbols[0]['slug']}/summary", highlight=False)
            console.print_json(data=summary)
        recorded = http.post(f"{url}/recommendations", timeout=600)
        recorded.raise_for_status()
    except httpx.HTTPError as exc:
        err_console.print(f"[red]serve: the app did not answer as expected:[/] {escape(str(exc))}")
        return False
    finally:
        http.close()
    console.print(f"\nPOST {url}/recommendations (GET {url}/recommendation/<symbol> for one)", highlight=False)
    result = recorded.json()
    for answer in result["recommendations"]:
        print_recommendation(answer)
    console.print(f"\nrecommend: {result['written']} written to '{result['index']}'", highlight=False)
    return _demo_charts(settings, symbols[0]["symbol"] if symbols else settings.symbols[0])


def _demo_charts(settings: Settings, symbol: str) -> bool:
    """PNGs of the main Grafana panels from the dashboards' own queries, and how to open the real dashboards."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.dashboards.render import render_panels
    from ray_app.es_indices import client

    folder = settings.state_dir / "dashboard-charts"
    try:
        charts = render_panels(client(settings), settings, symbol, folder)
    except (ApiError, ESConnectionError, OSError, ValueError, KeyError) as exc:
        err_console.print(f"[red]charts:[/] {escape(str(exc))}")
        return False
    console.print(
        f"\ncharts of the Grafana panels (same queries): {', '.join(str(c) for c in charts)}", highlight=False
    )
    console.print(
        'Grafana: the `docker run` in README "Grafana" (bound to 127.0.0.1, a password of its own, the Serve API key '
        "from RAY_APP_SERVE__API_KEY) -> http://127.0.0.1:3000, folder ray-app",
        highlight=False,
        soft_wrap=True,
    )
    return True


@app.command()
def demo(ctx: typer.Context) -> None:
    """The whole pipeline on the embedded local default: stack up, a round trip through every engine, simulated
    trades into Kafka, the streaming job into Elasticsearch, forecasts on Ray, the Serve app; then a report with
    charts of the Grafana panels. Ctrl-C stops the report; `ray-app stack down` stops the rest."""
    try:
        _demo(ctx)
    except KeyboardInterrupt:
        err_console.print("\n[yellow]interrupted.[/] What is up keeps running; stop it with: ray-app serve stop; "
                          "ray-app stream stop; ray-app stack down (data is kept)")  # fmt: skip
        raise typer.Exit(130) from None


def _demo(ctx: typer.Context) -> None:
    settings = settings_of(ctx)
    began = time.monotonic()
    try:
        _stack_up(settings)
    except StackError as exc:
        fail(exc.one_line())
    ok = _smoke(settings)
    ok = _demo_ingest(settings) and ok
    console.print("\nstream: Spark on Ray (RayDP) -> Elasticsearch; the job keeps running (`ray-app stream stop`)")
    _start_stream(settings, ctx.find_root().obj, wait=True, timeout_s=1800)
    console.print(_index_table(settings, "Elasticsearch documents per index"))
    ok = _demo_forecast(settings) and ok
    first_forecast_s = time.monotonic() - began
    ok = _demo_scored_forecast(settings) and ok
    ok = _demo_serve(settings) and ok
    console.print(
        f"\nfirst forecast {first_forecast_s:.0f} s after the start; all of it {time.monotonic() - began:.0f} s"
        f"\nRay dashboard: {settings.ray.dashboard_url} (Jobs: the streaming job and its RayDP actors; the forecast "
        "tasks)   "
        f"Elasticsearch: {settings.elasticsearch.url}   Kafka: {settings.kafka.bootstrap_servers}\n"
        f"Serve: {settings.serve.url}/docs (the Ray dashboard's Serve view shows its replicas)\n"
        "try: ray-app stream status   |   ray-app ingest --source simulate --live (new trades stream through)   |   "
        "ray-app forecast show   |   ray-app recommend   |   ray-app serve status\n"
        "stop with: ray-app serve stop; ray-app stream stop; ray-app stack down (data and checkpoints are kept in "
        + str(settings.state_dir)
        + ")",
        highlight=False,
    )
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="ray-app")


if __name__ == "__main__":
    sys.exit(main())
