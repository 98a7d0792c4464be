"""`ray-app forecast`: run per-symbol forecasting on Ray once or every N minutes, and show, plot or score runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from elasticsearch import ApiError, NotFoundError
from elasticsearch import ConnectionError as ESConnectionError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ray_app.cli.common import console, err_console, fail, settings_of
from ray_app.config import Settings

forecast_app = typer.Typer(
    invoke_without_command=True,
    help="Per-symbol forecasting on Ray: bars-1h -> statsforecast (cross-validated against naive) -> forecasts.",
)


def _as_of(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        moment = pd.Timestamp(text)
    except ValueError:
        fail(f"--as-of {text!r} is not a time; use e.g. 2026-11-27T15:00Z")
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    if moment != moment.floor("h"):
        fail(f"--as-of {text!r} must be on the hour (bars are hourly), e.g. {moment.floor('h'):%Y-%m-%dT%H:%MZ}")
    return moment


def _symbols(settings: Settings, chosen: list[str] | None) -> list[str]:
    if not chosen:
        return list(settings.symbols)
    try:
        return Settings._valid_symbols(chosen)
    except ValueError as exc:
        fail(f"--symbol: {exc}")


def symbol_line(report) -> str:
    fields = report.fields
    from ray_app.forecast.report import STATUS_STYLE

    style = STATUS_STYLE.get(report.status, "white")
    line = f"[{style}]{report.status:>7}[/] {report.symbol:<9} {fields.get('duration_s', 0):6.1f} s  "
    if report.status == "ok":
        models = fields.get("chosen_models", {})
        return line + ", ".join(f"{target} {model}" for target, model in models.items())
    return line + escape(str(report.reason))


def print_run(settings: Settings, es, run: dict[str, Any], plot_dir: Path | None) -> None:
    from ray_app.forecast import report, store

    console.print(report.run_line(run), highlight=False)
    symbols = store.run_records(es, settings, run["run_id"], "symbol")
    console.print(report.summary_table(symbols, int(run.get("horizon_days", settings.forecast.horizon_days))))
    targets = store.run_records(es, settings, run["run_id"], "target")
    if targets:
        console.print(report.cv_table(targets))
    if plot_dir is not None:
        from ray_app.forecast.plot import plot_run

        paths = plot_run(es, settings, run, plot_dir)
        console.print(f"plots: {len(paths)} PNG files in {plot_dir}" + (f" (e.g. {paths[0]})" if paths else ""))


def run_and_print(settings: Settings, symbols: list[str], as_of: pd.Timestamp | None, plot_dir: Path | None) -> str:
    """One forecast run with a progress bar, then its summary and CV tables (and plots); returns the run status."""
    from ray_app.es_indices import es_client
    from ray_app.forecast.runner import run_forecast

    columns = (SpinnerColumn(), TextColumn("forecasting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("symbols", total=len(symbols))

        def on_symbol(symbol_report) -> None:
            progress.console.print(symbol_line(symbol_report), highlight=False)
            progress.advance(task)

        result = run_forecast(settings, symbols=symbols, as_of=as_of, on_symbol=on_symbol)
    es = es_client(settings)
    print_run(
        settings, es, es.get(index=settings.elasticsearch.indices.forecast_runs, id=result.run_id)["_source"], plot_dir
    )
    return result.status


def evaluate_and_print(settings: Settings, run_ids: list[str] | None = None, max_age_days: float = 30) -> int:
    """Score past runs against the bars that arrived since (forecast-evaluations) and print the table."""
    from ray_app.forecast.evaluation import evaluate

    evaluations = evaluate(settings, run_ids=run_ids, max_age_days=max_age_days)
    print_evaluations(evaluations)
    return len(evaluations)


def print_evaluations(evaluations: list) -> None:
    """Scored runs as a table, or why there is none."""
    from ray_app.forecast.report import evaluation_table

    if evaluations:
        console.print(evaluation_table([e.model_dump() for e in evaluations]))
    else:
        console.print(
            "forecast evaluate: no run to score yet (or every one is complete): a run is scored once the "
            "first hour of its horizon has a bar",
            highlight=False,
        )


def _unreachable(settings: Settings, exc: Exception) -> str:
    return (
        f"{type(exc).__name__}: {exc} -- is the stack up (`ray-app stack up`)? "
        f"Elasticsearch {settings.elasticsearch.url}, Ray {settings.ray.address}"
    )


def _transient_errors() -> tuple[type[BaseException], ...]:
    from elasticsearch import TransportError
    from ray.exceptions import RayError

    # TransportError covers Elasticsearch's connection errors and timeouts, OSError refused sockets and timeouts
    return (TransportError, ApiError, RayError, OSError)


def _transient_text(settings: Settings, exc: BaseException) -> str:
    if isinstance(exc, ESConnectionError | ConnectionError):
        return _unreachable(settings, exc)
    return f"{type(exc).__name__}: {exc}"


@forecast_app.callback()
def forecast(
    ctx: typer.Context,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", "-s", help="Forecast only this symbol (repeatable).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Cut-off hour (UTC): train on bars before it. Default: this hour's start.")
    ] = None,
    every: Annotated[
        float | None, typer.Option(help="Run again every this many minutes until stopped (Ctrl-C, SIGTERM).", min=1)
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write one PNG per symbol (history, forecast, intervals).")] = None,
) -> None:
    """Forecast every symbol's next days of high, low, close and volume on Ray, and print the summary.

    Subcommand: `forecast show` (the latest run, without computing)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    chosen, cut_off = _symbols(settings, symbol), _as_of(as_of)
    if every is not None and cut_off is not None:
        fail("--as-of and --every do not go together (each scheduled run uses the hour it starts in)")
    try:
        if every is None:
            status = run_and_print(settings, chosen, cut_off, plot)
            raise typer.Exit(0 if status in {"complete", "partial"} else 1)
        from ray_app.lifecycle import StopFlag
        from ray_app.ray_cluster import connect

        connect(settings)  # before taking SIGTERM: ray.init installs a handler of its own
        with StopFlag().on_signals() as stop:
            failures, transient = 0, _transient_errors()
            while not stop.is_set():
                try:
                    run_and_print(settings, chosen, None, plot)
                    evaluate_and_print(settings)
                    failures, wait_s = 0, every * 60
                    console.print(f"next run in {every:g} min (Ctrl-C stops)", highlight=False)
                except transient as exc:  # a scheduled job outlives a restart of Elasticsearch or Ray
                    failures += 1
                    from ray_app.live.schedule import retry_delay_s

                    wait_s = retry_delay_s(failures, every * 60)
                    problem = escape(_transient_text(settings, exc))
                    err_console.print(
                        f"[red]forecast run failed[/] ({problem}); retrying in {wait_s:.0f} s "
                        f"(failure {failures} in a row)",
                        highlight=False,
                    )
                stop.wait(wait_s)
    except (ESConnectionError, ConnectionError) as exc:
        fail(_unreachable(settings, exc))
    except ApiError as exc:
        fail(f"Elasticsearch refused a request: {exc}")


@forecast_app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Option(help="A run id instead of the latest finished run.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write one PNG per symbol (history, forecast, intervals).")] = None,
) -> None:
    """The latest finished forecast run (or --run-id): summary per symbol and cross-validation per target."""
    from ray_app.es_indices import es_client
    from ray_app.forecast import store

    settings = settings_of(ctx)
    es = es_client(settings)
    try:
        if run_id:
            try:
                run = es.get(index=settings.elasticsearch.indices.forecast_runs, id=run_id)["_source"]
            except NotFoundError:
                fail(f"no forecast run {run_id!r} in {settings.elasticsearch.indices.forecast_runs}")
        else:
            run = store.latest_run(es, settings)
            if run is None:
                fail("no finished forecast run yet: run `ray-app forecast`")
        print_run(settings, es, run, plot)
    except ESConnectionError as exc:
        fail(_unreachable(settings, exc))


@forecast_app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    run_id: Annotated[list[str] | None, typer.Option("--run-id", help="Score this run (repeatable).")] = None,
    max_age_days: Annotated[
        float, typer.Option(help="Without --run-id: the runs cut off within this many days.", min=0)
    ] = 30,
) -> None:
    """Score past forecast runs against what happened: MASE beside naive's over the elapsed hours, interval
    coverage and the direction's hit rate, written to forecast-evaluations (rewritten as more hours pass)."""
    settings = settings_of(ctx)
    try:
        evaluate_and_print(settings, run_id, max_age_days)
    except NotFoundError:
        fail(f"no forecast run {run_id!r} in {settings.elasticsearch.indices.forecast_runs}")
    except ESConnectionError as exc:
        fail(_unreachable(settings, exc))
    except ApiError as exc:
        fail(f"Elasticsearch refused a request: {exc}")
