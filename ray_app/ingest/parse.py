"""Alpaca's wire messages -> typed records, or a dead letter that says why not.

Handles the websocket messages (msgpack-decoded dicts: trades ``T:"t"``, trade cancels and errors ``T:"x"``, trade
corrections ``T:"c"``, quotes ``T:"q"``, bars ``T:"b"``/``"u"``/``"d"``, with msgpack timestamps) and the REST bars
(dicts with RFC 3339 ``t``). Control messages (success, subscription, error) are not records and parse to
``None``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

import msgpack
from pydantic import ValidationError

from ray_app.schemas import Bar, DeadLetter, Quote, Source, Trade, TradeCancel, TradeCorrection
from ray_app.times import parse_rfc3339_ns

STAGE = "ingest"
CONTROL_TYPES = {"success", "subscription", "error"}
BAR_TYPES = {"b", "u", "d"}
_TIMEFRAME_OF_STREAM_BAR = {"b": "1Min", "u": "1Min", "d": "1Day"}


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def to_ns(value: Any) -> int:
    """A msgpack Timestamp, an RFC 3339 string, or integer nanoseconds -> nanoseconds since the epoch."""
    if isinstance(value, msgpack.Timestamp):
        return value.to_unix_nano()
    if isinstance(value, str):
        return parse_rfc3339_ns(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not a timestamp")


def raw_json(message: Any) -> str:
    """The message as JSON for a dead letter (msgpack timestamps as RFC 3339 with nanoseconds); never raises."""

    def default(obj: Any) -> Any:
        if isinstance(obj, msgpack.Timestamp):
            from ray_app.times import format_ns

            try:
                return format_ns(obj.to_unix_nano())
            except (ValueError, OverflowError, OSError):
                return {"msgpack_timestamp": {"seconds": obj.seconds, "nanoseconds": obj.nanoseconds}}
        if isinstance(obj, bytes):
            return obj.decode("utf-8", "replace")
        return repr(obj)

    try:
        return json.dumps(message, default=default, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):  # keys that are not strings, cycles, nesting too deep
        return repr(message)


def _field(message: dict[str, Any], key: str, name: str) -> Any:
    if key not in message or message[key] is None:
        raise Rejected("missing_field", f"field '{key}' ({name}) is missing")
    return message[key]


Parsed = Trade | TradeCancel | TradeCorrection | Quote | Bar


def _validated(model: type[Parsed], fields: dict[str, Any]) -> Parsed:
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
        )
        raise Rejected("invalid_value", problems) from None


def _timestamp(message: dict[str, Any]) -> int:
    try:
        return to_ns(_field(message, "t", "timestamp"))
    except Rejected:
        raise
    except (ValueError, OverflowError) as exc:
        raise Rejected("invalid_value", f"field 't' (timestamp): {exc}") from None


def _check_symbol(symbol: Any, allowed: Collection[str] | None) -> str:
    if not isinstance(symbol, str) or not symbol:
        raise Rejected("invalid_value", f"field 'S' (symbol) must be a non-empty string, got {symbol!r}")
    if allowed is not None and symbol not in allowed:
        raise Rejected("unknown_symbol", f"symbol {symbol!r} is not one of the configured symbols")
    return symbol


def _conditions(message: dict[str, Any], key: str) -> list[str]:
    """Condition codes: a list of strings (a single code is a list of one)."""
    conditions = message.get(key) or []
    if not isinstance(conditions, list):
        conditions = [conditions]
    if not all(isinstance(c, str) for c in conditions):
        raise Rejected("invalid_value", f"field '{key}' (conditions) must hold condition codes, got {conditions!r}")
    return conditions


def stream_trade(message: dict[str, Any], source: Source, allowed: Collection[str] | None) -> Trade:
    symbol = _check_symbol(_field(message, "S", "symbol"), allowed)
    conditions = _conditions(message, "c")
    return _validated(
        Trade,
        {
            "symbol": symbol,
            "timestamp_ns": _timestamp(message),
            "price": _field(message, "p", "price"),
            "size": _field(message, "s", "size"),
            "trade_id": str(_field(message, "i", "trade id")),
            "exchange": message.get("x"),
            "conditions": conditions,
            "tape": message.get("z"),
            "taker_side": message.get("tks"),
            "source": source,
        },
    )  # type: ignore[return-value]


def trade_cancel(message: dict[str, Any], source: Source, allowed: Collection[str] | None) -> TradeCancel:
    """Alpaca's trade cancel or error (``T:"x"``): the trade's id ``i``, exchange ``x``, price ``p``, size ``s``,
    the action ``a`` (C: cancel, E: error), the tape ``z``."""
    return _validated(
        TradeCancel,
        {
            "symbol": _check_symbol(_field(message, "S", "symbol"), allowed),
            "timestamp_ns": _timestamp(message),
            "trade_id": str(_field(message, "i", "trade id")),
            "exchange": message.get("x"),
            "price": _field(message, "p", "price"),
            "size": _field(message, "s", "size"),
            "action": message.get("a"),
            "tape": message.get("z"),
            "source": source,
        },
    )  # type: ignore[return-value]


def trade_correction(message: dict[str, Any], source: Source, allowed: Collection[str] | None) -> TradeCorrection:
    """Alpaca's trade correction (``T:"c"``): original ``oi op os oc``, corrected ``ci cp cs cc``, exchange ``x``."""
    return _validated(
        TradeCorrection,
        {
            "symbol": _check_symbol(_field(message, "S", "symbol"), allowed),
            "timestamp_ns": _timestamp(message),
            "exchange": message.get("x"),
            "original_trade_id": str(_field(message, "oi", "original trade id")),
            "original_price": _field(message, "op", "original price"),
            "original_size": _field(message, "os", "original size"),
            "original_conditions": _conditions(message, "oc"),
            "corrected_trade_id": str(_field(message, "ci", "corrected trade id")),
            "corrected_price": _field(message, "cp", "corrected price"),
            "corrected_size": _field(message, "cs", "corrected size"),
            "corrected_conditions": _conditions(message, "cc"),
            "tape": message.get("z"),
            "source": source,
        },
    )  # type: ignore[return-value]


def quote(message: dict[str, Any], source: Source, allowed: Collection[str] | None) -> Quote:
    """Alpaca's quote (``T:"q"``): bid ``bp bs bx``, ask ``ap as ax``, conditions ``c``, tape ``z``."""
    return _validated(
        Quote,
        {
            "symbol": _check_symbol(_field(message, "S", "symbol"), allowed),
            "timestamp_ns": _timestamp(message),
            "bid_price": _field(message, "bp", "bid price"),
            "bid_size": _field(message, "bs", "bid size"),
            "bid_exchange": message.get("bx"),
            "ask_price": _field(message, "ap", "ask price"),
            "ask_size": _field(message, "as", "ask size"),
            "ask_exchange": message.get("ax"),
            "conditions": _conditions(message, "c"),
            "tape": message.get("z"),
            "source": source,
        },
    )  # type: ignore[return-value]


STREAM_RECORDS: dict[str, Callable[[dict[str, Any], Source, Collection[str] | None], Parsed]] = {
    "t": stream_trade,
    "x": trade_cancel,
    "c": trade_correction,
    "q": quote,
}


def bar(
    message: dict[str, Any],
    symbol: Any,
    timeframe: str,
    source: Source,
    allowed: Collection[str] | None,
    updated: bool = False,
) -> Bar:
    """A bar of Alpaca's: a live minute bar (``T:"b"``), its revision after a late print (``T:"u"``, ``updated``), or
    a REST bar."""
    return _validated(
        Bar,
        {
            "symbol": _check_symbol(symbol, allowed),
            "timeframe": timeframe,
            "timestamp_ns": _timestamp(message),
            "open": _field(message, "o", "open"),
            "high": _field(message, "h", "high"),
            "low": _field(message, "l", "low"),
            "close": _field(message, "c", "close"),
            "volume": _field(message, "v", "volume"),
            "trade_count": message.get("n"),
            "vwap": message.get("vw") or None,
            "source": source,
            "updated": updated,
        },
    )  # type: ignore[return-value]


def stream_message(message: Any, source: Source, allowed: Collection[str] | None) -> Parsed | DeadLetter | None:
    """One websocket message -> a record, a dead letter, or None for control messages."""
    if not isinstance(message, dict):
        return dead_letter(raw_json(message), "unparseable", "a message must be a map", source)
    kind = message.get("T")
    known = "is not a trade, a trade cancel or correction, a quote or a bar"
    try:
        if not isinstance(kind, str):
            raise Rejected("unknown_type", f"message type T={kind!r} {known}")
        if kind in STREAM_RECORDS:
            return STREAM_RECORDS[kind](message, source, allowed)
        if kind in BAR_TYPES:
            return bar(message, message.get("S"), _TIMEFRAME_OF_STREAM_BAR[kind], source, allowed, kind == "u")
        if kind in CONTROL_TYPES:
            return None
        raise Rejected("unknown_type", f"message type T={kind!r} {known}")
    except Rejected as exc:
        return dead_letter(raw_json(message), exc.reason, exc.detail, source)
    except Exception as exc:  # whatever else a message holds costs that message only, never its frame
        return dead_letter(raw_json(message), "unparseable", f"{type(exc).__name__}: {exc}", source)


def rest_bar(
    message: Any, symbol: str, timeframe: str, source: Source, allowed: Collection[str] | None
) -> Bar | DeadLetter:
    if not isinstance(message, dict):
        return dead_letter(raw_json(message), "unparseable", "a bar must be a map", source)
    try:
        return bar(message, symbol, timeframe, source, allowed)
    except Rejected as exc:
        return dead_letter(raw_json({"S": symbol, **message}), exc.reason, exc.detail, source)


def dead_letter(raw: bytes | str, reason: str, detail: str, source: Source | str) -> DeadLetter:
    return DeadLetter.of(raw, stage=STAGE, reason=reason, detail=detail, source=str(source))
