"""Ray: the cluster's addresses and how clients authenticate (``ray:``); the local stack (``stack:``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from ray_app.config.base import JvmHeap, Port, _http_url, _Section


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
    maven_extra_args: list[str] = Field(default_factory=list)
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
