"""Kafka: the brokers, the topics and how to reach them (``kafka:``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from ray_app.config.base import _HOST_PORT, _TOPIC_NAME, _Section


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
            raise ValueError(
                f"min_insync_replicas {self.min_insync_replicas} is more than replication_factor "
                f"{self.replication_factor}: no write could ever succeed"
            )
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
