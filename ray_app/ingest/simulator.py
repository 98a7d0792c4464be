"""The embedded offline source: realistic, seeded, reproducible market data for any number of symbols, as a live
Alpaca feed sends it.

Per symbol and minute, returns follow a GARCH(1,1) with Student-t shocks (volatility clustering); the number of
trades in a minute follows an intraday profile (U-shaped over the regular US session, 09:30-16:00 New York,
weekdays, and a trickle in the extended hours, 04:00-09:30 and 16:00-20:00; a gentle daily cycle for 24/7 crypto)
and rises with volatility. Stocks found in bokeh-sampledata's real daily OHLCV (AAPL, GOOG, IBM, MSFT, public
domain) are anchored on it: the start price, the volatility, and each simulated day's close-to-close return come
from consecutive real days. Every record says ``source=simulator``.

What the tape carries, as a real feed does (``ray_app.conditions`` says what each code does to a bar):

- **trade ids** numbered per (symbol, exchange, trading day) in the order trades are reported, restarting every
  day, so two days reuse ids (exchange D, the trade reporting facility, offsets its ids into a range of its own);
  crypto ids grow for ever;
- **sale conditions** in realistic shares: odd lots (``I``, about 40% of regular-hours trades), intermarket sweeps
  (``F``), the listing market's opening and closing auction prints (``O``, ``6``) and the official open and close
  (``Q``, ``M``), Form T (``T``) on every extended-hours trade, now and then derivatively priced (``4``), average
  price (``B`` on the CTS tapes, ``W`` on UTDF), qualified contingent (``7``), cash, next day, seller, price
  variation, prior reference price, contingent, cross and sold-last trades, and some days a corrected consolidated
  close (``9``) after the close;
- **late prints**: about one trade in a hundred is reported up to 10 s after it happened (out of sequence ones
  marked ``Z`` or, in the extended hours, ``U``): the tape sends it then, with its own time;
- ``events`` adds what a real feed sends beside the trades: the top of the book (``Quote``, ``quotes_per_trade`` per
  trade on average, around the price path, the spread a few basis points and at least a cent for stocks), and for
  stocks the venue's later cancels (``TradeCancel``, ``cancel_share`` of the trades, a tenth of them as errors) and
  corrections (``TradeCorrection``, ``correction_share``: a price a few basis points off, sometimes a new size, and
  a new id for the corrected trade), each between half a second and ``MAX_ADJUST_DELAY_S`` after its trade was
  reported; a
  quarter of the corrected trades are corrected again or cancelled later still, naming either the trade's first
  id or the one its correction gave it.

Everything is seeded by (seed, symbol, day or minute), never by where a run starts, and a stock's whole trading day
is drawn at once (its ids depend on every trade before): the same seed gives the same records in every run,
however the runs' windows overlap. Runs are cut by the time a record is reported, the order a feed sends them in.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import importlib.resources
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from ray_app.schemas import Quote, Source, Trade, TradeCancel, TradeCorrection, is_crypto

NEW_YORK = ZoneInfo("America/New_York")
MINUTE_NS = 60_000_000_000
MARKET_OPEN_MINUTE = 9 * 60 + 30
MARKET_MINUTES = 390
PRE_MARKET_MINUTE = 4 * 60  # 04:00 New York: extended hours start
AFTER_HOURS_END_MINUTE = 20 * 60  # 20:00 New York: extended hours end
_CRYPTO_DEFAULTS = {"BTC": (95_000.0, 0.55, 0.02), "ETH": (3_500.0, 0.70, 0.3), "SOL": (180.0, 0.9, 3.0)}
_STOCK_EXCHANGES = ["V", "Q", "N", "P", "D", "K", "Z"]
_STOCK_EXCHANGE_WEIGHTS = [0.05, 0.25, 0.15, 0.15, 0.30, 0.05, 0.05]
_NYSE_LISTED = {"IBM", "KO", "JPM", "XOM", "GE", "BRK.B", "WMT", "DIS"}
TRF_EXCHANGE = "D"
TRF_ID_BASE = 52_983_525_000_000  # exchange D's ids: several reporting facilities offset into one id space
CORRECTED_ID_STEP = 10_000_000  # a corrected trade's new id: its own plus this (no day reaches it)
MAX_ADJUST_DELAY_S = 90  # a cancel or correction follows its trade by 0.5 s to this
MAX_CHAIN_DELAY_S = 60  # a second correction or a cancel follows the first correction by 0.5 s to this
MAX_LATE_S = 10  # a late print is reported up to this long after it happened (the tape's reporting limit)
LATE_SHARE = 0.012  # trades reported late (regular hours)
CHAIN_SHARE = 0.25  # corrected trades corrected again or cancelled later
EXTENDED_ACTIVITY = {"pre": 0.05, "post": 0.08}  # share of the regular rate traded in the extended hours
Event = Trade | TradeCancel | TradeCorrection | Quote
Phase = Literal["pre", "regular", "post"]

# (conditions, share of regular-hours trades, exchange it goes to or None); the rest are regular sales or odd lots
_RARE: list[tuple[tuple[str, ...], float, str | None]] = [
    (("@", "4"), 0.010, TRF_EXCHANGE),
    (("@", "7"), 0.004, TRF_EXCHANGE),
    (("@", "AVG"), 0.004, TRF_EXCHANGE),
    (("@", "C"), 0.002, None),
    (("@", "N"), 0.001, None),
    (("@", "R"), 0.001, None),
    (("@", "H"), 0.002, None),
    (("@", "P"), 0.002, None),
    (("@", "G"), 0.001, None),
    (("@", "V"), 0.002, None),
    (("@", "X"), 0.003, None),
    (("@", "L"), 0.002, None),
    (("@", "1"), 0.001, None),
    (("@", "Z"), 0.003, None),
]
_RARE_SHARE = sum(share for _, share, _ in _RARE)


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
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class Print:
    """A trade as drawn, before its id: when it happened, when the tape reports it, and what."""

    at_ns: int
    reported_ns: int
    price: float
    size: float
    exchange: str | None
    conditions: tuple[str, ...]
    taker_side: Literal["B", "S"] | None = None


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
    day_returns: np.ndarray | None = None  # the current day's regular-session minute returns (pinned to its return)
    day_variance: np.ndarray | None = None
    day_start_log_price: float = 0.0
    # a stock's current trading day, drawn whole: each extended-session minute's prints with their ids
    day_prints: dict[int, list[tuple[Print, str]]] = field(default_factory=dict)


def session_phase(minute_start_ns: int) -> tuple[Phase, int] | None:
    """(pre, regular or post, minutes since 04:00 New York) for a stock minute in the extended session
    04:00-20:00 New York on a weekday, else None."""
    local = datetime.fromtimestamp(minute_start_ns / 1e9, tz=UTC).astimezone(NEW_YORK)
    if local.weekday() >= 5:
        return None
    minute = local.hour * 60 + local.minute
    if not PRE_MARKET_MINUTE <= minute < AFTER_HOURS_END_MINUTE:
        return None
    phase: Phase = (
        "pre" if minute < MARKET_OPEN_MINUTE else "regular" if minute < MARKET_OPEN_MINUTE + MARKET_MINUTES else "post"
    )
    return phase, minute - PRE_MARKET_MINUTE


def _session_minutes(day: int) -> list[int]:
    """Every minute start (epoch ns) of a New York date's extended session, 04:00-20:00 local."""
    local = date.fromordinal(day + _EPOCH_ORDINAL)
    first = datetime(local.year, local.month, local.day, 4, 0, tzinfo=NEW_YORK)
    return [
        int((first + timedelta(minutes=m)).timestamp()) * NANOS
        for m in range(AFTER_HOURS_END_MINUTE - PRE_MARKET_MINUTE)
    ]


def _new_york_day(epoch_ns: int) -> int:
    return datetime.fromtimestamp(epoch_ns / 1e9, tz=UTC).astimezone(NEW_YORK).date().toordinal() - _EPOCH_ORDINAL


class TradeSimulator:
    """Trades for ``symbols`` between two instants, merged across symbols in the order the tape reports them.

    Every draw is seeded by (seed, symbol, day) or (seed, symbol, minute), never by where a run starts: the same
    seed gives the same trades for the same minute in every run, however the runs' windows overlap. A day's
    open is the previous day's close (each day's minute returns are pinned to that day's daily return).
    """

    garch_alpha = 0.08
    garch_beta = 0.90

    def __init__(
        self,
        symbols: list[str],
        seed: int,
        trades_per_minute: float,
        anchor_on_real_data: bool = True,
        cancel_share: float = 0.005,
        correction_share: float = 0.003,
        quotes_per_trade: float = 1.5,
    ):
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
        phase = session_phase(minute_start_ns)
        if phase is None or phase[0] != "regular":
            return None
        return phase[1] - (MARKET_OPEN_MINUTE - PRE_MARKET_MINUTE)

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
        """Every trade the tape reports with ``start_ns <= reported < end_ns``, in that order (ties by symbol); a
        late print comes when it is reported, after trades that happened later."""
        for _, event in self._timeline(start_ns, end_ns, None, extras=False):
            assert isinstance(event, Trade)
            yield event

    def events(self, start_ns: int, end_ns: int, sent_since: Mapping[str, int] | None = None) -> Iterator[Event]:
        """Every trade, quote, cancel and correction the feed sends with ``start_ns <= sent < end_ns``, in that
        order (``timeline``)."""
        for _, event in self.timeline(start_ns, end_ns, sent_since):
            yield event

    def timeline(
        self, start_ns: int, end_ns: int, sent_since: Mapping[str, int] | None = None, quotes_from_ns: int = 0
    ) -> Iterator[tuple[int, Event]]:
        """(when the feed sends it, record) for every trade, quote, cancel and correction sent in [start_ns,
        end_ns), in that order: a trade when the tape reports it (its own time, or later for a late print), the
        rest at their own time. The minutes before ``start_ns`` are simulated too, for what they send after it;
        ``sent_since`` (per symbol) leaves out the cancels and corrections of trades reported before it: trades no
        run sent (a first run). Quotes before ``quotes_from_ns`` are left out (their random draws are made, so every
        other record is the same as with them)."""
        return self._timeline(start_ns, end_ns, sent_since, extras=True, quotes_from_ns=quotes_from_ns)

    def _timeline(
        self, start_ns: int, end_ns: int, sent_since: Mapping[str, int] | None, extras: bool, quotes_from_ns: int = 0
    ) -> Iterator[tuple[int, Event]]:
        pending: list[tuple[int, int, Event]] = []  # sent after their minute: (time sent, sequence, record)
        sequence = 0
        lookback = (MAX_ADJUST_DELAY_S + MAX_CHAIN_DELAY_S + MAX_LATE_S + 1) if extras else MAX_LATE_S + 1
        first = start_ns - lookback * NANOS
        minute = first - first % MINUTE_NS
        while minute < end_ns:
            batch: list[tuple[int, int, Event]] = []
            for state in self._states:
                trades = self._minute(state, minute)
                if extras:
                    since = sent_since.get(state.symbol, 0) if sent_since else 0
                    for at, event in self._extras(
                        state, minute, [(r, t) for r, t in trades if r >= since], quotes_from_ns
                    ):
                        sequence += 1
                        heapq.heappush(batch if at < minute + MINUTE_NS else pending, (at, sequence, event))
                for reported, trade in trades:
                    sequence += 1
                    heapq.heappush(batch if reported < minute + MINUTE_NS else pending, (reported, sequence, trade))
            while pending and pending[0][0] < minute + MINUTE_NS:
                heapq.heappush(batch, heapq.heappop(pending))
            while batch:
                at, _, event = heapq.heappop(batch)
                if start_ns <= at < end_ns:
                    yield at, event
            minute += MINUTE_NS

    def _extras(
        self, state: _SymbolState, minute_ns: int, trades: list[tuple[int, Trade]], quotes_from_ns: int = 0
    ) -> list[tuple[int, Event]]:
        """The minute's quotes around its trades (from ``quotes_from_ns`` on), and the cancels and corrections its
        trades will get, with the time each is sent (its own)."""
        if not trades:
            return []
        rng = np.random.default_rng([self.seed, state.key, 4, minute_ns // MINUTE_NS])
        extras: list[tuple[int, Event]] = []
        executed = sorted(trades, key=lambda item: item[1].timestamp_ns)
        times = np.array([t.timestamp_ns for _, t in executed])
        for offset in np.sort(rng.integers(0, MINUTE_NS, size=int(rng.poisson(self.quotes_per_trade * len(trades))))):
            at = minute_ns + int(offset)
            if at < quotes_from_ns:
                self._quote(state, rng, at, 0.0, build=False)
                continue
            near = executed[max(0, int(np.searchsorted(times, at, side="right")) - 1)][1]
            quote = self._quote(state, rng, at, near.price)
            assert quote is not None
            extras.append((at, quote))
        if state.crypto:  # Alpaca's crypto feed sends no cancels or corrections
            return extras
        for reported, trade in trades:  # after the trade as the tape reported it, so always behind it in Kafka
            draw = rng.random()
            delay = int(rng.uniform(0.5, MAX_ADJUST_DELAY_S) * NANOS)
            if draw < self.cancel_share:
                extras.append(self._cancel(trade, trade.trade_id, reported + delay, rng))
            elif draw < self.cancel_share + self.correction_share:
                first = self._correction(trade, trade.trade_id, trade, 1, reported + delay, rng)
                extras.append(first)
                if rng.random() < CHAIN_SHARE:
                    corrected = first[1]
                    assert isinstance(corrected, TradeCorrection)
                    named = corrected.corrected_trade_id if rng.random() < 0.5 else trade.trade_id
                    later = first[0] + int(rng.uniform(0.5, MAX_CHAIN_DELAY_S) * NANOS)
                    now = trade.model_copy(
                        update={"price": corrected.corrected_price, "size": corrected.corrected_size}
                    )
                    if rng.random() < 0.5:
                        extras.append(self._correction(now, named, trade, 2, later, rng))
                    else:
                        extras.append(self._cancel(now, named, later, rng))
        return extras

    def _cancel(self, trade: Trade, named: str, at: int, rng: np.random.Generator) -> tuple[int, Event]:
        return at, TradeCancel(
            symbol=trade.symbol,
            timestamp_ns=at,
            trade_id=named,
            exchange=trade.exchange,
            price=trade.price,
            size=trade.size,
            action="E" if rng.random() < 0.1 else "C",
            tape=trade.tape,
            source=Source.SIMULATOR,
        )

    def _correction(
        self, now: Trade, named: str, trade: Trade, step: int, at: int, rng: np.random.Generator
    ) -> tuple[int, Event]:
        """A correction of ``now`` (the trade as it stands) naming ``named``; the corrected trade's new id is the
        trade's first id plus ``step`` times CORRECTED_ID_STEP."""
        price = max(0.01, round(now.price * (1 + rng.normal(0, 0.0005)), 2))
        size = float(max(1, round(now.size * rng.uniform(0.5, 1.5)))) if rng.random() < 0.3 else now.size
        if price == now.price and size == now.size:  # a correction changes something
            price = round(now.price + 0.01, 2)
        return at, TradeCorrection(
            symbol=now.symbol,
            timestamp_ns=at,
            exchange=now.exchange,
            original_trade_id=named,
            original_price=now.price,
            original_size=now.size,
            original_conditions=now.conditions,
            corrected_trade_id=str(int(trade.trade_id) + step * CORRECTED_ID_STEP),
            corrected_price=price,
            corrected_size=size,
            corrected_conditions=now.conditions,
            tape=now.tape,
            source=Source.SIMULATOR,
        )

    def _quote(
        self, state: _SymbolState, rng: np.random.Generator, at_ns: int, price: float, build: bool = True
    ) -> Quote | None:
        """The book around ``price``: a spread of a few basis points (at least a cent for a stock). ``build``
        False draws the same random numbers and makes no quote (a quote nobody is sent: the rest of the minute's
        draws, its cancels and corrections, stay what they are)."""
        spread_ratio = float(rng.lognormal(math.log(1.5e-4 if state.crypto else 3e-4), 0.5))
        bid_side = float(rng.uniform(0.2, 0.8))
        if state.crypto:
            crypto_sizes = [float(rng.lognormal(math.log(state.lot / 5), 1.0)) for _ in range(2)]
        else:
            exchanges = rng.choice(_STOCK_EXCHANGES, size=2, p=_STOCK_EXCHANGE_WEIGHTS)
            stock_sizes = [float(100 * rng.geometric(0.4)) for _ in range(2)]
        if not build:
            return None
        spread = max(price * spread_ratio, 0.01 if not state.crypto else 0.0)
        bid = round(price - spread * bid_side, 2)
        ask = round(max(bid + 0.01, bid + spread), 2)
        if state.crypto:
            sizes = [round(size, 6) or 1e-6 for size in crypto_sizes]
            return Quote(
                symbol=state.symbol,
                timestamp_ns=at_ns,
                bid_price=bid,
                bid_size=sizes[0],
                ask_price=ask,
                ask_size=sizes[1],
                source=Source.SIMULATOR,
            )
        return Quote(
            symbol=state.symbol,
            timestamp_ns=at_ns,
            bid_price=bid,
            bid_size=stock_sizes[0],
            bid_exchange=str(exchanges[0]),
            ask_price=ask,
            ask_size=stock_sizes[1],
            ask_exchange=str(exchanges[1]),
            conditions=["R"],
            tape=state.tape,
            source=Source.SIMULATOR,
        )

    def _log_price_at_day_start(self, state: _SymbolState, day: int) -> float:
        cycle = len(state.daily_returns)
        offset = (day - REFERENCE_DAY) % cycle
        return math.log(state.price) + float(state.cumulative[offset])

    def _start_day(self, state: _SymbolState, day: int) -> None:
        """The day's minute returns: GARCH(1,1) with Student-t(4) shocks, shifted so they add up to the day's
        return (the next day opens where this one closed); a stock's whole day of trades with their ids."""
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
        if not state.crypto:
            state.day_prints = self._stock_day(state, day)

    def _stock_day(self, state: _SymbolState, day: int) -> dict[int, list[tuple[Print, str]]]:
        """Every print of a stock's trading day, numbered per exchange in the order the tape reports them."""
        minutes = _session_minutes(day)
        if datetime.fromtimestamp(minutes[0] / 1e9, tz=UTC).astimezone(NEW_YORK).weekday() >= 5:
            return {}
        prints = {minute: self._stock_prints(state, minute) for minute in minutes}
        order: dict[str | None, list[tuple[int, int, int, int]]] = {}
        for minute, items in prints.items():
            for position, item in enumerate(items):
                order.setdefault(item.exchange, []).append((item.reported_ns, item.at_ns, minute, position))
        ids: dict[tuple[int, int], str] = {}
        for exchange, entries in order.items():
            base = TRF_ID_BASE if exchange == TRF_EXCHANGE else 0
            for sequence, (_, _, minute, position) in enumerate(sorted(entries), start=1):
                ids[(minute, position)] = str(base + sequence)
        return {
            minute: [(item, ids[(minute, position)]) for position, item in enumerate(items)]
            for minute, items in prints.items()
            if items
        }

    def _minute(self, state: _SymbolState, minute_ns: int) -> list[tuple[int, Trade]]:
        """The minute's trades, each with the time the tape reports it."""
        if state.crypto:
            day = minute_ns // DAY_NS
            self._start_day(state, int(day))
            prints = self._crypto_prints(state, minute_ns)
            base = minute_ns // MINUTE_NS * 100_000
            return [
                (item.reported_ns, self._trade(state, item, str(base + position)))
                for position, item in enumerate(prints)
            ]
        if session_phase(minute_ns) is None:
            return []
        self._start_day(state, _new_york_day(minute_ns))
        return [
            (item.reported_ns, self._trade(state, item, trade_id))
            for item, trade_id in state.day_prints.get(minute_ns, [])
        ]

    def _crypto_prints(self, state: _SymbolState, minute_ns: int) -> list[Print]:
        activity = self.crypto_activity(minute_ns)
        index = int((minute_ns // MINUTE_NS) % 1440)
        return self._priced_prints(state, minute_ns, index, activity, "regular")

    def _stock_prints(self, state: _SymbolState, minute_ns: int) -> list[Print]:
        phase = session_phase(minute_ns)
        if phase is None:
            return []
        name, since_four = phase
        if name == "regular":
            index = since_four - (MARKET_OPEN_MINUTE - PRE_MARKET_MINUTE)
            return self._priced_prints(state, minute_ns, index, self.stock_activity(index), "regular")
        return self._extended_prints(state, minute_ns, name)

    def _priced_prints(
        self, state: _SymbolState, minute_ns: int, index: int, activity: float, phase: Phase
    ) -> list[Print]:
        """A regular-session (or crypto) minute: a Brownian bridge from the minute's first to its last price along
        the day's GARCH path, with bid-ask bounce; the listing market's opening prints at 09:30."""
        assert state.day_returns is not None and state.day_variance is not None
        rng = np.random.default_rng([self.seed, state.key, 3, minute_ns // MINUTE_NS])
        minute_return = float(state.day_returns[index])
        variance = float(state.day_variance[index])
        start_price = math.exp(state.day_start_log_price + float(state.day_returns[:index].sum()))
        vol_ratio = math.sqrt(variance) / state.minute_vol
        count = int(rng.poisson(self.trades_per_minute * activity * min(3.0, 0.5 + 0.5 * vol_ratio)))
        prints: list[Print] = []
        if not state.crypto and index == 0:
            prints += self._auction(state, rng, minute_ns, start_price, ("@", "O"), ("Q",))
        if count == 0:
            return prints
        offsets = np.sort(rng.integers(0, MINUTE_NS, size=count))
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
        return prints + [
            self._print(state, rng, minute_ns + int(offset), float(price), phase)
            for offset, price in zip(offsets, prices, strict=True)
        ]

    def _extended_prints(self, state: _SymbolState, minute_ns: int, phase: Phase) -> list[Print]:
        """A pre-market or after-hours minute: a few trades around the last close (before the open) or the day's
        close (after it); the closing auction's prints at 16:00, and some days a corrected close at 16:25."""
        assert state.day_returns is not None
        rng = np.random.default_rng([self.seed, state.key, 3, minute_ns // MINUTE_NS])
        anchor = state.day_start_log_price + (float(state.day_returns.sum()) if phase == "post" else 0.0)
        prints: list[Print] = []
        local = datetime.fromtimestamp(minute_ns / 1e9, tz=UTC).astimezone(NEW_YORK)
        if phase == "post" and (local.hour, local.minute) == (16, 0):
            prints += self._auction(state, rng, minute_ns, math.exp(anchor), ("@", "6"), ("M",))
        if phase == "post" and (local.hour, local.minute) == (16, 25) and rng.random() < 0.3:
            prints.append(
                Print(
                    minute_ns + 250_000_000,
                    minute_ns + 250_000_000,
                    round(math.exp(anchor), 2),
                    float(100 * rng.integers(50, 500)),
                    self._listing(state),
                    ("9",),
                )
            )
        count = int(rng.poisson(self.trades_per_minute * EXTENDED_ACTIVITY[phase]))
        if count == 0:
            return prints
        offsets = np.sort(rng.integers(0, MINUTE_NS, size=count))
        walk = np.cumsum(rng.normal(0.0, state.minute_vol * 0.7, size=count))
        return prints + [
            self._print(state, rng, minute_ns + int(offset), float(math.exp(anchor + step)), phase)
            for offset, step in zip(offsets, walk, strict=True)
        ]

    def _listing(self, state: _SymbolState) -> str:
        return "N" if state.tape == "A" else "Q"

    def _auction(
        self,
        state: _SymbolState,
        rng: np.random.Generator,
        minute_ns: int,
        price: float,
        cross: tuple[str, ...],
        official: tuple[str, ...],
    ) -> list[Print]:
        """The listing market's auction print and, a moment later, its official open or close of the same size."""
        at = minute_ns + int(rng.integers(1_000_000, 40_000_000))
        size = float(100 * rng.integers(20, 400))
        exchange = self._listing(state)
        return [
            Print(at, at, round(price, 2), size, exchange, cross),
            Print(at + 1_500_000, at + 1_500_000, round(price, 2), size, exchange, official),
        ]

    def _print(self, state: _SymbolState, rng: np.random.Generator, at_ns: int, price: float, phase: Phase) -> Print:
        """One trade's size, conditions, exchange and reporting delay."""
        if state.crypto:
            size = round(float(rng.lognormal(math.log(state.lot / 10), 1.2)), 6) or 1e-6
            side: Literal["B", "S"] = "B" if rng.random() < 0.5 else "S"
            return Print(at_ns, at_ns, round(price, 2), size, None, (), side)
        exchange = str(rng.choice(_STOCK_EXCHANGES, p=_STOCK_EXCHANGE_WEIGHTS))
        draw = rng.random()
        size = float(100 * rng.geometric(0.55))
        late = rng.random() < LATE_SHARE
        if phase != "regular":
            if draw < 0.38:
                conditions: tuple[str, ...] = ("@", "T", "I")
                size = float(rng.integers(1, 100))
            elif draw < 0.41:
                conditions = ("@", "F", "T")
            elif draw < 0.44:
                conditions, late = ("@", "U"), True  # extended hours, sold out of sequence: reported late
            else:
                conditions = ("@", "T")
        elif draw < 0.40:
            conditions = ("@", "F", "I") if rng.random() < 0.1 else ("@", "I")
            size = float(rng.integers(1, 100))
        elif draw < 0.52:
            conditions = ("@", "F")
        elif draw < 0.52 + _RARE_SHARE:
            pick, edge = draw - 0.52, 0.0
            conditions, venue = _RARE[-1][0], _RARE[-1][2]
            for codes, share, where in _RARE:
                edge += share
                if pick < edge:
                    conditions, venue = codes, where
                    break
            if conditions == ("@", "AVG"):  # the average-price code is the feed's: B on CTS, W on UTDF
                conditions = ("@", "W") if state.tape == "C" else ("@", "B")
            exchange = venue or exchange
            late = late or conditions == ("@", "Z")  # sold out of sequence: reported late
        else:
            conditions = ("@",)
        reported = at_ns + (int(rng.uniform(0.3, MAX_LATE_S) * NANOS) if late else 0)
        return Print(at_ns, reported, round(price, 2), size, exchange, conditions)

    def _trade(self, state: _SymbolState, item: Print, trade_id: str) -> Trade:
        if state.crypto:
            return Trade(
                symbol=state.symbol,
                timestamp_ns=item.at_ns,
                price=item.price,
                size=item.size,
                trade_id=trade_id,
                taker_side=item.taker_side,
                source=Source.SIMULATOR,
            )
        return Trade(
            symbol=state.symbol,
            timestamp_ns=item.at_ns,
            price=item.price,
            size=item.size,
            trade_id=trade_id,
            exchange=item.exchange,
            conditions=list(item.conditions),
            tape=state.tape,
            source=Source.SIMULATOR,
        )


def history_window(days: float, now_ns: int) -> tuple[int, int]:
    end = now_ns - now_ns % MINUTE_NS
    return end - int(timedelta(days=days).total_seconds() * 1e9), end
