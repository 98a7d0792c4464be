"""1-minute and 1-hour bars: a view of the trades index, recomputed for every minute a micro-batch touches.

After the records query has written a batch (trades created, cancels and corrections applied, quotes kept) and
made the trades and quotes searchable, every 1-minute bar the batch touched (the sink reports them: the minute of
each trade and quote written, and of each trade a cancel or correction changed, as Elasticsearch answered it) is
recomputed from the trades as they now stand, in one aggregation per few hundred bars. Each field counts the trades
its sale conditions allow (``ray_app.conditions``: Alpaca's rules for minute bars), cancelled trades none:

- open and close: the price of the first and the last trade that sets prices, by (event time, Kafka partition,
  Kafka offset), so ties in time go by arrival (one symbol lives in one partition); high, low: their max and min;
- volume, trade count and notional (the sum of price * size, each trade's ``notional``) over the trades that count
  in the volume; VWAP = notional / volume (so, as at every vendor, it can lie outside high-low: an odd lot counts in
  the volume and sets no price);
- ``spread_twa``: the time-weighted mean spread over the minute, from the ``quotes`` index (each second's last
  quote): a second's book holds from its quote until the next second's quote (or the minute's end); a one-sided book
  (no bid or no ask) holds too and counts for nothing; ``spread_seconds`` says how many seconds the average covers.

A minute with no trade that sets a price has no bar (Alpaca makes none: an odd lot makes no bar by itself), and an
existing one is deleted; the volume of its trades is not lost: it counts in the minute's hour. Every hour a touched
minute falls in is then recomputed: open of its first minute bar, close of its last, max of highs, min of lows (the
minute bars as Elasticsearch holds them, by a real-time multi-get), and volume, trade count, notional and VWAP from
every trade of the hour that counts in the volume (one sum aggregation), so minutes without a price bar count; the
spread averaged over the minutes' covered seconds. An hour with no minute bar has none.

So a bar always equals a direct computation over the trades as they stand: a trade however late, a cancel or a
correction of any age (as long as its trade is in the index) changes it; replaying a batch recomputes the same
numbers. There is no watermark and no streaming state: the trades index is the state.

A read that did not see every shard (a shard failed or is away, a search timed out, a multi-get item with an
error) is retried, then fails the batch (``IncompleteRead``): a bar is never written, nor deleted, from part of its
trades. Searches ask Elasticsearch not to return partial results at all.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ray_app.conditions import excluded_query
from ray_app.documents import BarDocument
from ray_app.schemas import ID_SEPARATOR
from ray_app.times import format_seconds

MINUTE_S = 60
HOUR_S = 3600
BAR_SOURCE = "trades"
MGET_CHUNK = 6000  # ids per multi-get request
RUNS_PER_SEARCH = 400  # (symbol, time range) clauses per aggregation request
KEYS_PER_SEARCH = 1000  # windows per aggregation request: its buckets fit one page (COMPOSITE_PAGE)
COMPOSITE_PAGE = 1500  # buckets per page: a search's windows and some bridged ones in between
# neighbouring windows of a symbol this close are read as one time range: a backlog's 100,000 minutes are a few
# ranges, not 100,000 clauses (2.2x faster bars); the windows in between are read too, and their buckets dropped
MERGE_GAP_WINDOWS = 10
# reads in flight: Elasticsearch runs one search on one thread per shard, so a backlog's reads one after the other
# leave the other cores idle
READ_THREADS = 2
NANOS = 1_000_000_000
READ_TRIES = 4  # a read that did not see every shard is tried this often before the batch fails
READ_WAIT_S = 0.5  # ... doubling between tries

Key = tuple[str, int]  # (symbol, bar start in seconds)
Run = tuple[str, int, int]  # (symbol, first window start, last window start) in seconds
Action = tuple[str, str, str | None, str]  # (index, doc_id, source JSON or None, op)
T = TypeVar("T")

SETS_NO_PRICE = excluded_query("minute_open_close")  # open, close, high and low filter alike (ray_app.conditions)
NOT_IN_VOLUME = excluded_query("minute_volume")
CANCELLED = {"term": {"cancelled": True}}


class IncompleteRead(RuntimeError):
    """Elasticsearch answered without every shard (or an item of a multi-get failed): no bar may come of it."""


def parse_keys(touched: Iterable[str]) -> set[Key]:
    """The sink's ``symbol|start seconds`` -> (symbol, start)."""
    keys = set()
    for key in touched:
        symbol, _, start = key.rpartition(ID_SEPARATOR)
        keys.add((symbol, int(start)))
    return keys


def bar_doc_id(symbol: str, start: int) -> str:
    return f"{symbol}{ID_SEPARATOR}{format_seconds(start)}"


def complete(answer: dict[str, Any], what: str) -> dict[str, Any]:
    """A search answer that read every shard, else ``IncompleteRead``."""
    shards = answer.get("_shards") or {}
    total = shards.get("total", 0)
    read = shards.get("successful", 0) + shards.get("skipped", 0)
    if answer.get("timed_out") or shards.get("failed", 0) or read < total:
        reasons = "; ".join(str((f.get("reason") or {}).get("reason", f))[:200] for f in shards.get("failures", [])[:3])
        raise IncompleteRead(
            f"{what} read {read} of {total} shards (timed out: {bool(answer.get('timed_out'))})"
            + (f": {reasons}" if reasons else "")
        )
    return answer


def reading(call: Callable[[], T], what: str, tries: int = READ_TRIES, wait_s: float = READ_WAIT_S) -> T:
    """``call()`` (a read that raises ``IncompleteRead``, or Elasticsearch's error for partial results refused),
    tried ``tries`` times with backoff; then ``IncompleteRead`` fails the batch."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    problem = ""
    for attempt in range(1, tries + 1):
        try:
            return call()
        except IncompleteRead as exc:
            problem = str(exc)
        except ApiError as exc:
            if exc.meta.status < 500 and exc.meta.status != 429:
                raise
            problem = f"HTTP {exc.meta.status}: {str(exc)[:300]}"
        except TransportError as exc:
            problem = f"{type(exc).__name__}: {str(exc)[:300]}"
        if attempt < tries:
            time.sleep(wait_s * 2 ** (attempt - 1))
    raise IncompleteRead(f"{what}: gave up after {tries} tries, no bar written: {problem}")


def window_runs(keys: Iterable[Key], seconds: int, max_gap: int = MERGE_GAP_WINDOWS) -> list[Run]:
    """Each symbol's windows (``seconds`` long) as runs, sorted: a window at most ``max_gap`` windows after the
    previous one extends its run."""
    runs: list[Run] = []
    for symbol, start in sorted(keys):
        if runs and runs[-1][0] == symbol and start - runs[-1][2] <= max_gap * seconds:
            runs[-1] = (symbol, runs[-1][1], start)
        else:
            runs.append((symbol, start, start))
    return runs


def run_chunks(keys: Iterable[Key], seconds: int) -> Iterator[tuple[list[Key], list[Run]]]:
    """The keys (sorted) in chunks of at most ``KEYS_PER_SEARCH`` keys and ``RUNS_PER_SEARCH`` runs: (the chunk's
    keys, its runs). Few keys per search, because a composite aggregation reads every document of the query again
    for each page of buckets: a search over a whole backlog would read it once per 1,000 minutes."""
    chunk: list[Key] = []
    runs = 0
    for key in sorted(keys):
        joins = bool(chunk) and chunk[-1][0] == key[0] and key[1] - chunk[-1][1] <= MERGE_GAP_WINDOWS * seconds
        if chunk and (len(chunk) == KEYS_PER_SEARCH or (not joins and runs == RUNS_PER_SEARCH)):
            yield chunk, window_runs(chunk, seconds)
            chunk, runs = [], 0
            joins = False
        chunk.append(key)
        runs += not joins
    if chunk:
        yield chunk, window_runs(chunk, seconds)


def _in_windows(runs: list[Run], field: str, scale: int, seconds: int) -> dict[str, Any]:
    """A filter for the documents of these runs of windows; ``field`` in units of 1/``scale`` s."""
    return {
        "bool": {
            "minimum_should_match": 1,
            "should": [
                {
                    "bool": {
                        "filter": [
                            {"term": {"symbol": symbol}},
                            {"range": {field: {"gte": first * scale, "lt": (last + seconds) * scale}}},
                        ]
                    }
                }
                for symbol, first, last in runs
            ],
        }
    }


def in_parallel(read: Callable[[T], list], parts: list[T]) -> list:
    """``read`` of every part, concatenated in the parts' order; up to ``READ_THREADS`` at once when there are
    several (an error of any part is raised)."""
    if len(parts) <= 1:
        return [item for part in parts for item in read(part)]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return [item for answer in pool.map(read, parts) for item in answer]


def _key(bucket: dict[str, Any]) -> Key:
    return bucket["key"]["symbol"], bucket["key"]["window"] // 1000


def _composite(
    es: Any, index: str, query: dict[str, Any], time_field: str, aggs: dict[str, Any], interval: str = "1m"
) -> Iterator[dict]:
    """Every (symbol, window) bucket of ``query``, with ``aggs``, page by page; every shard read or none."""
    sources = [
        {"symbol": {"terms": {"field": "symbol"}}},
        {"window": {"date_histogram": {"field": time_field, "fixed_interval": interval}}},
    ]
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": COMPOSITE_PAGE, "sources": sources}
        if after:
            composite["after"] = after

        def page(composite: dict[str, Any] = composite) -> dict[str, Any]:
            return complete(
                es.search(
                    index=index,
                    size=0,
                    query=query,
                    request_cache=False,
                    allow_partial_search_results=False,
                    aggs={"bars": {"composite": composite, "aggs": aggs}},
                ),
                f"a search of {index}",
            )

        result = reading(page, f"the bars' read of {index}")["aggregations"]["bars"]
        yield from result["buckets"]
        after = result.get("after_key")
        if not after or not result["buckets"]:
            return


def _first(bucket: dict[str, Any], name: str) -> dict[str, Any]:
    return bucket[name]["hits"]["hits"][0]["_source"]


TRADE_ORDER = ["timestamp_ns", "kafka_partition", "kafka_offset"]
TRADE_AGGS = {
    "priced": {
        "filter": {"bool": {"must_not": [SETS_NO_PRICE]}},
        "aggs": {
            "high": {"max": {"field": "price"}},
            "low": {"min": {"field": "price"}},
            "open": {"top_hits": {"size": 1, "_source": ["price"], "sort": [{f: "asc"} for f in TRADE_ORDER]}},
            "close": {"top_hits": {"size": 1, "_source": ["price"], "sort": [{f: "desc"} for f in TRADE_ORDER]}},
        },
    },
    "counted": {
        "filter": {"bool": {"must_not": [NOT_IN_VOLUME]}},
        "aggs": {
            "volume": {"sum": {"field": "size"}},
            "notional": {"sum": {"field": "notional"}},
        },
    },
}


def minute_trades(es: Any, trades_index: str, keys: list[Key]) -> dict[Key, dict[str, Any]]:
    """The aggregated trades of each of these (symbol, minute) that has a trade setting a price."""
    wanted = set(keys)
    runs = window_runs(wanted, MINUTE_S)
    query = {"bool": {"filter": [_in_windows(runs, "timestamp_ns", NANOS, MINUTE_S)], "must_not": [CANCELLED]}}
    found = {}
    for bucket in _composite(es, trades_index, query, "timestamp", TRADE_AGGS):
        priced, counted = bucket["priced"], bucket["counted"]
        key = _key(bucket)
        if key not in wanted or not priced["doc_count"]:
            continue  # not asked for, or only trades that set no price (odd lots: no bar; their volume is the hour's)
        found[key] = {
            "open": _first(priced, "open")["price"],
            "close": _first(priced, "close")["price"],
            "high": priced["high"]["value"],
            "low": priced["low"]["value"],
            "volume": counted["volume"]["value"],
            "notional": counted["notional"]["value"],
            "trade_count": counted["doc_count"],
        }
    return found


def time_weighted_spread(start: int, book: list[tuple[int, float | None]]) -> tuple[float | None, int]:
    """(mean spread weighted by how long each quote held within the minute, seconds covered). ``book``: (quote
    time in ns, spread or None for a one-sided book) of the minute's per-second quotes, in time order; each holds
    until the next (the last to the minute's end), and a one-sided one holds for nothing."""
    end_ns = (start + MINUTE_S) * NANOS
    weighted = covered = 0.0
    for i, (at_ns, spread) in enumerate(book):
        if spread is None:
            continue
        until = book[i + 1][0] if i + 1 < len(book) else end_ns
        held = max(0, until - at_ns) / NANOS
        weighted += spread * held
        covered += held
    if covered <= 0:
        return None, 0
    return weighted / covered, round(covered)


def minute_spreads(es: Any, quotes_index: str, keys: list[Key]) -> dict[Key, tuple[float | None, int]]:
    wanted = set(keys)
    query = {"bool": {"filter": [_in_windows(window_runs(wanted, MINUTE_S), "quoted_ns", NANOS, MINUTE_S)]}}
    aggs = {
        "book": {"top_hits": {"size": MINUTE_S, "_source": ["quoted_ns", "spread"], "sort": [{"quoted_ns": "asc"}]}}
    }
    spreads = {}
    for bucket in _composite(es, quotes_index, query, "timestamp", aggs):
        if (key := _key(bucket)) not in wanted:
            continue
        book = [(hit["_source"]["quoted_ns"], hit["_source"].get("spread")) for hit in bucket["book"]["hits"]["hits"]]
        spreads[key] = time_weighted_spread(key[1], book)
    return spreads


def minute_bar(
    symbol: str, start: int, trades: dict[str, Any], spread: tuple[float | None, int] | None, updated_at: str
) -> dict[str, Any]:
    """One 1-minute bar document from its trades' aggregation (and its quotes' spread)."""
    o, h, low, c, v = (trades[name] for name in ("open", "high", "low", "close", "volume"))
    spread_twa, seconds = spread if spread else (None, None)
    return BarDocument(
        symbol=symbol,
        timeframe="1Min",
        timestamp=format_seconds(start),
        open=o,
        high=h,
        low=low,
        close=c,
        volume=v,
        trade_count=int(trades["trade_count"]),
        vwap=trades["notional"] / v if v > 0 else None,
        range=h - low,
        notional=trades["notional"],
        log_return=math.log(c / o),
        spread_twa=spread_twa,
        spread_seconds=seconds or None,
        source=BAR_SOURCE,
        updated_at=updated_at,
    ).model_dump()


def minute_bar_actions(
    es: Any, trades_index: str, quotes_index: str, minute_index: str, keys: set[Key]
) -> list[Action]:
    """The write (or delete) of every touched 1-minute bar, recomputed from the trades and quotes."""
    updated_at = format_seconds(int(time.time()))

    def chunk_actions(part: list[Key]) -> list[Action]:
        trades = minute_trades(es, trades_index, part)
        spreads = minute_spreads(es, quotes_index, [key for key in part if key in trades]) if trades else {}
        actions: list[Action] = []
        for symbol, start in part:
            doc_id = bar_doc_id(symbol, start)
            if (symbol, start) in trades:
                bar = minute_bar(symbol, start, trades[(symbol, start)], spreads.get((symbol, start)), updated_at)
                actions.append((minute_index, doc_id, json.dumps(bar), "index"))
            else:
                actions.append((minute_index, doc_id, None, "delete"))
        return actions

    return in_parallel(chunk_actions, [part for part, _ in run_chunks(keys, MINUTE_S)])


# --- 1-hour bars: prices from the minute bars, volume from every trade of the hour ------------------------------


def touched_hours(minutes: Iterable[Key]) -> set[Key]:
    """(symbol, minute start) -> the (symbol, hour start) pairs they fall in."""
    return {(symbol, start // HOUR_S * HOUR_S) for symbol, start in minutes}


def minute_ids(symbol: str, hour_start: int) -> list[str]:
    return [bar_doc_id(symbol, hour_start + m * MINUTE_S) for m in range(HOUR_S // MINUTE_S)]


def hour_volumes(es: Any, trades_index: str, hours: list[Key]) -> dict[Key, dict[str, float]]:
    """Volume, notional and trade count of each hour's trades that count in the volume (not cancelled)."""
    wanted = set(hours)
    runs = window_runs(wanted, HOUR_S)
    query = {
        "bool": {"filter": [_in_windows(runs, "timestamp_ns", NANOS, HOUR_S)], "must_not": [CANCELLED, NOT_IN_VOLUME]}
    }
    aggs = {"volume": {"sum": {"field": "size"}}, "notional": {"sum": {"field": "notional"}}}
    return {
        _key(bucket): {
            "volume": bucket["volume"]["value"],
            "notional": bucket["notional"]["value"],
            "trade_count": bucket["doc_count"],
        }
        for bucket in _composite(es, trades_index, query, "timestamp", aggs, "1h")
        if _key(bucket) in wanted
    }


def hour_bar(
    symbol: str, hour_start: int, minutes: list[dict[str, Any]], volumes: dict[str, float] | None, updated_at: str
) -> dict[str, Any]:
    """One hour bar from its minute bars (any order) and the sums over its trades in the volume."""
    ordered = sorted(minutes, key=lambda bar: bar["timestamp"])
    open_, close = ordered[0]["open"], ordered[-1]["close"]
    high = max(bar["high"] for bar in ordered)
    low = min(bar["low"] for bar in ordered)
    if volumes is None:  # the hour's sums are not known: its minute bars' (a trade that sets a price is in them)
        volumes = {
            "volume": math.fsum(bar["volume"] for bar in ordered),
            "notional": math.fsum(bar.get("notional") or 0.0 for bar in ordered),
            "trade_count": sum(int(bar.get("trade_count") or 0) for bar in ordered),
        }
    volume, notional = volumes["volume"], volumes["notional"]
    spread_seconds = sum(int(bar.get("spread_seconds") or 0) for bar in ordered if bar.get("spread_twa") is not None)
    spread = math.fsum(
        bar["spread_twa"] * int(bar["spread_seconds"])
        for bar in ordered
        if bar.get("spread_twa") is not None and bar.get("spread_seconds")
    )
    return BarDocument(
        symbol=symbol,
        timeframe="1Hour",
        timestamp=format_seconds(hour_start),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        trade_count=int(volumes["trade_count"]),
        vwap=notional / volume if volume > 0 else None,
        range=high - low,
        notional=notional,
        log_return=math.log(close / open_),
        spread_twa=spread / spread_seconds if spread_seconds else None,
        spread_seconds=spread_seconds or None,
        source=BAR_SOURCE,
        updated_at=updated_at,
    ).model_dump()


def _minute_docs(es: Any, minute_index: str, wanted: list[tuple[str, int, str]]) -> dict[Key, list[dict[str, Any]]]:
    def read(part: list[tuple[str, int, str]]) -> list[tuple[Key, dict[str, Any]]]:
        def get() -> list[dict[str, Any]]:
            docs = es.mget(index=minute_index, ids=[doc_id for _, _, doc_id in part], realtime=True)["docs"]
            failed = [doc for doc in docs if "error" in doc]
            if failed:
                raise IncompleteRead(
                    f"a multi-get of {minute_index} failed for {len(failed)} bars: {str(failed[0]['error'])[:200]}"
                )
            return docs

        docs = reading(get, f"the hours' read of {minute_index}")
        return [
            ((symbol, start), doc["_source"])
            for (symbol, start, _), doc in zip(part, docs, strict=True)
            if doc.get("found")
        ]

    found: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    parts = [wanted[chunk : chunk + MGET_CHUNK] for chunk in range(0, len(wanted), MGET_CHUNK)]
    for key, source in in_parallel(read, parts):
        found[key].append(source)
    return found


def hour_bar_actions(es: Any, trades_index: str, minute_index: str, hour_index: str, hours: set[Key]) -> list[Action]:
    """The write of every touched hour, recomputed from its minute bars and its trades; the delete of an hour that
    has no minute bar left."""
    updated_at = format_seconds(int(time.time()))
    ordered = sorted(hours)
    wanted = [(symbol, start, doc_id) for symbol, start in ordered for doc_id in minute_ids(symbol, start)]
    minutes = _minute_docs(es, minute_index, wanted)
    volumes: dict[Key, dict[str, float]] = {}
    priced = [key for key in ordered if key in minutes]
    parts = [part for part, _ in run_chunks(priced, HOUR_S)]
    volumes |= dict(in_parallel(lambda part: list(hour_volumes(es, trades_index, part).items()), parts))
    actions: list[Action] = []
    for symbol, start in ordered:
        doc_id = bar_doc_id(symbol, start)
        if (symbol, start) in minutes:
            bar = hour_bar(symbol, start, minutes[(symbol, start)], volumes.get((symbol, start)), updated_at)
            actions.append((hour_index, doc_id, json.dumps(bar), "index"))
        else:
            actions.append((hour_index, doc_id, None, "delete"))
    return actions
