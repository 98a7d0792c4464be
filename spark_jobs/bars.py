"""Trades -> event-time OHLCV bars (1 minute or 1 hour) per symbol, as a stateful streaming aggregation.

One streaming query per timeframe (Spark allows one watermark per query, and a tumbling ``window`` on it is
what lets Spark drop the state of finished bars). Update output mode: a bar is written again whenever a trade
changes it, so Elasticsearch always holds the bar as of the last micro-batch, and the id (symbol + bar start) makes each
rewrite an overwrite.

Late data: the watermark is the newest event time seen minus ``stream.bar_lateness_s``. A trade whose bar
ended before the watermark is not counted in any bar (Spark drops it and reports it as
``numRowsDroppedByWatermark``); it is still indexed in ``trades``, as every valid trade is. Bars whose end falls
behind the watermark are final and their state is dropped.

Open and close are the first and last trade by (event time, Kafka partition, Kafka offset): for one symbol
(one partition, since the key is the symbol) ties in time go by arrival order. A trade that reached Kafka twice
(same symbol, exchange, id and time) counts once, within the watermark.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.records import bar_doc_id, bar_document

TIMEFRAMES = {"1Min": 60, "1Hour": 3600}
BAR_SOURCE = "trades"


def bars_from_trades(trades: DataFrame, timeframe: str, lateness_s: int) -> DataFrame:
    """Valid trades (columns of ``records.trade_columns``) -> bars of one timeframe: symbol, timeframe, start,
    OHLCV, trade_count, vwap."""
    lateness = f"{lateness_s} seconds"
    event_time = F.timestamp_micros(F.floor(F.col("ts_ns") / 1000).cast("long"))
    order = F.struct("ts_ns", "partition", "offset", "price")
    return (
        trades.withColumn("event_time", event_time)
        .withWatermark("event_time", lateness)
        .dropDuplicates(["symbol", "exchange", "trade_id", "event_time"])
        .groupBy("symbol", F.window("event_time", f"{TIMEFRAMES[timeframe]} seconds").alias("window"))
        .agg(
            F.min(order).alias("first"),
            F.max(order).alias("last"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.sum("size").alias("volume"),
            F.count(F.lit(1)).alias("trade_count"),
            F.sum(F.col("price") * F.col("size")).alias("notional_sum"),
        )
        .select(
            "symbol",
            F.lit(timeframe).alias("timeframe"),
            F.col("window.start").alias("start"),
            F.col("first.price").alias("open"),
            "high",
            "low",
            F.col("last.price").alias("close"),
            "volume",
            "trade_count",
            (F.col("notional_sum") / F.col("volume")).alias("vwap"),
        )
    )


def bar_documents(bars: DataFrame, indices: dict[str, str]) -> DataFrame:
    """Bars -> (index, doc_id, source JSON) for bars-1m and bars-1h."""
    index = F.when(F.col("timeframe") == "1Min", F.lit(indices["bars_1m"])).otherwise(F.lit(indices["bars_1h"]))
    fields = {name: F.col(name) for name in ("symbol", "timeframe", "open", "high", "low", "close", "volume",
                                                 "trade_count", "vwap")}  # fmt: skip
    return bars.select(
        index.alias("index"),
        bar_doc_id(F.col("symbol"), F.col("start")).alias("doc_id"),
        bar_document(F.col("start"), source=F.lit(BAR_SOURCE), **fields).alias("source"),
    )
