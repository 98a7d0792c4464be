"""The typed records that cross stage boundaries: trades, trade cancels and corrections, quotes and bars on Kafka,
and dead letters.

One JSON encoding on Kafka (``Record.to_json``), key = symbol, so per-symbol order holds: a cancel or a correction
travels on the trades topic, behind the trade it refers to. Field names mirror Alpaca's (trade: price ``p``, size
``s``, id ``i``, exchange ``x``, conditions ``c``, tape ``z``; cancel ``T:"x"``: the trade's ``i x p s`` and the
action ``a``; correction ``T:"c"``: original ``oi op os oc`` and corrected ``ci cp cs cc``; quote ``T:"q"``: ``bp bs
bx ap as ax c z``; bar ``T:"b"`` and updated bar ``T:"u"``: ``o h l c v n vw``) spelled out. Times are UTC:
``timestamp`` is RFC 3339 with all nine fractional digits (Alpaca sends nanoseconds; Python's datetime would cut
them to microseconds) and ``timestamp_ns`` is the same instant as an integer (``ray_app.times``).

A stock trade's id is unique per (symbol, trading day, exchange, id) only: venues number each day's trades from
the start (Alpaca's exchange D even offsets several reporting facilities into one id space). The trading day is
the New York date of the record's own time (``times.trading_day``); crypto ids are unique per symbol.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Annotated, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from ray_app.times import format_ns, now_ns

SCHEMA_VERSION: Literal[1] = 1

# What a record may hold, checked the same way by the ingest models below and by the streaming job
# (spark_jobs/record_rules.py), so nothing the ingest writes is refused downstream and nothing Elasticsearch would
# refuse (an id over 512 bytes, a keyword over Lucene's 32 KB term limit) reaches it as a valid record.
SYMBOL_MAX_LENGTH = 16
TRADE_ID_MAX_BYTES = 1024  # far above any venue's ids (Alpaca: 64-bit integers); ids over 512 bytes are hashed
CODE_MAX_LENGTH = 16  # exchange, tape and each condition code: one or two characters at Alpaca
MAX_CONDITIONS = 32
SOURCE_MAX_LENGTH = 32
ID_SEPARATOR = "|"  # document ids join symbol|exchange|trade_id, so symbol and exchange may not contain it


class Source(StrEnum):
    ALPACA_STREAM = "alpaca-stream"
    ALPACA_REST = "alpaca-rest"
    REPLAY = "replay"
    SIMULATOR = "simulator"


def is_crypto(symbol: str) -> bool:
    """Crypto pairs are written BASE/QUOTE (BTC/USD); stock tickers have no slash."""
    return "/" in symbol


ES_ID_MAX_BYTES = 512  # Elasticsearch refuses a whole bulk request for a longer _id


def trade_doc_id(symbol: str, exchange: str | None, trading_day: str | None, trade_id: str) -> str:
    """A trade's document id in ``trades``: ``symbol|exchange|trading day|trade id`` for a stock (ids are unique
    within a trading day only), ``symbol|exchange|trade id`` for crypto (no day); the trade id as
    ``sha256:<hex>`` when the whole would pass Elasticsearch's 512 bytes. The streaming job's record rules
    (Records.java) make the same ids; a test holds the two together."""
    head = f"{symbol}{ID_SEPARATOR}{exchange or ''}{ID_SEPARATOR}"
    if trading_day is not None:
        head += f"{trading_day}{ID_SEPARATOR}"
    if len((head + trade_id).encode()) <= ES_ID_MAX_BYTES:
        return head + trade_id
    return head + "sha256:" + hashlib.sha256(trade_id.encode()).hexdigest()


# the bar timeframes the stream stores (bars-1m, bars-1h); the settings accept no other for a backfill
StoredTimeframe = Literal["1Min", "1Hour"]
STORED_TIMEFRAMES: tuple[str, ...] = get_args(StoredTimeframe)

Code = Annotated[str, Field(max_length=CODE_MAX_LENGTH)]  # an exchange, tape or condition code
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFinite = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    symbol: Annotated[str, Field(min_length=1, max_length=SYMBOL_MAX_LENGTH, pattern=r"^[^|{\[]+$")]
    # Elasticsearch's date_nanos and Spark's long both end at 2**63 - 1 ns (2262-04-11)
    timestamp_ns: Annotated[int, Field(gt=0, lt=2**63)]
    source: Source

    @computed_field  # type: ignore[prop-decorator]
    @property
    def timestamp(self) -> str:
        return format_ns(self.timestamp_ns)

    def to_json(self) -> bytes:
        """The one encoding on Kafka: the model's fields plus ``timestamp`` (RFC 3339, nanoseconds).

        The bytes pydantic's ``model_dump_json`` gives (a test holds them equal on every record kind), made by
        orjson from the validated fields: a third of the cost, on the ingest's hottest line."""
        fields = self.__dict__.copy()
        fields["timestamp"] = format_ns(self.timestamp_ns)
        return orjson.dumps(fields)


TradeId = Annotated[str, Field(min_length=1)]
ExchangeCode = Annotated[str, Field(max_length=CODE_MAX_LENGTH, pattern=r"^[^|]*$")]  # part of a trade's id
Conditions = Annotated[list[Code], Field(max_length=MAX_CONDITIONS)]


def _bounded_trade_id(value: str) -> str:
    size = len(value.encode())
    if size > TRADE_ID_MAX_BYTES:
        raise ValueError(f"is {size} bytes long; at most {TRADE_ID_MAX_BYTES}")
    return value


class Trade(Record):
    kind: Literal["trade"] = "trade"
    price: PositiveFinite
    size: PositiveFinite
    trade_id: TradeId
    exchange: ExchangeCode | None = None
    conditions: Conditions = []
    tape: Code | None = None
    taker_side: Literal["B", "S"] | None = None  # crypto only

    _bounded = field_validator("trade_id")(_bounded_trade_id)


class TradeCancel(Record):
    """A trade taken back by its venue (Alpaca ``T:"x"``): ``action`` C for a cancel, E for an error. The trade is
    found by symbol, exchange and id; ``timestamp_ns`` is when the cancel was sent."""

    kind: Literal["cancel"] = "cancel"
    trade_id: TradeId
    exchange: ExchangeCode | None = None
    price: PositiveFinite  # the cancelled trade's, as the venue repeats it
    size: PositiveFinite
    action: Code | None = None
    tape: Code | None = None

    _bounded = field_validator("trade_id")(_bounded_trade_id)


class TradeCorrection(Record):
    """A trade whose price, size or conditions the venue corrected (Alpaca ``T:"c"``): the original trade (found by
    symbol, exchange and ``original_trade_id``) takes the corrected values; the original ones stay beside them."""

    kind: Literal["correction"] = "correction"
    exchange: ExchangeCode | None = None
    original_trade_id: TradeId
    original_price: PositiveFinite
    original_size: PositiveFinite
    original_conditions: Conditions = []
    corrected_trade_id: TradeId
    corrected_price: PositiveFinite
    corrected_size: PositiveFinite
    corrected_conditions: Conditions = []
    tape: Code | None = None

    _bounded = field_validator("original_trade_id", "corrected_trade_id")(_bounded_trade_id)


class Quote(Record):
    """The top of the book (Alpaca ``T:"q"``). A side with no order is price 0 (as Alpaca sends it); a crossed
    book (ask below bid) is not a valid quote."""

    kind: Literal["quote"] = "quote"
    bid_price: NonNegativeFinite
    bid_size: NonNegativeFinite
    bid_exchange: Code | None = None
    ask_price: NonNegativeFinite
    ask_size: NonNegativeFinite
    ask_exchange: Code | None = None
    conditions: Conditions = []
    tape: Code | None = None

    @model_validator(mode="after")
    def _not_crossed(self) -> Quote:
        if self.bid_price > 0 and self.ask_price > 0 and self.ask_price < self.bid_price:
            raise ValueError(f"the book is crossed: ask {self.ask_price} below bid {self.bid_price}")
        return self


class Bar(Record):
    """A vendor's bar (Alpaca's ``b``, its ``updatedBars`` ``u`` and its REST bars): kept beside the bars the stream
    builds from trades, never in their place. ``updated``: a revision Alpaca sent after the bar (a late print)."""

    kind: Literal["bar"] = "bar"
    timeframe: StoredTimeframe
    open: PositiveFinite
    high: PositiveFinite
    low: PositiveFinite
    close: PositiveFinite
    volume: NonNegativeFinite
    trade_count: Annotated[int, Field(ge=0)] | None = None
    vwap: PositiveFinite | None = None
    updated: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Bar:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(
                f"low <= open, close <= high does not hold (o={self.open} h={self.high} l={self.low} c={self.close})"
            )
        return self


class DeadLetter(BaseModel):
    """A record that could not be used, with why, and the payload exactly as it came."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    stage: str
    # rejected: Elasticsearch refused the document the record became (e.g. a mapping conflict)
    # unserialisable: a record that validated and still could not be encoded for Kafka
    reason: Literal[
        "unparseable", "missing_field", "invalid_value", "unknown_symbol", "unknown_type", "rejected", "unserialisable"
    ]
    detail: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    source: str
    intended_topic: str | None = None
    received_at: str = Field(default_factory=lambda: format_ns(now_ns()))

    @field_validator("detail")
    @classmethod
    def _short(cls, value: str) -> str:
        return value[:2000]

    @classmethod
    def of(cls, raw: bytes | str, **fields: object) -> DeadLetter:
        if isinstance(raw, str):
            return cls(raw=raw, **fields)  # type: ignore[arg-type]
        try:
            return cls(raw=raw.decode("utf-8"), **fields)  # type: ignore[arg-type]
        except UnicodeDecodeError:
            return cls(raw=base64.b64encode(raw).decode(), raw_encoding="base64", **fields)  # type: ignore[arg-type]

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
