"""Helpers for tests and benchmarks of forecasting: hourly bars whose right answer is known, and a forecast step
that fails on cue (raises, or kills its Ray worker) for chosen symbols.

They live in the package, not in ``tests/``, because Ray workers must import them to unpickle them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ray_app.forecast.calendar import Market
from ray_app.forecast.engine import SymbolForecast, forecast_history
from ray_app.forecast.models import ForecastSpec
from ray_app.forecast.series import SymbolHistory
from ray_app.forecast.store import iso

Shape = Literal["random_walk", "daily_cycle"]


def synthetic_bars(
    market: Market,
    start: pd.Timestamp,
    end: pd.Timestamp,
    shape: Shape,
    seed: int,
    price: float = 100.0,
) -> pd.DataFrame:
    """Hourly OHLCV bars on the market's trading hours in [start, end).

    ``random_walk``: the close is a driftless Gaussian random walk (the best forecast is the last value), volume
    is noise around a constant. ``daily_cycle``: close and volume follow a strong cycle of one trading day plus a
    little noise (a seasonal model must beat naive by far).
    """
    rng = np.random.default_rng(seed)
    hours = market.slots_between(start, end - pd.Timedelta(hours=1))
    n, phase = len(hours), np.arange(len(hours)) % market.bars_per_day
    cycle = np.sin(2 * np.pi * phase / market.bars_per_day)
    if shape == "random_walk":
        close = price + np.cumsum(rng.normal(0, price * 0.002, n))
        volume = 1000 + rng.normal(0, 100, n)
    else:
        close = price * (1 + 0.05 * cycle + rng.normal(0, 0.002, n))
        volume = 1000 * (1 + 0.6 * cycle) + rng.normal(0, 20, n)
    spread = np.abs(rng.normal(0, price * 0.001, n)) + price * 0.0005
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": np.maximum(volume, 1.0),
        },
        index=hours,
    )


def bar_actions(index: str, symbol: str, bars: pd.DataFrame, source: str = "test") -> Iterable[dict]:
    """Bulk actions writing `bars` the way the streaming job writes bars-1h (same ids and fields)."""
    for hour, row in bars.iterrows():
        stamp = iso(hour)
        yield {
            "_index": index,
            "_id": f"{symbol}|{stamp}",
            "_source": {
                "symbol": symbol,
                "timeframe": "1Hour",
                "timestamp": stamp,
                **{name: float(row[name]) for name in ("open", "high", "low", "close", "volume")},
                "source": source,
            },
        }


@dataclass(frozen=True)
class FailOn:
    """A forecast step that fails for `symbols`: ``raise`` an exception, or ``exit`` (kill the Ray worker)."""

    symbols: frozenset[str]
    how: Literal["raise", "exit"] = "raise"

    def __call__(self, history: SymbolHistory, spec: ForecastSpec) -> SymbolForecast:
        if history.symbol in self.symbols:
            if self.how == "exit":
                os._exit(17)
            raise RuntimeError(f"injected failure for {history.symbol}")
        return forecast_history(history, spec)
