"""What Elasticsearch must hold after the stream, computed directly from what was produced: the trade document ids,
the trades as they stand after their cancels and corrections (applied in Kafka order), every minute and hour bar,
each bar's time-weighted spread from the quotes, and the checks that compare the two. The engine tests (one broker,
three brokers, two Ray nodes, cancels and corrections) and the benchmarks judge the stream against this, never
against the stream's own code."""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ray_app.config import Settings
from ray_app.schemas import Quote, Trade, TradeCancel, TradeCorrection


def trade_doc_id(trade: Trade) -> str:
    """The trades document id: symbol|exchange|trade_id, the trade id hashed when that passes 512 bytes."""
    natural = f"{trade.symbol}|{trade.exchange or ''}|{trade.trade_id}"
    if len(natural.encode()) <= 512:
        return natural
    return f"{trade.symbol}|{trade.exchange or ''}|sha256:{hashlib.sha256(trade.trade_id.encode()).hexdigest()}"


def standing_trades(records: list[Trade | TradeCancel | TradeCorrection]) -> list[Trade]:
    """The trades as they stand after the records, in Kafka order (one partition per symbol): a copy of a trade
    counts once (the first), a cancel takes its trade out, a correction puts its price, size and conditions in place.
    A cancel or correction of a trade never seen changes nothing (it is a dead letter)."""
    trades: dict[tuple[str, str | None, str], Trade] = {}
    cancelled: set[tuple[str, str | None, str]] = set()
    for record in records:
        if isinstance(record, Trade):
            trades.setdefault((record.symbol, record.exchange, record.trade_id), record)
        elif isinstance(record, TradeCancel):
            key = (record.symbol, record.exchange, record.trade_id)
            if key in trades:
                cancelled.add(key)
        else:
            key = (record.symbol, record.exchange, record.original_trade_id)
            if key in trades:
                trades[key] = trades[key].model_copy(update={
                    "price": record.corrected_price, "size": record.corrected_size,
                    "conditions": record.corrected_conditions})  # fmt: skip
    return [trade for key, trade in trades.items() if key not in cancelled]


def expected_spreads(quotes: list[Quote]) -> dict[str, tuple[float, int]]:
    """(time-weighted spread, seconds covered) of every 1-minute bar id with a two-sided quote: the book sampled at
    each second's last quote (by time; the later produced on a tie), each sample holding until the next (or the
    minute's end)."""
    last: dict[tuple[str, int], Quote] = {}
    for quote in quotes:
        key = (quote.symbol, quote.timestamp_ns // 10**9)
        if key not in last or quote.timestamp_ns >= last[key].timestamp_ns:
            last[key] = quote
    minutes: dict[tuple[str, int], list[Quote]] = defaultdict(list)
    for (symbol, second), quote in last.items():
        if quote.bid_price > 0 and quote.ask_price > 0:
            minutes[(symbol, second // 60 * 60)].append(quote)
    out = {}
    for (symbol, start), book in minutes.items():
        book.sort(key=lambda q: q.timestamp_ns)
        ends = [q.timestamp_ns for q in book[1:]] + [(start + 60) * 10**9]
        held = [(end - q.timestamp_ns) / 10**9 for q, end in zip(book, ends, strict=True)]
        weighted = sum((q.ask_price - q.bid_price) * h for q, h in zip(book, held, strict=True))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        out[f"{symbol}|{stamp}"] = (weighted / sum(held), round(sum(held)))
    return out


def expected_bars(trades: list[Trade], seconds: int) -> dict[str, dict[str, Any]]:
    """Bars of ``seconds`` by document id (``symbol|start``): open and close by (time, order produced)."""
    groups: dict[tuple[str, int], list[tuple[int, int, Trade]]] = defaultdict(list)
    for order, trade in enumerate(trades):
        start = trade.timestamp_ns // 10**9 // seconds * seconds
        groups[(trade.symbol, start)].append((trade.timestamp_ns, order, trade))
    bars = {}
    for (symbol, start), items in groups.items():
        items.sort(key=lambda item: (item[0], item[1]))
        prices = [t.price for _, _, t in items]
        volume = sum(t.size for _, _, t in items)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        bars[f"{symbol}|{stamp}"] = {
            "open": items[0][2].price, "high": max(prices), "low": min(prices), "close": items[-1][2].price,
            "volume": volume, "trade_count": len(items), "vwap": sum(t.price * t.size for _, _, t in items) / volume,
        }  # fmt: skip
    return bars


def assert_bars_equal(actual: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert set(actual) == set(expected), (sorted(set(actual) ^ set(expected)))[:10]
    for doc_id, want in expected.items():
        got = actual[doc_id]
        for field in ("open", "high", "low", "close", "trade_count"):
            assert got[field] == want[field], (doc_id, field, got[field], want[field])
        for field in ("volume", "vwap"):
            assert math.isclose(got[field], want[field], rel_tol=1e-9), (doc_id, field, got[field], want[field])
        assert math.isclose(got["range"], want["high"] - want["low"], rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(got["notional"], want["close"] * want["volume"], rel_tol=1e-9)
        assert math.isclose(got["log_return"], math.log(want["close"] / want["open"]), rel_tol=1e-9, abs_tol=1e-15)


def es_docs(settings: Settings, index: str) -> dict[str, dict[str, Any]]:
    """Every document of ``index`` by id, after a refresh."""
    from elasticsearch.helpers import scan

    from ray_app.es_indices import client as es_client

    es = es_client(settings)
    es.indices.refresh(index=index)
    hits: Iterable[dict[str, Any]] = scan(es, index=index, query={"query": {"match_all": {}}}, size=5000)
    return {hit["_id"]: hit["_source"] for hit in hits}


def assert_trades_and_bars(settings: Settings, trades: list[Trade], standing: list[Trade] | None = None,
                           quotes: list[Quote] | None = None) -> None:  # fmt: skip
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
