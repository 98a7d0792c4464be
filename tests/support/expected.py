"""What Elasticsearch must hold after the stream, computed directly from what was produced: the trade document ids,
the trades as they stand after their cancels and corrections (applied in Kafka order), every minute and hour bar,
each bar's time-weighted spread from the quotes, and the checks that compare the two. The engine tests (one broker,
three brokers, two Ray nodes, cancels and corrections, two trading days, every sale condition) and the benchmarks
judge the stream against this, never against the stream's own code: the vendor's rules come from
``ray_app.testing.alpaca_rules``, not from the platform's condition table.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ray_app.config import Settings
from ray_app.schemas import Quote, Trade, TradeCancel, TradeCorrection
from ray_app.testing.alpaca_rules import counts_in_volume, is_stock, new_york_date, sets_price

TradeKey = tuple[str, str | None, str | None, str]  # (symbol, exchange, New York date for a stock, trade id)


def trade_key(symbol: str, exchange: str | None, at_ns: int, trade_id: str) -> TradeKey:
    return (symbol, exchange, new_york_date(at_ns) if is_stock(symbol) else None, trade_id)


def trade_doc_id(trade: Trade) -> str:
    """The trades document id: a stock's symbol|exchange|New York date|trade_id, crypto's symbol|exchange|trade_id,
    the trade id hashed when that passes 512 bytes."""
    day = f"{new_york_date(trade.timestamp_ns)}|" if is_stock(trade.symbol) else ""
    head = f"{trade.symbol}|{trade.exchange or ''}|{day}"
    if len((head + trade.trade_id).encode()) <= 512:
        return head + trade.trade_id
    return head + "sha256:" + hashlib.sha256(trade.trade_id.encode()).hexdigest()


class Tape:
    """The trades as the records leave them, in Kafka order (one partition per symbol): a copy of a trade counts
    once (the first); a cancel or a correction names its trade by (symbol, exchange, its own New York date, id),
    the id the trade was sent with or one a correction gave it; a cancel takes the trade out, a correction puts its
    price, size and conditions in place (the first values stay in ``originals``); one naming no trade changes
    nothing (``unknown`` counts them: each is a dead letter)."""

    def __init__(self) -> None:
        self.trades: dict[TradeKey, Trade] = {}
        self.first_sent: dict[TradeKey, Trade] = {}
        self.aliases: dict[TradeKey, TradeKey] = {}
        self.cancelled: set[TradeKey] = set()
        self.originals: dict[TradeKey, Trade] = {}
        self.corrected_ids: dict[TradeKey, list[str]] = defaultdict(list)
        self.unknown = 0

    def _find(self, key: TradeKey) -> TradeKey | None:
        if key in self.trades:
            return key
        return self.aliases.get(key)

    def apply(self, record: Trade | TradeCancel | TradeCorrection | Quote) -> None:
        if isinstance(record, Quote):
            return
        if isinstance(record, Trade):
            key = trade_key(record.symbol, record.exchange, record.timestamp_ns, record.trade_id)
            if key not in self.trades:
                self.trades[key] = self.first_sent[key] = record
            return
        named = record.trade_id if isinstance(record, TradeCancel) else record.original_trade_id
        found = self._find(trade_key(record.symbol, record.exchange, record.timestamp_ns, named))
        if found is None:
            self.unknown += 1
            return
        if isinstance(record, TradeCancel):
            self.cancelled.add(found)
            return
        self.originals.setdefault(found, self.trades[found])
        self.trades[found] = self.trades[found].model_copy(
            update={
                "price": record.corrected_price,
                "size": record.corrected_size,
                "conditions": record.corrected_conditions,
            }
        )
        self.aliases[trade_key(record.symbol, record.exchange, record.timestamp_ns, record.corrected_trade_id)] = found
        self.corrected_ids[found].append(record.corrected_trade_id)

    def standing(self) -> list[Trade]:
        """The trades not cancelled, at their current values, in the order first sent."""
        return [trade for key, trade in self.trades.items() if key not in self.cancelled]

    def sent(self) -> list[Trade]:
        """Every distinct trade as first sent."""
        return list(self.first_sent.values())


def tape_of(records: Iterable[Trade | TradeCancel | TradeCorrection | Quote]) -> Tape:
    tape = Tape()
    for record in records:
        tape.apply(record)
    return tape


def standing_trades(records: list[Trade | TradeCancel | TradeCorrection]) -> list[Trade]:
    """The trades as they stand after the records (``Tape``)."""
    return tape_of(records).standing()


def expected_spreads(quotes: list[Quote]) -> dict[str, tuple[float, int]]:
    """(time-weighted spread, seconds covered) of every 1-minute bar id with a two-sided quote: the book sampled at
    each second's last quote (by time; the later produced on a tie), each sample holding until the next sample of
    the minute (or the minute's end), a one-sided sample counting for nothing."""
    last: dict[tuple[str, int], Quote] = {}
    for quote in quotes:
        key = (quote.symbol, quote.timestamp_ns // 10**9)
        if key not in last or quote.timestamp_ns >= last[key].timestamp_ns:
            last[key] = quote
    minutes: dict[tuple[str, int], list[Quote]] = defaultdict(list)
    for (symbol, second), quote in last.items():
        minutes[(symbol, second // 60 * 60)].append(quote)
    out = {}
    for (symbol, start), book in minutes.items():
        book.sort(key=lambda q: q.timestamp_ns)
        ends = [q.timestamp_ns for q in book[1:]] + [(start + 60) * 10**9]
        held = [
            (q, (end - q.timestamp_ns) / 10**9)
            for q, end in zip(book, ends, strict=True)
            if q.bid_price > 0 and q.ask_price > 0
        ]
        if not held:
            continue
        weighted = sum((q.ask_price - q.bid_price) * h for q, h in held)
        covered = sum(h for _, h in held)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        out[f"{symbol}|{stamp}"] = (weighted / covered, round(covered))
    return out


def expected_bars(trades: list[Trade], seconds: int) -> dict[str, dict[str, Any]]:
    """Bars of ``seconds`` by document id (``symbol|start``), by Alpaca's minute-bar rules: open, close, high and low
    from the trades that set prices (open and close by (time, order produced)), volume, trade count and notional
    from those that count in the volume; no bar where no trade sets a price."""
    groups: dict[tuple[str, int], list[tuple[int, int, Trade]]] = defaultdict(list)
    for order, trade in enumerate(trades):
        start = trade.timestamp_ns // 10**9 // seconds * seconds
        groups[(trade.symbol, start)].append((trade.timestamp_ns, order, trade))
    bars = {}
    for (symbol, start), items in groups.items():
        items.sort(key=lambda item: (item[0], item[1]))
        priced = [t for _, _, t in items if sets_price(t.conditions, t.tape)]
        counted = [t for _, _, t in items if counts_in_volume(t.conditions)]
        if not priced:
            continue
        prices = [t.price for t in priced]
        volume = sum(t.size for t in counted)
        notional = sum(t.price * t.size for t in counted)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        bars[f"{symbol}|{stamp}"] = {
            "open": priced[0].price,
            "high": max(prices),
            "low": min(prices),
            "close": priced[-1].price,
            "volume": volume,
            "trade_count": len(counted),
            "notional": notional,
            "vwap": notional / volume,
        }
    return bars


def assert_bars_equal(actual: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert set(actual) == set(expected), (sorted(set(actual) ^ set(expected)))[:10]
    for doc_id, want in expected.items():
        got = actual[doc_id]
        for field in ("open", "high", "low", "close", "trade_count"):
            assert got[field] == want[field], (doc_id, field, got[field], want[field])
        for field in ("volume", "vwap", "notional"):
            assert math.isclose(got[field], want[field], rel_tol=1e-9), (doc_id, field, got[field], want[field])
        assert math.isclose(got["range"], want["high"] - want["low"], rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(got["log_return"], math.log(want["close"] / want["open"]), rel_tol=1e-9, abs_tol=1e-15)


def es_docs(settings: Settings, index: str) -> dict[str, dict[str, Any]]:
    """Every document of ``index`` by id, after a refresh."""
    from elasticsearch.helpers import scan

    from ray_app.es_indices import es_client

    es = es_client(settings)
    es.indices.refresh(index=index)
    hits: Iterable[dict[str, Any]] = scan(es, index=index, query={"query": {"match_all": {}}}, size=5000)
    return {hit["_id"]: hit["_source"] for hit in hits}


def assert_trades_and_bars(
    settings: Settings, trades: list[Trade], standing: list[Trade] | None = None, quotes: list[Quote] | None = None
) -> None:
    """``trades`` indexed once each (nothing more) and every minute and hour bar equal to a direct computation over
    ``standing`` (the trades as they stand after cancels and corrections; default: all of ``trades``), with the
    minute bars' spreads from ``quotes`` when given."""
    indices = settings.elasticsearch.indices
    want_ids = {trade_doc_id(t) for t in trades}
    assert len(want_ids) == len(trades), "the trades given hold duplicates"
    indexed = es_docs(settings, indices.trades)
    assert len(indexed) == len(want_ids), f"{len(indexed)} trade documents for {len(want_ids)} produced trades"
    assert set(indexed) == want_ids
    counted = trades if standing is None else standing
    minutes = es_docs(settings, indices.bars_1m)
    assert_bars_equal(minutes, expected_bars(counted, 60))
    assert_bars_equal(es_docs(settings, indices.bars_1h), expected_bars(counted, 3600))
    if quotes is not None:
        spreads = expected_spreads(quotes)
        for doc_id, bar in minutes.items():
            want = spreads.get(doc_id)
            if want is None:
                assert bar.get("spread_twa") is None, (doc_id, bar.get("spread_twa"))
            else:
                assert math.isclose(bar["spread_twa"], want[0], rel_tol=1e-9, abs_tol=1e-12), (doc_id, bar, want)
                assert bar["spread_seconds"] == want[1], (doc_id, bar["spread_seconds"], want)
