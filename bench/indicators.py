"""Benchmark: the indicators core (numpy + scipy's lfilter, ray_app/indicators/core.py) vs TA-Lib (C), same closes.

Every indicator the live job computes (RSI 14, EMA 12 and 26, MACD 12/26/9, Bollinger 20/2) over N bars, the way a
cycle of the indicators job recomputes a symbol's whole series: milliseconds per series for each, the ratio ours /
TA-Lib's, and the largest difference between the two as a fraction of the price level. Best of `--repeat` runs,
in this process, on this machine.

    .venv/bin/python bench/indicators.py [--bars 1440,10080,43200,302400] [--repeat 20] [--json]
"""

from __future__ import annotations

import json
import time

import numpy as np
import talib
import typer
from rich.console import Console
from rich.table import Table

from ray_app.indicators.core import COLUMNS, indicators

console = Console(width=140)


def reference(closes: np.ndarray) -> dict[str, np.ndarray]:
    macd, signal, histogram = talib.MACD(closes, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(closes, 20, 2, 2)
    return {
        "rsi": talib.RSI(closes, 14),
        "ema_fast": talib.EMA(closes, 12),
        "ema_slow": talib.EMA(closes, 26),
        "macd": macd,
        "macd_signal": signal,
        "macd_histogram": histogram,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
    }


def best_ms(work, closes: np.ndarray, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work(closes)
        times.append(time.perf_counter() - began)
    return min(times) * 1000


def main(
    bars: str = typer.Option("1440,10080,43200,302400", help="series lengths (1 day, 1 week, 30 days, 210 days)"),
    repeat: int = typer.Option(20, min=1, help="runs per size; the best is reported"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object last"),
) -> None:
    rows = []
    for count in (int(text) for text in bars.split(",")):
        closes = 60_000 * np.exp(np.cumsum(np.random.default_rng(count).normal(0, 0.001, count)))
        ours, theirs = indicators(closes), reference(closes)
        # against the price level: a MACD histogram near 0 makes any relative measure meaningless
        worst = max(float(np.nanmax(np.abs(ours[c] - theirs[c]))) for c in COLUMNS) / float(np.max(closes))
        ours_ms, talib_ms = best_ms(indicators, closes, repeat), best_ms(reference, closes, repeat)
        rows.append(
            {
                "bars": count,
                "ours_ms": round(ours_ms, 3),
                "talib_ms": round(talib_ms, 3),
                "ratio": round(ours_ms / talib_ms, 2),
                "max_difference_of_price": worst,
            }
        )
    table = Table(
        title=f"indicators over one series: ours (numpy + lfilter) vs TA-Lib (C), best of {repeat}",
        title_justify="left",
    )
    for column in ("bars", "ours ms", "TA-Lib ms", "ours / TA-Lib", "max difference / price"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['bars']:,}",
            f"{row['ours_ms']:.3f}",
            f"{row['talib_ms']:.3f}",
            f"{row['ratio']:.2f}x",
            f"{row['max_difference_of_price']:.1e}",
        )
    console.print(table)
    if as_json:
        print(json.dumps({"bench": "indicators", "repeat": repeat, "rows": rows}))


if __name__ == "__main__":
    typer.run(main)
