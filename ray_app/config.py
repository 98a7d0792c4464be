"""The one settings object of the platform.

Every stage reads its configuration from :class:`Settings`. Values come from, highest priority first:

1. environment variables prefixed ``RAY_APP_`` with ``__`` between nested keys
   (``RAY_APP_KAFKA__BOOTSTRAP_SERVERS=broker:9092``, ``RAY_APP_SYMBOLS='["AAPL","BTC/USD"]'``);
2. a YAML file given with ``--config FILE`` (or ``RAY_APP_CONFIG=FILE``), deep-merged over
3. ``configs/default.yaml``, which holds every default.

A bad value fails at start-up with :class:`ConfigError`, whose message names the key and what is allowed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ray_app.schemas import StoredTimeframe

ENV_PREFIX = "RAY_APP_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "RAY_APP_CONFIG"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "configs" / "default.yaml"

_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
# Elasticsearch index names: lowercase, no spaces or \/*?"<>|,#: and not starting with -_+
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{0,254}$")
MASK = "**********"
# scheme://user:password@host -> the password; also a lone token as the user part (scheme://token@host)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+._\-]*://)(?P<userinfo>[^/@\s]+)@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: ``http://elastic:pw@host`` -> ``http://elastic:
    **********@host`` (a user name stays, a password or a token does not)."""

    def mask(match: re.Match[str]) -> str:
        user, _, password = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}:{MASK}@" if password else f"{match['scheme']}{MASK}@"

    return _URL_CREDENTIALS.sub(mask, text)


def redact_log_records() -> None:
    """Mask the credentials of every URL in every log record this process makes, whichever library logs it (the
    Elasticsearch client, alpaca-py, Ray, ours): the record's message is formatted and redacted as it is made.
    Idempotent; the CLI, the streaming driver and the Serve replicas call it at start."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: logging reports that itself
            return record
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def strip_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it removed: ``http://elastic:pw@host`` -> ``http://host``."""
    return _URL_CREDENTIALS.sub(lambda match: match["scheme"], text)


def _each_string(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (plain data: dicts, lists, scalars) with ``change`` applied to every string in it."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _each_string(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_each_string(item, change) for item in value]
    return value


def _redacted(value: Any) -> Any:
    return _each_string(value, redact)


def without_credentials(value: Any) -> Any:
    """Plain data with the credentials of every URL in it removed (``strip_credentials`` on each string)."""
    return _each_string(value, strip_credentials)

_HEAP = re.compile(r"^\d+[mMgG]$")


class ConfigError(ValueError):
    """Raised when the settings cannot be loaded; its message is meant for the person at the terminal."""


def _check_heap(value: str) -> str:
    if not _HEAP.match(value):
        raise ValueError("must be a JVM heap size such as 512m or 1g")
    return value


JvmHeap = Annotated[str, AfterValidator(_check_heap)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _check_resources(value: dict[str, float]) -> dict[str, float]:
    for name, amount in value.items():
        if name in {"CPU", "GPU", "memory", "object_store_memory"} or not re.fullmatch(r"[A-Za-z_][\w.:-]{0,63}", name):
            raise ValueError(f"{name!r} is not a custom Ray resource name (CPUs and GPUs have settings of their own)")
        if not amount > 0:
            raise ValueError(f"{name}: a resource amount is a positive number (got {amount})")
    return value


# custom Ray resources a task or actor needs, e.g. {"worker": 1}: what a node started with `--resources` offers
Resources = Annotated[dict[str, float], AfterValidator(_check_resources)]


class _Section(BaseModel):
    # Unknown keys are typos: fail instead of ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicSettings(_Section):
    name: str
    partitions: int = Field(ge=1, le=1000)
    compacted: bool = False  # cleanup.policy=compact: the newest value per key is kept

    @field_validator("name")
    @classmethod
    def _valid_topic(cls, value: str) -> str:
        if not _TOPIC_NAME.match(value) or value in {".", ".."}:
            raise ValueError("must be 1-249 characters of letters, digits, '.', '_' or '-'")
        return value


class KafkaTopics(_Section):
    trades: TopicSettings  # trades, and the cancels and corrections of trades (behind them: the same key)
    bars: TopicSettings
    dead_letters: TopicSettings
    quotes: TopicSettings
    simulator_progress: TopicSettings  # how far the simulator has written each symbol's trades (compacted)

    def all(self) -> list[TopicSettings]:
        """The data topics the stream reads."""
        return [self.trades, self.bars, self.dead_letters, self.quotes]


class KafkaSettings(_Section):
    bootstrap_servers: str
    topics: KafkaTopics
    replication_factor: int = Field(ge=1)
    # topics' min.insync.replicas: with acks=all a write needs this many in-sync copies (2 of 3: one broker may die)
    min_insync_replicas: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _valid_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",")]
        if not servers or not all(_HOST_PORT.match(s) for s in servers):
            raise ValueError("must be a comma-separated list of host:port, e.g. 127.0.0.1:9092")
        return ",".join(servers)

    @field_validator("ssl_ca_location")
    @classmethod
    def _expand_ca(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.expandvars(str(value))).expanduser()

    @model_validator(mode="after")
    def _isr_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"min_insync_replicas {self.min_insync_replicas} is more than replication_factor "
                             f"{self.replication_factor}: no write could ever succeed")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username and sasl_password"
            )
        return self

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = str(self.ssl_ca_location)
        return conf


class ElasticsearchIndices(_Section):
    trades: str
    bars_1m: str
    bars_1h: str
    forecasts: str
    forecast_runs: str
    forecast_evaluations: str
    recommendations: str
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

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``elasticsearch.Elasticsearch``."""
        kwargs: dict[str, Any] = {
            "hosts": [self.url],
            "request_timeout": self.request_timeout_s,
            "verify_certs": self.verify_certs,
        }
        if self.api_key:
            kwargs["api_key"] = self.api_key.get_secret_value()
        if self.username and self.password:
            kwargs["basic_auth"] = (self.username, self.password.get_secret_value())
        if self.ca_certs:
            kwargs["ca_certs"] = str(self.ca_certs)
        return kwargs


def _http_url(value: str, example: str, with_port: bool = False) -> str:
    """An http(s) URL with a host (and a port when the local stack binds it), without a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or (with_port and not parts.port):
        raise ValueError(f"must be an http(s) URL{' with a port' if with_port else ''}, e.g. {example}")
    return value.rstrip("/")


class RaySettings(_Section):
    address: str
    dashboard_url: str
    gcs_port: Port
    dashboard_port: Port
    client_server_port: Port
    dashboard_agent_port: Port
    num_cpus: int | None = Field(default=None, ge=1)
    object_store_memory_mb: int | None = Field(default=None, ge=80)
    temp_dir: Path | None = None
    auth_mode: Literal["disabled", "token"]

    def use_auth_mode(self) -> None:
        """Make this process's Ray clients (ray.init, the job client, `ray` subprocesses) use ``auth_mode``.

        Ray 2.60 turns token authentication on by itself whenever ``~/.ray/auth_token`` exists (any local
        ``ray.init()`` writes one), so the mode is always set explicitly, for the head and for every client.
        """
        os.environ["RAY_AUTH_MODE"] = self.auth_mode

    @field_validator("dashboard_url")
    @classmethod
    def _valid_dashboard(cls, value: str) -> str:
        return _http_url(value, "http://127.0.0.1:8265")


class StackSettings(_Section):
    """How `ray-app stack` runs the embedded local engines (ignored when you point at your own cluster)."""

    # one KRaft controller port per Kafka node, in the order of kafka.bootstrap_servers (the local stack runs a node
    # per address there: one, or three for a replicated cluster)
    kafka_controller_ports: list[Port] = Field(min_length=1)
    kafka_heap: JvmHeap
    elasticsearch_heap: JvmHeap
    elasticsearch_transport_port: Port
    java_home: Path | None = None
    maven_offline: bool = False
    maven_extra_args: list[str] = []
    start_timeout_s: float = Field(gt=0)
    stop_timeout_s: float = Field(gt=0)

    @model_validator(mode="before")
    @classmethod
    def _one_controller_port(cls, data: Any) -> Any:
        """``kafka_controller_port`` (one node, the earlier spelling) still reads as a list of one port."""
        if isinstance(data, dict) and "kafka_controller_port" in data:
            data = dict(data)
            data.setdefault("kafka_controller_ports", [data.pop("kafka_controller_port")])
        return data


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


class IngestSettings(_Section):
    queue_max_messages: int = Field(ge=1000)
    queue_max_mb: int = Field(ge=1, le=2_097_151)
    memory_queue_messages: int = Field(ge=100)
    spill_max_mb: int = Field(ge=1)
    flush_timeout_s: float = Field(gt=0)
    progress: bool


RETIRED_STREAM_SETTINGS = frozenset({"shuffle_partitions", "bars_trigger_interval_s", "state_store", "bar_lateness_s"})


class StreamSettings(_Section):
    """The Spark Structured Streaming job on Ray (RayDP): Kafka -> Elasticsearch."""

    app_name: str = Field(min_length=1)
    num_executors: int = Field(ge=1)
    executor_cores: int = Field(ge=1)
    executor_ray_cpus: float = Field(gt=0)
    executor_memory: JvmHeap
    # custom Ray resources each executor actor needs (what places the executors on a node type, e.g. {"worker": 1})
    executor_resources: Resources = {}
    driver_memory: JvmHeap
    trigger_interval_s: float = Field(ge=0)
    refresh_after_batch: bool
    jit: Literal["c1", "tiered"]
    max_future_s: int = Field(ge=0)
    max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    checkpoint_dir: Path | None = None
    restart_backoff_min_s: float = Field(gt=0)
    restart_backoff_max_s: float = Field(gt=0)
    max_consecutive_failures: int = Field(ge=1)
    es_batch_entries: int = Field(ge=1)
    es_batch_bytes: Annotated[str, Field(pattern=r"^\d+(b|kb|mb)$")]
    es_max_in_flight: int = Field(ge=1, le=64)
    es_retry_count: int = Field(ge=0)
    es_retry_wait_s: float = Field(ge=0)
    spark_log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"]

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        """Settings of the two-query stream (a Spark aggregation with a watermark), which the bars no longer use:
        read and dropped with a warning, so an older config file still loads."""
        if isinstance(data, dict) and (old := sorted(RETIRED_STREAM_SETTINGS & set(data))):
            logging.getLogger(__name__).warning(
                "stream.%s: no longer used (bars are recomputed from the trades index; docs/stream.md)", ", ".join(old))
            data = {key: value for key, value in data.items() if key not in RETIRED_STREAM_SETTINGS}
        return data

    @model_validator(mode="after")
    def _backoff_order(self) -> StreamSettings:
        if self.restart_backoff_max_s < self.restart_backoff_min_s:
            raise ValueError("restart_backoff_max_s must be >= restart_backoff_min_s")
        return self


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
    task_resources: Resources = {}
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


class ReplicaSettings(_Section):
    """Autoscaling and resources of one Serve deployment."""

    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_ongoing_requests: float = Field(gt=0)
    max_ongoing_requests: int = Field(ge=1)
    # requests waiting for a replica beyond which callers are told 503 at once (-1: no limit, Serve's default)
    max_queued_requests: int = Field(ge=-1)
    # how long a caller waits for this deployment's answer before it answers 504 (null: no limit)
    request_timeout_s: float | None = Field(default=None, gt=0)
    num_cpus: float = Field(ge=0)
    num_gpus: float = Field(default=0, ge=0)
    # custom Ray resources each replica needs (what places it on a node type, e.g. {"worker": 1})
    resources: Resources = {}
    # how long the load must stay above (below) the target before Serve adds (removes) a replica; null: Serve's 30/600
    upscale_delay_s: float | None = Field(default=None, ge=0)
    downscale_delay_s: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _order(self) -> ReplicaSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        if self.max_ongoing_requests < self.target_ongoing_requests:
            raise ValueError("max_ongoing_requests must be >= target_ongoing_requests")
        if self.max_queued_requests == 0:
            raise ValueError("max_queued_requests must be at least 1, or -1 for no limit")
        return self

    def deployment_options(self) -> dict[str, Any]:
        autoscaling: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
        }
        for name in ("upscale_delay_s", "downscale_delay_s"):
            if getattr(self, name) is not None:
                autoscaling[name] = getattr(self, name)
        actor: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            actor["resources"] = dict(self.resources)
        return {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "autoscaling_config": autoscaling,
            "ray_actor_options": actor,
        }


class SignalRules(_Section):
    """How the recommendation's signal and sentiment follow from the facts (docs/serve.md, "Recommendations")."""

    move_threshold_pct: float = Field(gt=0)
    trend_threshold_pct: float = Field(gt=0)
    require_beats_naive: bool


class RecommendSettings(_Section):
    """The Recommender's language model (``from_pretrained(model)``), its decoding and its signal rules."""

    model: str = Field(min_length=1)
    gguf_file: str | None = None
    offline_fallback: bool = True
    max_new_tokens: int = Field(ge=1, le=512)
    no_repeat_ngram_size: int = Field(ge=0)
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=2.0)
    seed: int
    max_batch_size: int = Field(ge=1, le=256)
    batch_wait_timeout_s: float = Field(ge=0, le=10)
    rules: SignalRules


class ServeSettings(_Section):
    """The Ray Serve application: a FastAPI ingress in front of the Forecast and Recommender deployments."""

    app_name: str = Field(min_length=1)
    route_prefix: str = Field(pattern=r"^/")
    http_host: str
    http_port: Port
    # where Serve runs its HTTP proxies: every node with a replica (Serve's default), or the head only (several nodes
    # on one machine cannot all bind http_port)
    proxy_location: Literal["EveryNode", "HeadOnly"] = "EveryNode"
    cache_ttl_s: float = Field(ge=0)
    # the API key writes always need, and every request needs when http_host is beyond the loopback (null: one is
    # made on first use in state_dir/serve/api-key); secret: prefer RAY_APP_SERVE__API_KEY
    api_key: SecretStr | None = None
    max_symbols_per_request: int = Field(default=32, ge=1, le=1000)
    forecast: ReplicaSettings
    recommender: ReplicaSettings
    ingress: ReplicaSettings

    @property
    def url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}{self.route_prefix.rstrip('/')}"


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
    def _forecast_fits_the_window(self) -> Settings:
        """Cross-validation and the horizon must fit in the training window, or every symbol would be skipped."""
        forecast = self.forecast
        markets = {"crypto" if "/" in symbol else "stock" for symbol in self.symbols}
        for market in sorted(markets):
            per_day, days_in_window = (
                (24, forecast.lookback_days) if market == "crypto" else (7, forecast.lookback_days * 5 / 7)
            )
            horizon = forecast.horizon_days * 24 if market == "crypto" else math.ceil(forecast.horizon_days * 5 / 7) * 7
            step = forecast.cv_step_hours or math.ceil(horizon / 2)  # models.default_cv_step
            needed = horizon + (forecast.cv_windows - 1) * step + 2 * per_day
            available = int(days_in_window) * per_day
            if needed > available:
                raise ValueError(
                    f"forecast: {forecast.cv_windows} CV windows of a {forecast.horizon_days}-day horizon need "
                    f"{needed} {market} hours but forecast.lookback_days {forecast.lookback_days:g} holds about "
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
        return _redacted(json.loads(self.model_dump_json()))


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


# every setting that holds a secret, by field name: a config error never echoes their values, whatever their type
SECRET_FIELDS = frozenset({"password", "api_key", "secret_key", "sasl_password"})


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
