"""1-minute and 1-hour bars: a view of the trades index, recomputed for every minute a micro-batch touches.

After the records query has written a batch (trades created, cancels and corrections applied, quotes kept) and
refreshed the indices, every 1-minute bar the batch touched (the sink reports them: the minute of each trade and
quote written, and of each trade a cancel or correction changed, as Elasticsearch answered it) is recomputed from
the trades as they now stand, in one aggregation per few hundred bars:

- the trades of the minute that are not cancelled, at their current (corrected) price and size;
- open and close: the price of the first and the last trade by (event time, Kafka partition, Kafka offset), so ties
  in time go by arrival (one symbol lives in one partition); high, low: max and min price; volume: the sum of sizes;
  trade count; VWAP: the sum of price * size (each trade's ``notional``) over the volume;
- ``spread_twa``: the time-weighted mean spread over the minute, from the ``quotes`` index (each second's last
  quote): a second's book holds from its quote until the next second's quote (or the minute's end), one-sided
  books (no bid or no ask) count for nothing, ``spread_seconds`` says how many seconds the average covers.

A minute with no trade left (all cancelled) loses its bar (deleted). Every hour a touched minute falls in is then
recomputed from its minute bars as Elasticsearch holds them (a real-time multi-get, no refresh needed): open of the
first minute, close of the last, max of highs, min of lows, sums of volume and trade count, VWAP = sum(vwap * v) /
sum(v), the spread averaged over the minutes' covered seconds. An hour with no minute bar left is deleted.

So a bar always equals a direct computation over the trades as they stand: a trade however late, a cancel or a
correction of any age (as long as its trade is in the index) changes it; replaying a batch recomputes the same
numbers. There is no watermark and no streaming state: the trades index is the state.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from ray_app.documents import BarDocument
from ray_app.schemas import ID_SEPARATOR
from ray_app.times import format_seconds

MINUTE_S = 60
HOUR_S = 3600
BAR_SOURCE = "trades"
MGET_CHUNK = 6000  # ids per multi-get request
KEYS_PER_SEARCH = 400  # (symbol, minute) clauses per aggregation request
NANOS = 1_000_000_000

Key = tuple[str, int]  # (symbol, bar start in seconds)
Action = tuple[str, str, str | None, str]  # (index, doc_id, source JSON or None, op)


def parse_keys(touched: Iterable[str]) -> set[Key]:
    """The sink's ``symbol|start seconds`` -> (symbol, start)."""
    keys = set()
    for key in touched:
        symbol, _, start = key.rpartition(ID_SEPARATOR)
        keys.add((symbol, int(start)))
    return keys


def bar_doc_id_text(symbol: str, start: int) -> str:
    return f"{symbol}{ID_SEPARATOR}{format_seconds(start)}"


def _in_minutes(keys: list[Key], field: str, scale: int) -> dict[str, Any]:
    """A filter for the documents of these (symbol, minute) pairs; ``field`` in units of 1/``scale`` seconds."""
    return {"bool": {"minimum_should_match": 1, "should": [
        {"bool": {"filter": [{"term": {"symbol": symbol}},
                             {"range": {field: {"gte": start * scale, "lt": (start + MINUTE_S) * scale}}}]}}
        for symbol, start in keys]}}  # fmt: skip


def _composite(es: Any, index: str, query: dict[str, Any], time_field: str, aggs: dict[str, Any]) -> Iterator[dict]:
    """Every (symbol, minute) bucket of ``query``, with ``aggs``, page by page."""
    sources = [{"symbol": {"terms": {"field": "symbol"}}},
               {"minute": {"date_histogram": {"field": time_field, "fixed_interval": "1m"}}}]  # fmt: skip
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": 1000, "sources": sources}
        if after:
            composite["after"] = after
        answer = es.search(index=index, size=0, query=query, aggs={"bars": {"composite": composite, "aggs": aggs}},
                           request_cache=False)  # fmt: skip
        result = answer["aggregations"]["bars"]
        yield from result["buckets"]
        after = result.get("after_key")
        if not after or not result["buckets"]:
            return


def _first(bucket: dict[str, Any], name: str) -> dict[str, Any]:
    return bucket[name]["hits"]["hits"][0]["_source"]


TRADE_ORDER = ["timestamp_ns", "kafka_partition", "kafka_offset"]
TRADE_AGGS = {
    "high": {"max": {"field": "price"}},
    "low": {"min": {"field": "price"}},
    "volume": {"sum": {"field": "size"}},
    "notional": {"sum": {"field": "notional"}},
    "open": {"top_hits": {"size": 1, "_source": ["price"], "sort": [{f: "asc"} for f in TRADE_ORDER]}},
    "close": {"top_hits": {"size": 1, "_source": ["price"], "sort": [{f: "desc"} for f in TRADE_ORDER]}},
}


def minute_trades(es: Any, trades_index: str, keys: list[Key]) -> dict[Key, dict[str, Any]]:
    """The aggregated trades of each (symbol, minute) that still has one."""
    query = {"bool": {"filter": [_in_minutes(keys, "timestamp_ns", NANOS)],
                      "must_not": [{"term": {"cancelled": True}}]}}  # fmt: skip
    found = {}
    for bucket in _composite(es, trades_index, query, "timestamp", TRADE_AGGS):
        key = (bucket["key"]["symbol"], bucket["key"]["minute"] // 1000)
        found[key] = {"open": _first(bucket, "open")["price"], "close": _first(bucket, "close")["price"],
                      "high": bucket["high"]["value"], "low": bucket["low"]["value"],
                      "volume": bucket["volume"]["value"], "notional": bucket["notional"]["value"],
                      "trade_count": bucket["doc_count"]}  # fmt: skip
    return found


def time_weighted_spread(start: int, book: list[tuple[int, float]]) -> tuple[float | None, int]:
    """(mean spread weighted by how long each quote held within the minute, seconds covered). ``book``: (quote
    time in ns, spread) of the minute's per-second quotes, in time order; the last holds to the minute's end."""
    end_ns = (start + MINUTE_S) * NANOS
    weighted = covered = 0.0
    for i, (at_ns, spread) in enumerate(book):
        until = book[i + 1][0] if i + 1 < len(book) else end_ns
        held = max(0, until - at_ns) / NANOS
        weighted += spread * held
        covered += held
    if covered <= 0:
        return None, 0
    return weighted / covered, round(covered)


def minute_spreads(es: Any, quotes_index: str, keys: list[Key]) -> dict[Key, tuple[float | None, int]]:
    query = {"bool": {"filter": [_in_minutes(keys, "quoted_ns", NANOS), {"exists": {"field": "spread"}}]}}
    aggs = {"book": {"top_hits": {"size": MINUTE_S, "_source": ["quoted_ns", "spread"],
                                  "sort": [{"quoted_ns": "asc"}]}}}  # fmt: skip
    spreads = {}
    for bucket in _composite(es, quotes_index, query, "timestamp", aggs):
        key = (bucket["key"]["symbol"], bucket["key"]["minute"] // 1000)
        book = [(hit["_source"]["quoted_ns"], hit["_source"]["spread"]) for hit in bucket["book"]["hits"]["hits"]]
        spreads[key] = time_weighted_spread(key[1], book)
    return spreads


def minute_bar(symbol: str, start: int, trades: dict[str, Any], spread: tuple[float | None, int] | None,
               updated_at: str) -> dict[str, Any]:  # fmt: skip
    """One 1-minute bar document from its trades' aggregation (and its quotes' spread)."""
    o, h, low, c, v = (trades[name] for name in ("open", "high", "low", "close", "volume"))
    spread_twa, seconds = spread if spread else (None, None)
    return BarDocument(
        symbol=symbol, timeframe="1Min", timestamp=format_seconds(start), open=o, high=h, low=low, close=c, volume=v,
        trade_count=int(trades["trade_count"]), vwap=trades["notional"] / v if v > 0 else None,
        range=h - low, notional=c * v, log_return=math.log(c / o), spread_twa=spread_twa,
        spread_seconds=seconds or None, source=BAR_SOURCE, updated_at=updated_at,
    ).model_dump()  # fmt: skip


def minute_bar_actions(es: Any, trades_index: str, quotes_index: str, minute_index: str,
                       keys: set[Key]) -> list[Action]:  # fmt: skip
    """The write (or delete) of every touched 1-minute bar, recomputed from the trades and quotes."""
    updated_at = format_seconds(int(time.time()))
    ordered = sorted(keys)
    actions: list[Action] = []
    for chunk in range(0, len(ordered), KEYS_PER_SEARCH):
        part = ordered[chunk : chunk + KEYS_PER_SEARCH]
        trades = minute_trades(es, trades_index, part)
        spreads = minute_spreads(es, quotes_index, [key for key in part if key in trades]) if trades else {}
        for symbol, start in part:
            doc_id = bar_doc_id_text(symbol, start)
            if (symbol, start) in trades:
                bar = minute_bar(symbol, start, trades[(symbol, start)], spreads.get((symbol, start)), updated_at)
                actions.append((minute_index, doc_id, json.dumps(bar), "index"))
            else:
                actions.append((minute_index, doc_id, None, "delete"))
    return actions


# --- 1-hour bars from 1-minute bars (a few hundred documents per batch) ----------------------------------------


def touched_hours(minutes: Iterable[Key]) -> set[Key]:
    """(symbol, minute start) -> the (symbol, hour start) pairs they fall in."""
    return {(symbol, start // HOUR_S * HOUR_S) for symbol, start in minutes}


def minute_ids(symbol: str, hour_start: int) -> list[str]:
    return [bar_doc_id_text(symbol, hour_start + m * MINUTE_S) for m in range(HOUR_S // MINUTE_S)]


def hour_bar(symbol: str, hour_start: int, minutes: list[dict[str, Any]], updated_at: str) -> dict[str, Any]:
    """One hour bar from its minute bars (any order): the fields and derived values of every bar document."""
    ordered = sorted(minutes, key=lambda bar: bar["timestamp"])
    volume = math.fsum(bar["volume"] for bar in ordered)
    open_, close = ordered[0]["open"], ordered[-1]["close"]
    high = max(bar["high"] for bar in ordered)
    low = min(bar["low"] for bar in ordered)
    weighted = math.fsum(bar["vwap"] * bar["volume"] for bar in ordered if bar.get("vwap") is not None)
    spread_seconds = sum(int(bar.get("spread_seconds") or 0) for bar in ordered if bar.get("spread_twa") is not None)
    spread = math.fsum(bar["spread_twa"] * int(bar["spread_seconds"]) for bar in ordered
                       if bar.get("spread_twa") is not None and bar.get("spread_seconds"))  # fmt: skip
    return BarDocument(
        symbol=symbol, timeframe="1Hour", timestamp=format_seconds(hour_start),
        open=open_, high=high, low=low, close=close, volume=volume,
        trade_count=sum(int(bar.get("trade_count") or 0) for bar in ordered),
        vwap=weighted / volume if volume > 0 else None,
        range=high - low, notional=close * volume, log_return=math.log(close / open_),
        spread_twa=spread / spread_seconds if spread_seconds else None, spread_seconds=spread_seconds or None,
        source=BAR_SOURCE, updated_at=updated_at,
    ).model_dump()  # fmt: skip


def hour_bar_actions(es: Any, minute_index: str, hour_index: str, hours: set[Key]) -> list[Action]:
    """The write of every touched hour, recomputed from the minute bars Elasticsearch holds; the delete of an hour
    that has none left."""
    updated_at = format_seconds(int(time.time()))
    wanted = [(symbol, start, doc_id) for symbol, start in sorted(hours) for doc_id in minute_ids(symbol, start)]
    found: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for chunk in range(0, len(wanted), MGET_CHUNK):
        part = wanted[chunk : chunk + MGET_CHUNK]
        answer = es.mget(index=minute_index, ids=[doc_id for _, _, doc_id in part], realtime=True)
        for (symbol, start, _), doc in zip(part, answer["docs"], strict=True):
            if doc.get("found"):
                found[(symbol, start)].append(doc["_source"])
    actions: list[Action] = []
    for symbol, start in sorted(hours):
        doc_id = bar_doc_id_text(symbol, start)
        if (symbol, start) in found:
            actions.append((hour_index, doc_id, json.dumps(hour_bar(symbol, start, found[(symbol, start)],
                                                                    updated_at)), "index"))  # fmt: skip
        else:
            actions.append((hour_index, doc_id, None, "delete"))
    return actions
