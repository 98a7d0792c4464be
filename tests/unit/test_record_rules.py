"""The record rules (spark_jobs/jvm Records.java) on every kind of poison record, in a plain JVM (no engine):
each bad record becomes a bounded dead letter with the right reason, each valid one its exact bulk action (a trade
created, a cancel or correction an update of its trade, a quote versioned by its time); and the rules agree with
the ingest models (``ray_app.schemas``) on every limit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from ray_app.config import Settings, load_settings
from ray_app.schemas import (
    CODE_MAX_LENGTH,
    MAX_CONDITIONS,
    SYMBOL_MAX_LENGTH,
    TRADE_ID_MAX_BYTES,
    Quote,
    Source,
    Trade,
    TradeCancel,
    TradeCorrection,
)
from ray_app.schemas import trade_doc_id as platform_trade_doc_id
from ray_app.testing.alpaca_rules import new_york_date
from spark_jobs.record_rules import DETAIL_MAX, ES_ID_MAX_BYTES, RAW_MAX_BYTES, rules_config
from tests.support.expected import trade_doc_id
from tests.support.jvm import action, document, stream_jvm
from tests.support.poison import cases

NOW = time.time_ns()
CORPUS = cases(NOW, "rules")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The default settings with a scratch state dir (the jar is built into the usual cache)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_APP_STATE_DIR", str(tmp_path_factory.mktemp("rules-state")))
        return load_settings()


@pytest.fixture(scope="module")
def jvm(settings: Settings) -> Iterator[Any]:
    with stream_jvm(settings) as package:
        yield package


@pytest.fixture(scope="module")
def rules(settings: Settings) -> str:
    return rules_config(settings)


def topic_of(settings: Settings, key: str) -> str:
    return getattr(settings.kafka.topics, key).name


@pytest.mark.parametrize("case", CORPUS, ids=[case.what for case in CORPUS])
def test_every_record_becomes_its_document_or_a_bounded_dead_letter(case, jvm, rules, settings) -> None:
    indices = settings.elasticsearch.indices
    kafka_ms = case.kafka_ms if case.kafka_ms is not None else NOW // 1_000_000  # it reached Kafka just now
    made = action(jvm, rules, topic_of(settings, case.topic), case.value, offset=17, kafka_ms=kafka_ms)
    index, doc_id, doc = made["index"], made["doc_id"], made["source"]
    assert len(doc_id.encode()) <= ES_ID_MAX_BYTES
    if case.refused_by_elasticsearch:  # valid: an update of a trade, which Elasticsearch answers 404
        assert (index, made["op"]) == (indices.trades, "update"), doc
        assert doc["_source"] == ["symbol", "timestamp_ns"] and (doc.get("doc") or doc.get("correction"))
        return
    if case.quote is not None:
        assert (index, made["op"], made["version"]) == (indices.quotes, "index", case.quote["timestamp_ns"]), doc
        two_sided = case.quote["bid_price"] > 0 and case.quote["ask_price"] > 0
        assert (doc.get("spread") is not None) == two_sided
        assert doc_id == f"{case.quote['symbol']}|{doc['timestamp']}"
        return
    if case.reason is None:
        assert made["op"] == "create"  # a copy or a replay finds it there and changes nothing
        trade = case.trade
        assert index == indices.trades, doc
        assert doc_id == trade_doc_id(trade)  # symbol|exchange|New York date|id for a stock (the tests' own rule)
        assert doc.get("trading_day") == (None if "/" in trade.symbol else new_york_date(trade.timestamp_ns))
        assert doc["trade_id"] == trade.trade_id  # the natural id is kept whatever the document id
        assert (doc["price"], doc["size"], doc["timestamp_ns"], doc["timestamp"]) == (
            trade.price,
            trade.size,
            trade.timestamp_ns,
            trade.timestamp,
        )
        assert doc.get("conditions") == trade.conditions and doc["kafka_offset"] == 17
        if case.kafka_ms in (None, 0):
            assert doc["ingested_at"].endswith("Z")
        else:  # beyond what date_nanos holds: left out rather than refused by Elasticsearch
            assert "ingested_at" not in doc
        return
    assert index == indices.dead_letters, (case.what, doc)
    assert doc_id == f"{topic_of(settings, case.topic)}|0|17"
    assert doc["reason"] == case.reason, (case.what, doc["reason"], doc["detail"])
    assert doc["detail"] and len(doc["detail"]) <= DETAIL_MAX
    raw = case.value or b""
    assert doc["raw_bytes"] == (raw_len(case) if case.topic == "dead_letters" else len(raw))
    assert len(doc["raw"]) <= RAW_MAX_BYTES and doc["raw_truncated"] == (doc["raw_bytes"] > RAW_MAX_BYTES)
    assert len(json.dumps(doc)) < 300_000  # a dead letter is always far below any request limit
    for keyword in ("stage", "reason", "source", "intended_topic", "intended_index", "topic"):
        assert len(str(doc.get(keyword) or "")) <= 256


def raw_len(case) -> int:
    """An upstream dead letter's raw payload is the ingest stage's ``raw`` (or the whole value when it has none)."""
    try:
        letter = json.loads(case.value)
        raw = letter["raw"]
    except (TypeError, ValueError, KeyError):
        return len(case.value or b"")
    if letter.get("raw_encoding") == "base64":
        import base64

        return len(base64.b64decode(raw))
    return len(raw.encode())


def test_the_future_time_verdict_is_the_records_own_in_every_query_and_on_every_replay(jvm, rules, settings) -> None:
    """Measured from the record's Kafka time, not from when the query reads it: a trade stamped 400 s after it
    reached Kafka (max_future_s is 300) stays a dead letter when replayed a year later, and one stamped 200 s after
    stays a trade."""
    max_future_s = settings.stream.max_future_s
    arrived_ms = 1_735_689_600_000  # 2025-01-01, long before this test runs
    trades = topic_of(settings, "trades")
    for ahead_s, expected in (
        (max_future_s + 100, settings.elasticsearch.indices.dead_letters),
        (max_future_s - 100, settings.elasticsearch.indices.trades),
    ):
        value = Trade(
            symbol="AAPL",
            timestamp_ns=(arrived_ms + ahead_s * 1000) * 1_000_000,
            price=1.0,
            size=1.0,
            trade_id="7",
            exchange="V",
            source=Source.REPLAY,
        ).to_json()
        verdicts = {document(jvm, rules, trades, value, kafka_ms=arrived_ms)[0] for _ in range(3)}
        assert verdicts == {expected}, (ahead_s, verdicts)
        if expected == settings.elasticsearch.indices.dead_letters:
            detail = document(jvm, rules, trades, value, kafka_ms=arrived_ms)[2]["detail"]
            assert f"more than {max_future_s} s after Kafka received the record" in detail


def test_a_long_trade_id_gets_the_same_bounded_id_every_time(jvm, rules, settings) -> None:
    long_id = "z" * 700
    value = Trade(
        symbol="AAPL",
        timestamp_ns=NOW - 10**12,
        price=1.0,
        size=1.0,
        trade_id=long_id,
        exchange="V",
        source=Source.REPLAY,
    ).to_json()
    first = document(jvm, rules, topic_of(settings, "trades"), value, offset=1)
    again = document(jvm, rules, topic_of(settings, "trades"), value, offset=99)  # a replay, or a duplicate
    assert first[1] == again[1] and len(first[1].encode()) <= ES_ID_MAX_BYTES
    assert first[2]["trade_id"] == long_id


def test_a_binary_dead_letter_keeps_its_bytes_in_base64_with_length_and_hash(jvm, rules, settings) -> None:
    import base64
    import hashlib

    value = bytes(range(256)) * 200  # 51,200 bytes, not UTF-8
    _, _, doc = document(jvm, rules, topic_of(settings, "trades"), value)
    assert doc["raw_encoding"] == "base64" and doc["raw_truncated"] is True
    assert base64.b64decode(doc["raw"]) == value[:RAW_MAX_BYTES]
    assert doc["raw_bytes"] == len(value) and doc["raw_sha256"] == hashlib.sha256(value).hexdigest()


def _model_accepts(**fields: Any) -> bool:
    base = {
        "symbol": "AAPL",
        "timestamp_ns": NOW - 10**12,
        "price": 1.0,
        "size": 1.0,
        "trade_id": "t",
        "source": Source.REPLAY,
    }
    try:
        Trade(**(base | fields))
        return True
    except ValidationError:
        return False


LIMITS = [
    ("symbol at its limit", {"symbol": "S" * SYMBOL_MAX_LENGTH}),
    ("symbol over it", {"symbol": "S" * (SYMBOL_MAX_LENGTH + 1)}),
    ("trade id at its limit", {"trade_id": "é" * (TRADE_ID_MAX_BYTES // 2)}),
    ("trade id over it", {"trade_id": "é" * (TRADE_ID_MAX_BYTES // 2) + "x"}),
    ("exchange at its limit", {"exchange": "E" * CODE_MAX_LENGTH}),
    ("exchange over it", {"exchange": "E" * (CODE_MAX_LENGTH + 1)}),
    ("exchange with the separator", {"exchange": "A|B"}),
    ("symbol with the separator", {"symbol": "A|B"}),
    ("conditions at their limit", {"conditions": ["c" * CODE_MAX_LENGTH] * MAX_CONDITIONS}),
    ("too many conditions", {"conditions": ["c"] * (MAX_CONDITIONS + 1)}),
    ("a condition over its limit", {"conditions": ["c" * (CODE_MAX_LENGTH + 1)]}),
    ("tape over its limit", {"tape": "T" * (CODE_MAX_LENGTH + 1)}),
    ("taker side S", {"taker_side": "S"}),
]


@pytest.mark.parametrize(("what", "fields"), LIMITS, ids=[what for what, _ in LIMITS])
def test_the_stream_and_the_ingest_models_agree_on_every_limit(what, fields, jvm, rules, settings) -> None:
    """What the ingest writes is never refused downstream, and what the ingest refuses the stream refuses too."""
    payload = {
        "schema_version": 1,
        "kind": "trade",
        "symbol": "AAPL",
        "timestamp_ns": NOW - 10**12,
        "price": 1.0,
        "size": 1.0,
        "trade_id": "t",
        "source": "replay",
    } | fields
    index, _, doc = document(jvm, rules, topic_of(settings, "trades"), json.dumps(payload).encode())
    assert (index == settings.elasticsearch.indices.trades) == _model_accepts(**fields), (what, doc)


def test_what_the_ingest_writes_comes_out_field_for_field(jvm, rules, settings) -> None:
    trade = Trade(
        symbol="BTC/USD",
        timestamp_ns=NOW - 10**12,
        price=91234.56,
        size=0.0123,
        trade_id="9" * 30,
        conditions=["@", "T"],
        tape="C",
        taker_side="B",
        exchange="CBSE",
        source=Source.ALPACA_STREAM,
    )
    _, doc_id, doc = document(jvm, rules, topic_of(settings, "trades"), trade.to_json(), offset=5, partition=3)
    assert doc_id == f"BTC/USD|CBSE|{'9' * 30}"  # crypto: no trading day in the id
    expected = json.loads(trade.to_json())
    for field in (
        "symbol",
        "price",
        "size",
        "trade_id",
        "exchange",
        "conditions",
        "tape",
        "taker_side",
        "source",
        "timestamp",
        "timestamp_ns",
        "schema_version",
    ):
        assert doc[field] == expected[field], field
    assert (doc["kafka_partition"], doc["kafka_offset"]) == (3, 5)


def test_a_cancel_and_a_correction_update_their_trade_found_by_its_id_on_their_day(jvm, rules, settings) -> None:
    trade = Trade(
        symbol="AAPL",
        timestamp_ns=NOW - 10**12,
        price=100.0,
        size=50.0,
        trade_id="881",
        exchange="V",
        conditions=["@"],
        source=Source.ALPACA_STREAM,
    )
    created = action(jvm, rules, topic_of(settings, "trades"), trade.to_json())
    minute = (trade.timestamp_ns // 10**9) // 60 * 60
    assert created["bar_key"] == f"AAPL|{minute}" and created["source"]["notional"] == 5000.0
    assert created["doc_id"] == f"AAPL|V|{new_york_date(trade.timestamp_ns)}|881"
    cancel = TradeCancel(
        symbol="AAPL",
        timestamp_ns=trade.timestamp_ns + 10**9,
        trade_id="881",
        exchange="V",
        price=100.0,
        size=50.0,
        action="E",
        source=Source.ALPACA_STREAM,
    )
    cancelled = action(jvm, rules, topic_of(settings, "trades"), cancel.to_json(), offset=41, partition=2)
    assert (cancelled["index"], cancelled["doc_id"], cancelled["op"]) == (created["index"], created["doc_id"], "update")
    assert cancelled["source"]["doc"] == {"cancelled": True, "cancelled_at": cancel.timestamp, "cancel_action": "E"}
    assert cancelled["bar_key"] is None  # Elasticsearch's answer names the trade's minute
    assert cancelled["alias_id"] is None
    correction = TradeCorrection(
        symbol="AAPL",
        timestamp_ns=trade.timestamp_ns + 2 * 10**9,
        exchange="V",
        original_trade_id="881",
        original_price=100.0,
        original_size=50.0,
        original_conditions=["@"],
        corrected_trade_id="990",
        corrected_price=100.25,
        corrected_size=40.0,
        corrected_conditions=["@", "I"],
        source=Source.ALPACA_STREAM,
    )
    corrected = action(jvm, rules, topic_of(settings, "trades"), correction.to_json())
    assert (corrected["doc_id"], corrected["op"]) == (created["doc_id"], "update")
    # the sink makes the update from this and the trade as it finds it (the first values kept in original_*)
    assert corrected["source"]["correction"] == {
        "price": 100.25,
        "size": 40.0,
        "notional": 100.25 * 40.0,
        "conditions": ["@", "I"],
        "corrected_at": correction.timestamp,
        "corrected_trade_id": "990",
    }
    day = new_york_date(correction.timestamp_ns)
    assert corrected["alias_id"] == f"AAPL|V|{day}|990"
    assert corrected["alias_source"] == {
        "symbol": "AAPL",
        "exchange": "V",
        "trading_day": day,
        "trade_id": "990",
        "created_at": correction.timestamp,
    }
    # the same id the next day is another trade: the day is part of its identity
    tomorrow = trade.model_copy(update={"timestamp_ns": trade.timestamp_ns + 86_400 * 10**9})
    assert action(jvm, rules, topic_of(settings, "trades"), tomorrow.to_json())["doc_id"] != created["doc_id"]


@pytest.mark.parametrize("trade_id", ["881", "z" * 700, "é" * 300])
@pytest.mark.parametrize("symbol", ["AAPL", "BTC/USD"])
def test_the_stream_and_the_platform_make_the_same_trade_ids(trade_id, symbol, jvm, rules, settings) -> None:
    """Records.java makes the ids; ray_app.schemas.trade_doc_id (the upgrade's) must agree with it."""
    trade = Trade(
        symbol=symbol,
        timestamp_ns=NOW - 10**12,
        price=1.0,
        size=1.0,
        trade_id=trade_id,
        exchange=None if "/" in symbol else "D",
        source=Source.REPLAY,
    )
    made = action(jvm, rules, topic_of(settings, "trades"), trade.to_json())
    day = None if "/" in symbol else new_york_date(trade.timestamp_ns)
    assert made["doc_id"] == platform_trade_doc_id(symbol, trade.exchange, day, trade_id) == trade_doc_id(trade)


def test_quotes_of_one_second_share_a_document_the_latest_by_version(jvm, rules, settings) -> None:
    second = (NOW - 10**12) // 10**9 * 10**9
    made = [
        action(
            jvm,
            rules,
            topic_of(settings, "quotes"),
            Quote(
                symbol="BTC/USD",
                timestamp_ns=second + offset,
                bid_price=90_000.0,
                bid_size=0.5,
                ask_price=90_001.5,
                ask_size=0.25,
                source=Source.SIMULATOR,
            ).to_json(),
        )
        for offset in (900_000_000, 100)
    ]
    assert made[0]["doc_id"] == made[1]["doc_id"] and made[0]["version"] > made[1]["version"]
    assert made[0]["source"]["spread"] == 1.5 and made[0]["source"]["mid"] == 90_000.75
    assert made[0]["bar_key"] == f"BTC/USD|{second // 10**9 // 60 * 60}"
