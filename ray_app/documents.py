"""Every document the platform writes to Elasticsearch, as a typed model: the one spelling of each.

The index mappings (``ray_app.es_indices.MAPPINGS``) and the Spark schemas (``spark_jobs.record_rules.spark_schema``)
are derived from these models through one small type table (``TYPES``): a field's Python type gives its
Elasticsearch and Spark types, and an ``Es(...)`` mark where Elasticsearch needs more than the Python type says
(``date``, ``date_nanos``, ``text``, ``integer``). tests/unit/test_documents.py holds every producer (the stream's
JVM rules and Spark columns, the forecast store, the evaluation, the recommendations) to these models.

A model with ``extra="allow"`` names what it declares and says which fields a document may add (an interval level
beyond the default ones, a skipped symbol's details); those are mapped by the dynamic templates (strings as
``keyword``, numbers as ``double``).
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict

# --- the type table -----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated metadata, a dict cannot be
class Es:
    """An Elasticsearch mapping for a field where the Python type alone does not say it."""

    mapping: dict[str, Any]


# Python type -> (Elasticsearch mapping, Spark SQL type)
TYPES: dict[type, tuple[dict[str, Any], str]] = {
    str: ({"type": "keyword"}, "string"),
    float: ({"type": "double"}, "double"),
    int: ({"type": "long"}, "bigint"),
    bool: ({"type": "boolean"}, "boolean"),
    dict: ({"type": "object"}, "map<string,string>"),
}
SPARK_OF_ES = {"integer": "int", "date": "string", "date_nanos": "string", "text": "string"}

Date = Annotated[str, Es({"type": "date"})]  # whole seconds, UTC: 2026-11-28T14:30:00Z
DateNanos = Annotated[str, Es({"type": "date_nanos"})]  # RFC 3339 with nanoseconds
Text = Annotated[str, Es({"type": "text"})]  # read by people, searched by words, never aggregated
Integer = Annotated[int, Es({"type": "integer"})]
SearchableText = Annotated[str, Es({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}})]


@dataclass(frozen=True)
class FieldType:
    """A field's place in the type table: its base Python type, its Elasticsearch mapping and its Spark type."""

    python: type
    es: dict[str, Any]
    spark: str
    nullable: bool


def field_type(annotation: Any) -> FieldType:
    """Resolve ``X | None``, ``list[X]`` (Elasticsearch arrays are the field's own type), ``Literal[...]`` and
    ``Annotated[X, Es(...)]`` to the table's entry."""
    nullable = False
    mark: Es | None = None
    is_list = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *marks = get_args(annotation)
            mark = next((m for m in marks if isinstance(m, Es)), mark)
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            nullable = nullable or len(members) < len(get_args(annotation))
            if len(members) != 1:
                raise TypeError(f"a document field has one type (got {annotation})")
            annotation = members[0]
        elif origin is list:
            is_list, annotation = True, get_args(annotation)[0]
        elif origin is Literal:
            annotation = type(get_args(annotation)[0])
        elif origin is dict:
            annotation = dict
        else:
            break
    if annotation not in TYPES:
        raise TypeError(f"no Elasticsearch/Spark type for {annotation!r}: add it to ray_app.documents.TYPES")
    es, spark = TYPES[annotation]
    if mark is not None:
        es = mark.mapping
        spark = SPARK_OF_ES.get(es["type"], spark)
    return FieldType(annotation, es, f"array<{spark}>" if is_list else spark, nullable)


def fields_of(model: type[BaseModel]) -> dict[str, FieldType]:
    hints = get_type_hints(model, include_extras=True)
    return {name: field_type(hints[name]) for name in model.model_fields}


def mapping(*models: type[BaseModel]) -> dict[str, Any]:
    """The index's ``properties`` from its document model(s) (several when one index holds several records)."""
    properties: dict[str, Any] = {}
    for model in models:
        for name, kind in fields_of(model).items():
            if properties.setdefault(name, kind.es) != kind.es:
                raise TypeError(f"{name} is {properties[name]} in one record and {kind.es} in another")
    return properties


class Document(BaseModel):
    """A document exactly as written: unknown fields are an error, so a producer and its model cannot drift."""

    model_config = ConfigDict(extra="forbid")


class OpenDocument(BaseModel):
    """A document with declared fields and some the producer adds by name (see each model)."""

    model_config = ConfigDict(extra="allow")


def checked(model: type[BaseModel], fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as ``model`` accepts them (a ValidationError naming the field otherwise), exactly the fields given:
    what a producer writes."""
    return model.model_validate(fields).model_dump(exclude_unset=True)


# --- the stream: trades, bars, dead letters ----------------------------------------------------------------


class TradeDocument(Document):
    """``trades``: one per valid trade (spark_jobs/jvm Records.java). Id: a stock trade's ``symbol|exchange|trading
    day|trade_id``, a crypto trade's ``symbol|exchange|trade_id`` (the trade id hashed if long). A cancel marks it
    (kept, never deleted); a correction puts the corrected price, size and conditions in place and keeps the venue's
    first ones in ``original_*``, whatever number of corrections follow. Bars count the trades that are not cancelled,
    at their current values, each field by the trade's conditions (``ray_app.conditions``)."""

    symbol: str
    timestamp: DateNanos
    price: float  # the current price: the corrected one after a correction
    size: float
    notional: float  # price * size, for the bars' VWAP (Elasticsearch sums it)
    timestamp_ns: int
    trade_id: str  # the natural id, whatever the document id
    trading_day: str | None = None  # a stock trade's New York date (YYYY-MM-DD): its ids are unique within it
    exchange: str | None = None
    conditions: list[str] = []
    tape: str | None = None
    taker_side: str | None = None
    source: str
    schema_version: Integer
    ingested_at: DateNanos | None = None  # when the record reached Kafka
    kafka_partition: Integer
    kafka_offset: int
    cancelled: bool | None = None  # a cancel (or error) arrived for it: it counts in no bar
    cancelled_at: DateNanos | None = None  # the cancel's time
    cancel_action: str | None = None  # the venue's action: C (cancel) or E (error)
    corrected: bool | None = None
    corrected_at: DateNanos | None = None  # the last correction's time
    corrected_trade_id: str | None = None  # the id the venue gave the trade's last correction
    corrected_trade_ids: list[str] | None = None  # every id its corrections were given, in order
    original_price: float | None = None  # the values before the first correction
    original_size: float | None = None
    original_conditions: list[str] | None = None


class TradeAliasDocument(Document):
    """``trade-aliases``: the id a venue gave a trade's correction (``ci``), so a later cancel or correction naming it
    finds the trade; id ``symbol|exchange|trading day|corrected id``, as a trade's."""

    symbol: str
    exchange: str | None = None
    trading_day: str | None = None
    trade_id: str  # the corrected id
    trade_doc_id: str  # the trade's document in ``trades``
    created_at: DateNanos  # the correction's time


class QuoteDocument(Document):
    """``quotes``: the top of the book per symbol and second, the second's last quote (Records.java); id
    symbol|second. ``spread`` and ``mid`` only when both sides hold an order."""

    symbol: str
    timestamp: Date  # the second, UTC
    quoted_at: DateNanos  # the quote's own time
    quoted_ns: int
    bid_price: float
    bid_size: float
    bid_exchange: str | None = None
    ask_price: float
    ask_size: float
    ask_exchange: str | None = None
    spread: float | None = None  # ask - bid
    mid: float | None = None  # (ask + bid) / 2
    conditions: list[str] = []
    tape: str | None = None
    source: str
    kafka_partition: Integer
    kafka_offset: int


class BarDocument(Document):
    """``bars-1m`` / ``bars-1h``: a bar built from the trades (spark_jobs/bar_recompute.py); id symbol|start. Prices
    from the trades whose conditions set prices, volume, trade count, VWAP and notional from those that count in the
    volume (``ray_app.conditions``)."""

    symbol: str
    timeframe: str
    timestamp: Date  # bar start, UTC
    open: float
    high: float
    low: float
    close: float
    volume: float
    trade_count: int | None = None
    vwap: float | None = None
    range: float
    notional: float  # USD traded: the sum of price * size of the trades in the volume (a vendor's bar: vwap * volume)
    log_return: float
    spread_twa: float | None = None  # the time-weighted mean spread over the bar, from the quotes (bars from trades)
    spread_seconds: int | None = None  # the seconds of the bar the spread average covers (a book with both sides)
    source: str
    updated_at: Date


class VendorBarDocument(BarDocument):
    """``vendor-bars-1m`` / ``vendor-bars-1h``: Alpaca's own bar (Records.java), the latest revision it sent (a live
    ``b``, the ``updatedBars`` ``u`` after a late print, a REST backfill), in Kafka order; id symbol|start."""

    updated: bool | None = None  # the revision Alpaca sends ~30 s after a minute that got a late print
    ingested_at: DateNanos | None = None  # when the bar reached Kafka


class IndicatorDocument(Document):
    """``indicators-1m``: one 1-minute bar's technical indicators (ray_app/indicators); id symbol|timestamp, the bar's.
    A value the bars so far cannot give (fewer bars than its period) is absent."""

    symbol: str
    timestamp: Date  # the bar's start, UTC
    open: float  # the bar itself, so one search draws the candles and the bands over them
    high: float
    low: float
    close: float
    volume: float
    bars: int  # 1-minute bars of the symbol up to and including this one: how warmed up the averages are
    rsi: float | None = None
    ema_fast: float | None = None
    ema_slow: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_histogram: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    updated_at: Date


class DeadLetterDocument(Document):
    """``dead-letters``: a record that could not be used, or a document Elasticsearch refused, with why; the raw
    payload bounded (its full length and SHA-256 beside it)."""

    schema_version: Integer | None = None
    stage: str
    reason: str
    detail: Text
    raw: Text | None = None
    raw_encoding: str | None = None
    raw_bytes: int | None = None
    raw_sha256: str | None = None
    raw_truncated: bool | None = None
    source: str | None = None
    intended_topic: str | None = None
    intended_index: str | None = None
    doc_id: str | None = None  # a refused document's id
    topic: str | None = None
    partition: Integer | None = None
    offset: int | None = None
    timestamp: Date  # when the record reached Kafka
    received_at: DateNanos


class StreamStatusDocument(Document):
    """``stream-status``: the streaming job's status (spark_jobs/status.py), id ``stream.app_name``. The driver
    rewrites it as batches commit; any node and the CLI read it by id, so nothing depends on the driver's disk."""

    app_name: str
    submission_id: str | None = None
    node_id: str | None = None  # the Ray node the driver runs on
    host: str
    pid: int
    state: str
    started_at: DateNanos
    updated_at: DateNanos
    # the whole StreamStatus as JSON: read back by id, never searched (so no field of it can grow the mapping)
    status: Annotated[dict, Es({"type": "object", "enabled": False})]


# --- forecasts -----------------------------------------------------------------------------------------------


class ForecastDocument(OpenDocument):
    """``forecasts``: one per run, symbol, target and forecast hour. Adds ``lo_<level>``/``hi_<level>`` for levels
    beyond 80 and 95."""

    run_id: str
    as_of: Date  # the run's cut-off: bars before it were the training data
    symbol: str
    market: str
    target: str
    timestamp: Date  # the forecast hour (bar start)
    step: Integer
    value: float
    lo_80: float | None = None
    hi_80: float | None = None
    lo_95: float | None = None
    hi_95: float | None = None
    model: str
    created_at: Date


class ForecastRunDocument(Document):
    """``forecast-runs``, ``record: run``: one per run, id = run id."""

    record: Literal["run"]
    run_id: str
    as_of: Date
    status: str  # running, complete, partial, failed
    started_at: Date
    finished_at: Date | None = None
    updated_at: Date
    duration_s: float | None = None
    symbols: list[str] | None = None
    models: list[str] | None = None
    lookback_days: float | None = None
    horizon_days: int | None = None
    host: str | None = None
    forecasted: int | None = None
    skipped: int | None = None
    failed: int | None = None
    targets: int | None = None
    targets_beating_naive: int | None = None


class ForecastSummary(BaseModel):
    """A symbol's next days at a glance, as its ``forecast-runs`` symbol record stores it and ``GET
    /forecast/{symbol}/summary`` answers it: the horizon's extremes (forecast/extremes.py), each the median with its
    likeliest hour (and that hour's probability) and its 80% and 95% bounds; the volatility forecast; the models."""

    highest_volume: float | None = None  # the median
    highest_volume_at: Date | None = None  # the most likely hour
    highest_volume_at_probability: float | None = None
    highest_volume_lo_80: float | None = None
    highest_volume_hi_80: float | None = None
    highest_volume_lo_95: float | None = None
    highest_volume_hi_95: float | None = None
    highest_price: float | None = None  # the median
    highest_price_at: Date | None = None  # the most likely hour
    highest_price_at_probability: float | None = None
    highest_price_lo_80: float | None = None
    highest_price_hi_80: float | None = None
    highest_price_lo_95: float | None = None
    highest_price_hi_95: float | None = None
    lowest_price: float | None = None  # the median
    lowest_price_at: Date | None = None  # the most likely hour
    lowest_price_at_probability: float | None = None
    lowest_price_lo_80: float | None = None
    lowest_price_hi_80: float | None = None
    lowest_price_lo_95: float | None = None
    lowest_price_hi_95: float | None = None
    range_model: str | None = None  # the volatility target's chosen model (forecast/volatility.py)
    range_pct_mean: float | None = None  # the forecast mean hourly range over the horizon, % of the price
    close_interval_source: str | None = None  # "model", or "volatility (<model>)"
    forecast_start: Date | None = None
    forecast_end: Date | None = None
    chosen_models: dict[str, str] | None = None
    targets_beating_naive: int | None = None


class ForecastSymbolDocument(OpenDocument, ForecastSummary):
    """``forecast-runs``, ``record: symbol``: a symbol's outcome in a run (ok, skipped, failed, or writing while its
    rows are written), its history and its 7-day summary. A skipped symbol adds the details of why."""

    record: Literal["symbol"]
    run_id: str
    as_of: Date
    symbol: str
    market: str | None = None  # absent when the symbol's Ray task died before it began
    status: str
    reason: SearchableText | None = None
    traceback: Text | None = None
    report_error: str | None = None
    created_at: Date
    load_s: float | None = None
    worker: str | None = None
    worker_pid: int | None = None
    node_id: str | None = None  # the Ray node the symbol's task ran on
    duration_s: float | None = None
    cv_s: float | None = None
    fit_s: float | None = None
    train_points: int | None = None
    gap_fraction: float | None = None
    outside_session_bars: int | None = None
    holidays: int | None = None
    first_bar: Date | None = None
    last_bar: Date | None = None


class ForecastTargetDocument(OpenDocument):
    """``forecast-runs``, ``record: target``: a target's chosen model and its cross-validation beside naive's.
    Adds ``coverage_<level>`` per interval level."""

    record: Literal["target"]
    run_id: str
    as_of: Date
    symbol: str
    market: str
    target: str
    status: str
    chosen_model: str
    method: str  # how the target is made from the modelled series (engine.PRICE_METHOD)
    series_models: dict[str, str]  # modelled series (log_close, log_high_close, ...) -> its model
    mase: float | None = None
    smape: float | None = None
    naive_mase: float | None = None
    naive_smape: float | None = None
    beats_naive: bool
    cv: dict[str, Any]  # model -> mase, smape, coverage_<level>, seconds, error (and qlike for the range)
    note: str | None = None
    interval_source: str | None = None  # prices: "model", or "volatility (<range model>)" (forecast/volatility.py)
    interval_cv_coverage: dict[str, Any] | None = None  # each source of the close's intervals -> its CV coverage
    train_points: int
    horizon: Integer
    created_at: Date


class TargetEvaluation(Document):
    """A past run's target scored against the bars that arrived after it (forecast/evaluation.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    as_of: Date
    symbol: str
    market: str
    target: str
    model: str
    horizon: Integer
    elapsed_hours: Integer  # forecast hours that have a realized bar
    complete: bool  # the whole horizon has passed
    through: Date | None  # the newest realized hour scored
    mase: float | None
    naive_mase: float | None
    mae: float | None
    naive_mae: float | None
    beats_naive: bool
    coverage_80: float | None
    coverage_95: float | None
    direction: str | None = None  # close only: the run's forecast direction (up, down, flat)
    direction_hit_rate: float | None = None  # close only: share of elapsed hours whose realized direction agreed
    # the extremes (highest_price, lowest_price, highest_volume), scored once the whole horizon has passed
    realized: float | None = None  # the horizon's realized extreme
    median: float | None = None  # the forecast median
    lo_80: float | None = None
    hi_80: float | None = None
    lo_95: float | None = None
    hi_95: float | None = None
    above_median: bool | None = None  # the realized extreme above the forecast median (half the time if calibrated)
    inside_80: bool | None = None
    inside_95: bool | None = None
    pinball: float | None = None  # mean quantile loss at 2.5, 10, 50, 90, 97.5% on 100 x ln(value)
    naive_pinball: float | None = None  # the same for the old rule (max/min of naive's hourly points), all levels

    @property
    def doc_id(self) -> str:
        return f"{self.run_id}|{self.symbol}|{self.target}"


class ForecastEvaluationDocument(TargetEvaluation):
    """``forecast-evaluations``: the scored target and when it was scored; id run|symbol|target."""

    evaluated_at: Date


# --- recommendations -------------------------------------------------------------------------------------------

Direction = Literal["up", "down", "flat"]
Signal = Literal["buy", "hold", "sell"]
Sentiment = Literal["bullish", "neutral", "bearish"]


class MarketFacts(BaseModel):
    """What a recommendation is built from (serve_deployments/market_facts.py says how each is computed)."""

    symbol: str
    last_bar_at: Date
    last_price: float
    change_24h_pct: float | None
    realized_volatility_24h_pct: float | None
    run_id: str
    forecast_as_of: Date
    forecast_end: Date
    forecast_close: float
    forecast_change_pct: float
    forecast_direction: Direction
    range_7d_low: float | None  # the horizon's lowest price, forecast median (forecast/extremes.py)
    range_7d_high: float | None  # the horizon's highest price, forecast median
    range_7d_low_lo_80: float | None = None  # 10% chance the week's low goes below this
    range_7d_high_hi_80: float | None = None  # 10% chance the week's high goes above this
    forecast_hourly_range_pct: float | None = None  # the forecast mean hourly range (volatility), % of the price
    close_model: str
    close_beats_naive: bool


class Judgement(BaseModel):
    signal: Signal
    signal_rule: Text
    sentiment: Sentiment
    sentiment_rule: Text


TextSource = Literal["model", "template"]


class Recommendation(MarketFacts, Judgement):
    """The answer of GET /recommendation/{symbol}: flat, every fact next to the verdict and the text.

    The text is the model's only when every claim in it passed the claim checker (serve_deployments/claims.py),
    else the template sentence from the facts (serve_deployments/checked_text.py); ``text_source`` says which,
    ``text_attempt`` which attempt wrote it, ``text_checks`` the claim kinds checked, ``text_claims`` how many claims
    the served text makes (all supported), ``text_rejected`` why each refused candidate was refused.
    """

    text: Text
    text_source: TextSource
    text_attempt: str | None
    text_checks: list[str]
    text_claims: Integer
    text_rejected: list[str]
    text_s: float
    prompt: Text
    model: str
    model_is_trained: bool
    model_note: Text
    new_tokens: Integer
    batch_size: Integer
    generation_s: float
    generated_at: Date

    def doc_id(self) -> str:
        return f"{self.symbol}|{self.last_bar_at}|{self.run_id}|{self.model}"


class RecommendationDocument(Recommendation):
    """``recommendations``: the answer, and ``timestamp`` (= last_bar_at: the last hourly bar the facts come from)
    for the dashboards' time filter."""

    model_config = ConfigDict(extra="forbid")

    timestamp: Date


class RecommendationOutcomeDocument(BaseModel):
    """``recommendation-outcomes``: one stored recommendation scored at one horizon (serve_deployments/
    track_record.py): the price then, the return, whether the signal hit, and what following it earned.
    ``timestamp`` is the recommendation's last bar."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    recommendation_id: str
    timestamp: Date
    horizon: str
    horizon_end: Date
    signal: Signal
    sentiment: Sentiment
    text_source: TextSource
    model: str
    price: float
    price_at_horizon: float
    return_pct: float
    hit: bool
    hold_band_pct: float
    follow_return_pct: float
    scored_at: Date


# Index settings key (ElasticsearchIndices field) -> the models of the documents it holds
DOCUMENTS: dict[str, tuple[type[BaseModel], ...]] = {
    "trades": (TradeDocument,),
    "bars_1m": (BarDocument,),
    "bars_1h": (BarDocument,),
    "forecasts": (ForecastDocument,),
    "forecast_runs": (ForecastRunDocument, ForecastSymbolDocument, ForecastTargetDocument),
    "forecast_evaluations": (ForecastEvaluationDocument,),
    "recommendations": (RecommendationDocument,),
    "recommendation_outcomes": (RecommendationOutcomeDocument,),
    "dead_letters": (DeadLetterDocument,),
    "indicators_1m": (IndicatorDocument,),
    "quotes": (QuoteDocument,),
    "stream_status": (StreamStatusDocument,),
    "vendor_bars_1m": (VendorBarDocument,),
    "vendor_bars_1h": (VendorBarDocument,),
    "trade_aliases": (TradeAliasDocument,),
}
