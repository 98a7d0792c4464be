"""Prometheus (``prometheus:``), Alertmanager (``alertmanager:``), the indicators (``indicators:``), the live parts
(``live:``) and the smoke check (``smoke:``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from ray_app.config.base import _http_url, _Section
from ray_app.config.elasticsearch import ElasticsearchIndices
from ray_app.config.kafka import TopicSettings


class AlertmanagerSettings(_Section):
    """Alertmanager: where Prometheus sends the pipeline's alerts, and where they are delivered (ray_app/alerts.py)."""

    url: str = "http://127.0.0.1:9193"
    binary: Path | None = None
    # every alert and its resolution is POSTed here (Alertmanager's webhook JSON); null: kept on its page only.
    # secret: a chat webhook's URL holds its token (prefer RAY_APP_ALERTMANAGER__WEBHOOK_URL)
    webhook_url: SecretStr | None = None
    group_wait_s: float = Field(default=10, gt=0, le=3600)
    group_interval_s: float = Field(default=60, gt=0, le=86400)
    repeat_interval_s: float = Field(default=4 * 3600, gt=0, le=7 * 86400)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _http_url(value, "http://127.0.0.1:9193", with_port=True)


class PrometheusSettings(_Section):
    """The Prometheus server that scrapes Ray's metrics (the platform's included) and that the Ray dashboard reads."""

    url: str
    scrape_interval_s: float = Field(gt=0, le=300)
    retention: str = Field(pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$")
    binary: Path | None = None

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _http_url(value, "http://127.0.0.1:9090", with_port=True)


class IndicatorSettings(_Section):
    """Technical indicators on the 1-minute bars (`ray-app indicators`), the lengths traders use by default."""

    interval_s: float = Field(gt=0)
    written_days: float = Field(gt=0)
    rsi_period: int = Field(ge=2)
    ema_fast: int = Field(ge=2)
    ema_slow: int = Field(ge=2)
    macd_signal: int = Field(ge=2)
    bollinger_period: int = Field(ge=2)
    bollinger_sigmas: float = Field(gt=0)

    @field_validator("ema_slow")
    @classmethod
    def _slow_above_fast(cls, value: int, info: ValidationInfo) -> int:
        fast = info.data.get("ema_fast")
        if fast is not None and value <= fast:
            raise ValueError(f"must be longer than indicators.ema_fast ({fast})")
        return value


class LiveSettings(_Section):
    """What `make run` leaves running as Ray jobs, and how often the scheduled ones work."""

    forecast_every_s: float = Field(ge=60)
    recommend_every_s: float = Field(ge=10)
    monitor_every_s: float = Field(gt=0)
    dead_letter_window_s: float = Field(gt=0)
    max_trade_age_s: float = Field(gt=0)  # `ray-app status`: the newest trade older than this means the flow stopped
    parity_every_s: float = Field(ge=10)  # the monitor's reading of our minute bars against the vendor's
    parity_window_s: float = Field(gt=0)  # ... over this much of the newest history


class SmokeSettings(_Section):
    """The round trip `ray-app smoke` makes through every engine; its own topic and index, never the project's."""

    topic: TopicSettings
    index: str
    messages: int = Field(ge=1, le=100_000)

    @field_validator("index")
    @classmethod
    def _valid_index(cls, value: str) -> str:
        return ElasticsearchIndices._valid_index(value)
