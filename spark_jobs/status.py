"""The streaming job's status: what each query last did, for `ray-app stream status`, `ray-app status` and tests.

It lives in Elasticsearch (index ``stream-status``, one document per ``stream.app_name``), not on the driver's disk:
the driver, the executors and the CLI may be on different nodes, and every one of them reaches Elasticsearch. The
driver publishes it after every micro-batch and every failure from a thread of its own (``StatusPublisher``), so a
batch never waits for it and an Elasticsearch that is away delays the status, never the stream; readers get it by
id (a real-time get: no refresh needed).

Where a batch's time goes (``phase_seconds``, summed over the batches that carried data, so a reader can take
the difference of two readings and divide by the batches in between):

- ``offsets``: asking Kafka for the newest offsets (Spark's ``latestOffset``)
- ``planning``: planning the batch's query (``queryPlanning``)
- ``checkpoint``: writing the offset log before and the commit log after the batch (``walCommit`` +
  ``commitOffsets``)
- ``write``: the batch's Spark job: reading Kafka, the record rules and the executors' bulk requests (cancels and
  corrections after the trades), dead letters for refused documents included (``bulk`` of it is time inside bulk
  requests, summed over the tasks that ran in parallel; ``tasks`` of it is a task's own time, on average: reading
  Kafka, the rules and the bulk requests; the rest of ``write`` is Spark scheduling the job and its tasks)
- ``bars``: recomputing the touched 1-minute bars from the trades and quotes (an aggregation) and writing them
- ``hours``: recomputing the touched 1-hour bars from their 1-minute bars
- ``refresh``: making the batch searchable (an Elasticsearch refresh of the indices written)
- ``other``: the rest of the trigger (Spark's bookkeeping, the Python callback)
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from pydantic import BaseModel, Field

from ray_app.config import Settings
from ray_app.ray_cluster import current_node_id

LOG = logging.getLogger(__name__)

PHASES = ("offsets", "planning", "checkpoint", "write", "tasks", "bulk", "bars", "hours", "refresh", "other")


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
    duplicates: int = 0  # trades already indexed (a copy, a replay), quotes older than the second's newest
    # Kafka offsets the last committed batch reached: topic -> partition -> next offset
    committed_offsets: dict[str, dict[str, int]] = Field(default_factory=dict)
    phase_seconds: dict[str, float] = Field(default_factory=dict)  # summed over timed batches, see above
    timed_batches: int = 0
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None  # why the query is failing now (None once a batch succeeds again)
    # the most recent failure, kept after the query recovers: an outage of Elasticsearch itself can only be read here
    # once Elasticsearch is back
    last_failure: str | None = None
    last_failure_at: str | None = None


# set by `ray-app stream` in the job's environment (not a setting): which submission a status belongs to
SUBMISSION_ENV = "RAY_APP_STREAM_SUBMISSION_ID"


class StreamStatus(BaseModel):
    pid: int
    submission_id: str | None = None  # the Ray job that wrote it (None: the driver was started by hand)
    started_at: str
    updated_at: str
    state: str = "starting"  # starting | running | stopping | stopped | failed
    checkpoint_dir: str
    queries: dict[str, QueryStatus] = Field(default_factory=dict)


class StatusPublisher:
    """Writes the newest status to Elasticsearch from a thread of its own; ``publish`` never blocks on the network.

    Only the newest status matters, so a status published while a write is in flight replaces the one waiting.
    A failed write is retried with the next status (or after ``retry_s``), and logged once per outage."""

    def __init__(self, settings: Settings, retry_s: float = 2.0) -> None:
        from ray_app.es_indices import MAPPINGS, ensure_index, es_client

        self._settings, self._retry_s = settings, retry_s
        self._es = es_client(settings)
        self._index = settings.elasticsearch.indices.stream_status
        self._node_id = current_node_id()
        try:
            ensure_index(settings, self._es, self._index, MAPPINGS["stream_status"])
        except Exception as exc:  # the writer retries; the stream does not wait for Elasticsearch
            LOG.warning("the status index %s is not there yet (%s); writing it is retried", self._index, exc)
        self._waiting: dict[str, Any] | None = None
        self._failing = False
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="stream-status", daemon=True)
        self._thread.start()

    def publish(self, status: StreamStatus) -> None:
        document = self._document(status)
        with self._wake:
            self._waiting = document
            self._wake.notify()

    def close(self, final: StreamStatus | None = None, timeout_s: float = 10.0) -> bool:
        """Publish ``final``, wait (at most ``timeout_s``) until the newest status is written; True when it is."""
        if final is not None:
            self.publish(final)
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout_s)
        return self._waiting is None and not self._failing

    def _document(self, status: StreamStatus) -> dict[str, Any]:
        from ray_app.documents import StreamStatusDocument, checked

        return checked(
            StreamStatusDocument,
            {
                "app_name": self._settings.stream.app_name,
                "submission_id": status.submission_id,
                "node_id": self._node_id,
                "host": socket.gethostname(),
                "pid": status.pid,
                "state": status.state,
                "started_at": status.started_at,
                "updated_at": status.updated_at,
                "status": status.model_dump(mode="json"),
            },
        )

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._waiting is None and not self._closed:
                    self._wake.wait()
                if self._waiting is None:
                    return
                document, self._waiting = self._waiting, None
            try:
                self._es.index(index=self._index, id=self._settings.stream.app_name, document=document)
                if self._failing:
                    LOG.info("the stream's status reaches %s again", self._index)
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    LOG.warning("cannot write the stream's status to %s (%s); retrying", self._index, exc)
                self._failing = True
                with self._wake:
                    if self._waiting is None:
                        self._waiting = document  # nothing newer: this one again
                    if self._closed:
                        return
                    self._wake.wait(self._retry_s)


def read_status(settings: Settings) -> StreamStatus | None:
    """The newest status the streaming job (``stream.app_name``) published; None when there is none (or
    Elasticsearch cannot be read)."""
    from elasticsearch import ApiError, NotFoundError, TransportError

    from ray_app.es_indices import es_client

    try:
        found = es_client(settings).get(index=settings.elasticsearch.indices.stream_status, id=settings.stream.app_name)
    except (NotFoundError, ApiError, TransportError):
        return None
    try:
        return StreamStatus.model_validate(found["_source"]["status"])
    except (KeyError, ValueError):
        return None
