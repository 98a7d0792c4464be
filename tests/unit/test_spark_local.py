"""The streaming job's Spark code on a local Spark session, rows in and bulk actions out: no Kafka, no
Elasticsearch, no Ray (tests/support/spark.py). The record rules through Spark SQL: every dead-letter reason of the
poison corpus, and the columns the sink writes by (op, version, the 1-minute bar a record touches). The bars are
recomputed from Elasticsearch after each batch (spark_jobs/bar_recompute.py; tests/unit/test_bars.py and the engine
tests)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ray_app.config import Settings, load_settings
from ray_app.documents import DeadLetterDocument, QuoteDocument, TradeDocument
from ray_app.testing.settings import settings_env
from tests.support.poison import cases

NS = 1_000_000_000


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings_env({"state_dir": tmp_path_factory.mktemp("spark-local")}).items():
            patch.setenv(key, value)
        return load_settings()


@pytest.fixture(scope="module")
def spark(settings: Settings) -> Iterator[Any]:
    from tests.support.spark import local_spark

    with local_spark(settings) as session:
        yield session


def _kafka_rows(spark: Any, rows: list[tuple[str, int, int, int, bytes | None]]) -> Any:
    """(topic, partition, offset, kafka time in ms, value) -> the columns `kafka_source.kafka_stream` reads."""
    from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

    schema = StructType(
        [
            StructField("topic", StringType()),
            StructField("partition", IntegerType()),
            StructField("offset", LongType()),
            StructField("kafka_ts", TimestampType()),
            StructField("value", BinaryType()),
        ]
    )
    data = [(t, p, o, datetime.fromtimestamp(ms / 1000, UTC), v) for t, p, o, ms, v in rows]
    return spark.createDataFrame(data, schema)


# --- records: every Kafka record becomes its document or a dead letter with the reason -------------------------


def test_every_record_of_the_corpus_becomes_its_document_or_a_dead_letter_with_its_reason(spark, settings) -> None:
    from spark_jobs.record_rules import record_documents

    now_ms = time.time_ns() // 1_000_000
    corpus = cases(time.time_ns(), "spark")
    topics = settings.kafka.topics
    rows = [
        (
            getattr(topics, case.topic).name,
            0,
            offset,
            case.kafka_ms if case.kafka_ms is not None else now_ms,
            case.value,
        )
        for offset, case in enumerate(corpus)
    ]
    out = record_documents(_kafka_rows(spark, rows)).collect()  # in the order of the rows
    indices = settings.elasticsearch.indices
    assert len(out) == len(corpus)
    for row, case in zip(out, corpus, strict=True):
        doc = json.loads(row["source"])
        if case.refused_by_elasticsearch:  # an update of a trade never seen: Elasticsearch answers 404
            assert (row["index"], row["op"]) == (indices.trades, "update"), case.what
        elif case.quote is not None:
            assert (row["index"], row["op"], row["version"]) == (indices.quotes, "index", case.quote["timestamp_ns"])
            QuoteDocument.model_validate(doc)
        elif case.reason is None:
            assert case.trade is not None
            assert (row["index"], row["op"]) == (indices.trades, "create")
            assert row["bar_key"] == f"{case.trade.symbol}|{case.trade.timestamp_ns // NS // 60 * 60}"
            TradeDocument.model_validate(doc)
        else:
            assert row["index"] == indices.dead_letters and row["op"] == "index", case.what
            assert doc["reason"] == case.reason, (case.what, doc["detail"])
            DeadLetterDocument.model_validate(doc)
    reasons = {case.reason for case in corpus if case.reason}
    assert {"unparseable", "unknown_type", "missing_field", "invalid_value"} <= reasons  # the corpus has them all


# --- a batch's Kafka partitions in tasks of about equal size ------------------------------------------------------


def _assign(spark: Any, sizes: list[int], groups: int) -> list[int]:
    from py4j.java_gateway import JavaGateway

    gateway: JavaGateway = spark.sparkContext._gateway
    array = gateway.new_array(gateway.jvm.long, len(sizes))
    for i, size in enumerate(sizes):
        array[i] = size
    return list(gateway.jvm.io.github.raytrading.stream.BalancedCoalescer.assign(array, groups))


def _best_max_load(sizes: list[int], groups: int) -> int:
    """The smallest possible largest group, by trying every assignment (small inputs only)."""
    import itertools

    return min(
        max(sum(s for s, g in zip(sizes, choice, strict=True) if g == k) for k in range(groups))
        for choice in itertools.product(range(groups), repeat=len(sizes))
    )


@pytest.mark.parametrize(
    ("sizes", "groups"),
    [
        ([0] * 6 + [3000, 2900, 3100, 2800, 3050, 2950] + [0] * 6 + [150, 160, 140, 0, 155, 145], 2),  # quotes + trades
        ([20_000, 0, 0, 0, 0, 0, 0, 0], 2),  # one partition holds everything: one task
        ([5, 5, 5, 5, 5, 5, 5, 5, 5], 4),
        ([7, 1, 1, 1, 1, 1, 1, 1], 2),
        ([0, 0, 0], 2),  # an empty batch: one task
        ([9, 8, 7, 6, 5, 4, 3, 2, 1], 3),
    ],
)
def test_a_batch_s_partitions_go_to_tasks_of_about_equal_size(spark, sizes: list[int], groups: int) -> None:
    group = _assign(spark, sizes, groups)
    used = max(1, min(groups, sum(1 for s in sizes if s > 0)))
    assert len(group) == len(sizes) and set(group) == set(range(used))  # every partition once, no empty task
    loads = [sum(s for s, g in zip(sizes, group, strict=True) if g == k) for k in range(used)]
    if len(sizes) <= 12 or used == 1:
        best = _best_max_load(sizes, used) if len(sizes) <= 12 else sum(sizes)
        assert max(loads) <= best * (4 / 3 - 1 / (3 * used)) + 1e-9  # the largest-first rule's guarantee
    else:
        assert max(loads) - min(loads) <= max(sizes)  # no task idles while the other holds a partition to spare
