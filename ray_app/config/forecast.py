"""Per-symbol forecasting (``forecast:``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
)

from ray_app.config.base import Resources, _Section

ForecastModel = Literal["AutoETS", "AutoTheta", "AutoARIMA", "AutoCES"]
ForecastTarget = Literal["high", "low", "close", "volume"]


class ForecastSettings(_Section):
    """Per-symbol forecasting on Ray: bars-1h -> statsforecast -> forecasts and forecast-runs."""

    lookback_days: float = Field(gt=0, le=3650)
    horizon_days: int = Field(ge=1, le=60)
    targets: list[ForecastTarget] = Field(min_length=1)
    models: list[ForecastModel]
    levels: list[int] = Field(min_length=1)
    cv_windows: int = Field(ge=1, le=50)
    cv_step_hours: int | None = Field(default=None, ge=1)
    cv_refit: bool
    min_improvement: float = Field(ge=0, lt=1)
    max_gap_fraction: float = Field(ge=0, le=1)
    arima_approximation: bool
    symbols_per_task: int = Field(ge=1)
    task_num_cpus: float = Field(gt=0)
    # custom Ray resources each task needs (what places the forecast tasks on a node type, e.g. {"worker": 1})
    task_resources: Resources = Field(default_factory=dict)
    task_max_retries: int = Field(ge=0)

    @field_validator("targets", "models", "levels")
    @classmethod
    def _no_repeats(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError("lists an entry more than once")
        return value

    @field_validator("targets")
    @classmethod
    def _prices_need_close(cls, value: list[str]) -> list[str]:
        if ("high" in value or "low" in value) and "close" not in value:
            raise ValueError("high and low are forecast from the close (coherent by construction): add close")
        return value

    @field_validator("levels")
    @classmethod
    def _percent(cls, value: list[int]) -> list[int]:
        if any(not 0 < level < 100 for level in value):
            raise ValueError("interval levels are percentages between 1 and 99, e.g. [80, 95]")
        return sorted(value)
