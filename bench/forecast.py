"""Benchmark: per-symbol forecasting on Ray vs statsforecast's own parallelism, and accuracy against naive on
real prices.

Speed: for N symbols (4 target series each: high, low, close, volume), the same hourly data and the same models.
"ours" is the production path minus Elasticsearch: Ray tasks, each running ``forecast_history`` for a batch of
symbols (rolling-origin CV of every candidate, the choice against naive, the chosen model's final fit).
"statsforecast" is its own ``n_jobs=-1`` (a process pool over the series): ``cross_validation`` of every
candidate on all N x 4 series, the same choice, and ``forecast`` of every candidate (it has no way to fit only the
chosen one per series). Series per second, one run each, in the same process on the same machine.

Accuracy: real hourly EURUSD bars (gym-anytrading's FOREX_EURUSD_1H_ASK.csv, 2017) in windows of 30 days of
training + 5 trading days held out, and real daily bars of AAPL, GOOG, IBM, MSFT (bokeh-sampledata, to 2013) in
windows of 250 days + 5 days held out. Per model: mean CV MASE next to naive's; then the honest number, on the
held-out days the choice never saw: MASE of the chosen model vs naive, and how many series beat naive.

Calibration: the week's extremes (highest price, lowest price, highest hourly volume; ray_app/forecast/extremes.py)
on every real dataset, held out over rolling origins: EURUSD hourly (22 days -> 120 hours, origins a day apart),
the four daily stocks and daily GOOGL 2009-2018 (gym-anytrading's second CSV; 250 days -> 5, origins 5 days apart):
the share of windows whose realized extreme is above the forecast median, inside the 80% and 95% intervals, and
the pinball loss beside the old rule's (the max/min of the hourly point forecasts). Then the volatility target
(the hourly range; ray_app/forecast/volatility.py) held out beside Naive and SeasonalNaive (MASE, QLIKE), and the
close's hourly interval coverage before (the close model's own) and after (the production choice).

    .venv/bin/pip install -e '.[bench]'        # the EURUSD data ships in gym-anytrading's wheel
    .venv/bin/python bench/forecast.py [--sizes 10,100,500] [--speed-models AutoETS,AutoTheta] [--cpus N]
    .venv/bin/python bench/forecast.py --skip-speed --json     # accuracy and calibration, one JSON object last

It starts a local Ray of its own (no Kafka or Elasticsearch needed).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pandas as pd
import ray
import typer
from rich.console import Console
from rich.table import Table

from ray_app.config import load_settings
from ray_app.forecast.calendar import CRYPTO, STOCK, Market
from ray_app.forecast.engine import SymbolForecast, close_intervals, forecast_history, incoherent_hours, volatility_of
from ray_app.forecast.extremes import (
    ExtremeForecast,
    pinball_loss,
    point_as_quantiles,
    price_extremes,
    volume_extreme,
)
from ray_app.forecast.models import (
    BASELINES,
    NAIVE,
    SEASONAL_NAIVE,
    ForecastSpec,
    cross_validate_windows,
    fit_forecast,
    make_model,
    mase,
    score_windows,
)
from ray_app.forecast.series import SymbolHistory
from ray_app.forecast.volatility import QLIKE_FLOOR, forecast_range, qlike, range_pct
from ray_app.markets import default_cv_step
from ray_app.testing.bars import real_daily_googl, real_daily_stocks, real_eurusd_hourly, synthetic_bars

TARGETS = ["high", "low", "close", "volume"]
console = Console(width=140)


def spec(models: tuple[str, ...], horizon: int, season: int, windows: int = 3, step: int | None = None) -> ForecastSpec:
    return ForecastSpec(
        horizon=horizon,
        season_length=season,
        models=models,
        levels=(80, 95),
        cv_windows=windows,
        cv_step=step or horizon,
        refit=True,
        min_improvement=0.1,
        arima_approximation=True,
    )


def production_spec(models: tuple[str, ...], horizon: int, season: int) -> ForecastSpec:
    """The choice as production makes it: the default settings' CV windows and spacing, and its margin."""
    forecast = load_settings().forecast
    step = forecast.cv_step_hours or default_cv_step(horizon)
    return replace(spec(models, horizon, season, forecast.cv_windows, step), min_improvement=forecast.min_improvement)


def history_of(name: str, bars: pd.DataFrame, market: Market) -> SymbolHistory:
    values = {target: bars[target].to_numpy(dtype="float64") for target in TARGETS}
    return SymbolHistory(name, market, pd.DatetimeIndex(bars.index), values, np.zeros(len(bars), dtype=bool))


@ray.remote(num_cpus=1)
def _forecast_batch(histories: list[SymbolHistory], spec: ForecastSpec) -> list[SymbolForecast]:
    return [forecast_history(history, spec) for history in histories]


def ours(histories: list[SymbolHistory], spec: ForecastSpec, per_task: int) -> tuple[float, list[SymbolForecast]]:
    began = time.perf_counter()
    refs = [_forecast_batch.remote(histories[i : i + per_task], spec) for i in range(0, len(histories), per_task)]
    results = [result for batch in ray.get(refs) for result in batch]
    return time.perf_counter() - began, results


def statsforecast_own(histories: list[SymbolHistory], spec: ForecastSpec) -> float:
    from statsforecast import StatsForecast

    frame = pd.concat(
        [
            pd.DataFrame({"unique_id": f"{h.symbol}|{t}", "ds": np.arange(h.points), "y": h.values[t]})
            for h in histories
            for t in TARGETS
        ],
        ignore_index=True,
    )
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = StatsForecast(models=[make_model(name, spec) for name in spec.candidates], freq=1, n_jobs=-1)
        cv = engine.cross_validation(
            df=frame,
            h=spec.horizon,
            n_windows=spec.cv_windows,
            step_size=spec.cv_step,
            level=list(spec.levels),
            refit=spec.refit,
        )
        mae = {name: (cv[name] - cv["y"]).abs().groupby(cv["unique_id"]).mean() for name in spec.candidates}
        _chosen = pd.DataFrame(mae).idxmin(axis=1)  # the same kind of choice, for the same work
        engine.forecast(df=frame, h=spec.horizon, level=list(spec.levels))
    return time.perf_counter() - began


def speed_inputs(sizes: list[int], models: tuple[str, ...]) -> tuple[ForecastSpec, dict[int, list[SymbolHistory]]]:
    market = STOCK  # 30 days of a stock: ~21 sessions x 7 hourly bars; 7 days ahead = 35 steps, season 7
    run_spec = spec(models, horizon=market.horizon_steps(7), season=market.bars_per_day)
    end = pd.Timestamp("2026-11-27T00:00Z")
    histories = {
        n: [
            history_of(
                f"S{i}",
                synthetic_bars(
                    market, end - pd.Timedelta(days=30), end, "daily_cycle" if i % 2 else "random_walk", seed=i
                ),
                market,
            )
            for i in range(n)
        ]
        for n in sizes
    }
    return run_spec, histories


def speed_table(run_spec: ForecastSpec, bare: dict[int, float], ours_s: dict[int, float], cpus: int) -> Table:
    table = Table(
        title=f"speed: series/s ({', '.join(run_spec.candidates)}; 30 days of hourly stock bars, 7 days "
        f"ahead, {run_spec.cv_windows} CV windows; {cpus} CPUs)",
        title_justify="left",
    )
    for column in (
        "symbols",
        "series",
        "statsforecast n_jobs=-1 s",
        "series/s",
        "ours on Ray s",
        "series/s",
        "ours / statsforecast",
    ):
        table.add_column(column, justify="right")
    for n, bare_s in bare.items():
        series = n * len(TARGETS)
        table.add_row(
            f"{n:,}",
            f"{series:,}",
            f"{bare_s:.1f}",
            f"{series / bare_s:.1f}",
            f"{ours_s[n]:.1f}",
            f"{series / ours_s[n]:.1f}",
            f"{series / ours_s[n] / (series / bare_s):.2f}",
        )
    return table


def _windows(frame: pd.DataFrame, train: int, holdout: int, count: int) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """The last `count` non-overlapping (train, holdout) windows of `frame`."""
    size = train + holdout
    starts = [len(frame) - size * (k + 1) for k in range(count)]
    return [(frame.iloc[s : s + train], frame.iloc[s + train : s + size]) for s in reversed(starts) if s >= 0]


def accuracy(models: tuple[str, ...]) -> tuple[list[Table], dict]:
    datasets = []
    eurusd = real_eurusd_hourly()
    fx = [(f"EURUSD#{i}", tr, ho) for i, (tr, ho) in enumerate(_windows(eurusd, 22 * 24, 120, 9))]
    datasets.append(("EURUSD hourly 2017 (30 days -> 5 days)", production_spec(models, horizon=120, season=24), fx))
    stocks = real_daily_stocks()
    tickers = [ticker for ticker, frame in stocks.items() if len(frame) >= 4 * 255]  # AAPL, GOOG, IBM, MSFT
    daily = [
        (f"{ticker}#{i}", tr, ho)
        for ticker in tickers
        for i, (tr, ho) in enumerate(_windows(stocks[ticker], 250, 5, 4))
    ]
    title = f"daily {', '.join(tickers)} up to {max(f.index[-1] for f in stocks.values()):%Y-%m} (250 days -> 5 days)"
    datasets.append((title, production_spec(models, horizon=5, season=5), daily))

    tables, summary = [], {}
    for title, run_spec, windows in datasets:
        histories = [history_of(name, train, CRYPTO) for name, train, _ in windows]
        seconds, results = ours(histories, run_spec, per_task=1)
        cv = defaultdict(list)
        held = defaultdict(list)
        beats = defaultdict(int)
        chosen_count = defaultdict(lambda: defaultdict(int))
        incoherent = 0
        for (_, train, holdout), result in zip(windows, results, strict=True):
            incoherent += len(incoherent_hours(result))
            for target in TARGETS:
                forecast = result.targets[target]
                for name, score in forecast.scores.items():
                    if score.usable:
                        cv[(target, name)].append(score.mase)
                actual = holdout[target].to_numpy(dtype="float64")
                y = train[target].to_numpy(dtype="float64")
                chosen = mase(actual, forecast.value[: len(actual)], y)
                naive = mase(actual, np.full(len(actual), y[-1]), y)
                held[(target, "chosen")].append(chosen)
                held[(target, "naive")].append(naive)
                beats[target] += chosen < naive * (1 - 1e-9)  # not float noise: Naive/Naive rebuilt via exp(log)
                chosen_count[target][forecast.model] += 1
        table = Table(
            title=f"accuracy: {title}, {len(windows)} windows x 4 targets; MASE (lower is better), "
            f"{seconds:.0f} s on Ray",
            title_justify="left",
        )
        table.add_column("target")
        for name in run_spec.candidates:
            table.add_column(f"CV {name}", justify="right")
        for column in ("held-out chosen", "held-out naive", "chosen beat naive", "chosen models"):
            table.add_column(column, justify="right" if column != "chosen models" else "left")
        for target in TARGETS:
            table.add_row(
                target,
                *[f"{np.mean(cv[(target, n)]):.3f}" if cv[(target, n)] else "-" for n in run_spec.candidates],
                f"{np.mean(held[(target, 'chosen')]):.3f}",
                f"{np.mean(held[(target, 'naive')]):.3f}",
                f"{beats[target]} / {len(windows)}",
                ", ".join(f"{m} {c}" for m, c in sorted(chosen_count[target].items(), key=lambda kv: -kv[1])),
            )
        table.caption = f"incoherent forecast hours (engine.incoherent_hours): {incoherent}"
        tables.append(table)
        summary[title.split(" (")[0]] = {
            "incoherent_hours": incoherent,
            **{
                target: {
                    "held_out_chosen_mase": float(np.mean(held[(target, "chosen")])),
                    "held_out_naive_mase": float(np.mean(held[(target, "naive")])),
                    "windows_beating_naive": beats[target],
                    "windows": len(windows),
                }
                for target in TARGETS
            },
        }
    return tables, summary


EXTREMES = ("highest_price", "lowest_price", "highest_volume")


def _rolling(frame: pd.DataFrame, train: int, holdout: int, step: int) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Every (train, holdout) pair with origins ``step`` bars apart, oldest first."""
    return [
        (frame.iloc[s : s + train], frame.iloc[s + train : s + train + holdout])
        for s in range(0, len(frame) - train - holdout + 1, step)
    ]


def _extreme_row(forecast: ExtremeForecast, realized: float, before: float, floor: float) -> dict[str, float]:
    quantiles = forecast.quantiles()
    return {
        "above_median": float(realized > forecast.median),
        "inside_80": float(forecast.bounds[80][0] <= realized <= forecast.bounds[80][1]),
        "inside_95": float(forecast.bounds[95][0] <= realized <= forecast.bounds[95][1]),
        "above_before": float(realized > before),
        "pinball_after": pinball_loss(realized, quantiles, floor),
        "pinball_before": pinball_loss(realized, point_as_quantiles(before), floor),
    }


def _coverage(log_close: np.ndarray, bounds: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[int, float]:
    return {
        level: float(((log_close >= lo[: len(log_close)]) & (log_close <= hi[: len(log_close)])).mean())
        for level, (lo, hi) in bounds.items()
    }


@ray.remote(num_cpus=1)
def _calibrate_batch(
    windows: list[tuple[pd.DataFrame, pd.DataFrame, bool]], season: int, run_spec: ForecastSpec
) -> list[dict]:
    """Per window: the extremes against what happened (and the old rule's), and, where asked, the range forecast
    and the close's intervals before (the close model's own) and after (the production choice)."""
    rows = []
    for train, holdout, with_volatility in windows:
        hours = pd.DatetimeIndex(holdout.index)
        high, low, close, volume = (train[c].to_numpy(dtype="float64") for c in ("high", "low", "close", "volume"))
        highest, lowest = price_extremes(high, low, close, hours, season)
        row: dict = {
            "highest_price": _extreme_row(highest, float(holdout["high"].max()), float(high[-1]), 1e-12),
            "lowest_price": _extreme_row(lowest, float(holdout["low"].min()), float(low[-1]), 1e-12),
            "highest_volume": _extreme_row(
                volume_extreme(volume, hours, season),
                float(holdout["volume"].max()),
                float(volume[-season:].max()),  # the max of a SeasonalNaive forecast: the last day repeated
                1e-9,
            ),
        }
        if with_volatility:
            history = history_of("window", train, CRYPTO)
            chosen = volatility_of(history, run_spec)
            ranges = range_pct(high, low)
            actual = range_pct(holdout["high"].to_numpy(), holdout["low"].to_numpy())
            floor = QLIKE_FLOOR * max(float(ranges.mean()), 1e-12)
            paths = {
                "chosen": chosen.value,
                NAIVE: forecast_range(NAIVE, ranges, close, len(hours), season),
                SEASONAL_NAIVE: forecast_range(SEASONAL_NAIVE, ranges, close, len(hours), season),
            }
            row["volatility"] = {
                "model": chosen.model,
                **{f"mase_{k}": mase(actual, v[: len(actual)], ranges) for k, v in paths.items()},
                **{f"qlike_{k}": qlike(actual, v[: len(actual)], floor) for k, v in paths.items()},
            }
            log_close = np.log(close)
            baseline_spec = replace(run_spec, models=())
            windows_cv, _ = cross_validate_windows({"log_close": log_close}, baseline_spec)
            naive_cv = windows_cv["log_close"][NAIVE]
            naive_coverage = score_windows(naive_cv, log_close).coverage if not isinstance(naive_cv, str) else {}
            point = fit_forecast(NAIVE, {"log_close": log_close}, baseline_spec)["log_close"]
            realized = np.log(holdout["close"].to_numpy(dtype="float64"))
            after = close_intervals(history, run_spec, chosen, point, naive_coverage)
            row["close_intervals"] = {
                "before": _coverage(realized, point.bounds),
                "after": _coverage(realized, after.bounds),
                "source": after.source.split(" ")[0],
            }
        rows.append(row)
    return rows


def calibration() -> tuple[list[Table], dict]:
    """The extremes' calibration and the range forecast on every real dataset, held out (rolling origins)."""
    stocks = real_daily_stocks()
    tickers = [ticker for ticker, frame in stocks.items() if len(frame) >= 4 * 255]
    datasets = [
        ("EURUSD hourly 2017", [real_eurusd_hourly()], 22 * 24, 120, 24, 24, 1),
        (
            f"daily {', '.join(tickers)} up to {max(f.index[-1] for f in stocks.values()):%Y-%m}",
            [stocks[t] for t in tickers],
            250,
            5,
            5,
            5,
            5,
        ),
        ("daily GOOGL 2009-2018", [real_daily_googl()], 250, 5, 5, 5, 5),
    ]
    tables, summary = [], {}
    for title, frames, train, horizon, step, season, volatility_every in datasets:
        run_spec = production_spec((), horizon, season)
        windows = [
            (tr, ho, k % volatility_every == 0)
            for frame in frames
            for k, (tr, ho) in enumerate(_rolling(frame, train, horizon, step))
        ]
        batch = max(1, math.ceil(len(windows) / 16))
        refs = [
            _calibrate_batch.remote(windows[i : i + batch], season, run_spec) for i in range(0, len(windows), batch)
        ]
        rows = [row for part in ray.get(refs) for row in part]
        entry: dict = {"windows": len(rows), "extremes": {}}
        table = Table(
            title=f"extremes: {title}, {len(rows)} windows of {train} bars -> the next {horizon}, origins {step} "
            "apart; target: above median 50% +- 10, inside 80% 80% +- 8, inside 95% 90-99%",
            title_justify="left",
        )
        for column in (
            "extreme",
            "above median",
            "inside 80%",
            "inside 95%",
            "old rule exceeded",
            "pinball old rule",
            "pinball now",
        ):
            table.add_column(column, justify="right" if column != "extreme" else "left")
        for name in EXTREMES:
            found = {key: float(np.mean([row[name][key] for row in rows])) for key in rows[0][name]}
            entry["extremes"][name] = {
                "above_median_share": found["above_median"],
                "coverage_80": found["inside_80"],
                "coverage_95": found["inside_95"],
                "old_rule_exceeded_share": found["above_before"],
                "pinball_before": found["pinball_before"],
                "pinball_after": found["pinball_after"],
            }
            table.add_row(
                name,
                f"{found['above_median']:.0%}",
                f"{found['inside_80']:.0%}",
                f"{found['inside_95']:.0%}",
                f"{found['above_before']:.0%}",
                f"{found['pinball_before']:.3f}",
                f"{found['pinball_after']:.3f}",
            )
        table.caption = (
            "old rule: max/min of the hourly point forecasts (prices: the last bar's high/low, as Naive gives; "
            "volume: the last day's highest hour, as SeasonalNaive gives); pinball: mean quantile loss at 2.5, 10, "
            "50, 90, 97.5% on 100 x ln(value), lower is better"
        )
        tables.append(table)
        scored = [row for row in rows if "volatility" in row]
        volatility = {
            key: float(np.nanmean([row["volatility"][key] for row in scored]))
            for key in scored[0]["volatility"]
            if key != "model"
        }
        chosen = pd.Series([row["volatility"]["model"] for row in scored]).value_counts().to_dict()
        entry["volatility"] = {
            "target": "hourly range, 100 x ln(high/low)",
            "windows": len(scored),
            "held_out_mase": volatility["mase_chosen"],
            "naive_mase": volatility[f"mase_{NAIVE}"],
            "seasonal_naive_mase": volatility[f"mase_{SEASONAL_NAIVE}"],
            "held_out_qlike": volatility["qlike_chosen"],
            "naive_qlike": volatility[f"qlike_{NAIVE}"],
            "seasonal_naive_qlike": volatility[f"qlike_{SEASONAL_NAIVE}"],
            "chosen_models": {str(k): int(v) for k, v in chosen.items()},
        }
        levels = sorted(scored[0]["close_intervals"]["before"])
        entry["close_intervals"] = {
            "windows": len(scored),
            **{
                f"coverage_{level}_{when}": float(np.mean([row["close_intervals"][when][level] for row in scored]))
                for level in levels
                for when in ("before", "after")
            },
            "volatility_used_share": float(
                np.mean([row["close_intervals"]["source"] == "volatility" for row in scored])
            ),
        }
        vol_table = Table(
            title=f"volatility and the close's intervals: {title}, {len(scored)} windows held out",
            title_justify="left",
        )
        for column in ("", "chosen", NAIVE, SEASONAL_NAIVE, "chosen models"):
            vol_table.add_column(column, justify="right" if column != "chosen models" else "left")
        vol_table.add_row(
            "range MASE",
            *(f"{volatility[f'mase_{k}']:.3f}" for k in ("chosen", NAIVE, SEASONAL_NAIVE)),
            ", ".join(f"{m} {c}" for m, c in chosen.items()),
        )
        vol_table.add_row(
            "range QLIKE", *(f"{volatility[f'qlike_{k}']:.3f}" for k in ("chosen", NAIVE, SEASONAL_NAIVE)), ""
        )
        close = entry["close_intervals"]
        vol_table.caption = (
            "close intervals, hourly coverage held out: "
            + "; ".join(
                f"{lv}%: {close[f'coverage_{lv}_before']:.1%} before, {close[f'coverage_{lv}_after']:.1%} after"
                for lv in levels
            )
            + f" (the range forecast's intervals used in {close['volatility_used_share']:.0%} of windows)"
        )
        tables.append(vol_table)
        summary[title] = entry
    return tables, summary


def main(
    sizes: str = typer.Option("10,100,500", help="Symbol counts for the speed table."),
    speed_models: str = typer.Option("AutoETS,AutoTheta", help="Models for the speed table (plus the baselines)."),
    accuracy_models: str = typer.Option("AutoETS,AutoTheta,AutoARIMA", help="Models for the accuracy tables."),
    cpus: int = typer.Option(os.cpu_count() or 2, help="CPUs for Ray (statsforecast's n_jobs=-1 takes them all)."),
    skip_speed: bool = typer.Option(False, help="Only the accuracy and calibration tables."),
    skip_accuracy: bool = typer.Option(False, help="Leave out the models' accuracy tables (the slow part)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object last (the accuracy summary)."),
) -> None:
    tables = []
    if not skip_speed:
        # statsforecast's process pool forks: run it before this process starts Ray, so it forks a clean process
        run_spec, inputs = speed_inputs([int(n) for n in sizes.split(",")], tuple(speed_models.split(",")))
        bare = {}
        for n, histories in inputs.items():
            bare[n] = statsforecast_own(histories, run_spec)
            console.print(f"  statsforecast n_jobs=-1, {n} symbols: {bare[n]:.1f} s", highlight=False)
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)  # its own Ray
    try:
        if not skip_speed:
            ours_s = {}
            for n, histories in inputs.items():
                ours_s[n], _ = ours(histories, run_spec, per_task=max(1, math.ceil(n / (cpus * 4))))
                console.print(f"  ours on Ray, {n} symbols: {ours_s[n]:.1f} s", highlight=False)
            tables.append(speed_table(run_spec, bare, ours_s, cpus))
        summary: dict = {}
        if not skip_accuracy:
            accuracy_tables, summary = accuracy(tuple(accuracy_models.split(",")))
            tables += accuracy_tables
        calibration_tables, calibrated = calibration()
        tables += calibration_tables
        for dataset, entry in calibrated.items():
            summary.setdefault(dataset, {}).update(entry)
    finally:
        ray.shutdown()
    for table in tables:
        console.print(table)
    console.print(
        f"baselines in every run: {', '.join(BASELINES)}; a model is chosen only if its CV MASE is 10% "
        f"below {NAIVE}'s in the default settings' CV windows (for prices: on high, low and close, "
        "reconstructed from the log close and the spreads)",
        highlight=False,
    )
    if as_json:
        print(json.dumps(summary))


if __name__ == "__main__":
    typer.run(main)
