"""What Elasticsearch must hold after the stream, computed directly from the trades that were produced: the trade
document ids, every minute and hour bar, and the checks that compare the two. The engine tests (one broker, three
brokers, two Ray nodes) and the benchmarks judge the stream against this, never against the stream's own code."""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ray_app.config import Settings
from ray_app.schemas import Trade


def trade_doc_id(trade: Trade) -> str:
    """The trades document id: symbol|exchange|trade_id, the trade id hashed when that passes 512 bytes."""
    natural = f"{trade.symbol}|{trade.exchange or ''}|{trade.trade_id}"
    if len(natural.encode()) <= 512:
        return natural
    return f"{trade.symbol}|{trade.exchange or ''}|sha256:{hashlib.sha256(trade.trade_id.encode()).hexdigest()}"


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


def assert_trades_and_bars(settings: Settings, trades: list[Trade]) -> None:
    """``trades`` indexed once each (nothing more) and every minute and hour bar equal to a direct computation."""
    indices = settings.elasticsearch.indices
    want_ids = {trade_doc_id(t) for t in trades}
    assert len(want_ids) == len(trades), "the trades given hold duplicates"
    indexed = es_docs(settings, indices.trades)
    assert len(indexed) == len(want_ids), f"{len(indexed)} trade documents for {len(want_ids)} produced trades"
    assert set(indexed) == want_ids
    assert_bars_equal(es_docs(settings, indices.bars_1m), expected_bars(trades, 60))
    assert_bars_equal(es_docs(settings, indices.bars_1h), expected_bars(trades, 3600))
