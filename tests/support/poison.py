# mypy: disable-error-code="assignment"
# (the corpus reuses one loop variable for values of every type: that is its point)
"""Every kind of record the streaming job must survive, for the rules' unit tests and the engine test.

Built by class, not by example: for every field of a trade, a trade cancel, a correction, a quote and a bar, each
wrong type (bool, number where text belongs, object, list, null), oversize text (over the field's limit and over
Lucene's 32 KB term limit), and out-of-range numbers; whole values that are not a record at all (binary, empty, a
tombstone, JSON that is not an object, nesting too deep, a key twice, trailing bytes, a message near Kafka's 1 MB
limit); and the same on the quotes, bars and dead-letters topics. A cancel or a correction of a trade never seen
is a valid record that Elasticsearch refuses (``unknown_trade``: the record rules make it an update, the sink a
dead letter). Some unusual records are valid and must be indexed: a long natural trade id
(hashed into a bounded document id), ids at the byte limit, numbers given as text, unknown fields, Kafka
timestamps a producer set to 0 or to the year 2500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ray_app.schemas import (
    CODE_MAX_LENGTH,
    MAX_CONDITIONS,
    SOURCE_MAX_LENGTH,
    SYMBOL_MAX_LENGTH,
    TRADE_ID_MAX_BYTES,
    Source,
    Trade,
)

BIG = 40_000  # characters: over Lucene's 32,766-byte term limit
NEAR_KAFKA_LIMIT = 990_000  # bytes: under the producer's and the broker's 1 MB message limit


@dataclass(frozen=True)
class Case:
    topic: str  # "trades", "quotes", "bars" or "dead_letters" (the settings key)
    value: bytes | None
    reason: str | None  # the dead letter's reason, or None: a valid record
    what: str
    trade: Trade | None = None  # a valid trade as the stream must index it
    kafka_ms: int | None = None  # a Kafka timestamp set by the producer
    quote: dict[str, Any] | None = None  # a valid quote's fields, as the stream must keep it

    @property
    def refused_by_elasticsearch(self) -> bool:
        """A valid record whose action Elasticsearch refuses (a cancel or correction of a trade never seen)."""
        return self.reason == "unknown_trade"


def _json(fields: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in fields.items() if v is not _DROP}).encode()


_DROP = object()


def cases(now_ns: int, tag: str, symbol: str = "AAPL") -> list[Case]:
    """The corpus; trade ids start with ``tag``, times are an hour before ``now_ns``."""
    ts = now_ns - 3600 * 10**9
    out: list[Case] = []
    serial = iter(range(1_000_000))

    def trade(**changes: Any) -> dict[str, Any]:
        n = next(serial)
        fields: dict[str, Any] = {
            "schema_version": 1,
            "kind": "trade",
            "symbol": symbol,
            "timestamp_ns": ts + n,
            "source": "simulator",
            "price": 100.0 + n % 7,
            "size": 1.0 + n % 3,
            "trade_id": f"{tag}-{n}",
            "exchange": "V",
            "conditions": ["@"],
            "tape": None,
            "taker_side": None,
        }
        fields.update(changes)
        return fields

    def bad(topic: str, value: bytes | None, reason: str, what: str, kafka_ms: int | None = None) -> None:
        out.append(Case(topic, value, reason, what, kafka_ms=kafka_ms))

    def good(fields: dict[str, Any], what: str, kafka_ms: int | None = None) -> None:
        model = Trade(
            **{
                k: v
                for k, v in fields.items()
                if k not in {"kind", "schema_version"} and v is not _DROP and k != "junk"
            }
            | {
                "source": Source(fields.get("source", "simulator")),
                "price": float(fields["price"]),
                "size": float(fields["size"]),
                "trade_id": str(fields["trade_id"]),
            }
        )
        out.append(Case("trades", _json(fields), None, what, model, kafka_ms))

    # --- not a record at all, on every topic
    for topic in ("trades", "quotes", "bars"):
        for value, what in [
            (b"\xff\xfe\x00binary", "binary"),
            (b"", "empty"),
            (None, "a tombstone"),
            (b"not json", "text"),
            (b"[1, 2, 3]", "a JSON list"),
            (b"42", "a JSON number"),
            (b'"trade"', "a JSON string"),
            (b"null", "JSON null"),
            (b"[" * 500 + b"]" * 500, "nesting 500 deep"),
            (_json(trade()) + b" trailing", "trailing bytes"),
            (b'{"symbol": "AAPL", "symbol": "MSFT"}', "a key twice"),
            (b'{"a": "' + b"\xf0\x28\x8c\x28" * 10 + b'"}', "invalid UTF-8 inside a string"),
            (b"[" + b"1," * (NEAR_KAFKA_LIMIT // 2 - 1) + b"1]", "a 990 KB JSON list"),
        ]:
            bad(topic, value, "unparseable", f"{topic}: {what}")

    # --- trades: every field, every wrong type
    structured = [({"a": 1}, "an object"), (["x"], "a list")]
    for field, limit in [
        ("symbol", SYMBOL_MAX_LENGTH),
        ("exchange", CODE_MAX_LENGTH),
        ("tape", CODE_MAX_LENGTH),
        ("source", SOURCE_MAX_LENGTH),
        ("trade_id", TRADE_ID_MAX_BYTES),
    ]:
        for value, what in structured:
            bad("trades", _json(trade(**{field: value})), "invalid_value", f"trade {field}: {what}")
        bad("trades", _json(trade(**{field: "x" * (limit + 1)})), "invalid_value", f"trade {field}: over its limit")
        bad("trades", _json(trade(**{field: "y" * BIG})), "invalid_value", f"trade {field}: 40,000 characters")
    for field in ("symbol", "trade_id"):
        bad("trades", _json(trade(**{field: _DROP})), "missing_field", f"trade without {field}")
        bad("trades", _json(trade(**{field: None})), "missing_field", f"trade {field}: null")
    bad("trades", _json(trade(symbol="")), "invalid_value", "trade symbol: empty")
    bad("trades", _json(trade(trade_id="")), "invalid_value", "trade trade_id: empty")
    for field in ("symbol", "exchange"):
        bad("trades", _json(trade(**{field: "A|B"})), "invalid_value", f"trade {field}: with the id separator")
    for field in ("price", "size"):
        wrong = [
            (_DROP, "missing"),
            (None, "null"),
            ("abc", "text"),
            (True, "a bool"),
            ({"v": 1}, "an object"),
            ([1], "a list"),
            (0, "zero"),
            (-5, "negative"),
            ("NaN", "NaN"),
            ("Infinity", "infinity"),
            ("1e400", "overflowing"),
            ("1" * BIG, "40,000 digits"),
        ]
        for value, what in wrong:
            reason = "missing_field" if what in {"missing", "null"} else "invalid_value"
            bad("trades", _json(trade(**{field: value})), reason, f"trade {field}: {what}")
    for value, what in [
        (_DROP, "missing"),
        ("abc", "text"),
        (1.5e18, "a float"),
        (-1, "negative"),
        (0, "zero"),
        ("99999999999999999999", "over 64 bits"),
        (True, "a bool"),
        ([1], "a list"),
        (now_ns + 86_400 * 10**9, "a day in the future"),
    ]:
        reason = "missing_field" if what == "missing" else "invalid_value"
        bad(
            "trades",
            _json(trade(timestamp_ns=value, **({"timestamp": _DROP} if what == "missing" else {}))),
            reason,
            f"trade timestamp_ns: {what}",
        )
    for value, what in [
        ("@", "a string"),
        ({"c": 1}, "an object"),
        ([{"c": 1}], "a list holding an object"),
        (["x" * (CODE_MAX_LENGTH + 1)], "a code over its limit"),
        (["z" * BIG], "a 40,000-character code"),
        (["@"] * (MAX_CONDITIONS + 1), "too many codes"),
        ([None], "a null code"),
    ]:
        bad("trades", _json(trade(conditions=value)), "invalid_value", f"trade conditions: {what}")
    bad("trades", _json(trade(taker_side="X")), "invalid_value", "trade taker_side: not B or S")
    bad("trades", _json(trade(kind="quote")), "unknown_type", "a quote on the trades topic")
    bad("trades", _json(trade(schema_version=2)), "invalid_value", "trade schema_version 2")
    bad(
        "trades",
        _json(trade(junk="j" * NEAR_KAFKA_LIMIT, price="abc")),
        "invalid_value",
        "a 990 KB trade with a bad price",
    )

    # --- unusual but valid trades: indexed, counted in the bars
    good(trade(trade_id=f"{tag}-long-" + "x" * 600), "a 600-character trade id (a hashed document id)")
    head = f"{tag}-wide-"
    room = TRADE_ID_MAX_BYTES - len(head.encode())
    good(trade(trade_id=head + "-" * (room % 2) + "é" * (room // 2)), "a trade id of exactly 1,024 bytes (multi-byte)")
    good(
        trade(exchange="E" * CODE_MAX_LENGTH, conditions=["c" * CODE_MAX_LENGTH] * MAX_CONDITIONS),
        "codes at their limits",
    )
    good(trade(price="101.25", size="2"), "price and size as decimal text")
    good(trade(junk="j" * NEAR_KAFKA_LIMIT), "a 990 KB trade (an unknown field, ignored)")
    good(trade(), "a Kafka timestamp of 0", kafka_ms=0)
    good(trade(), "a Kafka timestamp in the year 2500", kafka_ms=16_725_225_600_000)
    good(trade(trade_id=7_000_000_000 + next(serial)), "a numeric trade id")

    # --- cancels and corrections on the trades topic
    def cancel(**changes: Any) -> dict[str, Any]:
        n = next(serial)
        fields: dict[str, Any] = {
            "schema_version": 1,
            "kind": "cancel",
            "symbol": symbol,
            "timestamp_ns": ts + n,
            "source": "simulator",
            "trade_id": f"{tag}-never-{n}",
            "exchange": "V",
            "price": 100.0,
            "size": 1.0,
            "action": "C",
            "tape": "C",
        }
        fields.update(changes)
        return fields

    def correction(**changes: Any) -> dict[str, Any]:
        n = next(serial)
        fields: dict[str, Any] = {
            "schema_version": 1,
            "kind": "correction",
            "symbol": symbol,
            "timestamp_ns": ts + n,
            "source": "simulator",
            "exchange": "V",
            "original_trade_id": f"{tag}-never-{n}",
            "original_price": 100.0,
            "original_size": 1.0,
            "original_conditions": ["@"],
            "corrected_trade_id": f"{tag}-fixed-{n}",
            "corrected_price": 100.5,
            "corrected_size": 1.0,
            "corrected_conditions": ["@"],
            "tape": "C",
        }
        fields.update(changes)
        return fields

    for field in ("trade_id", "exchange", "action"):
        for value, what in structured:
            bad("trades", _json(cancel(**{field: value})), "invalid_value", f"cancel {field}: {what}")
        bad("trades", _json(cancel(**{field: "y" * BIG})), "invalid_value", f"cancel {field}: 40,000 characters")
    for field in ("trade_id", "price", "size"):
        bad("trades", _json(cancel(**{field: _DROP})), "missing_field", f"cancel without {field}")
    for field in ("price", "size"):
        bad("trades", _json(cancel(**{field: "abc"})), "invalid_value", f"cancel {field}: text")
    bad("trades", _json(cancel(exchange="A|B")), "invalid_value", "cancel exchange: with the id separator")
    for field in ("original_trade_id", "corrected_trade_id"):
        bad("trades", _json(correction(**{field: _DROP})), "missing_field", f"correction without {field}")
        bad("trades", _json(correction(**{field: {"a": 1}})), "invalid_value", f"correction {field}: an object")
        bad("trades", _json(correction(**{field: "y" * BIG})), "invalid_value", f"correction {field}: 40,000 bytes")
    for field in ("original_price", "original_size", "corrected_price", "corrected_size"):
        for value, what in [(0, "zero"), (-1, "negative"), ("NaN", "NaN"), ([1], "a list")]:
            bad("trades", _json(correction(**{field: value})), "invalid_value", f"correction {field}: {what}")
    for field in ("original_conditions", "corrected_conditions"):
        bad("trades", _json(correction(**{field: "@"})), "invalid_value", f"correction {field}: a string")
        bad(
            "trades",
            _json(correction(**{field: ["@"] * (MAX_CONDITIONS + 1)})),
            "invalid_value",
            f"correction {field}: too many codes",
        )
    bad("trades", _json(cancel(timestamp_ns=now_ns + 86_400 * 10**9)), "invalid_value", "cancel: a day in the future")
    bad("trades", _json(cancel(kind={"k": 1})), "unknown_type", "cancel kind: an object")
    # valid records Elasticsearch refuses: there is no such trade
    bad("trades", _json(cancel()), "unknown_trade", "a cancel of a trade never seen")
    bad("trades", _json(correction()), "unknown_trade", "a correction of a trade never seen")

    # --- quotes topic
    def quote(**changes: Any) -> dict[str, Any]:
        n = next(serial)
        fields: dict[str, Any] = {
            "schema_version": 1,
            "kind": "quote",
            "symbol": symbol,
            "timestamp_ns": ts + n,
            "source": "simulator",
            "bid_price": 99.5,
            "bid_size": 300.0,
            "bid_exchange": "V",
            "ask_price": 99.6,
            "ask_size": 200.0,
            "ask_exchange": "Q",
            "conditions": ["R"],
            "tape": "C",
        }
        fields.update(changes)
        return fields

    def good_quote(fields: dict[str, Any], what: str) -> None:
        out.append(Case("quotes", _json(fields), None, what, quote=fields))

    for field in ("bid_price", "ask_price", "bid_size", "ask_size"):
        for value, what in [
            (_DROP, "missing"),
            ("abc", "text"),
            (-1, "negative"),
            ("NaN", "NaN"),
            ({"v": 1}, "an object"),
            ("1" * BIG, "40,000 digits"),
        ]:
            bad(
                "quotes",
                _json(quote(**{field: value})),
                "missing_field" if what == "missing" else "invalid_value",
                f"quote {field}: {what}",
            )
    for field in ("bid_exchange", "ask_exchange", "tape", "symbol"):
        bad("quotes", _json(quote(**{field: ["x"]})), "invalid_value", f"quote {field}: a list")
        bad("quotes", _json(quote(**{field: "q" * BIG})), "invalid_value", f"quote {field}: 40,000 characters")
    bad("quotes", _json(quote(conditions={"c": 1})), "invalid_value", "quote conditions: an object")
    bad("quotes", _json(quote(bid_price=100.0, ask_price=99.0)), "invalid_value", "a crossed book (ask below bid)")
    bad("quotes", _json(quote(kind="trade")), "unknown_type", "a trade on the quotes topic")
    bad("quotes", _json(quote(timestamp_ns=_DROP)), "missing_field", "quote without a time")
    good_quote(quote(), "a two-sided quote")
    good_quote(quote(bid_price=0.0, bid_size=0.0, bid_exchange=_DROP), "a one-sided quote (no bid: price 0)")
    good_quote(quote(ask_price=99.5), "a locked book (ask = bid)")

    # --- bars topic
    def bar(**changes: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "schema_version": 1,
            "kind": "bar",
            "symbol": "IBM",
            "timeframe": "1Hour",
            "timestamp_ns": ts,
            "source": "alpaca-rest",
            "open": 5,
            "high": 6,
            "low": 4,
            "close": 5.5,
            "volume": 10,
            "trade_count": 3,
            "vwap": 5.2,
        }
        fields.update(changes)
        return fields

    for field in ("open", "high", "low", "close", "volume", "vwap"):
        for value, what in [("abc", "text"), ({"v": 1}, "an object"), (-1, "negative"), ("NaN", "NaN")]:
            bad("bars", _json(bar(**{field: value})), "invalid_value", f"bar {field}: {what}")
    timeframes = [("1Day", "an unsupported timeframe"), ({"t": 1}, "an object"), ("x" * BIG, "40,000 characters")]
    for value, what in timeframes:
        bad("bars", _json(bar(timeframe=value)), "invalid_value", f"bar timeframe: {what}")
    for value, what in [(-1, "negative"), (1.5, "a float"), ("many", "text")]:
        bad("bars", _json(bar(trade_count=value)), "invalid_value", f"bar trade_count: {what}")
    bad("bars", _json(bar(low=5.5, open=5)), "invalid_value", "a bar with low > open")
    bad("bars", _json(bar(symbol="s" * BIG)), "invalid_value", "bar symbol: 40,000 characters")
    bad("bars", _json(bar(kind="trade")), "unknown_type", "a trade on the bars topic")

    # --- the ingest stage's dead letters: never refused, whatever they hold
    def letter(**changes: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "schema_version": 1,
            "stage": "ingest",
            "reason": "unknown_symbol",
            "detail": "symbol 'ZZZZ'",
            "raw": "{}",
            "source": "alpaca-stream",
            "received_at": "2026-11-28T06:00:00.000000001Z",
        }
        fields.update(changes)
        return fields

    bad("dead_letters", _json(letter(raw="r" * NEAR_KAFKA_LIMIT)), "unknown_symbol", "upstream: a 990 KB raw")
    bad(
        "dead_letters",
        _json(letter(source="s" * BIG, stage="t" * BIG, reason="invalid_value")),
        "invalid_value",
        "upstream: 40,000-character keywords",
    )  # the reason itself is cut to 256 characters, not refused
    bad(
        "dead_letters",
        _json(letter(received_at="not a time", reason="missing_field")),
        "missing_field",
        "upstream: a bad received_at",
    )
    bad(
        "dead_letters",
        _json(letter(detail={"nested": ["junk"]}, reason="unparseable")),
        "unparseable",
        "upstream: a detail that is an object",
    )
    bad("dead_letters", b"\x00\x01binary", "unparseable", "upstream: binary")
    bad("dead_letters", None, "unparseable", "upstream: a tombstone")
    bad(
        "dead_letters",
        _json(letter(raw="////", raw_encoding="base64", reason="unparseable")),
        "unparseable",
        "upstream: base64 raw",
    )
    return out
