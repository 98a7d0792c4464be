"""Elasticsearch side of forecasting: read hourly bars (the stream's and Alpaca's backfilled ones, one per hour),
write forecasts and the run report, find the latest run.

Document ids are deterministic, so running the same run again (same cut-off, settings and symbols, hence the
same run id) overwrites its documents instead of adding copies:

- ``forecasts``: ``<run_id>|<symbol>|<target>|<hour>``, one per forecast hour, value and interval bounds;
- ``forecast-runs``: ``<run_id>`` (record ``run``: status, counts, timings), ``<run_id>|<symbol>`` (record
  ``symbol``: status, reason when skipped or failed, the 7-day summary) and ``<run_id>|<symbol>|<target>``
  (record ``target``: chosen model, CV MASE/sMAPE/coverage of every model and of naive).

The run document is written ``running`` first and ``complete`` (or ``partial``, ``failed``) last, after every
symbol's documents: the latest finished run is the newest run document that is not ``running``.

What Serve and Grafana answer for a symbol is its **current** forecast (``current_symbols``): the newest symbol
record whose forecasts finished writing (``ok``), whatever run it belongs to. A symbol's record is marked
``writing`` before its forecasts are (re)written and ``ok`` after, so a subset run (``-s BTC/USD``), a re-run of a
run id, a driver that dies mid-run or a symbol that fails mid-write never hides a symbol's complete forecast nor
serves partial rows: until the new one is complete, the previous one stays current.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from elasticsearch import Elasticsearch
from elasticsearch.helpers import streaming_bulk

from ray_app.config import Settings
from ray_app.documents import (
    ForecastDocument,
    ForecastRunDocument,
    ForecastSymbolDocument,
    ForecastTargetDocument,
    checked,
)
from ray_app.forecast.engine import SymbolForecast, finite_or_none
from ray_app.forecast.extremes import ExtremeForecast
from ray_app.forecast.series import BAR_COLUMNS, SymbolHistory
from ray_app.forecast.volatility import RANGE
from ray_app.times import iso, now_iso

PAGE_SIZE = 5000
WITH_FORECASTS = ("complete", "partial")  # finished runs that forecast at least one symbol


def run_id_for(settings: Settings, as_of: pd.Timestamp, symbols: list[str]) -> str:
    """Same cut-off, forecast settings and symbols -> same run id (re-running overwrites, never duplicates)."""
    digest = hashlib.sha256(
        json.dumps({"forecast": settings.forecast.model_dump(), "symbols": sorted(symbols)}, sort_keys=True).encode()
    ).hexdigest()[:8]
    return f"{as_of:%Y%m%dT%H%MZ}-{digest}"


def load_bars(
    es: Elasticsearch, settings: Settings, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp
) -> dict[str, list[dict[str, Any]]]:
    """Hourly bars with start in [start, end), per symbol, oldest first: the bars the stream built from trades and
    Alpaca's own (backfilled) ones, one per hour (``more_complete``)."""
    indices = settings.elasticsearch.indices
    ours = _read_hours(es, indices.bars_1h, symbols, start, end)
    vendor = _read_hours(es, indices.vendor_bars_1h, symbols, start, end)
    rows: dict[str, list[dict[str, Any]]] = {}
    for symbol in symbols:
        by_hour = {bar["timestamp"]: bar for bar in vendor[symbol]}
        for bar in ours[symbol]:
            by_hour[bar["timestamp"]] = more_complete(bar, by_hour.get(bar["timestamp"]))
        rows[symbol] = [by_hour[hour] for hour in sorted(by_hour)]
    return rows


def more_complete(ours: dict[str, Any], vendor: dict[str, Any] | None) -> dict[str, Any]:
    """Of our bar and the vendor's for the same hour, the one that saw more of the hour: more trades (the volume when
    a count is missing); ours on a tie. A bar made from part of an hour (a backfill that ended mid-hour, a live feed
    that started mid-hour, an outage) counts fewer trades than one that saw all of it; on a tie both saw the same
    trades, and ours also holds the cancels and corrections that came later."""
    if vendor is None:
        return ours
    counted = ours.get("trade_count") is not None and vendor.get("trade_count") is not None

    def seen(bar: dict[str, Any]) -> float:
        return float(bar["trade_count"]) if counted else float(bar.get("volume") or 0.0)

    return vendor if seen(vendor) > seen(ours) else ours


def _read_hours(
    es: Elasticsearch, index: str, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp
) -> dict[str, list[dict[str, Any]]]:
    query = {
        "bool": {
            "filter": [
                {"terms": {"symbol": symbols}},
                {"range": {"timestamp": {"gte": iso(start), "lt": iso(end)}}},
            ]
        }
    }
    rows: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in symbols}
    after = None
    while True:
        page = es.search(
            index=index,
            query=query,
            source_includes=["symbol", "trade_count", "source", *BAR_COLUMNS],
            sort=[{"symbol": "asc"}, {"timestamp": "asc"}],
            size=PAGE_SIZE,
            search_after=after,
            track_total_hits=False,
            ignore_unavailable=True,
        )
        hits = page["hits"]["hits"]
        for hit in hits:
            rows[hit["_source"]["symbol"]].append(hit["_source"])
        if len(hits) < PAGE_SIZE:
            return rows
        after = hits[-1]["sort"]


def _extreme(prefix: str, extreme: ExtremeForecast | None) -> dict[str, Any]:
    if extreme is None:
        return {}
    fields = {
        prefix: finite_or_none(extreme.median),
        f"{prefix}_at": iso(extreme.at),
        f"{prefix}_at_probability": extreme.at_probability,
    }
    for level, (lo, hi) in extreme.bounds.items():
        fields[f"{prefix}_lo_{level}"], fields[f"{prefix}_hi_{level}"] = finite_or_none(lo), finite_or_none(hi)
    return fields


@dataclass(frozen=True)
class RunContext:
    """What every document of one run carries."""

    run_id: str
    as_of: pd.Timestamp

    def base(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "as_of": iso(self.as_of)}


def forecast_actions(settings: Settings, run: RunContext, result: SymbolForecast) -> Iterator[dict[str, Any]]:
    """Bulk actions for one symbol's forecasts and its per-target report."""
    forecasts_index = settings.elasticsearch.indices.forecasts
    runs_index = settings.elasticsearch.indices.forecast_runs
    created = now_iso()
    symbol, market = result.symbol, result.history.market.name
    for target, forecast in result.targets.items():
        for step, hour in enumerate(forecast.hours):
            doc = {
                **run.base(),
                "symbol": symbol,
                "market": market,
                "target": target,
                "timestamp": iso(hour),
                "step": step + 1,
                "value": float(forecast.value[step]),
                "model": forecast.model,
                "created_at": created,
            }
            for level, (lo, hi) in forecast.bounds.items():
                doc[f"lo_{level}"] = float(lo[step])
                doc[f"hi_{level}"] = float(hi[step])
            yield {
                "_index": forecasts_index,
                "_id": f"{run.run_id}|{symbol}|{target}|{iso(hour)}",
                "_source": checked(ForecastDocument, doc),
            }
        chosen, naive = forecast.chosen, forecast.naive
        yield {
            "_index": runs_index,
            "_id": f"{run.run_id}|{symbol}|{target}",
            "_source": checked(
                ForecastTargetDocument,
                {
                    **run.base(),
                    "record": "target",
                    "symbol": symbol,
                    "market": market,
                    "target": target,
                    "status": "ok",
                    "chosen_model": forecast.model,
                    "method": forecast.method,
                    "series_models": forecast.components,
                    "mase": finite_or_none(chosen.mase),
                    "smape": finite_or_none(chosen.smape),
                    "naive_mase": finite_or_none(naive.mase),
                    "naive_smape": finite_or_none(naive.smape),
                    "beats_naive": forecast.beats_naive,
                    **{f"coverage_{level}": value for level, value in chosen.coverage.items()},
                    "cv": {
                        name: {
                            "mase": finite_or_none(score.mase),
                            "smape": finite_or_none(score.smape),
                            **{f"coverage_{level}": value for level, value in score.coverage.items()},
                            "seconds": score.seconds,
                            **({"qlike": score.qlike} if math.isfinite(score.qlike) else {}),
                            **({"error": score.error} if score.error else {}),
                        }
                        for name, score in forecast.scores.items()
                    },
                    "note": forecast.note,
                    **(
                        {
                            "interval_source": forecast.interval_source,
                            "interval_cv_coverage": {
                                source: {f"coverage_{level}": value for level, value in found.items()}
                                for source, found in forecast.interval_cv_coverage.items()
                            },
                        }
                        if forecast.interval_cv_coverage
                        else {}
                    ),
                    "train_points": result.history.points,
                    "horizon": len(forecast.hours),
                    "created_at": created,
                },
            ),
        }


def history_fields(history: SymbolHistory) -> dict[str, Any]:
    return {
        "market": history.market.name,
        "train_points": history.points,
        "gap_fraction": history.gap_fraction,
        "outside_session_bars": history.outside_session,
        "holidays": history.holidays,
        "first_bar": iso(history.hours[0]),
        "last_bar": iso(history.last_hour),
    }


def symbol_action(settings: Settings, run: RunContext, symbol: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The per-symbol report: status (ok, skipped, failed), reason, 7-day summary, timings."""
    return {
        "_index": settings.elasticsearch.indices.forecast_runs,
        "_id": f"{run.run_id}|{symbol}",
        "_source": checked(
            ForecastSymbolDocument,
            {**run.base(), "record": "symbol", "symbol": symbol, "created_at": now_iso(), **fields},
        ),
    }


def summary_fields(result: SymbolForecast) -> dict[str, Any]:
    summary = result.summary()
    hours = next(iter(result.targets.values())).hours
    return {
        **_extreme("highest_volume", summary.highest_volume),
        **_extreme("highest_price", summary.highest_price),
        **_extreme("lowest_price", summary.lowest_price),
        **(
            {"range_model": result.targets[RANGE].model, "range_pct_mean": float(result.targets[RANGE].value.mean())}
            if RANGE in result.targets
            else {}
        ),
        **({"close_interval_source": result.targets["close"].interval_source} if "close" in result.targets else {}),
        "forecast_start": iso(hours[0]),
        "forecast_end": iso(hours[-1]),
        "chosen_models": {target: forecast.model for target, forecast in result.targets.items()},
        "targets_beating_naive": sum(forecast.beats_naive for forecast in result.targets.values()),
    }


def write(es: Elasticsearch, actions: Iterable[dict[str, Any]]) -> int:
    """Bulk-write; raises on any rejected document (forecasts are all-or-nothing per symbol)."""
    return sum(ok for ok, _ in streaming_bulk(es, actions, chunk_size=2000, max_retries=5, raise_on_error=True))


def write_forecasts(
    es: Elasticsearch, settings: Settings, run: RunContext, symbol: str, result: SymbolForecast, fields: dict[str, Any]
) -> None:
    """A symbol's forecast rows, so that no reader ever sees part of them: the symbol's record says ``writing``
    first (seen at once when it replaces an ``ok`` of the same run id: a re-run), and the rows are searchable
    before the caller writes ``ok``."""
    runs = settings.elasticsearch.indices.forecast_runs
    rewrite = es.options(ignore_status=404).get(index=runs, id=f"{run.run_id}|{symbol}", source_includes=["status"])
    write(es, [symbol_action(settings, run, symbol, {"status": "writing", **fields})])
    if rewrite.get("found") and rewrite["_source"].get("status") == "ok":
        es.indices.refresh(index=runs)
    write(es, forecast_actions(settings, run, result))
    es.indices.refresh(index=settings.elasticsearch.indices.forecasts)


def write_run(es: Elasticsearch, settings: Settings, run: RunContext, fields: dict[str, Any]) -> None:
    es.index(
        index=settings.elasticsearch.indices.forecast_runs,
        id=run.run_id,
        document=checked(ForecastRunDocument, {**run.base(), "record": "run", "updated_at": now_iso(), **fields}),
        refresh="wait_for",
    )


def complete_run(es: Elasticsearch, settings: Settings, as_of: pd.Timestamp) -> dict[str, Any] | None:
    """The record of the run of every symbol cut off at ``as_of`` when it finished complete (every symbol
    forecast), else None: what `make run` again and the forecaster skip."""
    run_id = run_id_for(settings, as_of, list(settings.symbols))
    found = es.options(ignore_status=404).get(index=settings.elasticsearch.indices.forecast_runs, id=run_id)
    if found.get("found") and found["_source"].get("status") == "complete":
        return found["_source"]
    return None


def latest_run(es: Elasticsearch, settings: Settings) -> dict[str, Any] | None:
    """The newest finished run with forecasts (by cut-off, then finish time), or None before the first one."""
    index = settings.elasticsearch.indices.forecast_runs
    if not es.indices.exists(index=index):
        return None
    page = es.search(
        index=index,
        query={"bool": {"filter": [{"term": {"record": "run"}}, {"terms": {"status": list(WITH_FORECASTS)}}]}},
        sort=[{"as_of": "desc"}, {"finished_at": "desc"}],
        size=1,
    )
    hits = page["hits"]["hits"]
    return hits[0]["_source"] if hits else None


SYMBOL_STATES = ("ok", "skipped", "failed")  # a symbol record's final states (``writing`` is not one)


def current_symbols(es: Elasticsearch, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per symbol ever forecast, the record to answer from: its newest finished forecast (``ok``, by cut-off, then
    write time), else its newest final record (``skipped``, ``failed``: the reason to tell)."""
    index = settings.elasticsearch.indices.forecast_runs
    if not es.indices.exists(index=index):
        return {}

    def newest(statuses: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        page = es.search(
            index=index,
            query={"bool": {"filter": [{"term": {"record": "symbol"}}, {"terms": {"status": list(statuses)}}]}},
            collapse={"field": "symbol"},
            sort=[{"as_of": "desc"}, {"created_at": "desc"}],
            size=10_000,
        )
        return {hit["_source"]["symbol"]: hit["_source"] for hit in page["hits"]["hits"]}

    return {**newest(SYMBOL_STATES), **newest(("ok",))}


def run_records(es: Elasticsearch, settings: Settings, run_id: str, record: str) -> list[dict[str, Any]]:
    """A run's per-symbol or per-target documents, by symbol (and target)."""
    page = es.search(
        index=settings.elasticsearch.indices.forecast_runs,
        query={"bool": {"filter": [{"term": {"run_id": run_id}}, {"term": {"record": record}}]}},
        sort=[{"symbol": "asc"}, {"target": {"order": "asc", "unmapped_type": "keyword"}}],
        size=10_000,
    )
    return [hit["_source"] for hit in page["hits"]["hits"]]


def run_forecasts(es: Elasticsearch, settings: Settings, run_id: str, symbol: str) -> pd.DataFrame:
    """One symbol's forecasts of a run: one row per target and hour."""
    page = es.search(
        index=settings.elasticsearch.indices.forecasts,
        query={"bool": {"filter": [{"term": {"run_id": run_id}}, {"term": {"symbol": symbol}}]}},
        sort=[{"target": "asc"}, {"timestamp": "asc"}],
        size=10_000,
    )
    frame = pd.DataFrame([hit["_source"] for hit in page["hits"]["hits"]])
    if not frame.empty:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame
