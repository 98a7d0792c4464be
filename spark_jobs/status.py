"""The streaming job's status file: what each query last did, for `ray-app stream status`, the demo and tests.

The driver rewrites ``<state_dir>/run/stream-status.json`` (atomically) after every micro-batch and every
failure; anything can read it without talking to Spark.

Where a batch's time goes (``phase_seconds``, summed over the batches that carried data, so a reader can take
the difference of two readings and divide by the batches in between):

- ``offsets``: asking Kafka for the newest offsets (Spark's ``latestOffset``)
- ``planning``: planning the batch's query (``queryPlanning``)
- ``checkpoint``: writing the offset log before and the commit log after the batch (``walCommit`` +
  ``commitOffsets``)
- ``write``: the batch's Spark job: reading Kafka, the record rules, aggregating, and the executors' bulk
  requests, dead letters for refused documents included (``bulk`` of it is time inside bulk requests, summed
  over the tasks that ran in parallel; ``state`` is the state store's commit in the bar query)
- ``hours``: recomputing the touched 1-hour bars from their 1-minute bars
- ``refresh``: making the batch searchable (an Elasticsearch refresh of the indices written)
- ``other``: the rest of the trigger (Spark's bookkeeping, the Python callback)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

from ray_app.config import Settings

PHASES = ("offsets", "planning", "checkpoint", "write", "bulk", "state", "hours", "refresh", "other")


class QueryStatus(BaseModel):
    name: str
    writes: list[str] = Field(default_factory=list)  # the indices it writes
    state: str = "starting"  # starting | running | restarting | stopped | failed
    batches: int = 0  # micro-batches written by this driver
    last_batch_id: int | None = None
    last_batch_rows: int = 0
    last_batch_seconds: float = 0.0  # the whole trigger: offsets to commit
    # newest record's Kafka time (when it was produced) -> its batch indexed and searchable
    last_batch_latency_s: float | None = None
    rows_per_s: float = 0.0  # records read per second over the last minute
    rows: int = 0
    indexed: dict[str, int] = Field(default_factory=dict)  # documents written by this driver, per index
    rejected: int = 0  # documents Elasticsearch refused; each became a dead letter
    lost_dead_letters: int = 0  # dead letters refused too, even without their raw document (executor log)
    split_requests: int = 0  # bulk requests Elasticsearch refused whole and the sink split to isolate refusals
    retried_documents: int = 0  # documents retried after a transient error (429, 5xx)
    dropped_late: int = 0
    # Kafka offsets the last committed batch reached: topic -> partition -> next offset
    committed_offsets: dict[str, dict[str, int]] = Field(default_factory=dict)
    phase_seconds: dict[str, float] = Field(default_factory=dict)  # summed over timed batches, see above
    timed_batches: int = 0
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None


# set by `ray-app stream` in the job's environment (not a setting): which submission a status file belongs to
SUBMISSION_ENV = "RAY_APP_STREAM_SUBMISSION_ID"


class StreamStatus(BaseModel):
    pid: int
    submission_id: str | None = None  # the Ray job that wrote it (None: the driver was started by hand)
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
