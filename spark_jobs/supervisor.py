"""Keeps the stream's query running: restarts it from its checkpoint with backoff when it fails (Kafka or
Elasticsearch away, a task out of retries), gives up after ``stream.max_consecutive_failures`` in a row, takes
Spark's progress reports (committed offsets, the time of each batch's phases) into the status it publishes, and
stops the query on request."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ray_app import metrics
from ray_app.config import Settings
from ray_app.lifecycle import StopFlag
from ray_app.times import format_ns, now_ns
from spark_jobs.failures import failure_text, query_failure
from spark_jobs.status import QueryStatus, StatusPublisher, StreamStatus

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

LOG = logging.getLogger("ray_app.stream")
QUERY = "records"  # the stream's one query, by the name its status and lag carry


@dataclass
class Supervised:
    """The streaming query and its restart bookkeeping."""

    name: str
    start: Callable[[], StreamingQuery]
    status: QueryStatus
    query: StreamingQuery | None = None
    restart_at: float = 0.0
    progress_seen: str | None = None  # run id / batch id of the progress report already in the status
    batch_error: str | None = None  # the cause of the last failed batch, in plain words
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (time, rows) of recent batches


class Supervisor:
    """Runs the query until stopped, restarting it when it fails; publishes the stream's status."""

    def __init__(
        self, settings: Settings, status: StreamStatus, publisher: StatusPublisher, start: Callable[[], StreamingQuery]
    ) -> None:
        self.settings = settings
        self.status = status
        self.publisher = publisher
        self.supervised = Supervised(QUERY, start, status.queries[QUERY])
        self.pending_phases: dict[int, dict[str, float]] = {}  # batch id -> phases measured in foreachBatch
        self.stopping = False

    def save_status(self) -> None:
        self.status.updated_at = format_ns(now_ns())
        self.publisher.publish(self.status)

    def refresh_progress(self) -> bool:
        """Take the query's newest progress report into the status (its offsets, phases); True when it was new. A
        batch's report appears after its foreachBatch returns, so this runs in the loop."""
        supervised = self.supervised
        query = supervised.query
        try:
            progress = query.lastProgress if query is not None else None
        except Exception:  # the JVM side of a failed query; tend() deals with it
            progress = None
        if not progress:
            return False
        key = f"{progress.get('runId')}/{progress.get('batchId')}"
        if key == supervised.progress_seen:
            return False
        supervised.progress_seen = key
        status = supervised.status
        status.committed_offsets = end_offsets(progress)
        measured = self.pending_phases.pop(int(progress.get("batchId", -1)), None)
        if measured is not None and progress.get("numInputRows"):
            for phase, seconds in batch_phases(progress, measured).items():
                status.phase_seconds[phase] = round(status.phase_seconds.get(phase, 0.0) + seconds, 4)
            status.timed_batches += 1
        self.pending_phases = {
            batch: phases for batch, phases in self.pending_phases.items() if batch > progress.get("batchId", -1)
        }
        return True

    def run(self, stop: StopFlag) -> int:
        """Run until stopped (exit 0) or until the query fails too often in a row (exit 1)."""
        self.status.state = "running"
        self.save_status()
        while not stop.is_set():
            if not self.tend():
                self.stop_all("failed")
                return 1
            if self.refresh_progress():
                self.save_status()
            stop.wait(0.2)
        LOG.info("stopping the streaming query (%s)", self.settings.stream.app_name)
        self.stop_all("stopped")
        return 0

    def tend(self) -> bool:
        """Restart the query when it ended, after its backoff; False once it has failed too often in a row."""
        supervised = self.supervised
        query = supervised.query
        if query is not None and query.isActive:
            return True
        if query is not None:
            supervised.query = None
            cause = supervised.batch_error or query_failure(query)
            supervised.batch_error = None
            return self.failed(cause or "stopped without an error")
        if time.monotonic() >= supervised.restart_at:
            try:
                supervised.query = supervised.start()
                supervised.status.state = "running"
            except Exception as exc:  # a start that fails (e.g. Kafka unreachable) is retried like a failure
                return self.failed(f"did not start: {failure_text(exc)}")
        return True

    def failed(self, message: str) -> bool:
        stream = self.settings.stream
        supervised = self.supervised
        status = supervised.status
        status.consecutive_failures += 1
        status.restarts += 1
        metrics.inc("stream_query_restarts")
        status.last_error = status.last_failure = message
        status.last_failure_at = format_ns(now_ns())
        status.state = "restarting"
        delay = min(stream.restart_backoff_min_s * 2 ** (status.consecutive_failures - 1), stream.restart_backoff_max_s)
        supervised.restart_at = time.monotonic() + delay
        LOG.error(
            "query %s failed (%d in a row): %s; restarting from its checkpoint in %.0f s",
            supervised.name,
            status.consecutive_failures,
            message,
            delay,
        )
        if status.consecutive_failures >= stream.max_consecutive_failures:
            status.state = "failed"
            LOG.error("query %s failed %d times in a row; giving up", supervised.name, status.consecutive_failures)
            return False
        self.save_status()
        return True

    def stop_all(self, state: str) -> None:
        self.stopping = True
        self.refresh_progress()
        supervised = self.supervised
        if supervised.query is not None:
            try:
                supervised.query.stop()
            except Exception as exc:  # stopping is best effort; the checkpoint is consistent either way
                LOG.warning("stopping %s: %s", supervised.name, failure_text(exc))
        supervised.status.state = state
        self.status.state = state
        self.save_status()


def batch_phases(progress: dict[str, Any], measured: dict[str, float]) -> dict[str, float]:
    """One batch's time by phase (see spark_jobs.status), from Spark's progress report and what foreachBatch
    measured itself."""
    durations = {key: value / 1000 for key, value in (progress.get("durationMs") or {}).items()}
    phases = {
        "offsets": durations.get("latestOffset", 0.0),
        "planning": durations.get("queryPlanning", 0.0),
        "checkpoint": durations.get("walCommit", 0.0) + durations.get("commitOffsets", 0.0),
        **{name: measured.get(name, 0.0) for name in ("write", "tasks", "bulk", "bars", "hours", "refresh")},
    }
    inside = sum(measured.get(name, 0.0) for name in ("write", "bars", "hours", "refresh"))
    accounted = phases["offsets"] + phases["planning"] + phases["checkpoint"] + inside
    phases["other"] = max(durations.get("triggerExecution", accounted) - accounted, 0.0)
    return phases


def end_offsets(progress: dict[str, Any]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = {}
    for source in progress.get("sources", []):
        end = source.get("endOffset")
        if isinstance(end, str):
            try:
                end = json.loads(end)
            except ValueError:
                continue
        if isinstance(end, dict):
            for topic, partitions in end.items():
                merged.setdefault(topic, {}).update({str(p): int(o) for p, o in partitions.items()})
    return merged
