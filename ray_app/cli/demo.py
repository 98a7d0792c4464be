"""`ray-app demo` and `ray-app smoke`: the whole pipeline on the embedded local default, one short function per
stage in the order the data flows (stack, smoke, ingest, stream, forecast, scored forecast, serve, charts), then
the report."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ray_app.cli.common import console, err_console, fail, settings_of
from ray_app.cli.ingest import progress_line
from ray_app.cli.stack import start_stack
from ray_app.cli.stream import index_table, start_stream
from ray_app.config import Settings
from ray_app.errors import ActionableError


def smoke_report(settings: Settings) -> bool:
    """The round trip through every engine, as a table; True when every engine answered."""
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


def smoke(ctx: typer.Context) -> None:
    """Produce and consume keyed Kafka messages, index and search a document, run a Ray job; print a report."""
    if not smoke_report(settings_of(ctx)):
        raise typer.Exit(1)


def _simulator_job_running(settings: Settings) -> bool:
    from ray_app.live.jobs import is_running, job_states
    from ray_app.stream_control import StreamControlError

    try:
        return is_running(job_states(settings).get("simulator"))
    except (StreamControlError, RuntimeError, ConnectionError):
        return False


def ingest_stage(settings: Settings) -> bool:
    """Feed Kafka with the simulator's history; a second demo goes on from where the first left off."""
    from ray_app.ingest import IngestFailed, IngestOptions, SourceName, run_ingest
    from ray_app.kafka_topics import topic_sizes

    topics = settings.kafka.topics
    days = settings.simulator.history_days
    if _simulator_job_running(settings):
        console.print("\ningest: the live simulator job is running (a previous `make run`) and feeds Kafka from where "
                      "the history ended; nothing to add", highlight=False)  # fmt: skip
        return True
    console.print(f"\ningest: simulating {days:g} days of trades for {', '.join(settings.symbols)} "
                  f"(seed {settings.simulator.seed}, source=simulator)", highlight=False)  # fmt: skip
    try:
        report = run_ingest(settings, IngestOptions(source=SourceName.SIMULATE),
                            on_message=lambda text: console.print(escape(text), highlight=False),
                            watch=progress_line)  # fmt: skip
    except IngestFailed as exc:
        console.print(exc.report.line(), highlight=False)
        err_console.print(f"[red]ingest failed:[/] {escape(str(exc))}")
        return False
    console.print(report.line(), highlight=False, soft_wrap=True)
    if not report.ok:
        return False
    table = Table(title="Kafka topics", title_justify="left")
    for column in ("topic", "partitions", "messages"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for name, (partitions, messages) in topic_sizes(settings, [t.name for t in topics.all()]).items():
        table.add_row(name, str(partitions), f"{messages:,}")
    console.print(table)
    return True


def _already_forecast(settings: Settings, as_of) -> bool:
    """Whether a complete run of this cut-off (default: this hour) exists, said so: `make run` again redoes nothing."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.es_indices import client
    from ray_app.forecast import store
    from ray_app.forecast.runner import cut_off

    try:
        run = store.complete_run(client(settings), settings, cut_off() if as_of is None else as_of)
    except (ApiError, ESConnectionError):
        return False
    if run is not None:
        console.print(f"\nforecast: run {run['run_id']} (cut-off {run['as_of']}) is complete already: not run again "
                      "(`ray-app forecast show`)", highlight=False)  # fmt: skip
    return run is not None


def forecast_stage(settings: Settings) -> bool:
    """Forecast every symbol from the bars the stream wrote; the summary and CV tables, one plot per symbol."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.cli.forecast import run_and_print

    plots = settings.state_dir / "forecast-plots"
    if _already_forecast(settings, None):
        return True
    console.print(f"\nforecast: the last {settings.forecast.lookback_days:g} days of hourly bars -> the next "
                  f"{settings.forecast.horizon_days} days, {', '.join(settings.forecast.models)} cross-validated "
                  "against naive, one Ray task per symbol", highlight=False)  # fmt: skip
    try:
        return run_and_print(settings, list(settings.symbols), None, plots) in {"complete", "partial"}
    except (ApiError, ESConnectionError, ConnectionError) as exc:
        err_console.print(f"[red]forecast failed:[/] {escape(str(exc))}")
        return False


BACKTEST_DAYS = 3


def scored_forecast_stage(settings: Settings) -> bool:
    """The same forecast from a cut-off some days back, scored against the bars that arrived since: so the
    Forecasting dashboard's "vs what happened" panels have real numbers on the first run."""
    import pandas as pd
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.cli.forecast import evaluate_and_print
    from ray_app.forecast.report import run_line
    from ray_app.forecast.runner import cut_off, run_forecast

    as_of = cut_off() - pd.Timedelta(days=BACKTEST_DAYS)
    if _already_forecast(settings, as_of):
        return True
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


def serve_stage(settings: Settings) -> str | None:
    """Deploy the Serve app; print a forecast summary and every symbol's recommendation (also indexed). Returns the
    symbol the charts show (the first one forecast), None when the app did not answer."""
    import httpx

    from ray_app.cli.serve import deploy, print_recommendation
    from serve_deployments.language_model import ModelUnavailable, available_model

    console.print("\nserve: Ray Serve app (FastAPI ingress, Forecast and Recommender deployments, autoscaled)")
    try:
        available_model(settings.recommend)  # deploy says which model it loads when it is not the configured one
    except ModelUnavailable as exc:
        err_console.print(f"[red]serve:[/] {escape(str(exc))}")
        return None
    try:
        deploy(settings, timeout=600)
    except typer.Exit:
        return None
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
        return None
    finally:
        http.close()
    console.print(f"\nPOST {url}/recommendations (GET {url}/recommendation/<symbol> for one)", highlight=False)
    result = recorded.json()
    for answer in result["recommendations"]:
        print_recommendation(answer)
    console.print(f"\nrecommend: {result['written']} written to '{result['index']}'", highlight=False)
    return symbols[0]["symbol"] if symbols else settings.symbols[0]


def charts_stage(settings: Settings, symbol: str) -> bool:
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
        'Grafana: the `docker run` in docs/grafana.md (bound to 127.0.0.1, a password of its own, the Serve API key '
        "from RAY_APP_SERVE__API_KEY) -> http://127.0.0.1:3000, folder ray-app",
        highlight=False,
        soft_wrap=True,
    )
    return True


def stack_stage(settings: Settings) -> None:
    """The local engines up (Kafka, Elasticsearch, a Ray head), topics and index templates in place."""
    try:
        start_stack(settings)
    except ActionableError as exc:
        fail(exc.one_line())


def stream_stage(settings: Settings, config_file: Path | None) -> None:
    """The streaming job as a Ray job, waited on until it has caught up with Kafka; it keeps running."""
    console.print("\nstream: Spark on Ray (RayDP) -> Elasticsearch; the job keeps running (`ray-app stream stop`)")
    start_stream(settings, config_file, wait=True, timeout_s=1800)
    console.print(index_table(settings, "Elasticsearch documents per index"))


def live_stage(settings: Settings, config_file: Path | None) -> bool:
    """Leave the pipeline moving: the live parts as Ray jobs (each at most once), then the status screen."""
    from ray_app.cli.live import start_live

    console.print("\nlive: the parts that keep the pipeline moving, each a Ray job (the dashboard's Jobs view)")
    return start_live(settings, config_file)


def closing_report(settings: Settings, began: float, first_forecast_s: float) -> None:
    """How long it took, where each engine answers, how to watch what keeps running and how to stop it."""
    console.print(
        f"\nfirst forecast {first_forecast_s:.0f} s after the start; all of it {time.monotonic() - began:.0f} s"
        "\nstill running: the simulator's live trades, the stream, indicators, hourly forecasts and their scoring, "
        "recommendations every 15 min, the Serve app, the monitor"
        f"\nwatch: ray-app status   |   Ray dashboard {settings.ray.dashboard_url} (Jobs, Serve, Metrics)   |   "
        f"Prometheus {settings.prometheus.url}   |   Serve {settings.serve.url}/docs   |   Grafana: docs/grafana.md "
        "(Trading, Forecasting, Pipeline health)"
        "\nstop all of it: ray-app down (in order: jobs, Serve, stack; data, checkpoints and the simulator's progress "
        f"are kept in {settings.state_dir}, and `make run` goes on from there)",
        highlight=False,
    )


def run_demo(settings: Settings, config_file: Path | None) -> bool:
    """The pipeline, stage by stage, in the order data flows; True when every stage did its part."""
    began = time.monotonic()
    stack_stage(settings)
    ok = smoke_report(settings)
    ok = ingest_stage(settings) and ok
    stream_stage(settings, config_file)
    ok = forecast_stage(settings) and ok
    first_forecast_s = time.monotonic() - began
    ok = scored_forecast_stage(settings) and ok
    charted = serve_stage(settings)
    ok = charted is not None and charts_stage(settings, charted) and ok
    ok = live_stage(settings, config_file) and ok
    closing_report(settings, began, first_forecast_s)
    return ok


def demo(ctx: typer.Context) -> None:
    """The whole pipeline on the embedded local default: stack up, a round trip through every engine, simulated
    trades into Kafka, the streaming job into Elasticsearch, forecasts on Ray, the Serve app; then a report with
    charts of the Grafana panels; it leaves the pipeline moving (`ray-app status`; `ray-app down` stops it)."""
    try:
        ok = run_demo(settings_of(ctx), ctx.find_root().obj)
    except KeyboardInterrupt:
        err_console.print("\n[yellow]interrupted.[/] What is up keeps running; stop it with: ray-app down "
                          "(data is kept)")  # fmt: skip
        raise typer.Exit(130) from None
    if not ok:
        raise typer.Exit(1)
