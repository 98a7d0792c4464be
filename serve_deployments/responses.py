"""What each endpoint answers, as pydantic models: the `response_model` of every route, so `/docs` shows real schemas.

The forecast rows are flat (one column per target, model and interval bound: ``close``, ``close_model``,
``close_lo_80`` ...), the shape Grafana's Infinity datasource reads directly; the columns of the default targets and
levels (80, 95) are declared, and a run made with other levels adds its own (``extra="allow"``).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, create_model

from ray_app.config import ForecastTarget
from serve_deployments.recommendations import Recommendation

TARGETS: tuple[str, ...] = get_args(ForecastTarget)
DOCUMENTED_LEVELS = (80, 95)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Health(BaseModel):
    status: Literal["ok"]
    elasticsearch: str  # the cluster's health: green, yellow or red


class SymbolStatus(BaseModel):
    symbol: str
    slug: str  # the URL form: BTC/USD -> BTC-USD
    market: str | None
    status: str | None  # ok, skipped or failed in the run that last forecast it
    reason: str | None
    run_id: str
    as_of: str


def _target_columns(prefix: str = "") -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for target in TARGETS:
        columns[f"{prefix}{target}"] = (float | None, None)
        if not prefix:
            columns[f"{target}_model"] = (str | None, None)
            for level in DOCUMENTED_LEVELS:
                columns[f"{target}_lo_{level}"] = (float | None, None)
                columns[f"{target}_hi_{level}"] = (float | None, None)
    return columns


ForecastRow = create_model(  # type: ignore[call-overload]
    "ForecastRow", __base__=_Open, __doc__="One forecast hour: each target's value, model and interval bounds.",
    timestamp=(str, ...), symbol=(str, ...), run_id=(str, ...), **_target_columns(),
)  # fmt: skip

VsRealizedRow = create_model(  # type: ignore[call-overload]
    "VsRealizedRow", __base__=ForecastRow,
    __doc__="A forecast hour of the newest scored run, with the realized bar of that hour once it has one.",
    **_target_columns("actual_"),
)  # fmt: skip


class Summary(BaseModel):
    symbol: str
    run_id: str
    as_of: str
    highest_volume: float | None = None
    highest_volume_at: str | None = None
    highest_price: float | None = None
    highest_price_at: str | None = None
    lowest_price: float | None = None
    lowest_price_at: str | None = None
    forecast_start: str | None = None
    forecast_end: str | None = None
    chosen_models: dict[str, str] | None = None
    targets_beating_naive: int | None = None


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


class AccuracyRow(_Open):
    """A past run scored against what happened (a ``forecast-evaluations`` document)."""

    run_id: str
    as_of: str
    symbol: str
    target: str
    model: str | None = None
    elapsed_hours: int | None = None
    complete: bool | None = None
    mase: float | None = None
    naive_mase: float | None = None
    beats_naive: bool | None = None
    coverage_80: float | None = None
    coverage_95: float | None = None
    direction_hit_rate: float | None = None


class StoredRecommendation(Recommendation):
    """A ``recommendations`` document: the answer, and ``timestamp`` (= last_bar_at) for the dashboards."""

    timestamp: str


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
