"""What each endpoint answers, as pydantic models: the `response_model` of every route, so `/docs` shows real schemas.

The forecast rows are flat (one column per target, model and interval bound: ``close``, ``close_model``,
``close_lo_80`` ...), the shape Grafana's Infinity datasource reads directly; the columns of the default targets and
levels (80, 95) are declared (tests/unit/test_serve.py holds them to the settings' targets), and a run made with
other levels adds its own (``extra="allow"``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ray_app.documents import (
    ForecastEvaluationDocument,
    ForecastSummary,
    IndicatorDocument,
    QuoteDocument,
    Recommendation,
    RecommendationDocument,
)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Health(BaseModel):
    status: Literal["ok"]
    elasticsearch: str  # the cluster's health: green, yellow or red
    app_version: str  # serve_deployments/app_version.py: what a bring-up compares before redeploying


class SymbolStatus(BaseModel):
    symbol: str
    slug: str  # the URL form: BTC/USD -> BTC-USD
    market: str | None
    status: str | None  # ok, skipped or failed in the run that last forecast it
    reason: str | None
    run_id: str
    as_of: str


class ForecastRow(_Open):
    """One forecast hour: each target's value, the model behind it and its interval bounds."""

    timestamp: str
    symbol: str
    run_id: str
    high: float | None = None
    high_model: str | None = None
    high_lo_80: float | None = None
    high_hi_80: float | None = None
    high_lo_95: float | None = None
    high_hi_95: float | None = None
    low: float | None = None
    low_model: str | None = None
    low_lo_80: float | None = None
    low_hi_80: float | None = None
    low_lo_95: float | None = None
    low_hi_95: float | None = None
    close: float | None = None
    close_model: str | None = None
    close_lo_80: float | None = None
    close_hi_80: float | None = None
    close_lo_95: float | None = None
    close_hi_95: float | None = None
    volume: float | None = None
    volume_model: str | None = None
    volume_lo_80: float | None = None
    volume_hi_80: float | None = None
    volume_lo_95: float | None = None
    volume_hi_95: float | None = None
    range: float | None = None  # the forecast hourly range, 100 x ln(high / low), % of the price
    range_model: str | None = None


class VsRealizedRow(ForecastRow):
    """A forecast hour of the newest scored run, with the realized bar of that hour once it has one."""

    actual_close: float | None = None
    actual_high: float | None = None
    actual_low: float | None = None
    actual_volume: float | None = None
    actual_range: float | None = None


class Summary(ForecastSummary):
    """GET /forecast/{symbol}/summary: the symbol's summary from the run that last forecast it."""

    symbol: str
    run_id: str
    as_of: str


class BacktestRow(_Open):
    """Per target: the chosen model's cross-validation scores beside naive's (plus ``coverage_<level>``)."""

    symbol: str
    run_id: str
    target: str
    model: str | None
    mase: float | None
    naive_mase: float | None
    smape: float | None
    naive_smape: float | None
    beats_naive: bool | None
    mase_vs_naive_pct: float | None


class ExtremesScoredRow(_Open):
    """One past run whose horizon has passed: per extreme (highest_price, lowest_price, highest_volume) its
    forecast ``<extreme>_median``, ``_lo_80``, ``_hi_80``, ``_lo_95``, ``_hi_95`` and the ``_realized`` value."""

    as_of: str
    run_id: str
    symbol: str


class ExtremeCalibrationRow(BaseModel):
    """One extreme over the symbol's scored runs: how often the realized extreme fell above the median and inside
    each interval (calibrated: about 50%, 80%, 95%), and the pinball loss beside the old rule's."""

    symbol: str
    extreme: str
    runs: int
    above_median_share: float | None
    coverage_80: float | None
    coverage_95: float | None
    pinball: float | None
    naive_pinball: float | None


AccuracyRow = ForecastEvaluationDocument  # GET /forecast/{symbol}/accuracy answers the stored evaluations
IndicatorRow = IndicatorDocument  # GET /indicators/{symbol} answers the stored indicator documents, oldest first
LatestQuote = QuoteDocument  # GET /quote/{symbol} answers the symbol's newest stored top of the book


class TrackRecordRow(BaseModel):
    """One signal at one horizon: how often it hit and what following it earned against holding."""

    signal: str
    horizon: str
    scored: int
    hits: int
    hit_rate: float
    hold_band_pct: float
    mean_return_pct: float
    mean_follow_return_pct: float


class TrackRecordPoint(BaseModel):
    """After each scored 1 h signal, in time order: the cumulative return of following the signals and of holding."""

    timestamp: str
    signal: str
    follow_return_pct: float
    hold_return_pct: float


class TrackRecord(BaseModel):
    """GET /recommendation/{symbol}/track-record (serve_deployments/track_record.py)."""

    symbol: str
    recommendations: int
    outcomes: int
    rows: list[TrackRecordRow]
    cumulative: list[TrackRecordPoint]
    rules: str


StoredRecommendation = RecommendationDocument  # GET /recommendations/latest answers the stored documents


class Skipped(BaseModel):
    symbol: str
    reason: str


class Recorded(BaseModel):
    index: str
    written: int
    skipped: list[Skipped]
    recommendations: list[Recommendation]


class ModelDescription(_Open):
    model: str
    model_is_trained: bool
    model_note: str
    parameters: int
    device: str
    torch_threads: int
    max_new_tokens: int
    max_batch_size: int
    batch_wait_timeout_s: float
