"""Elasticsearch: the cluster, its credentials and the index names (``elasticsearch:``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from ray_app.config.base import _INDEX_NAME, _Section


class ElasticsearchIndices(_Section):
    trades: str
    bars_1m: str
    bars_1h: str
    forecasts: str
    forecast_runs: str
    forecast_evaluations: str
    recommendations: str
    recommendation_outcomes: str = "recommendation-outcomes"  # each stored recommendation scored at 1 h, 24 h, 7 d
    dead_letters: str
    indicators_1m: str
    quotes: str  # the top of the book per symbol and second
    stream_status: str  # the streaming job's status: one document per app, what every node and the CLI read
    vendor_bars_1m: str  # Alpaca's own minute bars (live, updated, backfilled), beside the bars built from trades
    vendor_bars_1h: str  # Alpaca's own hour bars (backfilled)
    trade_aliases: str  # the ids a venue gave a trade's corrections -> the trade's document

    @field_validator("*")
    @classmethod
    def _valid_index(cls, value: str) -> str:
        if not _INDEX_NAME.match(value):
            raise ValueError("must be a lowercase index name of letters, digits, '.', '_' or '-'")
        return value

    def by_key(self) -> dict[str, str]:
        return self.model_dump()


class ElasticsearchSettings(_Section):
    url: str
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    request_timeout_s: float = Field(gt=0)
    number_of_shards: int = Field(ge=1)
    number_of_replicas: int = Field(ge=0)
    indices: ElasticsearchIndices

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or not parts.port:
            raise ValueError("must be an http(s) URL with a host and port, e.g. http://127.0.0.1:9200")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_credential(self) -> ElasticsearchSettings:
        if self.api_key and (self.username or self.password):
            raise ValueError("set either api_key or username/password, not both")
        if bool(self.username) != bool(self.password):
            raise ValueError("username and password go together")
        return self
