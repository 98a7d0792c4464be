"""The embedded offline source: realistic, seeded, reproducible trades for any number of symbols.

Per symbol and minute, returns follow a GARCH(1,1) with Student-t shocks (volatility clustering); the number of
trades in a minute follows an intraday profile (U-shaped over US market hours for stocks, 09:30-16:00 New York,
weekdays; a gentle daily cycle for 24/7 crypto) and rises with volatility. Sizes are round and odd lots for
stocks, log-normal fractions for crypto. Stocks found in bokeh-sampledata's real daily OHLCV (AAPL, GOOG, IBM,
MSFT, public domain) are anchored on it: the start price, the volatility, and each simulated day's close-to-close
return come from consecutive real days. Every record says ``source=simulator``.

``events`` adds what a real feed sends beside the trades: the top of the book (``Quote``, ``quotes_per_trade`` per
trade on average, around the price path, the spread a few basis points and at least a cent for stocks), and for
stocks the venue's later cancels (``TradeCancel``, ``cancel_share`` of the trades, a tenth of them as errors) and
corrections (``TradeCorrection``, ``correction_share``: a price a few basis points off, sometimes a new size), each
sent between half a second and ``MAX_ADJUST_DELAY_S`` after its trade. They draw from random streams of their own,
so the trades of a seed stay what they were.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import importlib.resources
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np

from ray_app.schemas import Quote, Source, Trade, TradeCancel, TradeCorrection, is_crypto

NEW_YORK = ZoneInfo("America/New_York")
MINUTE_NS = 60_000_000_000
MARKET_OPEN_MINUTE = 9 * 60 + 30
MARKET_MINUTES = 390
_CRYPTO_DEFAULTS = {"BTC": (95_000.0, 0.55, 0.02), "ETH": (3_500.0, 0.70, 0.3), "SOL": (180.0, 0.9, 3.0)}
_STOCK_EXCHANGES = ["V", "Q", "N", "P", "D", "K", "Z"]
_STOCK_EXCHANGE_WEIGHTS = [0.05, 0.25, 0.15, 0.15, 0.30, 0.05, 0.05]
_NYSE_LISTED = {"IBM", "KO", "JPM", "XOM", "GE", "BRK.B", "WMT", "DIS"}
MAX_ADJUST_DELAY_S = 90  # a cancel or correction follows its trade by 0.5 s to this
Event = Trade | TradeCancel | TradeCorrection | Quote


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


DAY_NS = 1440 * MINUTE_NS
NANOS = 1_000_000_000
# the day the simulated prices are anchored at (real stocks start near their last real close); fixed, so the
# same seed gives the same trades whenever the simulator runs
REFERENCE_DAY = 20_780  # 2026-11-23, days since 1970-01-01
_DAILY_CYCLE = 1000  # days of synthetic daily returns for symbols without real data (then they repeat)


@dataclass
class _SymbolState:
    symbol: str
    key: int  # a stable number for the symbol: with the seed and the time, it seeds every random draw
    crypto: bool
    price: float  # the price at the reference day's start
    minute_vol: float  # long-run per-minute volatility
    lot: float  # typical size
    tape: str | None
    daily_returns: np.ndarray  # one cycle of daily log returns, mean removed (so prices stay in range)
    cumulative: np.ndarray  # cumulative[i] = sum of daily_returns[:i], len = cycle + 1
    day_index: int = -1
    day_returns: np.ndarray | None = None  # the current day's minute returns (pinned to its daily return)
    day_variance: np.ndarray | None = None
    day_start_log_price: float = 0.0


class TradeSimulator:
    """Trades for ``symbols`` between two instants, merged across symbols in event-time order.

    Every draw is seeded by (seed, symbol, day) or (seed, symbol, minute), never by where a run starts: the same
    seed gives the same trades for the same minute in every run, however the runs' windows overlap. A day's
    open is the previous day's close (each day's minute returns are pinned to that day's daily return).
    """

    garch_alpha = 0.08
    garch_beta = 0.90

    def __init__(self, symbols: list[str], seed: int, trades_per_minute: float, anchor_on_real_data: bool = True,
                 cancel_share: float = 0.005, correction_share: float = 0.003, quotes_per_trade: float = 1.5):
        if trades_per_minute <= 0:
            raise ValueError("trades_per_minute must be positive")
        self.symbols = symbols
        self.seed = seed
        self.trades_per_minute = trades_per_minute
        self.cancel_share = cancel_share
        self.correction_share = correction_share
        self.quotes_per_trade = quotes_per_trade
        anchors = real_daily_anchors() if anchor_on_real_data else {}
        self._states = [self._initial_state(s, anchors.get(s)) for s in symbols]

    def _initial_state(self, symbol: str, anchor: Anchor | None) -> _SymbolState:
        key = int(_stable_unit(symbol, "rng") * 2**32)
        crypto = is_crypto(symbol)
        if crypto:
            price, vol, lot = _CRYPTO_DEFAULTS.get(
                symbol.split("/")[0], (10 + 990 * _stable_unit(symbol, "p"), 0.8, 10.0)
            )
            minutes_per_day, days_per_year = 1440, 365
        elif anchor:
            price, vol, lot = anchor.closes[-1], anchor.annual_vol, 100.0
            minutes_per_day, days_per_year = MARKET_MINUTES, 252
        else:
            price, vol, lot = 20 + 480 * _stable_unit(symbol, "p"), 0.2 + 0.3 * _stable_unit(symbol, "v"), 100.0
            minutes_per_day, days_per_year = MARKET_MINUTES, 252
        if anchor and not crypto:
            daily = anchor.daily_log_returns  # consecutive simulated days replay consecutive real days
        else:
            daily = np.random.default_rng([self.seed, key, 1]).normal(0, vol / math.sqrt(days_per_year), _DAILY_CYCLE)
        daily = np.roll(daily - daily.mean(), -(self.seed % len(daily)))
        return _SymbolState(
            symbol=symbol,
            key=key,
            crypto=crypto,
            price=price,
            minute_vol=vol / math.sqrt(days_per_year * minutes_per_day),
            lot=lot,
            tape=None if crypto else ("A" if symbol in _NYSE_LISTED else "C"),
            daily_returns=daily,
            cumulative=np.concatenate([[0.0], np.cumsum(daily)]),
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

    def events(self, start_ns: int, end_ns: int, sent_since: Mapping[str, int] | None = None) -> Iterator[Event]:
        """Every trade, quote, cancel and correction with ``start_ns <= timestamp < end_ns``, in timestamp order. The
        minutes before ``start_ns`` are simulated too, for the cancels and corrections they send after it;
        ``sent_since`` (per symbol) leaves out those of trades before it: trades no run sent (a first run)."""
        pending: list[tuple[int, int, Event]] = []  # adjustments of earlier trades: (time, sequence, record)
        sequence = 0
        first = start_ns - MAX_ADJUST_DELAY_S * NANOS
        minute = first - first % MINUTE_NS
        while minute < end_ns:
            batch: list[tuple[int, int, Event]] = []
            for state in self._states:
                trades = self._minute(state, minute)
                since = sent_since.get(state.symbol, 0) if sent_since else 0
                for event in self._extras(state, minute, [t for t in trades if t.timestamp_ns >= since]):
                    sequence += 1
                    heap = pending if isinstance(event, TradeCancel | TradeCorrection) else batch
                    heapq.heappush(heap, (event.timestamp_ns, sequence, event))
                for trade in trades:
                    sequence += 1
                    heapq.heappush(batch, (trade.timestamp_ns, sequence, trade))
            while pending and pending[0][0] < minute + MINUTE_NS:
                heapq.heappush(batch, heapq.heappop(pending))
            while batch:
                at, _, event = heapq.heappop(batch)
                if start_ns <= at < end_ns:
                    yield event
            minute += MINUTE_NS

    def _extras(self, state: _SymbolState, minute_ns: int, trades: list[Trade]) -> list[Event]:
        """The minute's quotes around its trades, and the cancels and corrections its trades will get."""
        if not trades:
            return []
        rng = np.random.default_rng([self.seed, state.key, 4, minute_ns // MINUTE_NS])
        extras: list[Event] = []
        times = np.array([t.timestamp_ns for t in trades])
        for offset in np.sort(rng.integers(0, MINUTE_NS, size=int(rng.poisson(self.quotes_per_trade * len(trades))))):
            at = minute_ns + int(offset)
            near = trades[max(0, int(np.searchsorted(times, at, side="right")) - 1)]
            extras.append(self._quote(state, rng, at, near.price))
        if state.crypto:  # Alpaca's crypto feed sends no cancels or corrections
            return extras
        for trade in trades:
            draw = rng.random()
            delay = int(rng.uniform(0.5, MAX_ADJUST_DELAY_S) * NANOS)
            if draw < self.cancel_share:
                extras.append(TradeCancel(
                    symbol=trade.symbol, timestamp_ns=trade.timestamp_ns + delay, trade_id=trade.trade_id,
                    exchange=trade.exchange, price=trade.price, size=trade.size,
                    action="E" if rng.random() < 0.1 else "C", tape=trade.tape, source=Source.SIMULATOR))  # fmt: skip
            elif draw < self.cancel_share + self.correction_share:
                price = max(0.01, round(trade.price * (1 + rng.normal(0, 0.0005)), 2))
                size = float(max(1, round(trade.size * rng.uniform(0.5, 1.5)))) if rng.random() < 0.3 else trade.size
                if price == trade.price and size == trade.size:  # a correction changes something
                    price = round(trade.price + 0.01, 2)
                extras.append(TradeCorrection(
                    symbol=trade.symbol, timestamp_ns=trade.timestamp_ns + delay, exchange=trade.exchange,
                    original_trade_id=trade.trade_id, original_price=trade.price, original_size=trade.size,
                    original_conditions=trade.conditions, corrected_trade_id=f"{trade.trade_id}c",
                    corrected_price=price, corrected_size=size, corrected_conditions=trade.conditions,
                    tape=trade.tape, source=Source.SIMULATOR))  # fmt: skip
        return extras

    def _quote(self, state: _SymbolState, rng: np.random.Generator, at_ns: int, price: float) -> Quote:
        """The book around ``price``: a spread of a few basis points (at least a cent for a stock)."""
        spread = max(price * float(rng.lognormal(math.log(1.5e-4 if state.crypto else 3e-4), 0.5)),
                     0.01 if not state.crypto else 0.0)  # fmt: skip
        bid = round(price - spread * float(rng.uniform(0.2, 0.8)), 2)
        ask = round(max(bid + 0.01, bid + spread), 2)
        if state.crypto:
            sizes = [round(float(rng.lognormal(math.log(state.lot / 5), 1.0)), 6) or 1e-6 for _ in range(2)]
            return Quote(symbol=state.symbol, timestamp_ns=at_ns, bid_price=bid, bid_size=sizes[0], ask_price=ask,
                         ask_size=sizes[1], source=Source.SIMULATOR)  # fmt: skip
        exchanges = rng.choice(_STOCK_EXCHANGES, size=2, p=_STOCK_EXCHANGE_WEIGHTS)
        return Quote(symbol=state.symbol, timestamp_ns=at_ns, bid_price=bid, bid_size=float(100 * rng.geometric(0.4)),
                     bid_exchange=str(exchanges[0]), ask_price=ask, ask_size=float(100 * rng.geometric(0.4)),
                     ask_exchange=str(exchanges[1]), conditions=["R"], tape=state.tape,
                     source=Source.SIMULATOR)  # fmt: skip

    def _log_price_at_day_start(self, state: _SymbolState, day: int) -> float:
        cycle = len(state.daily_returns)
        offset = (day - REFERENCE_DAY) % cycle
        return math.log(state.price) + float(state.cumulative[offset])

    def _start_day(self, state: _SymbolState, day: int) -> None:
        """The day's minute returns: GARCH(1,1) with Student-t(4) shocks, shifted so they add up to the day's
        return (the next day opens where this one closed)."""
        if day == state.day_index:
            return
        minutes = 1440 if state.crypto else MARKET_MINUTES
        rng = np.random.default_rng([self.seed, state.key, 2, day])
        shocks = rng.standard_t(4, size=minutes) / math.sqrt(2.0)
        omega = state.minute_vol**2 * (1 - self.garch_alpha - self.garch_beta)
        variance = np.empty(minutes)
        returns = np.empty(minutes)
        v, last = state.minute_vol**2, 0.0
        for i in range(minutes):
            v = omega + self.garch_alpha * last**2 + self.garch_beta * v
            last = math.sqrt(v) * float(shocks[i])
            variance[i], returns[i] = v, last
        start = self._log_price_at_day_start(state, day)
        target = self._log_price_at_day_start(state, day + 1) - start
        state.day_returns = returns + (target - returns.sum()) / minutes
        state.day_variance = variance
        state.day_start_log_price = start
        state.day_index = day

    def _minute(self, state: _SymbolState, minute_ns: int) -> list[Trade]:
        if state.crypto:
            activity = self.crypto_activity(minute_ns)
            day, index = divmod(minute_ns // MINUTE_NS, 1440)
        else:
            session_minute = self.stock_minute_of_session(minute_ns)
            if session_minute is None:
                return []
            activity = self.stock_activity(session_minute)
            day, index = (minute_ns - session_minute * MINUTE_NS) // DAY_NS, session_minute
        self._start_day(state, int(day))
        assert state.day_returns is not None and state.day_variance is not None
        rng = np.random.default_rng([self.seed, state.key, 3, minute_ns // MINUTE_NS])
        minute_return = float(state.day_returns[index])
        variance = float(state.day_variance[index])
        start_price = math.exp(state.day_start_log_price + float(state.day_returns[:index].sum()))
        vol_ratio = math.sqrt(variance) / state.minute_vol
        count = int(rng.poisson(self.trades_per_minute * activity * min(3.0, 0.5 + 0.5 * vol_ratio)))
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
            + bridge * math.sqrt(variance) * 0.5
        )
        bounce = rng.choice([-1.0, 1.0], size=count) * 0.0001
        prices = np.exp(log_path) * (1 + bounce)
        return [self._trade(state, rng, minute_ns + int(offset), float(price), position)
                for position, (offset, price) in enumerate(zip(offsets, prices, strict=True))]  # fmt: skip

    def _trade(self, state: _SymbolState, rng: np.random.Generator, timestamp_ns: int, price: float,
               position: int) -> Trade:  # fmt: skip
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
