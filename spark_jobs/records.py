"""Kafka records -> Elasticsearch documents, in Spark SQL: parse with an explicit schema, validate, route.

Every field is read as a string first and cast afterwards, so a wrong type is reported as ``invalid_value``
naming the field instead of silently nulling the whole record. A record that fails is not dropped: it becomes a
``dead-letters`` document with the reason, the detail and the raw payload. Document ids are deterministic, so a
replayed micro-batch overwrites what it wrote before:

- trade: ``symbol|exchange|trade_id``
- bar (Alpaca's, from the ``bars`` topic; the same ids as the bars Spark makes from trades): ``symbol|bar start``
- dead letter: ``topic|partition|offset`` of the Kafka record
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from ray_app.config import Settings

STAGE = "stream"
CORRUPT = "_corrupt_record"
SYMBOL_MAX_LENGTH = 16
NANOS = 1_000_000_000

_COMMON = ["schema_version", "kind", "symbol", "timestamp_ns", "timestamp", "source"]
TRADE_FIELDS = [*_COMMON, "price", "size", "trade_id", "exchange", "conditions", "tape", "taker_side"]
BAR_FIELDS = [*_COMMON, "timeframe", "open", "high", "low", "close", "volume", "trade_count", "vwap"]
DEAD_LETTER_FIELDS = ["schema_version", "stage", "reason", "detail", "raw", "raw_encoding", "source",
                      "intended_topic", "received_at"]  # fmt: skip
BAR_INDEX_KEYS = {"1Min": "bars_1m", "1Hour": "bars_1h"}


def _string_schema(fields: list[str]) -> StructType:
    return StructType([*(StructField(name, StringType()) for name in fields), StructField(CORRUPT, StringType())])


def _parse(value: Column, fields: list[str]) -> Column:
    return F.from_json(value, _string_schema(fields), {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})


def _first_problem(checks: list[tuple[Column, str, Column]]) -> tuple[Column, Column]:
    """(reason, detail) of the first failing check, or nulls when every check passes."""
    reason: Column = F.lit(None).cast("string")
    detail: Column = F.lit(None).cast("string")
    for failed, why, text in reversed(checks):
        reason = F.when(failed, F.lit(why)).otherwise(reason)
        detail = F.when(failed, text).otherwise(detail)
    return reason, detail


def _missing(rec: Column, name: str) -> tuple[Column, str, Column]:
    return rec[name].isNull(), "missing_field", F.lit(f"field '{name}' is missing")


def _number_problems(rec: Column, name: str, positive: bool) -> list[tuple[Column, str, Column]]:
    value = rec[name].cast("double")
    rule = "a positive finite number" if positive else "a finite number >= 0"
    bad = value.isNull() | F.isnan(value) | (F.abs(value) == float("inf")) | (value <= 0 if positive else value < 0)
    return [(rec[name].isNotNull() & bad, "invalid_value",
             F.concat(F.lit(f"field '{name}' must be {rule} (got "), rec[name], F.lit(")")))]  # fmt: skip


def _event_time_ns(rec: Column) -> Column:
    """``timestamp_ns`` (integer nanoseconds), else the RFC 3339 ``timestamp`` (microsecond precision)."""
    from_text = F.unix_micros(F.to_timestamp(rec["timestamp"])) * 1000
    return F.coalesce(rec["timestamp_ns"].cast("decimal(20,0)").cast("long"), from_text)


def _time_problems(rec: Column, ts_ns: Column, max_future_s: int) -> list[tuple[Column, str, Column]]:
    limit_ns = F.unix_micros(F.current_timestamp()) * 1000 + F.lit(max_future_s * NANOS)
    return [
        (rec["timestamp_ns"].isNull() & rec["timestamp"].isNull(), "missing_field",
         F.lit("field 'timestamp_ns' (or 'timestamp') is missing")),
        (ts_ns.isNull() | (ts_ns <= 0), "invalid_value",
         F.concat(F.lit("field 'timestamp_ns' must be positive integer nanoseconds since the epoch (got "),
                  F.coalesce(rec["timestamp_ns"], rec["timestamp"]), F.lit(")"))),
        (ts_ns > limit_ns, "invalid_value",
         F.concat(F.lit(f"timestamp is more than {max_future_s} s in the future (got "),
                  F.coalesce(rec["timestamp_ns"], rec["timestamp"]), F.lit(")"))),
    ]  # fmt: skip


def _common_problems(rec: Column, kind: str) -> list[tuple[Column, str, Column]]:
    return [
        (rec.isNull() | rec[CORRUPT].isNotNull(), "unparseable", F.lit("not a JSON object")),
        (rec["kind"].isNotNull() & (rec["kind"] != kind), "unknown_type",
         F.concat(F.lit("kind '"), rec["kind"], F.lit(f"' on a {kind} topic"))),
        (rec["schema_version"].isNotNull() & (rec["schema_version"] != "1"), "invalid_value",
         F.concat(F.lit("unsupported schema_version "), rec["schema_version"])),
        _missing(rec, "symbol"),
        ((F.length(rec["symbol"]) == 0) | (F.length(rec["symbol"]) > SYMBOL_MAX_LENGTH), "invalid_value",
         F.concat(F.lit(f"field 'symbol' must be 1-{SYMBOL_MAX_LENGTH} characters (got '"), rec["symbol"],
                  F.lit("')"))),
    ]  # fmt: skip


def format_ns(ts_ns: Column) -> Column:
    """Nanoseconds since the epoch -> RFC 3339 with nine fractional digits, as the ingest stage writes it."""
    seconds = F.date_format(F.timestamp_seconds(F.floor(ts_ns / NANOS)), "yyyy-MM-dd'T'HH:mm:ss")
    return F.concat(seconds, F.lit("."), F.lpad(F.pmod(ts_ns, F.lit(NANOS)).cast("string"), 9, "0"), F.lit("Z"))


def format_seconds(ts: Column) -> Column:
    return F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss'Z'")


def _raw(value: Column) -> tuple[Column, Column]:
    """(raw text, encoding): UTF-8 when the bytes are valid UTF-8, else base64, so nothing is mangled."""
    text = F.decode(value, "UTF-8")  # invalid sequences become U+FFFD, so the round trip differs
    valid = F.encode(text, "UTF-8") == value
    return F.when(valid, text).otherwise(F.base64(value)), F.when(valid, "utf-8").otherwise("base64")


def parsed_trades(kafka: DataFrame, topic: str, max_future_s: int) -> DataFrame:
    """Kafka rows of the trades topic -> one row per record with ``problem``/``detail`` (null when valid) and
    the typed trade fields. Columns kept for lineage and ordering: topic, partition, offset, kafka_ts."""
    rec = F.col("rec")
    ts_ns = F.col("ts_ns")
    checks = [
        *_common_problems(rec, "trade"),
        *_time_problems(rec, ts_ns, max_future_s),
        _missing(rec, "price"), *_number_problems(rec, "price", positive=True),
        _missing(rec, "size"), *_number_problems(rec, "size", positive=True),
        _missing(rec, "trade_id"),
        ((F.length(rec["trade_id"]) == 0), "invalid_value", F.lit("field 'trade_id' is empty")),
        (rec["conditions"].isNotNull() & F.col("conditions_array").isNull(), "invalid_value",
         F.concat(F.lit("field 'conditions' must be a list of strings (got "), rec["conditions"], F.lit(")"))),
    ]  # fmt: skip
    reason, detail = _first_problem(checks)
    return (
        kafka.where(F.col("topic") == topic)
        .withColumn("rec", _parse(F.col("value").cast("string"), TRADE_FIELDS))
        .withColumn("ts_ns", _event_time_ns(rec))
        .withColumn("conditions_array", F.from_json(rec["conditions"], ArrayType(StringType())))
        .withColumn("problem", reason)
        .withColumn("detail", detail)
    )


def _trade_fields() -> list[Column]:
    """The typed fields of a valid parsed trade, as both the trades documents and the bars use them."""
    rec = F.col("rec")
    return [
        rec["symbol"].alias("symbol"),
        rec["price"].cast("double").alias("price"),
        rec["size"].cast("double").alias("size"),
        rec["trade_id"].alias("trade_id"),
        rec["exchange"].alias("exchange"),
        F.col("conditions_array").alias("conditions"),
        rec["tape"].alias("tape"),
        rec["taker_side"].alias("taker_side"),
        rec["source"].alias("source"),
    ]


def trade_columns(parsed: DataFrame) -> DataFrame:
    """Valid parsed trades -> the typed columns the bars need, with the Kafka position for ordering."""
    return parsed.where(F.col("problem").isNull()).select(
        *_trade_fields(), F.col("ts_ns"), F.col("topic"), F.col("partition"), F.col("offset"), F.col("kafka_ts")
    )


def trade_doc_id(symbol: Column, exchange: Column, trade_id: Column) -> Column:
    return F.concat_ws("|", symbol, F.coalesce(exchange, F.lit("")), trade_id)


DocumentColumns = tuple[Column, Column, Column]  # index, doc_id, source JSON


def trade_document_columns(index: str) -> DocumentColumns:
    """A valid parsed trade -> its ``trades`` document."""
    rec = F.col("rec")
    doc = F.struct(
        *_trade_fields(),
        format_ns(F.col("ts_ns")).alias("timestamp"),
        F.col("ts_ns").alias("timestamp_ns"),
        F.lit(1).alias("schema_version"),
        format_ns(F.unix_micros(F.col("kafka_ts")) * 1000).alias("ingested_at"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
    )
    return F.lit(index), trade_doc_id(rec["symbol"], rec["exchange"], rec["trade_id"]), F.to_json(doc)


def bar_doc_id(symbol: Column, start: Column) -> Column:
    return F.concat_ws("|", symbol, format_seconds(start))


def bar_document(start: Column, **fields: Column) -> Column:
    """The JSON of a bar document, the same for every bar source: symbol, timeframe, open, high, low, close,
    volume, trade_count, vwap and source come in ``fields``; range, notional and log return are derived."""
    o, h, l, c, v = (fields[name] for name in ("open", "high", "low", "close", "volume"))  # noqa: E741
    return F.to_json(
        F.struct(
            fields["symbol"].alias("symbol"),
            fields["timeframe"].alias("timeframe"),
            format_seconds(start).alias("timestamp"),
            o.alias("open"), h.alias("high"), l.alias("low"), c.alias("close"), v.alias("volume"),
            fields["trade_count"].cast("long").alias("trade_count"),
            fields["vwap"].alias("vwap"),
            (h - l).alias("range"),
            (c * v).alias("notional"),
            F.log(c / o).alias("log_return"),
            fields["source"].alias("source"),
            format_seconds(F.current_timestamp()).alias("updated_at"),
        )
    )  # fmt: skip


def parsed_bars(kafka: DataFrame, topic: str, max_future_s: int) -> DataFrame:
    """Kafka rows of the bars topic (Alpaca's bars from the backfill or the live bar stream), validated."""
    rec = F.col("rec")
    ts_ns = F.col("ts_ns")
    o, h, l, c = (rec[name].cast("double") for name in ("open", "high", "low", "close"))  # noqa: E741
    checks = [
        *_common_problems(rec, "bar"),
        *_time_problems(rec, ts_ns, max_future_s),
        _missing(rec, "timeframe"),
        (~rec["timeframe"].isin(*BAR_INDEX_KEYS), "invalid_value",
         F.concat(F.lit(f"field 'timeframe' must be one of {sorted(BAR_INDEX_KEYS)} (got "), rec["timeframe"],
                  F.lit(")"))),
        *(item for name in ("open", "high", "low", "close")
          for item in (_missing(rec, name), *_number_problems(rec, name, positive=True))),
        _missing(rec, "volume"), *_number_problems(rec, "volume", positive=False),
        *(item for name in ("vwap",) for item in _number_problems(rec, name, positive=True)),
        (rec["trade_count"].isNotNull() & (rec["trade_count"].cast("long").isNull() | (rec["trade_count"] < 0)),
         "invalid_value", F.concat(F.lit("field 'trade_count' must be an integer >= 0 (got "), rec["trade_count"],
                                   F.lit(")"))),
        (~((l <= F.least(o, c)) & (F.greatest(o, c) <= h)), "invalid_value",
         F.concat(F.lit("low <= open, close <= high does not hold (o="), rec["open"], F.lit(" h="), rec["high"],
                  F.lit(" l="), rec["low"], F.lit(" c="), rec["close"], F.lit(")"))),
    ]  # fmt: skip
    reason, detail = _first_problem(checks)
    return (
        kafka.where(F.col("topic") == topic)
        .withColumn("rec", _parse(F.col("value").cast("string"), BAR_FIELDS))
        .withColumn("ts_ns", _event_time_ns(rec))
        .withColumn("problem", reason)
        .withColumn("detail", detail)
    )


def bar_record_document_columns(indices: dict[str, str]) -> DocumentColumns:
    """A valid Alpaca bar -> its document in bars-1m or bars-1h by timeframe, with the ids Spark's own bars use."""
    rec = F.col("rec")
    start = F.timestamp_seconds(F.floor(F.col("ts_ns") / NANOS))
    index = F.lit(None).cast("string")
    for timeframe, key in BAR_INDEX_KEYS.items():
        index = F.when(rec["timeframe"] == timeframe, F.lit(indices[key])).otherwise(index)
    fields = {name: rec[name].cast("double") for name in ("open", "high", "low", "close", "volume", "vwap")}
    doc = bar_document(
        start,
        symbol=rec["symbol"],
        timeframe=rec["timeframe"],
        trade_count=rec["trade_count"].cast("long"),
        source=F.coalesce(rec["source"], F.lit("alpaca-rest")),
        **fields,
    )
    return index, bar_doc_id(rec["symbol"], start), doc


def dead_letter_columns(index: str, intended: str) -> DocumentColumns:
    """A record that failed validation -> its dead-letter document: the reason, the raw payload as it came."""
    raw, encoding = _raw(F.col("value"))
    doc = F.struct(
        F.lit(1).alias("schema_version"),
        F.lit(STAGE).alias("stage"),
        F.col("problem").alias("reason"),
        F.col("detail"),
        raw.alias("raw"),
        encoding.alias("raw_encoding"),
        F.col("topic"), F.col("partition"), F.col("offset"),
        F.lit(intended).alias("intended_index"),
        format_seconds(F.col("kafka_ts")).alias("timestamp"),
        format_seconds(F.current_timestamp()).alias("received_at"),
    )  # fmt: skip
    return F.lit(index), kafka_doc_id(), F.to_json(doc)


def kafka_doc_id() -> Column:
    return F.concat_ws("|", F.col("topic"), F.col("partition").cast("string"), F.col("offset").cast("string"))


def upstream_dead_letter_documents(kafka: DataFrame, topic: str, index: str) -> DataFrame:
    """The ingest stage's dead letters (Kafka ``dead-letters`` topic) copied into the same index, so one place
    holds every rejected record. One that is itself unreadable is kept raw, never dropped."""
    rec = F.from_json(F.col("value").cast("string"), _string_schema(DEAD_LETTER_FIELDS))
    raw, encoding = _raw(F.col("value"))
    readable = rec.isNotNull() & rec[CORRUPT].isNull() & rec["reason"].isNotNull()
    doc = F.struct(
        F.lit(1).alias("schema_version"),
        F.when(readable, rec["stage"]).otherwise(F.lit("ingest")).alias("stage"),
        F.when(readable, rec["reason"]).otherwise(F.lit("unparseable")).alias("reason"),
        F.when(readable, rec["detail"]).otherwise(F.lit("dead letter that is not a JSON object")).alias("detail"),
        F.when(readable, rec["raw"]).otherwise(raw).alias("raw"),
        F.when(readable, F.coalesce(rec["raw_encoding"], F.lit("utf-8"))).otherwise(encoding).alias("raw_encoding"),
        F.when(readable, rec["source"]).alias("source"),
        F.when(readable, rec["intended_topic"]).alias("intended_topic"),
        F.col("topic"), F.col("partition"), F.col("offset"),
        format_seconds(F.col("kafka_ts")).alias("timestamp"),
        F.coalesce(F.when(readable, rec["received_at"]), format_seconds(F.col("kafka_ts"))).alias("received_at"),
    )  # fmt: skip
    return kafka.where(F.col("topic") == topic).select(
        F.lit(index).alias("index"), kafka_doc_id().alias("doc_id"), F.to_json(doc).alias("source")
    )


def _routed(parsed: DataFrame, valid: DataFrame, dead: DataFrame) -> DataFrame:
    """Valid rows as ``valid`` documents, the rest as ``dead`` documents, from one pass over ``parsed`` (a union
    of two filters would parse every record twice)."""
    ok = F.col("problem").isNull()
    return parsed.select(
        *(F.when(ok, valid_column).otherwise(dead_column).alias(name)
          for name, valid_column, dead_column in zip(("index", "doc_id", "source"), valid, dead, strict=True))
    )  # fmt: skip


def record_documents(kafka: DataFrame, settings: Settings) -> DataFrame:
    """One micro-batch of the three topics -> (index, doc_id, source JSON) for every document it yields."""
    topics = settings.kafka.topics
    indices = settings.elasticsearch.indices
    future = settings.stream.max_future_s
    trades = _routed(
        parsed_trades(kafka, topics.trades.name, future),
        trade_document_columns(indices.trades),
        dead_letter_columns(indices.dead_letters, indices.trades),
    )
    bars = _routed(
        parsed_bars(kafka, topics.bars.name, future),
        bar_record_document_columns(indices.by_key()),
        dead_letter_columns(indices.dead_letters, "bars"),
    )
    return trades.unionByName(bars).unionByName(
        upstream_dead_letter_documents(kafka, topics.dead_letters.name, indices.dead_letters)
    )
