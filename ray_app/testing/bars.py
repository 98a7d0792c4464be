"""Helpers for tests and benchmarks of forecasting: hourly bars whose right answer is known, and a forecast step
that fails on cue (raises, or kills its Ray worker) for chosen symbols.

They live in the package, not in ``tests/``, because Ray workers must import them to unpickle them.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ray_app.documents import BarDocument
from ray_app.forecast.calendar import Market
from ray_app.forecast.engine import SymbolForecast, forecast_history
from ray_app.forecast.models import ForecastSpec
from ray_app.forecast.series import SymbolHistory
from ray_app.times import iso

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
        o, h, l, c, v = (float(row[name]) for name in ("open", "high", "low", "close", "volume"))  # noqa: E741
        bar = BarDocument(
            symbol=symbol,
            timeframe="1Hour",
            timestamp=stamp,
            open=o,
            high=h,
            low=l,
            close=c,
            volume=v,
            range=h - l,
            notional=c * v,
            log_return=math.log(c / o),
            source=source,
            updated_at=stamp,
        )
        yield {"_index": index, "_id": f"{symbol}|{stamp}", "_source": bar.model_dump(exclude_none=True)}


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


def real_eurusd_hourly() -> pd.DataFrame:
    """Real hourly EURUSD ask bars of 2017 (the CSV gym-anytrading's wheel ships; `pip install -e '.[bench]'`)."""
    found = importlib.util.find_spec("gym_anytrading")
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError("EURUSD data: pip install -e '.[bench]' (gym-anytrading ships the CSV)")
    path = Path(found.submodule_search_locations[0]) / "datasets" / "data" / "FOREX_EURUSD_1H_ASK.csv"
    frame = pd.read_csv(path)
    frame.index = pd.to_datetime(frame.pop("Time"), format="%d.%m.%Y %H:%M:%S.%f", utc=True)
    frame.columns = [c.lower() for c in frame.columns]
    return frame[frame["volume"] > 0]  # the file's weekend hours are empty rows (volume 0); FX trades 24/5


def real_daily_stocks() -> dict[str, pd.DataFrame]:
    """Real daily bars of AAPL, GOOG, IBM, MSFT and others up to 2013 (bokeh-sampledata), split-adjusted."""
    import bokeh_sampledata

    path = Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt") as text:
        rows = list(csv.DictReader(text))
    frames: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        frames[row["Ticker"]].append(row)
    result = {}
    for ticker, items in frames.items():
        frame = pd.DataFrame(items)
        frame.index = pd.to_datetime(frame["Date"], utc=True)
        # adjusted prices (splits would look like crashes): scale high/low/close by adj close / close
        factor = frame["Adj Close"].astype(float) / frame["Close"].astype(float)
        result[ticker] = pd.DataFrame(
            {
                "high": frame["High"].astype(float) * factor,
                "low": frame["Low"].astype(float) * factor,
                "close": frame["Adj Close"].astype(float),
                "volume": frame["Volume"].astype(float),
            },
            index=frame.index,
        ).sort_index()
    return result


def real_daily_googl() -> pd.DataFrame:
    """Real daily bars of GOOGL, 2009-05 to 2018-08 (the second CSV gym-anytrading's wheel ships), split-adjusted."""
    found = importlib.util.find_spec("gym_anytrading")
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError("GOOGL data: pip install -e '.[bench]' (gym-anytrading ships the CSV)")
    frame = pd.read_csv(Path(found.submodule_search_locations[0]) / "datasets" / "data" / "STOCKS_GOOGL.csv")
    frame.index = pd.to_datetime(frame.pop("Date"), utc=True)
    factor = frame["Adj Close"] / frame["Close"]
    return pd.DataFrame(
        {
            "high": frame["High"] * factor,
            "low": frame["Low"] * factor,
            "close": frame["Adj Close"],
            "volume": frame["Volume"].astype(float),
        },
        index=frame.index,
    ).sort_index()
