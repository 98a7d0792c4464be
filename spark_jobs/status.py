"""The streaming job's status file: what each query last did, for `ray-app stream status`, the demo and tests.

The driver rewrites ``<state_dir>/run/stream-status.json`` (atomically) after every micro-batch and every
failure; anything can read it without talking to Spark.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

from ray_app.config import Settings


class QueryStatus(BaseModel):
    name: str
    state: str = "starting"  # starting | running | restarting | stopped | failed
    batches: int = 0  # micro-batches written by this driver
    last_batch_id: int | None = None
    last_batch_rows: int = 0
    last_batch_seconds: float = 0.0
    rows: int = 0
    indexed: dict[str, int] = Field(default_factory=dict)  # documents written by this driver, per index
    rejected: int = 0
    dropped_late: int = 0
    # Kafka offsets the last committed batch reached: topic -> partition -> next offset
    committed_offsets: dict[str, dict[str, int]] = Field(default_factory=dict)
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None


class StreamStatus(BaseModel):
    pid: int
    started_at: str
    updated_at: str
    state: str = "starting"  # starting | running | stopping | stopped | failed
    checkpoint_dir: str
    queries: dict[str, QueryStatus] = Field(default_factory=dict)


def status_file(settings: Settings) -> Path:
    return settings.run_dir / "stream-status.json"


def write_status(settings: Settings, status: StreamStatus) -> None:
    path = status_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(status.model_dump_json(indent=2))
    scratch.replace(path)


def read_status(settings: Settings) -> StreamStatus | None:
    try:
        return StreamStatus.model_validate(json.loads(status_file(settings).read_text()))
    except (OSError, ValueError):
        return None
