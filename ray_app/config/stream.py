"""The streaming job (``stream:``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from ray_app.config.base import JvmHeap, Resources, _Section

RETIRED_STREAM_SETTINGS = frozenset({"shuffle_partitions", "bars_trigger_interval_s", "state_store", "bar_lateness_s"})


class StreamSettings(_Section):
    """The Spark Structured Streaming job on Ray (RayDP): Kafka -> Elasticsearch."""

    app_name: str = Field(min_length=1)
    num_executors: int = Field(ge=1)
    executor_cores: int = Field(ge=1)
    executor_ray_cpus: float = Field(gt=0)
    executor_memory: JvmHeap
    # custom Ray resources each executor actor needs (what places the executors on a node type, e.g. {"worker": 1})
    executor_resources: Resources = Field(default_factory=dict)
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
                "stream.%s: no longer used (bars are recomputed from the trades index; docs/stream.md)", ", ".join(old)
            )
            data = {key: value for key, value in data.items() if key not in RETIRED_STREAM_SETTINGS}
        return data

    @model_validator(mode="after")
    def _backoff_order(self) -> StreamSettings:
        if self.restart_backoff_max_s < self.restart_backoff_min_s:
            raise ValueError("restart_backoff_max_s must be >= restart_backoff_min_s")
        return self
