"""The embedded offline source: realistic, seeded, reproducible trades for any number of symbols.

Per symbol and minute, returns follow a GARCH(1,1) with Student-t shocks (volatility clustering); the number of
trades in a minute follows an intraday profile (U-shaped over US market hours for stocks, 09:30-16:00 New York,
weekdays; a gentle daily cycle for 24/7 crypto) and rises with volatility. Sizes are round and odd lots for
stocks, log-normal fractions for crypto. Stocks found in bokeh-sampledata's real daily OHLCV (AAPL, GOOG, IBM,
MSFT, public domain) are anchored on it: the start price, the volatility, and each simulated day's close-to-close
return come from consecutive real days. Every record says ``source=simulator``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import importlib.resources
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np

from ray_app.schemas import Source, Trade, is_crypto

NEW_YORK = ZoneInfo("America/New_York")
MINUTE_NS = 60_000_000_000
MARKET_OPEN_MINUTE = 9 * 60 + 30
MARKET_MINUTES = 390
_CRYPTO_DEFAULTS = {"BTC": (95_000.0, 0.55, 0.02), "ETH": (3_500.0, 0.70, 0.3), "SOL": (180.0, 0.9, 3.0)}
_STOCK_EXCHANGES = ["V", "Q", "N", "P", "D", "K", "Z"]
_STOCK_EXCHANGE_WEIGHTS = [0.05, 0.25, 0.15, 0.15, 0.30, 0.05, 0.05]
_NYSE_LISTED = {"IBM", "KO", "JPM", "XOM", "GE", "BRK.B", "WMT", "DIS"}


@dataclass(frozen=True)
class Anchor:
    """Real daily closes of one stock, oldest first (bokeh-sampledata)."""

    closes: tuple[float, ...]

    @property
    def daily_log_returns(self) -> np.ndarray:
        closes = np.asarray(self.closes)
        return np.diff(np.log(closes))

    @property
    def annual_vol(self) -> float:
        return float(np.std(self.daily_log_returns[-250:]) * math.sqrt(252))


@cache
def real_daily_anchors() -> dict[str, Anchor]:
    """Daily closes that bokeh-sampledata ships; empty when the package is missing (anchoring is optional)."""
    try:
        path = importlib.resources.files("bokeh_sampledata") / "_data" / "stocks.csv.gz"
        with path.open("rb") as raw, gzip.open(raw, "rt") as text:
            rows = list(csv.DictReader(text))
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return {}
    closes: dict[str, list[float]] = {}
    for row in rows:
        # the unadjusted closes jump at splits; the adjusted ones are consistent day to day
        closes.setdefault(row["Ticker"], []).append(float(row["Adj Close"]))
    return {ticker: Anchor(tuple(values)) for ticker, values in closes.items() if len(values) > 300}


def _stable_unit(symbol: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{symbol}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class _SymbolState:
    symbol: str
    crypto: bool
    price: float
    minute_vol: float  # long-run per-minute volatility
    lot: float  # typical size
    tape: str | None
    anchor_returns: np.ndarray | None
    rng: np.random.Generator
    variance: float = 0.0
    last_return: float = 0.0
    day_index: int = -1
    day_drift: float = 0.0


class TradeSimulator:
    """Trades for ``symbols`` between two instants, merged across symbols in event-time order."""

    garch_alpha = 0.08
    garch_beta = 0.90

    def __init__(self, symbols: list[str], seed: int, trades_per_minute: float, anchor_on_real_data: bool = True):
        if trades_per_minute <= 0:
            raise ValueError("trades_per_minute must be positive")
        self.symbols = symbols
        self.seed = seed
        self.trades_per_minute = trades_per_minute
        anchors = real_daily_anchors() if anchor_on_real_data else {}
        self._states = [self._initial_state(s, anchors.get(s), i) for i, s in enumerate(symbols)]

    def _initial_state(self, symbol: str, anchor: Anchor | None, index: int) -> _SymbolState:
        rng = np.random.default_rng([self.seed, index, int(_stable_unit(symbol, "rng") * 2**32)])
        crypto = is_crypto(symbol)
        if crypto:
            price, vol, lot = _CRYPTO_DEFAULTS.get(
                symbol.split("/")[0], (10 + 990 * _stable_unit(symbol, "p"), 0.8, 10.0)
            )
            minutes_per_year = 365 * 24 * 60
        elif anchor:
            price, vol, lot = anchor.closes[-1], anchor.annual_vol, 100.0
            minutes_per_year = 252 * MARKET_MINUTES
        else:
            price, vol, lot = 20 + 480 * _stable_unit(symbol, "p"), 0.2 + 0.3 * _stable_unit(symbol, "v"), 100.0
            minutes_per_year = 252 * MARKET_MINUTES
        minute_vol = vol / math.sqrt(minutes_per_year)
        return _SymbolState(
            symbol=symbol,
            crypto=crypto,
            price=price,
            minute_vol=minute_vol,
            lot=lot,
            tape=None if crypto else ("A" if symbol in _NYSE_LISTED else "C"),
            anchor_returns=anchor.daily_log_returns if anchor and not crypto else None,
            rng=rng,
            variance=minute_vol**2,
        )

    # --- the intraday activity profile -----------------------------------------------------------------
    @staticmethod
    def stock_minute_of_session(minute_start_ns: int) -> int | None:
        """Minutes since 09:30 New York for a minute inside regular hours on a weekday, else None."""
        local = datetime.fromtimestamp(minute_start_ns / 1e9, tz=UTC).astimezone(NEW_YORK)
        if local.weekday() >= 5:
            return None
        minute = local.hour * 60 + local.minute - MARKET_OPEN_MINUTE
        return minute if 0 <= minute < MARKET_MINUTES else None

    @staticmethod
    def stock_activity(session_minute: int) -> float:
        """U shape: busy at the open and the close, quiet at lunch; averages about 1 over the session."""
        return 0.55 + 1.6 * math.exp(-session_minute / 25) + 1.2 * math.exp(-(MARKET_MINUTES - session_minute) / 20)

    @staticmethod
    def crypto_activity(minute_start_ns: int) -> float:
        hour = (minute_start_ns // (60 * MINUTE_NS)) % 24
        return 1.0 + 0.35 * math.cos((hour - 16) / 24 * 2 * math.pi)

    # --- generation ------------------------------------------------------------------------------------
    def trades(self, start_ns: int, end_ns: int) -> Iterator[Trade]:
        """Every trade with ``start_ns <= timestamp < end_ns``, in timestamp order (ties by symbol)."""
        minute = start_ns - start_ns % MINUTE_NS
        while minute < end_ns:
            batch: list[tuple[int, str, Trade]] = []
            for state in self._states:
                for trade in self._minute(state, minute):
                    if start_ns <= trade.timestamp_ns < end_ns:
                        batch.append((trade.timestamp_ns, trade.symbol, trade))
            heapq.heapify(batch)
            while batch:
                yield heapq.heappop(batch)[2]
            minute += MINUTE_NS

    def _start_day(self, state: _SymbolState, minute_ns: int) -> None:
        day = int(minute_ns // (1440 * MINUTE_NS))
        if day == state.day_index:
            return
        state.day_index = day
        state.day_drift = 0.0
        if state.anchor_returns is not None and len(state.anchor_returns):
            # the day's close-to-close return is a real one; consecutive days replay consecutive real days
            real = state.anchor_returns[(day + self.seed) % len(state.anchor_returns)]
            state.day_drift = float(real) / MARKET_MINUTES

    def _minute(self, state: _SymbolState, minute_ns: int) -> list[Trade]:
        if state.crypto:
            activity = self.crypto_activity(minute_ns)
        else:
            session_minute = self.stock_minute_of_session(minute_ns)
            if session_minute is None:
                return []
            self._start_day(state, minute_ns)
            activity = self.stock_activity(session_minute)
        rng = state.rng
        # GARCH(1,1) variance for this minute, Student-t(4) shock scaled to unit variance
        omega = state.minute_vol**2 * (1 - self.garch_alpha - self.garch_beta)
        state.variance = omega + self.garch_alpha * state.last_return**2 + self.garch_beta * state.variance
        shock = rng.standard_t(4) / math.sqrt(2.0)
        minute_return = state.day_drift + math.sqrt(state.variance) * shock
        state.last_return = minute_return - state.day_drift
        vol_ratio = math.sqrt(state.variance) / state.minute_vol
        count = int(rng.poisson(self.trades_per_minute * activity * min(3.0, 0.5 + 0.5 * vol_ratio)))
        start_price = state.price
        end_price = start_price * math.exp(minute_return)
        state.price = end_price
        if count == 0:
            return []
        offsets = np.sort(rng.integers(0, MINUTE_NS, size=count))
        # a Brownian bridge from the minute's first to its last price, plus bid-ask bounce
        steps = rng.normal(0.0, 1.0, size=count)
        walk = np.cumsum(steps) / math.sqrt(count)
        bridge = walk - np.linspace(0, 1, count) * walk[-1]
        log_path = (
            math.log(start_price)
            + np.linspace(1 / count, 1, count) * minute_return
            + bridge * math.sqrt(state.variance) * 0.5
        )
        bounce = rng.choice([-1.0, 1.0], size=count) * 0.0001
        prices = np.exp(log_path) * (1 + bounce)
        trades = []
        for position, (offset, price) in enumerate(zip(offsets, prices, strict=True)):
            trades.append(self._trade(state, minute_ns + int(offset), float(price), position))
        return trades

    def _trade(self, state: _SymbolState, timestamp_ns: int, price: float, position: int) -> Trade:
        rng = state.rng
        # unique across runs (a sequence restarting at 1 would make a later run overwrite an earlier one's trades
        # in Elasticsearch, where the id is symbol + exchange + trade id), and the same for the same seed and time
        trade_id = f"{timestamp_ns}-{position}"
        if state.crypto:
            size = round(float(rng.lognormal(math.log(state.lot / 10), 1.2)), 6) or 1e-6
            return Trade(symbol=state.symbol, timestamp_ns=timestamp_ns, price=round(price, 2), size=size,
                         trade_id=str(trade_id), taker_side="B" if rng.random() < 0.5 else "S",
                         source=Source.SIMULATOR)  # fmt: skip
        if rng.random() < 0.45:
            size, conditions = float(rng.integers(1, 100)), ["@", "I"]  # odd lot
        else:
            size, conditions = float(100 * rng.geometric(0.55)), ["@"]
        exchange = str(rng.choice(_STOCK_EXCHANGES, p=_STOCK_EXCHANGE_WEIGHTS))
        return Trade(symbol=state.symbol, timestamp_ns=timestamp_ns, price=round(price, 2), size=size,
                     trade_id=str(trade_id), exchange=exchange, conditions=conditions, tape=state.tape,
                     source=Source.SIMULATOR)  # fmt: skip


def history_window(days: float, now_ns: int) -> tuple[int, int]:
    end = now_ns - now_ns % MINUTE_NS
    return end - int(timedelta(days=days).total_seconds() * 1e9), end
