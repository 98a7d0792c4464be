"""Trades -> event-time 1-minute OHLCV bars per symbol (a stateful streaming aggregation), and 1-hour bars
derived from the 1-minute bars.

One streaming query makes the 1-minute bars: a tumbling ``window`` on a watermark is what lets Spark drop the
state of finished bars. Update output mode: a bar is written again whenever a trade changes it, so
Elasticsearch always holds the bar as of the last micro-batch, and the id (symbol + bar start) makes each
rewrite an overwrite.

The 1-hour bars are not a second aggregation over Kafka (that was a third query re-reading every trade): after
each batch's minute bars are written, every hour they touched is recomputed from its minute bars as
Elasticsearch holds them (a real-time multi-get by id, no refresh needed), which is exact by construction:
open of the first minute, close of the last, max of the highs, min of the lows, sums of volume and trade
count, VWAP = sum(vwap * volume) / sum(volume).

Late data: the watermark is the newest event time seen minus ``stream.bar_lateness_s``. A trade whose minute
ended before the watermark is not counted in any bar, minute or hour (Spark drops it and reports it as
``numRowsDroppedByWatermark``); it is still indexed in ``trades``, as every valid trade is. Spark judges a batch's
rows by the watermark as of the batch before (late-event filtering runs one batch behind state eviction when a
query has several stateful operators, as this one has: deduplication and the aggregation), so a late trade can
still count while the watermark that passes it is one batch old (tests/test_spark_local_units.py). Minute bars whose end
falls behind the watermark are final and their state is dropped.

Open and close are the first and last trade by (event time, Kafka partition, Kafka offset): for one symbol
(one partition, since the key is the symbol) ties in time go by arrival order. A trade that reached Kafka twice
(same symbol, exchange, id and time) counts once, within the watermark.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ray_app.documents import BarDocument
from ray_app.times import format_seconds, parse_seconds
from spark_jobs.records import ID_SEPARATOR, bar_doc_id, bar_document

MINUTE_S = 60
HOUR_S = 3600
BAR_SOURCE = "trades"
MGET_CHUNK = 6000  # ids per multi-get request


def minute_bars(trades: DataFrame, lateness_s: int) -> DataFrame:
    """Valid trades (columns of ``records.valid_trades``) -> 1-minute bars: symbol, start, OHLCV, trade_count,
    vwap, and the newest Kafka time of their trades (for the trade -> bar latency)."""
    event_time = F.timestamp_micros(F.floor(F.col("ts_ns") / 1000).cast("long"))
    order = F.struct("ts_ns", "partition", "offset", "price")
    return (
        trades.withColumn("event_time", event_time)
        .withWatermark("event_time", f"{lateness_s} seconds")
        .dropDuplicates(["symbol", "exchange", "trade_id", "event_time"])
        .groupBy("symbol", F.window("event_time", f"{MINUTE_S} seconds").alias("window"))
        .agg(
            F.min(order).alias("first"),
            F.max(order).alias("last"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.sum("size").alias("volume"),
            F.count(F.lit(1)).alias("trade_count"),
            F.sum(F.col("price") * F.col("size")).alias("notional_sum"),
            F.max("kafka_ts").alias("newest_kafka_ts"),
        )
        .select(
            "symbol",
            F.col("window.start").alias("start"),
            F.col("first.price").alias("open"),
            "high",
            "low",
            F.col("last.price").alias("close"),
            "volume",
            "trade_count",
            (F.col("notional_sum") / F.col("volume")).alias("vwap"),
            "newest_kafka_ts",
        )
    )


def minute_bar_documents(bars: DataFrame, index: str) -> DataFrame:
    """Minute bars -> (index, doc_id, source JSON, produced_ms) for bars-1m."""
    fields = {name: F.col(name) for name in ("symbol", "open", "high", "low", "close", "volume", "trade_count",
                                                 "vwap")}  # fmt: skip
    return bars.select(
        F.lit(index).alias("index"),
        bar_doc_id(F.col("symbol"), F.col("start")).alias("doc_id"),
        bar_document(F.col("start"), timeframe=F.lit("1Min"), source=F.lit(BAR_SOURCE), **fields).alias("source"),
        F.unix_millis(F.col("newest_kafka_ts")).alias("produced_ms"),
    )


# --- 1-hour bars from 1-minute bars (plain Python: a few hundred documents per batch) -------------------------


def touched_hours(minute_ids: Iterable[str]) -> set[tuple[str, int]]:
    """Minute-bar ids (``symbol|2026-11-30T14:05:00Z``) -> the (symbol, hour start) pairs they fall in."""
    hours = set()
    for doc_id in minute_ids:
        symbol, _, stamp = doc_id.rpartition(ID_SEPARATOR)
        hours.add((symbol, parse_seconds(stamp) // HOUR_S * HOUR_S))
    return hours


def minute_ids(symbol: str, hour_start: int) -> list[str]:
    return [f"{symbol}{ID_SEPARATOR}{format_seconds(hour_start + m * MINUTE_S)}" for m in range(HOUR_S // MINUTE_S)]


def hour_bar(symbol: str, hour_start: int, minutes: list[dict[str, Any]], updated_at: str) -> dict[str, Any]:
    """One hour bar from its minute bars (any order): the fields and derived values of every bar document."""
    ordered = sorted(minutes, key=lambda bar: bar["timestamp"])
    volume = math.fsum(bar["volume"] for bar in ordered)
    open_, close = ordered[0]["open"], ordered[-1]["close"]
    high = max(bar["high"] for bar in ordered)
    low = min(bar["low"] for bar in ordered)
    weighted = math.fsum(bar["vwap"] * bar["volume"] for bar in ordered if bar.get("vwap") is not None)
    return BarDocument(
        symbol=symbol, timeframe="1Hour", timestamp=format_seconds(hour_start),
        open=open_, high=high, low=low, close=close, volume=volume,
        trade_count=sum(int(bar.get("trade_count") or 0) for bar in ordered),
        vwap=weighted / volume if volume > 0 else None,
        range=high - low, notional=close * volume, log_return=math.log(close / open_),
        source=BAR_SOURCE, updated_at=updated_at,
    ).model_dump()  # fmt: skip


def hour_bar_documents(es: Any, minute_index: str, hour_index: str,
                       hours: set[tuple[str, int]]) -> Iterator[tuple[str, str, str]]:  # fmt: skip
    """(index, doc_id, source JSON) of every touched hour, recomputed from the minute bars Elasticsearch holds."""
    updated_at = format_seconds(int(time.time()))
    wanted = [(symbol, start, doc_id) for symbol, start in sorted(hours) for doc_id in minute_ids(symbol, start)]
    found: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for chunk in range(0, len(wanted), MGET_CHUNK):
        part = wanted[chunk : chunk + MGET_CHUNK]
        answer = es.mget(index=minute_index, ids=[doc_id for _, _, doc_id in part], realtime=True)
        for (symbol, start, _), doc in zip(part, answer["docs"], strict=True):
            if doc.get("found"):
                found[(symbol, start)].append(doc["_source"])
    for (symbol, start), minutes in sorted(found.items()):
        yield hour_index, bar_doc_id_text(symbol, start), json.dumps(hour_bar(symbol, start, minutes, updated_at))


def bar_doc_id_text(symbol: str, start: int) -> str:
    """The same id as ``records.bar_doc_id``, from Python."""
    return f"{symbol}{ID_SEPARATOR}{format_seconds(start)}"
