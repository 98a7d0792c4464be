"""A forecast run on Ray: one task per batch of symbols, each reading its bars, forecasting and writing its documents.

The driver only hands out symbols, collects the per-symbol reports as tasks finish (for the progress bar) and
writes the run document. A symbol whose forecast raises is reported ``failed`` with the error and the others go
on; a task whose worker dies is retried ``forecast.task_max_retries`` times, then its symbols are ``failed``.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import ray

from ray_app import metrics
from ray_app.config import Settings
from ray_app.es_indices import MAPPINGS, ensure_index, es_client
from ray_app.forecast import store
from ray_app.forecast.calendar import market_of
from ray_app.forecast.engine import SymbolForecast, forecast_history
from ray_app.forecast.models import ForecastSpec
from ray_app.forecast.series import SymbolHistory, bars_frame, build_history
from ray_app.markets import hours_held
from ray_app.ray_cluster import connect, current_node_id
from ray_app.times import now_iso

Compute = Callable[[SymbolHistory, ForecastSpec], SymbolForecast]


@dataclass(frozen=True)
class SymbolReport:
    """What became of one symbol in a run (the same fields as its ``forecast-runs`` document)."""

    symbol: str
    status: str  # ok | skipped | failed
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        return self.fields.get("reason")


@dataclass(frozen=True)
class RunReport:
    run_id: str
    as_of: pd.Timestamp
    status: str  # complete | partial | failed
    symbols: list[SymbolReport]
    seconds: float

    def count(self, status: str) -> int:
        return sum(report.status == status for report in self.symbols)


def cut_off(now: datetime | None = None) -> pd.Timestamp:
    """The default cut-off: the start of the current hour (its bar is still filling)."""
    return pd.Timestamp(now or datetime.now(UTC)).tz_convert("UTC").floor("h")


def forecast_symbols(
    settings: Settings, symbols: list[str], run: store.RunContext, compute: Compute = forecast_history
) -> list[SymbolReport]:
    """Read, forecast and write some symbols; runs inside a Ray task (or in-process in tests)."""
    es = es_client(settings)
    start = run.as_of - pd.Timedelta(days=settings.forecast.lookback_days)
    loaded = time.perf_counter()
    bars = store.load_bars(es, settings, symbols, start, run.as_of)
    load_seconds = time.perf_counter() - loaded
    reports = []
    for symbol in symbols:
        began = time.perf_counter()
        market = market_of(symbol)
        spec = ForecastSpec.for_market(settings.forecast, market)
        fields: dict[str, Any] = {
            "market": market.name,
            "load_s": load_seconds / len(symbols),
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "worker_pid": os.getpid(),
            "node_id": current_node_id(),
        }
        try:
            history = build_history(
                symbol,
                bars_frame(bars[symbol]),
                market,
                list(settings.forecast.targets),
                min_points=spec.min_points,
                max_gap_fraction=settings.forecast.max_gap_fraction,
            )
            if isinstance(history, SymbolHistory):
                result = compute(history, spec)
                store.write_forecasts(es, settings, run, symbol, result, fields)
                fields |= store.history_fields(history) | store.summary_fields(result)
                fields |= {"cv_s": result.cv_seconds, "fit_s": result.fit_seconds}
                status = "ok"
            else:
                fields |= {"reason": history.reason, **history.details}
                status = "skipped"
        except Exception as exc:
            fields |= {"reason": f"{type(exc).__name__}: {exc}"[:500], "traceback": traceback.format_exc()[-4000:]}
            status = "failed"
        fields["duration_s"] = time.perf_counter() - began
        try:
            store.write(es, [store.symbol_action(settings, run, symbol, {"status": status, **fields})])
        except Exception as exc:  # the report could not be stored: the driver stores it
            fields["report_error"] = f"{type(exc).__name__}: {exc}"[:500]
        reports.append(SymbolReport(symbol, status, fields))
    return reports


def expected_work(settings: Settings, symbols: list[str]) -> int:
    """A task's work, roughly: hours fitted times hours forecast. The longest tasks go first, so on a small
    cluster a crypto symbol (24 hours a day, 168 steps) does not start last and finish alone."""
    days, horizon = settings.forecast.lookback_days, settings.forecast.horizon_days
    return sum(hours_held(market_of(symbol), days) * market_of(symbol).horizon_steps(horizon) for symbol in symbols)


@ray.remote
def _forecast_task(
    settings: Settings, symbols: list[str], run: store.RunContext, compute: Compute
) -> list[SymbolReport]:
    return forecast_symbols(settings, symbols, run, compute)


def run_forecast(
    settings: Settings,
    *,
    symbols: list[str] | None = None,
    as_of: pd.Timestamp | None = None,
    on_symbol: Callable[[SymbolReport], None] | None = None,
    compute: Compute = forecast_history,
) -> RunReport:
    """Forecast every symbol (or `symbols`) from the bars before `as_of` (default: this hour's start)."""
    symbols = list(symbols or settings.symbols)
    as_of = cut_off() if as_of is None else pd.Timestamp(as_of).tz_convert("UTC")
    run = store.RunContext(store.run_id_for(settings, as_of, symbols), as_of)
    es = es_client(settings)
    for key in ("bars_1h", "forecasts", "forecast_runs"):  # bars-1h too: before the first bar, symbols are skipped
        ensure_index(settings, es, getattr(settings.elasticsearch.indices, key), MAPPINGS[key])
    started_at, began = now_iso(), time.perf_counter()
    forecast = settings.forecast
    store.write_run(
        es,
        settings,
        run,
        {
            "status": "running",
            "started_at": started_at,
            "symbols": symbols,
            "models": forecast.models,
            "lookback_days": forecast.lookback_days,
            "horizon_days": forecast.horizon_days,
            "host": socket.gethostname(),
        },
    )

    connect(settings)
    batches = [symbols[i : i + forecast.symbols_per_task] for i in range(0, len(symbols), forecast.symbols_per_task)]
    batches.sort(key=lambda batch: expected_work(settings, batch), reverse=True)
    task = _forecast_task.options(
        num_cpus=forecast.task_num_cpus, resources=dict(forecast.task_resources), max_retries=forecast.task_max_retries
    )
    pending = {task.remote(settings, batch, run, compute): batch for batch in batches}
    reports: list[SymbolReport] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        batch = pending.pop(done[0])
        try:
            finished = ray.get(done[0])
        except ray.exceptions.RayError as exc:
            reason = f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
            finished = [SymbolReport(symbol, "failed", {"reason": reason}) for symbol in batch]
            store.write(
                es, [store.symbol_action(settings, run, r.symbol, {"status": "failed", **r.fields}) for r in finished]
            )
        for report in finished:
            if "report_error" in report.fields:
                store.write(
                    es, [store.symbol_action(settings, run, report.symbol, {"status": report.status, **report.fields})]
                )
            reports.append(report)
            if on_symbol:
                on_symbol(report)

    order = {symbol: i for i, symbol in enumerate(symbols)}
    reports.sort(key=lambda report: order[report.symbol])
    ok = sum(report.status == "ok" for report in reports)
    status = "complete" if ok == len(symbols) else "partial" if ok else "failed"
    seconds = time.perf_counter() - began
    store.write_run(
        es,
        settings,
        run,
        {
            "status": status,
            "started_at": started_at,
            "finished_at": now_iso(),
            "duration_s": seconds,
            "symbols": symbols,
            "forecasted": ok,
            "skipped": sum(r.status == "skipped" for r in reports),
            "failed": sum(r.status == "failed" for r in reports),
            "models": forecast.models,
            "targets_beating_naive": sum(r.fields.get("targets_beating_naive", 0) for r in reports),
            "targets": ok * len(forecast.targets),
            "lookback_days": forecast.lookback_days,
            "horizon_days": forecast.horizon_days,
            "host": socket.gethostname(),
        },
    )
    es.indices.refresh(index=[settings.elasticsearch.indices.forecasts, settings.elasticsearch.indices.forecast_runs])
    report = RunReport(run.run_id, as_of, status, reports, seconds)
    record_run_metrics(report)
    return report


def record_run_metrics(report: RunReport) -> None:
    """The run in the platform's metrics (ray_app.metrics): the durations its forecast-runs documents hold."""
    metrics.inc("forecast_runs", 1, status=report.status)
    record_durations(
        report.status, report.seconds, [(s.symbol, s.status, s.fields.get("duration_s")) for s in report.symbols]
    )


def record_durations(status: str, seconds: float, symbols: list[tuple[str, str, float | None]]) -> None:
    """A run's duration and each symbol's (symbol, status, seconds), as the gauges of the latest run."""
    metrics.set_gauge("forecast_run_duration_seconds", seconds, status=status)
    metrics.set_gauge("forecast_last_run_timestamp_seconds", time.time(), status=status)
    for symbol, symbol_status, symbol_seconds in symbols:
        if symbol_seconds is not None:
            metrics.set_gauge("forecast_symbol_duration_seconds", symbol_seconds, symbol=symbol, status=symbol_status)


def record_stored_run(settings: Settings, run: dict[str, Any]) -> None:
    """The gauges of a run read back from forecast-runs (one a previous process made: the forecaster found this
    hour's run complete already)."""
    es = es_client(settings)
    symbols = [
        (doc["symbol"], doc.get("status", "?"), doc.get("duration_s"))
        for doc in store.run_records(es, settings, run["run_id"], "symbol")
    ]
    record_durations(run["status"], float(run.get("duration_s", 0.0)), symbols)
