"""The streaming job's Spark code on a local Spark session, rows in and documents out: no Kafka, no Elasticsearch,
no Ray (ray_app/testing/spark.py). The record rules through Spark SQL (every dead-letter reason of the poison
corpus), the minute bars (ties in time, duplicates, late data behind the watermark) and the bar documents."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ray_app.config import Settings, load_settings
from ray_app.documents import BarDocument, DeadLetterDocument, TradeDocument
from ray_app.testing.poison import cases
from ray_app.testing.settings import settings_env
from ray_app.times import format_seconds

NS = 1_000_000_000
T0 = 1_764_511_200 * NS  # 2025-11-30T14:00:00Z


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings_env({"state_dir": tmp_path_factory.mktemp("spark-local")}).items():
            patch.setenv(key, value)
        return load_settings()


@pytest.fixture(scope="module")
def spark(settings: Settings) -> Iterator[Any]:
    from ray_app.testing.spark import local_spark

    with local_spark(settings) as session:
        yield session


def _kafka_rows(spark: Any, rows: list[tuple[str, int, int, int, bytes | None]]) -> Any:
    """(topic, partition, offset, kafka time in ms, value) -> the columns `stream_trades.kafka_stream` reads."""
    from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

    schema = StructType([StructField("topic", StringType()), StructField("partition", IntegerType()),
                         StructField("offset", LongType()), StructField("kafka_ts", TimestampType()),
                         StructField("value", BinaryType())])  # fmt: skip
    data = [(t, p, o, datetime.fromtimestamp(ms / 1000, UTC), v) for t, p, o, ms, v in rows]
    return spark.createDataFrame(data, schema)


def _trade(symbol: str, ts_ns: int, price: float, size: float, trade_id: str, exchange: str = "V") -> bytes:
    return json.dumps({"schema_version": 1, "kind": "trade", "symbol": symbol, "timestamp_ns": ts_ns, "price": price,
                       "size": size, "trade_id": trade_id, "exchange": exchange, "source": "simulator"}).encode()


# --- records: every Kafka record becomes its document or a dead letter with the reason -------------------------


def test_every_record_of_the_corpus_becomes_its_document_or_a_dead_letter_with_its_reason(spark, settings) -> None:
    from spark_jobs.records import record_documents

    now_ms = time.time_ns() // 1_000_000
    corpus = cases(time.time_ns(), "spark")
    topics = settings.kafka.topics
    rows = [(getattr(topics, case.topic).name, 0, offset, case.kafka_ms if case.kafka_ms is not None else now_ms,
             case.value) for offset, case in enumerate(corpus)]  # fmt: skip
    out = {row["doc_id"]: row for row in record_documents(_kafka_rows(spark, rows)).collect()}
    indices = settings.elasticsearch.indices
    letters = {doc_id.rsplit("|", 1)[1]: json.loads(row["source"]) for doc_id, row in out.items()
               if row["index"] == indices.dead_letters}  # fmt: skip
    trades = [json.loads(row["source"]) for row in out.values() if row["index"] == indices.trades]
    assert len(out) == len(corpus)
    for offset, case in enumerate(corpus):
        if case.reason is None:
            continue
        letter = letters[str(offset)]
        assert letter["reason"] == case.reason, (case.what, letter["detail"])
        DeadLetterDocument.model_validate(letter)
    assert len(trades) == sum(case.reason is None for case in corpus)
    assert {doc["trade_id"] for doc in trades} == {case.trade.trade_id for case in corpus if case.trade}
    for doc in trades:
        TradeDocument.model_validate(doc)
    reasons = {case.reason for case in corpus if case.reason}
    assert {"unparseable", "unknown_type", "missing_field", "invalid_value"} <= reasons  # the corpus has them all


def test_valid_trades_are_typed_with_their_kafka_position_and_the_invalid_ones_left_out(spark, settings) -> None:
    from spark_jobs.records import valid_trades

    topic = settings.kafka.topics.trades.name
    rows = [(topic, 2, 40, T0 // 10**6, _trade("AAPL", T0, 101.5, 3, "a")), (topic, 2, 41, T0 // 10**6, b"{oops"),
            (topic, 2, 42, T0 // 10**6, _trade("AAPL", T0 + NS, -1, 3, "b"))]  # fmt: skip
    got = [row.asDict() for row in valid_trades(_kafka_rows(spark, rows)).collect()]
    assert len(got) == 1
    assert {k: got[0][k] for k in ("symbol", "exchange", "trade_id", "price", "size", "ts_ns", "partition", "offset")} \
        == {"symbol": "AAPL", "exchange": "V", "trade_id": "a", "price": 101.5, "size": 3.0, "ts_ns": T0,
            "partition": 2, "offset": 40}  # fmt: skip


# --- bars: minute bars from trades ----------------------------------------------------------------------------


def _bars(spark: Any, settings: Settings, trades: list[tuple[str, int, float, float, str, int]]) -> dict[str, dict]:
    """(symbol, ts_ns, price, size, trade_id, offset) in one batch -> {doc_id: bar document}."""
    from spark_jobs.bars import minute_bar_documents, minute_bars
    from spark_jobs.records import valid_trades

    topic = settings.kafka.topics.trades.name
    rows = [(topic, 0, offset, ts // 10**6, _trade(symbol, ts, price, size, trade_id))
            for symbol, ts, price, size, trade_id, offset in trades]  # fmt: skip
    bars = minute_bars(valid_trades(_kafka_rows(spark, rows)), lateness_s=60)
    docs = minute_bar_documents(bars, settings.elasticsearch.indices.bars_1m).collect()
    return {row["doc_id"]: json.loads(row["source"]) for row in docs}


def test_a_minute_bar_is_the_direct_computation_over_its_trades(spark, settings) -> None:
    trades = [("AAPL", T0 + 5 * NS, 10.0, 2, "1", 0), ("AAPL", T0 + 20 * NS, 12.0, 1, "2", 1),
              ("AAPL", T0 + 59 * NS, 11.0, 3, "3", 2), ("AAPL", T0 + 61 * NS, 9.0, 1, "4", 3),
              ("MSFT", T0 + 30 * NS, 50.0, 4, "5", 4)]  # fmt: skip
    bars = _bars(spark, settings, trades)
    first = bars[f"AAPL|{format_seconds(T0 // NS)}"]
    assert (first["open"], first["high"], first["low"], first["close"]) == (10.0, 12.0, 10.0, 11.0)
    assert first["volume"] == 6 and first["trade_count"] == 3
    assert math.isclose(first["vwap"], (10 * 2 + 12 * 1 + 11 * 3) / 6)
    assert math.isclose(first["log_return"], math.log(11 / 10)) and math.isclose(first["notional"], 66)
    assert set(bars) == {f"AAPL|{format_seconds(T0 // NS)}", f"AAPL|{format_seconds(T0 // NS + 60)}",
                         f"MSFT|{format_seconds(T0 // NS)}"}  # fmt: skip
    for doc in bars.values():
        BarDocument.model_validate(doc)  # the Spark columns are the model, field for field
        assert list(doc) == [name for name in BarDocument.model_fields if doc.get(name) is not None]


def test_trades_at_the_same_instant_open_and_close_by_kafka_order(spark, settings) -> None:
    """Ties in time go by arrival (partition, offset): the first to arrive opens, the last closes."""
    trades = [("AAPL", T0 + NS, 20.0, 1, "late-offset", 9), ("AAPL", T0 + NS, 10.0, 1, "early-offset", 3),
              ("AAPL", T0 + NS, 15.0, 1, "middle", 5)]  # fmt: skip
    bar = _bars(spark, settings, trades)[f"AAPL|{format_seconds(T0 // NS)}"]
    assert (bar["open"], bar["close"], bar["trade_count"]) == (10.0, 20.0, 3)


def test_a_trade_that_reached_kafka_twice_counts_once(spark, settings) -> None:
    trades = [("AAPL", T0 + NS, 10.0, 2, "same", 0), ("AAPL", T0 + NS, 10.0, 2, "same", 1),
              ("AAPL", T0 + 2 * NS, 11.0, 1, "other", 2)]  # fmt: skip
    bar = _bars(spark, settings, trades)[f"AAPL|{format_seconds(T0 // NS)}"]
    assert (bar["volume"], bar["trade_count"]) == (3.0, 2)


def test_a_trade_behind_the_watermark_changes_no_bar_and_one_within_it_does(spark, settings, tmp_path: Path) -> None:
    """As a stream: a batch moves the watermark to its newest trade minus the lateness (60 s). Spark judges late rows
    by the watermark of the batch before the current one (with several stateful operators it holds late-event
    filtering one batch behind eviction), so two batches on, a trade whose minute ended before that watermark
    is dropped, and one inside it updates its bar."""
    from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

    from spark_jobs.bars import minute_bar_documents, minute_bars
    from spark_jobs.records import valid_trades

    topic = settings.kafka.topics.trades.name
    source = tmp_path / "in"
    source.mkdir()
    schema = StructType([StructField("topic", StringType()), StructField("partition", IntegerType()),
                         StructField("offset", LongType()), StructField("kafka_ts", TimestampType()),
                         StructField("value", BinaryType())])  # fmt: skip
    stream = spark.readStream.schema(schema).parquet(str(source))
    documents = minute_bar_documents(minute_bars(valid_trades(stream), lateness_s=60),
                                     settings.elasticsearch.indices.bars_1m)  # fmt: skip
    written: dict[str, dict] = {}
    progress: list[dict[str, Any]] = []

    def collect(batch: Any, _batch_id: int) -> None:
        written.update({row["doc_id"]: json.loads(row["source"]) for row in batch.collect()})

    query = (documents.writeStream.outputMode("update").foreachBatch(collect)
             .option("checkpointLocation", str(tmp_path / "checkpoint")).start())  # fmt: skip

    def feed(name: str, trades: list[tuple[int, float, str, int]]) -> None:
        rows = [(topic, 0, offset, ts // 10**6, _trade("AAPL", ts, price, 1, trade_id))
                for ts, price, trade_id, offset in trades]  # fmt: skip
        staging = tmp_path / f"staging-{name}"
        _kafka_rows(spark, rows).write.parquet(str(staging))
        for part in staging.glob("*.parquet"):  # whole files appear in the source directory, as a stream's would
            part.rename(source / f"{name}-{part.name}")
        query.processAllAvailable()
        progress.append(query.lastProgress)

    try:
        feed("1", [(T0 + 5 * NS, 10.0, "a", 0), (T0 + 10 * 60 * NS, 30.0, "b", 1)])  # watermark: 14:09:00
        feed("2", [(T0 + 10 * 60 * NS + 30 * NS, 31.0, "c", 2)])  # (late rows are judged a batch later: below)
        feed("3", [(T0 + 6 * NS, 99.0, "too-late", 3), (T0 + 9 * 60 * NS + 5 * NS, 20.0, "in-time", 4)])
    finally:
        query.stop()
    minute_0 = written[f"AAPL|{format_seconds(T0 // NS)}"]
    assert (minute_0["high"], minute_0["trade_count"]) == (10.0, 1)  # the late trade changed nothing
    minute_9 = written[f"AAPL|{format_seconds(T0 // NS + 9 * 60)}"]
    assert (minute_9["open"], minute_9["trade_count"]) == (20.0, 1)
    assert sum(op["numRowsDroppedByWatermark"] for op in progress[-1]["stateOperators"]) == 1
