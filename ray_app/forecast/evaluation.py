"""Past forecast runs scored against what happened: the hourly bars that arrived after each run's cut-off.

For one run, symbol and target, the *elapsed hours* are the run's forecast hours that now have a realized bar in
``bars-1h``. Over them:

- ``mase``: mean absolute error of the forecast divided by the mean absolute one-hour change of the training
  series (the hours the run trained on, rebuilt the way the run built them), the scale cross-validation uses;
  ``naive_mase``: the same for naive, the last training value held flat; ``beats_naive`` when mase < naive_mase;
- ``coverage_80`` / ``coverage_95``: the share of realized values inside the forecast's 80% / 95% interval
  (an honest 80% interval holds about 80%);
- for close, ``direction``: the run's forecast direction at the horizon (up, down or flat by
  ``recommend.rules.move_threshold_pct``, the rule the signal uses) and ``direction_hit_rate``: the share of
  elapsed hours whose realized close, against the last training close, moved the same way by the same rule.

One document per run, symbol and target (``<run_id>|<symbol>|<target>``), rewritten as more hours pass until
the whole horizon has passed (``complete``). The core (:func:`evaluate_target`) is pure; the rest reads and
writes Elasticsearch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from elasticsearch import Elasticsearch

from ray_app.config import Settings
from ray_app.documents import ForecastEvaluationDocument, TargetEvaluation
from ray_app.es_indices import MAPPINGS, ensure_index, es_client
from ray_app.forecast import store
from ray_app.forecast.calendar import market_of
from ray_app.forecast.engine import finite_or_none
from ray_app.forecast.extremes import ExtremeForecast, pinball_loss, point_as_quantiles
from ray_app.forecast.series import SymbolHistory, bars_frame, build_history
from ray_app.forecast.volatility import RANGE, range_pct
from ray_app.times import iso, now_iso

LEVELS = (80, 95)


def direction(change_pct: float, threshold_pct: float) -> str:
    """up / down / flat by the signal rule's threshold (serve_deployments.market_facts.direction_of)."""
    return "up" if change_pct >= threshold_pct else "down" if change_pct <= -threshold_pct else "flat"


@dataclass(frozen=True)
class Scores:
    elapsed: int
    mae: float
    naive_mae: float
    mase: float
    naive_mase: float
    coverage: dict[int, float]
    direction: str | None
    direction_hit_rate: float | None


def evaluate_target(
    forecast: pd.DataFrame, realized: pd.Series, train: np.ndarray, move_threshold_pct: float | None = None
) -> Scores | None:
    """Score one target's forecast rows (index: hour; value, lo_<level>, hi_<level>) on the realized values
    (index: hour) with the training series' last value as naive; None before any forecast hour has passed.

    With ``move_threshold_pct`` (close), also the direction and its hit rate."""
    hours = forecast.index.intersection(realized.index)
    if len(hours) == 0 or len(train) == 0:
        return None
    rows, actual = forecast.loc[hours], realized.loc[hours].to_numpy(dtype="float64")
    predicted = rows["value"].to_numpy(dtype="float64")
    last = float(train[-1])
    scale = float(np.mean(np.abs(np.diff(train)))) if len(train) > 1 else 0.0
    mae, naive_mae = float(np.mean(np.abs(actual - predicted))), float(np.mean(np.abs(actual - last)))

    def scaled(error: float) -> float:
        return error / scale if scale > 0 else (0.0 if error == 0 else math.inf)

    coverage = {}
    for level in LEVELS:
        if f"lo_{level}" in rows and f"hi_{level}" in rows and rows[[f"lo_{level}", f"hi_{level}"]].notna().all(None):
            inside = (actual >= rows[f"lo_{level}"].to_numpy()) & (actual <= rows[f"hi_{level}"].to_numpy())
            coverage[level] = float(inside.mean())
    forecast_direction = hit_rate = None
    if move_threshold_pct is not None and last > 0:
        end_value = float(forecast["value"].iloc[-1])  # the horizon's end, as the signal reads it
        forecast_direction = direction(100 * (end_value / last - 1), move_threshold_pct)
        realized_directions = [direction(100 * (value / last - 1), move_threshold_pct) for value in actual]
        hit_rate = float(np.mean([d == forecast_direction for d in realized_directions]))
    return Scores(len(hours), mae, naive_mae, scaled(mae), scaled(naive_mae), coverage, forecast_direction, hit_rate)


EXTREMES = ("highest_price", "lowest_price", "highest_volume")


def realized_extremes(realized: pd.DataFrame) -> dict[str, float]:
    """The horizon's highest high, lowest low and highest hourly volume, from its realized bars."""
    return {
        "highest_price": float(realized["high"].max()),
        "lowest_price": float(realized["low"].min()),
        "highest_volume": float(realized["volume"].max()),
    }


def naive_extremes(history: SymbolHistory) -> dict[str, float]:
    """What the old rule said (the max/min of naive's hourly points): the last bar's high and low; the volume's
    highest hour of the last day (SeasonalNaive)."""
    values, season = history.values, history.market.bars_per_day
    return {
        "highest_price": float(values["high"][-1]),
        "lowest_price": float(values["low"][-1]),
        "highest_volume": float(np.max(values["volume"][-season:])),
    }


def extreme_forecast(symbol_doc: dict[str, Any], name: str) -> ExtremeForecast | None:
    """An extreme as the run's symbol record stored it (None for a run before extremes were forecast)."""
    keys = [name, f"{name}_lo_80", f"{name}_hi_80", f"{name}_lo_95", f"{name}_hi_95", f"{name}_at"]
    if any(symbol_doc.get(key) is None for key in keys):
        return None
    return ExtremeForecast(
        float(symbol_doc[name]),
        {
            level: (float(symbol_doc[f"{name}_lo_{level}"]), float(symbol_doc[f"{name}_hi_{level}"]))
            for level in (80, 95)
        },
        pd.Timestamp(symbol_doc[f"{name}_at"]),
        float(symbol_doc.get(f"{name}_at_probability") or 0.0),
    )


def score_extreme(forecast: ExtremeForecast, realized: float, naive: float) -> dict[str, Any]:
    """One extreme against what happened: above the median, inside each interval, pinball beside the old rule's."""
    floor = np.finfo(float).tiny
    pinball, naive_pinball = (
        pinball_loss(realized, forecast.quantiles(), floor),
        pinball_loss(realized, point_as_quantiles(naive), floor),
    )
    inside = {level: lo <= realized <= hi for level, (lo, hi) in forecast.bounds.items()}
    return {
        "realized": realized,
        "median": forecast.median,
        **{
            f"{side}_{level}": bound
            for level, pair in forecast.bounds.items()
            for side, bound in zip(("lo", "hi"), pair, strict=True)
        },
        "above_median": realized > forecast.median,
        "inside_80": inside.get(80),
        "inside_95": inside.get(95),
        "coverage_80": float(inside[80]) if 80 in inside else None,
        "coverage_95": float(inside[95]) if 95 in inside else None,
        "pinball": pinball,
        "naive_pinball": naive_pinball,
        "mae": abs(realized - forecast.median),
        "naive_mae": abs(realized - naive),
        "beats_naive": pinball < naive_pinball,
    }


def _training_history(settings: Settings, es: Elasticsearch, symbol: str, as_of: pd.Timestamp) -> SymbolHistory | None:
    """The series the run trained on, rebuilt from bars-1h with the run's own rules."""
    start = as_of - pd.Timedelta(days=settings.forecast.lookback_days)
    bars = store.load_bars(es, settings, [symbol], start, as_of)[symbol]
    history = build_history(
        symbol,
        bars_frame(bars),
        market_of(symbol),
        ["high", "low", "close", "volume"],
        min_points=1,
        max_gap_fraction=1.0,
    )
    if not isinstance(history, SymbolHistory):
        return None
    history.values[RANGE] = range_pct(history.values["high"], history.values["low"])
    return history


def evaluate_run_symbol(
    settings: Settings, es: Elasticsearch, run: dict[str, Any], symbol: str, symbol_doc: dict[str, Any] | None = None
) -> list[TargetEvaluation]:
    """Every target of one symbol of one run, scored on the bars that have arrived since; and, once the whole
    horizon has passed, the extremes of its record (``symbol_doc``)."""
    as_of = pd.Timestamp(run["as_of"]).tz_convert("UTC")
    rows = store.run_forecasts(es, settings, run["run_id"], symbol)
    if rows.empty:
        return []
    history = _training_history(settings, es, symbol, as_of)
    if history is None:
        return []
    end = rows["timestamp"].max() + pd.Timedelta(hours=1)
    realized = bars_frame(store.load_bars(es, settings, [symbol], as_of, end)[symbol])
    if not realized.empty:
        realized[RANGE] = range_pct(realized["high"].to_numpy(), realized["low"].to_numpy())
    evaluations = []
    for target, target_rows in rows.groupby("target", sort=True):
        forecast = target_rows.set_index("timestamp").sort_index()
        if target not in realized or target not in history.values:
            continue
        threshold = settings.recommend.rules.move_threshold_pct if target == "close" else None
        scores = evaluate_target(forecast, realized[target].dropna(), history.values[target], threshold)
        if scores is None:
            continue
        horizon = len(forecast)
        base = {
            "run_id": run["run_id"],
            "as_of": iso(as_of),
            "symbol": symbol,
            "market": history.market.name,
            "target": str(target),
            "model": str(forecast["model"].iloc[0]),
            "horizon": horizon,
        }
        through = forecast.index.intersection(realized.index).max()
        evaluations.append(
            TargetEvaluation(
                **base,
                elapsed_hours=scores.elapsed,
                complete=scores.elapsed >= horizon,
                through=iso(through),
                mase=finite_or_none(scores.mase),
                naive_mase=finite_or_none(scores.naive_mase),
                mae=finite_or_none(scores.mae),
                naive_mae=finite_or_none(scores.naive_mae),
                # Naive rebuilt through exp(log) differs from naive itself only by rounding: that is not a win
                beats_naive=forecast["model"].iloc[0] != "Naive" and scores.mase < scores.naive_mase * (1 - 1e-9),
                coverage_80=scores.coverage.get(80),
                coverage_95=scores.coverage.get(95),
                direction=scores.direction,
                direction_hit_rate=scores.direction_hit_rate,
            )
        )
    hours = pd.DatetimeIndex(rows["timestamp"].drop_duplicates().sort_values())
    passed = realized.loc[realized.index.intersection(hours)]
    if symbol_doc is not None and len(hours) and len(passed) == len(hours):
        naive = naive_extremes(history)
        actual = realized_extremes(passed)
        for name in EXTREMES:
            forecast = extreme_forecast(symbol_doc, name)
            if forecast is None:
                continue
            evaluations.append(
                TargetEvaluation(
                    run_id=run["run_id"],
                    as_of=iso(as_of),
                    symbol=symbol,
                    market=history.market.name,
                    target=name,
                    model="extremes",
                    horizon=len(hours),
                    elapsed_hours=len(passed),
                    complete=True,
                    through=iso(passed.index.max()),
                    mase=None,
                    naive_mase=None,
                    **score_extreme(forecast, actual[name], naive[name]),
                )
            )
    return evaluations


def runs_to_evaluate(es: Elasticsearch, settings: Settings, now: pd.Timestamp, max_age_days: float) -> Iterator[dict]:
    """Finished runs whose horizon has begun, newest first, cut off within ``max_age_days`` of now."""
    index = settings.elasticsearch.indices.forecast_runs
    if not es.indices.exists(index=index):
        return
    query = {
        "bool": {
            "filter": [
                {"term": {"record": "run"}},
                {"terms": {"status": list(store.WITH_FORECASTS)}},
                {"range": {"as_of": {"lte": iso(now), "gte": iso(now - pd.Timedelta(days=max_age_days))}}},
            ]
        }
    }
    page = es.search(index=index, query=query, sort=[{"as_of": "desc"}], size=1000)
    yield from (hit["_source"] for hit in page["hits"]["hits"])


def _already_complete(es: Elasticsearch, settings: Settings, run_id: str) -> set[str]:
    index = settings.elasticsearch.indices.forecast_evaluations
    page = es.search(
        index=index,
        query={"bool": {"filter": [{"term": {"run_id": run_id}}, {"term": {"complete": True}}]}},
        source_includes=["symbol", "target"],
        size=10_000,
    )
    return {f"{hit['_source']['symbol']}|{hit['_source']['target']}" for hit in page["hits"]["hits"]}


def evaluate(
    settings: Settings, *, run_ids: list[str] | None = None, now: pd.Timestamp | None = None, max_age_days: float = 30
) -> list[TargetEvaluation]:
    """Score the given runs (default: every finished run of the last ``max_age_days`` whose horizon has begun)
    and write the evaluations; a run whose every target is already complete is not scored again."""
    es = es_client(settings)
    index = settings.elasticsearch.indices.forecast_evaluations
    ensure_index(settings, es, index, MAPPINGS["forecast_evaluations"])
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    if run_ids:
        runs = [es.get(index=settings.elasticsearch.indices.forecast_runs, id=run_id)["_source"] for run_id in run_ids]
    else:
        runs = list(runs_to_evaluate(es, settings, now, max_age_days))
    evaluated_at = now_iso()
    results: list[TargetEvaluation] = []
    for run in runs:
        done = _already_complete(es, settings, run["run_id"])
        for symbol_doc in store.run_records(es, settings, run["run_id"], "symbol"):
            if symbol_doc.get("status") != "ok":
                continue
            symbol = symbol_doc["symbol"]
            targets: set[str] = set(settings.forecast.targets)
            if {"high", "low", "close"} <= targets:
                targets.add(RANGE)
            if any(symbol_doc.get(name) is not None for name in EXTREMES):
                targets.update(name for name in EXTREMES if symbol_doc.get(f"{name}_lo_80") is not None)
            if {f"{symbol}|{target}" for target in targets} <= done:
                continue
            evaluations = evaluate_run_symbol(settings, es, run, symbol, symbol_doc)
            store.write(
                es,
                (
                    {
                        "_index": index,
                        "_id": e.doc_id,
                        "_source": ForecastEvaluationDocument(**e.model_dump(), evaluated_at=evaluated_at).model_dump(),
                    }
                    for e in evaluations
                ),
            )
            results.extend(evaluations)
    es.indices.refresh(index=index)
    return results


def symbol_evaluations(es: Elasticsearch, settings: Settings, symbol: str, runs: int = 50) -> list[dict[str, Any]]:
    """The symbol's evaluations, newest run first then by target, for its newest ``runs`` runs; [] before any."""
    index = settings.elasticsearch.indices.forecast_evaluations
    if not es.indices.exists(index=index):
        return []
    page = es.search(
        index=index, query={"term": {"symbol": symbol}}, size=runs * 8, sort=[{"as_of": "desc"}, {"target": "asc"}]
    )
    return [hit["_source"] for hit in page["hits"]["hits"]]
