"""The sources: Alpaca's credentials and feeds (``alpaca:``), the simulator (``simulator:``), ingest (``ingest:``)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from ray_app.config.base import _Section
from ray_app.schemas import StoredTimeframe


class AlpacaSettings(_Section):
    """Alpaca market data. Keys come from ALPACA_API_KEY / ALPACA_SECRET_KEY (or RAY_APP_ALPACA__API_KEY ...)."""

    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    feed: Literal["iex", "sip"]
    max_symbols_per_stream: int = Field(ge=1)
    stock_stream_url: str | None = None
    crypto_stream_url: str | None = None
    data_url: str | None = None
    reconnect_min_s: float = Field(gt=0)
    reconnect_max_s: float = Field(gt=0)
    rest_retry_attempts: int = Field(ge=0)
    rest_retry_wait_s: float = Field(gt=0)
    rest_timeout_s: float = Field(gt=0)
    backfill_attempts: int = Field(ge=1)
    backfill_days: float = Field(gt=0)
    backfill_chunk_days: float = Field(gt=0)
    backfill_timeframe: StoredTimeframe  # what the stream stores: a daily bar would be a dead letter, bar by bar

    @field_validator("stock_stream_url", "crypto_stream_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"ws", "wss"}:
            raise ValueError("must be a ws:// or wss:// URL")
        return value

    @field_validator("data_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value


class SimulatorSettings(_Section):
    seed: int
    trades_per_minute: float = Field(gt=0, le=100_000)
    history_days: float = Field(ge=0)
    anchor_on_real_data: bool
    # of the stock trades, the share the venue later cancels (or reports as an error), and the share it corrects
    cancel_share: float = Field(default=0.005, ge=0, le=0.5)
    correction_share: float = Field(default=0.003, ge=0, le=0.5)
    quotes_per_trade: float = Field(default=1.5, ge=0, le=100)  # top-of-book quotes per trade, on average
    # quotes of the history only for its last N hours (the Trading dashboard's day); null: every hour of it
    history_quotes_hours: float | None = Field(default=24, ge=0)


class IngestSettings(_Section):
    queue_max_messages: int = Field(ge=1000)
    queue_max_mb: int = Field(ge=1, le=2_097_151)
    memory_queue_messages: int = Field(ge=100)
    spill_max_mb: int = Field(ge=1)
    flush_timeout_s: float = Field(gt=0)
    progress: bool
