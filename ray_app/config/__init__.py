"""The one settings object of the platform: the root :class:`Settings` and how it is loaded.

Every stage reads its configuration from :class:`Settings`. Values come from, highest priority first:

1. environment variables prefixed ``RAY_APP_`` with ``__`` between nested keys
   (``RAY_APP_KAFKA__BOOTSTRAP_SERVERS=broker:9092``, ``RAY_APP_SYMBOLS='["AAPL","BTC/USD"]'``);
2. a YAML file given with ``--config FILE`` (or ``RAY_APP_CONFIG=FILE``), deep-merged over
3. ``configs/default.yaml``, which holds every default.

A bad value fails at start-up with :class:`ConfigError`, whose message names the key and what is allowed.

One module per section (``kafka``, ``elasticsearch``, ``ray``, ``ingest``, ``stream``, ``forecast``, ``serve``,
``live``), what they share in ``base``, secrets kept out of texts in ``redaction``. Clients are built by the engine
modules (``ray_app.kafka_clients``, ``ray_app.es_indices``, ``ray_app.ray_cluster``), not here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ray_app.config.alerts import MarketAlertSettings
from ray_app.config.base import ConfigError
from ray_app.config.elasticsearch import ElasticsearchSettings
from ray_app.config.forecast import ForecastSettings
from ray_app.config.ingest import AlpacaSettings, IngestSettings, SimulatorSettings
from ray_app.config.kafka import KafkaSettings, TopicSettings
from ray_app.config.live import (
    AlertmanagerSettings,
    IndicatorSettings,
    LiveSettings,
    PrometheusSettings,
    SmokeSettings,
)
from ray_app.config.ray import RaySettings, StackSettings
from ray_app.config.redaction import SECRET_FIELDS, redact, redacted
from ray_app.config.serve import RecommendSettings, ServeSettings
from ray_app.config.stream import StreamSettings
from ray_app.markets import hours_held, hours_needed, market_hours

__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_CONFIG_FILE",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "PROJECT_ROOT",
    "SECRET_FIELDS",
    "ConfigError",
    "Settings",
    "TopicSettings",
    "load_settings",
]

ENV_PREFIX = "RAY_APP_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "RAY_APP_CONFIG"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "configs" / "default.yaml"


class Settings(BaseSettings):
    """Effective settings; build one with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    state_dir: Path
    cache_dir: Path
    symbols: list[str] = Field(min_length=1)
    kafka: KafkaSettings
    elasticsearch: ElasticsearchSettings
    ray: RaySettings
    stack: StackSettings
    alpaca: AlpacaSettings
    simulator: SimulatorSettings
    ingest: IngestSettings
    stream: StreamSettings
    forecast: ForecastSettings
    serve: ServeSettings
    recommend: RecommendSettings
    prometheus: PrometheusSettings
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    alerts: MarketAlertSettings = Field(default_factory=MarketAlertSettings)
    indicators: IndicatorSettings
    live: LiveSettings
    smoke: SmokeSettings

    @field_validator("state_dir", "cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(os.path.expandvars(str(value))).expanduser().resolve()

    @field_validator("symbols")
    @classmethod
    def _valid_symbols(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not re.fullmatch(r"[A-Z][A-Z0-9.]{0,9}(/[A-Z]{2,6})?", s)]
        if bad:
            raise ValueError(f"{bad} are not ticker symbols: use e.g. AAPL, BRK.B or crypto pairs like BTC/USD")
        if len(set(value)) != len(value):
            raise ValueError("lists a symbol more than once")
        return value

    @model_validator(mode="after")
    def _local_ports_distinct(self) -> Settings:
        """Two services of this machine on one port: the second cannot start (found at `stack up`, late and
        obscurely), so the settings refuse it, naming both keys."""
        local = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}
        ports: list[tuple[str, int]] = []
        for address in self.kafka.bootstrap_servers.split(","):
            host, _, port = address.strip().rpartition(":")
            if host in local and port.isdigit():
                ports.append((f"kafka.bootstrap_servers ({address.strip()})", int(port)))
        ports += [
            (f"stack.kafka_controller_ports.{i}", port) for i, port in enumerate(self.stack.kafka_controller_ports)
        ]
        ports.append(("stack.elasticsearch_transport_port", self.stack.elasticsearch_transport_port))
        ray = self.ray
        for key in ("gcs_port", "dashboard_port", "client_server_port", "dashboard_agent_port"):
            ports.append((f"ray.{key}", getattr(ray, key)))
        ports.append(("serve.http_port", self.serve.http_port))
        for key, url in (
            ("elasticsearch.url", self.elasticsearch.url),
            ("prometheus.url", self.prometheus.url),
            ("alertmanager.url", self.alertmanager.url),
        ):
            parts = urlsplit(url)
            if (parts.hostname or "") in local and parts.port:
                ports.append((key, parts.port))
        seen: dict[int, str] = {}
        for key, number in ports:
            if number in seen:
                raise ValueError(
                    f"{seen[number]} and {key} both use port {number} on this machine: give one another port"
                )
            seen[number] = key
        return self

    @model_validator(mode="after")
    def _alerts_name_known_symbols(self) -> Settings:
        for index, rule in enumerate(self.alerts.rules):
            unknown = [symbol for symbol in rule.symbols if symbol not in self.symbols]
            if unknown:
                raise ValueError(f"alerts.rules.{index}.symbols: {unknown} are not in symbols {self.symbols}")
        return self

    @model_validator(mode="after")
    def _forecast_fits_the_window(self) -> Settings:
        """Cross-validation and the horizon must fit in the training window, or every symbol would be skipped."""
        forecast = self.forecast
        for market in sorted({market_hours(symbol) for symbol in self.symbols}, key=lambda m: m.name):
            needed = hours_needed(market, forecast.horizon_days, forecast.cv_windows, forecast.cv_step_hours)
            available = hours_held(market, forecast.lookback_days)
            if needed > available:
                raise ValueError(
                    f"forecast: {forecast.cv_windows} CV windows of a {forecast.horizon_days}-day horizon need "
                    f"{needed} {market.name} hours but forecast.lookback_days {forecast.lookback_days:g} holds about "
                    f"{available}; raise lookback_days or lower cv_windows / horizon_days / cv_step_hours"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings passes the merged YAML files as keyword arguments; environment variables win over
        # them, and pydantic-settings deep-merges the two, so one nested env var overrides one nested key.
        return env_settings, init_settings

    # Paths under the state directory, so every stage agrees on where things live.
    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def checkpoints_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def stream_checkpoint_dir(self) -> Path:
        """Where the streaming job keeps its offsets, commits and bar state (``stream.checkpoint_dir`` wins)."""
        chosen = self.stream.checkpoint_dir
        if chosen is None:
            return self.checkpoints_dir / "stream"
        return Path(os.path.expandvars(str(chosen))).expanduser().resolve()

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by ``**********`` (credentials in URLs too)."""
        return redacted(json.loads(self.model_dump_json()))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"configuration error: cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration error: {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"configuration error: {path} must hold a mapping of settings at the top level")
    return data


def _deep_merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _format_error(error: ValidationError) -> str:
    lines = ["configuration error:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a known setting (check the spelling against configs/default.yaml)"
        got = item.get("input")
        secret = any(str(part) in SECRET_FIELDS for part in item["loc"])
        hidden = item["type"] in {"missing", "extra_forbidden"} or isinstance(got, dict | list) or secret
        shown = "" if hidden else f" (got {redact(repr(got))})"
        if not item["loc"]:  # a rule across sections names its keys itself
            lines.append(f"  {message}")
            continue
        lines.append(f"  {key}: {message}{shown}   (config file key {key}, or env {env_name})")
    return "\n".join(lines)


def load_settings(config_file: Path | str | None = None) -> Settings:
    """Load the effective settings, or raise :class:`ConfigError` naming every bad key."""
    chosen = config_file or os.environ.get(CONFIG_FILE_ENV)
    files = [DEFAULT_CONFIG_FILE]
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"configuration error: config file {path} does not exist")
        files.append(path)
    merged: dict[str, Any] = {}
    for path in files:
        _deep_merge(merged, _read_yaml(path))
    # Alpaca's own variable names, as alpaca-py's docs and every Alpaca user have them
    for name, key in (("ALPACA_API_KEY", "api_key"), ("ALPACA_SECRET_KEY", "secret_key")):
        if os.environ.get(name):
            merged.setdefault("alpaca", {})[key] = os.environ[name]
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
    except ValueError as exc:  # e.g. an env var that is not valid JSON for a list or section
        raise ConfigError(f"configuration error: {exc}") from None
