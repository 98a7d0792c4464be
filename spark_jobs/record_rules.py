"""Kafka records -> Elasticsearch bulk actions: the record rules, as a Spark SQL function of the job's JVM code.

Every Kafka value of the four topics is parsed once, checked, and routed by its topic (and on the trades topic by
its ``kind``: trade, cancel, correction). A record that breaks
a rule is not dropped: it becomes a ``dead-letters`` document with the reason, the detail and the raw payload.
The rules run in ``Records.java`` (``spark_jobs/jvm``), once per record inside the Spark tasks: written as Spark
SQL, their fifty checks made a query plan whose planning and code generation, repeated for every micro-batch,
cost most of a small batch. The limits are the platform's (``ray_app.schemas``, which the ingest models check
too) and reach the JVM through ``rules_config``.

Document ids are deterministic, so a replayed micro-batch overwrites what it wrote before, or finds it there:

- trade: a stock trade's ``symbol|exchange|trading day|trade_id`` (venues number each day's trades afresh, so an id
  is unique within its New York date only: ``ray_app.times.trading_day`` of the trade's own time), a crypto trade's
  ``symbol|exchange|trade_id`` (Alpaca's crypto ids are unique per symbol); when that passes Elasticsearch's
  512-byte id limit (a long natural trade id), the trade id is ``sha256:<hex of the trade id>``, stable across
  replays; ``trade_id`` keeps the natural id. Written with ``create``: a copy that reached Kafka twice, or a replay,
  finds it there and changes nothing (a cancelled trade sent again stays cancelled)
- cancel (``kind: cancel``) and correction (``kind: correction``): an ``update`` of the trade named by the record's
  symbol, exchange, trading day (of the cancel's or correction's own time: venues send them the same day) and
  (original) trade id, or by an id an earlier correction gave the trade (``trade-aliases``, written by each
  correction for its corrected id): a cancel sets ``cancelled``, ``cancelled_at`` and ``cancel_action``; a
  correction (a script) puts the corrected price, size, conditions (and notional) in place, keeps the values the
  trade had before its first correction in ``original_*`` whatever follows, and appends its corrected id to
  ``corrected_trade_ids``. Applied after the batch's trades, in Kafka order (``BulkClient.java``); a trade that is
  not there -> a dead letter, ``unknown_trade``, named by the record (``topic|partition|offset``)
- quote: ``symbol|second`` in ``quotes``, versioned by the quote's time (``external_gte``): of a second's quotes the
  latest stays, whatever order they are written in
- bar (Alpaca's, from the ``bars`` topic: live ``b``, ``updatedBars`` ``u``, REST backfill): ``symbol|bar start`` in
  ``vendor-bars-1m``/``vendor-bars-1h``, never where the bars the stream builds from trades live; the later in
  Kafka order wins (a ``u`` after its ``b``)
- dead letter: ``topic|partition|offset`` of the Kafka record; a document Elasticsearch refused:
  ``rejected|index|doc_id`` (the doc id hashed the same way when long), or the record's coordinates when it has them

The rules, in order (the first broken one names the dead letter's reason):

- ``unparseable``: not valid UTF-8 JSON, not an object, empty, a tombstone, nested deeper than 64 levels, a
  key given twice, or trailing bytes after the object
- ``unknown_type``: a ``kind`` other than the topic's (``trade``, ``cancel`` or ``correction`` on the trades topic,
  ``quote``, ``bar``)
- ``missing_field`` / ``invalid_value``: ``schema_version`` other than 1; ``symbol`` missing, over 16 characters, or
  with ``|`` (two trades would share an id); ``source`` over 32 characters; no ``timestamp_ns`` (nor RFC 3339
  ``timestamp``), not positive integer nanoseconds, or more than ``stream.max_future_s`` after Kafka received the
  record (it would drag the watermark ahead; measured from the record's Kafka time, not the clock, so every query
  and every replay give a record the same verdict); a price or size that is not a positive finite number (given as a
  JSON number or decimal text); ``trade_id`` missing, empty, over 1,024 bytes, or a JSON object or list;
  ``exchange`` (no ``|``) or ``tape`` over 16 characters; ``taker_side`` other than B or S; ``conditions`` not a
  list of at most 32 codes of at most 16 characters; for a cancel: the trade id, price and size as for a trade,
  ``action`` a code; for a correction: ``original_trade_id`` and ``corrected_trade_id`` as a trade id, original and
  corrected price and size positive, both condition lists as ``conditions``; for a quote: bid and ask price and size
  finite numbers >= 0 (0: no order on that side), the book not crossed (ask >= bid when both are there); for a bar:
  the timeframe (1Min, 1Hour), open/high/low/close positive, volume >= 0, vwap positive, trade_count an integer
  >= 0, and low <= open, close <= high
- a string field given as a JSON object or list is ``invalid_value`` naming it; unknown fields are ignored

So no valid document carries a keyword over Lucene's 32 KB term limit, and every document is far below the bulk
size limit. Dead letters are always writable: the raw payload is kept up to ``RAW_MAX_BYTES`` (with its full
length, its SHA-256 and ``raw_truncated``; the Kafka coordinates find the rest), a detail quotes at most
``QUOTE_MAX`` characters of a bad value, and an ingest-stage dead letter's own fields are cut to size, never
refused.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from ray_app.config import Settings
from ray_app.documents import fields_of
from ray_app.schemas import (
    CODE_MAX_LENGTH,
    ES_ID_MAX_BYTES,
    ID_SEPARATOR,
    MAX_CONDITIONS,
    SOURCE_MAX_LENGTH,
    SYMBOL_MAX_LENGTH,
    TRADE_ID_MAX_BYTES,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RULES_CLASS = "io.github.raytrading.stream.RecordUdfs"
NANOS = 1_000_000_000
RAW_MAX_BYTES = 32 * 1024  # raw payload kept in a dead letter
QUOTE_MAX = 80  # characters of a bad value quoted in a detail
TEXT_MAX = 256  # an upstream dead letter's short fields (stage, reason, source, topic)
DETAIL_MAX = 2000


def limits() -> dict[str, int | str]:
    """The limits every record and dead letter is held to, for the JVM code."""
    return {
        "symbol_max_length": SYMBOL_MAX_LENGTH,
        "trade_id_max_bytes": TRADE_ID_MAX_BYTES,
        "code_max_length": CODE_MAX_LENGTH,
        "max_conditions": MAX_CONDITIONS,
        "source_max_length": SOURCE_MAX_LENGTH,
        "es_id_max_bytes": ES_ID_MAX_BYTES,
        "raw_max_bytes": RAW_MAX_BYTES,
        "quote_max": QUOTE_MAX,
        "text_max": TEXT_MAX,
        "detail_max": DETAIL_MAX,
        "id_separator": ID_SEPARATOR,
    }


def rules_config(settings: Settings) -> str:
    """The record rules' configuration (JSON): topics and indices from the settings, and the limits."""
    topics = settings.kafka.topics
    indices = settings.elasticsearch.indices
    return json.dumps(
        {
            "topics": {
                "trades": topics.trades.name,
                "bars": topics.bars.name,
                "dead_letters": topics.dead_letters.name,
                "quotes": topics.quotes.name,
            },
            "indices": {
                "trades": indices.trades,
                "bars_1m": indices.bars_1m,
                "bars_1h": indices.bars_1h,
                "dead_letters": indices.dead_letters,
                "quotes": indices.quotes,
                "vendor_bars_1m": indices.vendor_bars_1m,
                "vendor_bars_1h": indices.vendor_bars_1h,
                "trade_aliases": indices.trade_aliases,
            },
            "max_future_s": settings.stream.max_future_s,
            "limits": limits(),
        }
    )


def register_rules(spark: SparkSession, settings: Settings) -> None:
    """Make ``ray_app_record_document`` callable in this session's Spark SQL."""
    owner: Any = spark.sparkContext._jvm  # Py4J's view of the JVM: attributes all the way down
    for part in RULES_CLASS.split("."):
        owner = getattr(owner, part)
    owner.register(spark._jsparkSession, rules_config(settings))


def _kafka_ms() -> Column:
    return F.unix_millis(F.col("kafka_ts"))


def record_documents(kafka: DataFrame) -> DataFrame:
    """The four topics' Kafka rows -> (index, doc_id, source JSON, op, version, bar_key, produced_ms, topic,
    partition, offset, alias_id, alias_source): the bulk action every record yields (valid trades, cancels,
    corrections, quotes and bars; dead letters for the rest, the ingest stage's dead letters copied), the 1-minute
    bar it touches, the Kafka record (a refused cancel's dead letter is named by it) and a correction's alias."""
    document = F.expr("ray_app_record_document(topic, partition, offset, unix_millis(kafka_ts), value)")
    return kafka.select(document.alias("doc"), _kafka_ms().alias("produced_ms"), "topic", "partition", "offset").select(
        "doc.index",
        "doc.doc_id",
        "doc.source",
        "doc.op",
        "doc.version",
        "doc.bar_key",
        "produced_ms",
        "topic",
        "partition",
        "offset",
        "doc.alias_id",
        "doc.alias_source",
    )


_SPARK_TYPES = {
    "string": StringType(),
    "double": DoubleType(),
    "bigint": LongType(),
    "int": IntegerType(),
    "boolean": BooleanType(),
    "map<string,string>": MapType(StringType(), StringType()),
}


def _spark_type(name: str) -> DataType:
    if name.startswith("array<"):
        return ArrayType(_spark_type(name[len("array<") : -1]))
    return _SPARK_TYPES[name]


def spark_schema(model: type[BaseModel]) -> StructType:
    """A document model as a Spark schema, field for field in the model's order (``ray_app.documents`` types)."""
    return StructType(
        [StructField(name, _spark_type(kind.spark), kind.nullable) for name, kind in fields_of(model).items()]
    )
