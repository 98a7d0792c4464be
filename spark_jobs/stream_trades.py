"""The streaming job: Kafka trades (with their cancels and corrections), quotes, bars and dead letters ->
Elasticsearch, on Spark on Ray (RayDP).

Run it as a Ray job (it then shows in the Ray dashboard with its RayDP actors)::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m ray_app stream driver

or with ``ray-app stream`` (which submits that), or ``ray-app stream driver`` in the foreground. One streaming
query, ``records``, reads the ``trades``, ``quotes``, ``bars`` and ``dead-letters`` topics, and each micro-batch:

1. writes every record's action from the executors (``spark_jobs.records``): trades created in ``trades``, then
   cancels and corrections applied to them, each second's last quote in ``quotes``, Alpaca's own bars in
   ``vendor-bars-1m``/``vendor-bars-1h``, dead letters (invalid records with the reason, the ingest stage's dead
   letters);
2. refreshes what it wrote (the trades and quotes always: the bars read them);
3. recomputes every 1-minute bar it touched from the trades as they now stand, then every hour those minutes fall
   in (``spark_jobs.bars``), and refreshes them.

So a batch commits only once its trades are searchable and every bar it changed is exact. The query starts from
the earliest offsets the first time and from its checkpoint after that (``--reset`` is the only thing that
discards it). A query that fails (Kafka or Elasticsearch away, a task that ran
out of retries) restarts from its checkpoint with backoff; the batch that failed is replayed, and the
deterministic document ids make the replay overwrite what it wrote. SIGTERM/SIGINT stop the queries and exit 0.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ray_app import metrics
from ray_app.config import Settings, redact, redact_log_records
from ray_app.kafka_io import jaas_config
from ray_app.lifecycle import StopFlag
from ray_app.ray_cluster import connect
from ray_app.shared_storage import NotSharedStorage, check_shared, eligible_nodes, ray_nodes, ray_probe
from ray_app.times import format_ns, now_ns
from spark_jobs.status import SUBMISSION_ENV, QueryStatus, StatusPublisher, StreamStatus

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from spark_jobs.es_sink import WriteReport

LOG = logging.getLogger("ray_app.stream")
QUERIES = ("records",)
RATE_WINDOW_S = 60.0


def query_topics(settings: Settings) -> dict[str, list[str]]:
    """The Kafka topics each streaming query reads, by query name."""
    topics = settings.kafka.topics
    return {"records": [topics.trades.name, topics.quotes.name, topics.bars.name, topics.dead_letters.name]}


def query_indices(settings: Settings) -> dict[str, list[str]]:
    """The Elasticsearch indices each streaming query writes, by query name."""
    indices = settings.elasticsearch.indices
    return {"records": [indices.trades, indices.quotes, indices.bars_1m, indices.bars_1h, indices.vendor_bars_1m,
                        indices.vendor_bars_1h, indices.trade_aliases, indices.dead_letters]}


class CheckpointInUse(RuntimeError):
    """Another driver holds the checkpoint directory; two drivers on one checkpoint would corrupt it."""


@contextmanager
def checkpoint_lock(directory: Path) -> Any:
    """An exclusive lock on the checkpoint directory for the life of this driver (released by the kernel even
    when the driver is killed)."""
    directory.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = (directory / ".driver.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise CheckpointInUse(
            f"another streaming driver ({owner}) is using {directory}; stop it first (`ray-app stream stop`)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def reset_checkpoints(settings: Settings) -> bool:
    """Discard the checkpoints (the next start reads Kafka from the earliest offsets). Refuses while in use."""
    directory = settings.stream_checkpoint_dir
    if not directory.exists():
        return False
    with checkpoint_lock(directory):
        for child in directory.iterdir():
            if child.name != ".driver.lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    return True


def kafka_options(settings: Settings) -> dict[str, str]:
    """The Spark Kafka source's client options, from the same settings the Python clients use."""
    kafka = settings.kafka
    options = {
        "kafka.bootstrap.servers": kafka.bootstrap_servers,
        "kafka.security.protocol": kafka.security_protocol,
        "startingOffsets": "earliest",
        "failOnDataLoss": "true",
        "fetchOffset.numRetries": "5",
        "fetchOffset.retryIntervalMs": "1000",
    }
    if kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password:
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = jaas_config(kafka.sasl_mechanism, kafka.sasl_username,
                                                        kafka.sasl_password.get_secret_value())  # fmt: skip
    if kafka.ssl_ca_location:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(kafka.ssl_ca_location)
    if settings.stream.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(settings.stream.max_offsets_per_trigger)
    return options


def kafka_stream(spark: SparkSession, settings: Settings, topics: list[str]) -> DataFrame:
    from pyspark.sql import functions as F

    reader = spark.readStream.format("kafka").option("subscribe", ",".join(topics))
    for key, value in kafka_options(settings).items():
        reader = reader.option(key, value)
    return reader.load().select("topic", "partition", "offset", F.col("timestamp").alias("kafka_ts"), "value")


@dataclass
class Supervised:
    """One streaming query and its restart bookkeeping."""

    name: str
    start: Callable[[], StreamingQuery]
    status: QueryStatus
    query: StreamingQuery | None = None
    restart_at: float = 0.0
    progress_seen: str | None = None  # run id / batch id of the progress report already in the status
    batch_error: str | None = None  # the cause of the last failed batch, in plain words
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (time, rows) of recent batches


@dataclass
class BatchClock:
    """The phases of one micro-batch measured inside foreachBatch, in seconds."""

    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - began


class StreamJob:
    """Builds the two queries, writes their micro-batches, restarts them when they fail, reports status."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        from ray_app.es_indices import client
        from spark_jobs.es_sink import sink_config
        from spark_jobs.records import register_rules

        register_rules(spark, settings)
        self.spark = spark
        self.settings = settings
        self.sink = sink_config(settings)
        self.es = client(settings)
        self.checkpoints = settings.stream_checkpoint_dir
        started = format_ns(now_ns())
        self.status = StreamStatus(pid=os.getpid(), submission_id=os.environ.get(SUBMISSION_ENV), started_at=started,
                                   updated_at=started, checkpoint_dir=str(self.checkpoints))  # fmt: skip
        self.publisher = StatusPublisher(settings)
        writes = query_indices(settings)
        starts = {"records": self._start_records}
        self.supervised = {name: Supervised(name, starts[name], self._query_status(name, writes[name]))
                           for name in QUERIES}  # fmt: skip
        self._pending_phases: dict[str, dict[int, dict[str, float]]] = {name: {} for name in QUERIES}
        self.stopping = False

    def _query_status(self, name: str, writes: list[str]) -> QueryStatus:
        self.status.queries[name] = QueryStatus(name=name, writes=writes)
        return self.status.queries[name]

    # --- the queries ---------------------------------------------------------------------------------------

    def _trigger(self, seconds: float) -> dict[str, str]:
        return {"processingTime": f"{seconds} seconds"}

    def _start_records(self) -> StreamingQuery:
        from spark_jobs.records import record_documents

        source = kafka_stream(self.spark, self.settings, query_topics(self.settings)["records"])
        return (
            record_documents(source)
            .writeStream.queryName("records")
            .foreachBatch(self._write_records)
            .option("checkpointLocation", str(self.checkpoints / "records"))
            .trigger(**self._trigger(self.settings.stream.trigger_interval_s))
            .start()
        )

    # --- the micro-batches ---------------------------------------------------------------------------------

    def _write_records(self, batch: DataFrame, batch_id: int) -> None:
        self._batch("records", batch_id, lambda clock: self._records_batch(batch, clock))

    def _parallel(self, batch: DataFrame) -> DataFrame:
        # one task per executor core: a micro-batch is often small and every task pays a fixed cost and a bulk
        # request; a big batch still keeps every core busy
        stream = self.settings.stream
        return batch.coalesce(stream.num_executors * stream.executor_cores)

    def _records_batch(self, batch: DataFrame, clock: BatchClock) -> WriteReport:
        from spark_jobs.es_sink import write_frame

        indices = self.settings.elasticsearch.indices
        with clock.phase("write"):
            report = write_frame(self._parallel(batch), self.sink)
        touched = report.touched
        # the bars are computed from the trades and quotes: searchable first whatever the settings, even when the
        # batch only found them there (a replay, a copy that reached Kafka twice)
        reads = {indices.trades, indices.quotes} if touched else set()
        self._refresh(clock, {index for index, count in report.indexed.items() if count}, needed=reads)
        if touched:
            report.add(self._bars(clock, touched))
        return report

    def _bars(self, clock: BatchClock, touched: list[str]) -> WriteReport:
        """Every 1-minute bar the batch touched, recomputed from the trades as they stand, then their hours."""
        from spark_jobs.bars import hour_bar_actions, minute_bar_actions, parse_keys, touched_hours
        from spark_jobs.es_sink import write_local

        indices = self.settings.elasticsearch.indices
        keys = parse_keys(touched)
        with clock.phase("bars"):
            minutes = write_local(self.spark, minute_bar_actions(
                self.es, indices.trades, indices.quotes, indices.bars_1m, keys), self.sink)  # fmt: skip
        with clock.phase("hours"):  # prices from the minutes by a real-time multi-get: no refresh in between
            hours = write_local(self.spark, hour_bar_actions(self.es, indices.trades, indices.bars_1m,
                                                             indices.bars_1h, touched_hours(keys)),
                                self.sink)  # fmt: skip
        minutes.add(hours)
        self._refresh(clock, {indices.bars_1m, indices.bars_1h})  # deletes count as writes too
        minutes.documents = 0  # the batch's rows are its Kafka records; bars are what they caused
        return minutes

    def _refresh(self, clock: BatchClock, written: set[str], needed: set[str] | None = None) -> None:
        """Make what the batch wrote searchable now instead of at Elasticsearch's next periodic refresh (with
        ``stream.refresh_after_batch``), and what it is about to read (``needed``) whatever the settings."""
        indices = set(needed or ())
        if self.settings.stream.refresh_after_batch:
            indices |= written
        if indices:
            with clock.phase("refresh"):
                self.es.indices.refresh(index=",".join(sorted(indices)))

    def _batch(self, name: str, batch_id: int, work: Callable[[BatchClock], WriteReport]) -> None:
        supervised = self.supervised[name]
        clock = BatchClock()
        began = time.monotonic()
        try:
            report = work(clock)
        except Exception as exc:
            # the query then ends with Py4J's wrapper of this error; the status shows this cause instead
            supervised.batch_error = failure_text(exc)
            if not self.stopping:  # a batch cut off by stop() is replayed by the next start; not a failure
                LOG.error("%s batch %d failed: %s", name, batch_id, supervised.batch_error)
            raise
        supervised.batch_error = None
        rows = report.documents
        now = time.monotonic()
        status = supervised.status
        status.batches += 1
        status.last_batch_id = batch_id
        status.last_batch_rows = rows
        status.last_batch_seconds = round(now - began, 3)
        if report.newest_produced_ms is not None:
            status.last_batch_latency_s = round(time.time() - report.newest_produced_ms / 1000, 3)
        status.rows += rows
        supervised.recent.append((now, rows))
        while supervised.recent and supervised.recent[0][0] < now - RATE_WINDOW_S:
            supervised.recent.popleft()
        status.rows_per_s = round(sum(count for _, count in supervised.recent) / RATE_WINDOW_S, 1)
        status.consecutive_failures = 0
        status.state = "running"
        status.last_error = None
        for index, count in report.indexed.items():
            status.indexed[index] = status.indexed.get(index, 0) + count
        status.rejected += report.rejected
        status.lost_dead_letters += report.lost_dead_letters
        status.split_requests += report.splits
        status.retried_documents += report.retried_items
        status.duplicates += report.duplicates
        record_batch_metrics(name, status, report.rejected, report.newest_produced_ms is not None)
        if report.rejected:
            first = report.samples[0] if report.samples else {}
            LOG.warning("%s batch %d: Elasticsearch refused %d documents, written as dead letters (first: %s, HTTP %s "
                        "%s: %s)", name, batch_id, report.rejected, first.get("doc_id"), first.get("status"),
                        first.get("type"), str(first.get("reason"))[:300])  # fmt: skip
        if report.lost_dead_letters:
            LOG.error("%s batch %d: %d dead letters were refused too; the executor log has the documents", name,
                      batch_id, report.lost_dead_letters)  # fmt: skip
        if rows:
            clock.phases["bulk"] = report.bulk_seconds
            self._pending_phases[name][batch_id] = clock.phases
            written = ", ".join(f"{index} {count:,}" for index, count in sorted(report.indexed.items()))
            LOG.info("%s batch %d: %d rows -> %s in %.2f s", name, batch_id, rows, written or "nothing", now - began)
        self._save_status()

    # --- supervision ---------------------------------------------------------------------------------------

    def _refresh_progress(self) -> bool:
        """Take each query's newest progress report into the status (its offsets, phases, rows dropped as late);
        True when one was new. A batch's report appears after its foreachBatch returns, so this runs in the loop."""
        changed = False
        for supervised in self.supervised.values():
            query = supervised.query
            try:
                progress = query.lastProgress if query is not None else None
            except Exception:  # the JVM side of a failed query; the supervisor deals with it
                progress = None
            if not progress:
                continue
            key = f"{progress.get('runId')}/{progress.get('batchId')}"
            if key == supervised.progress_seen:
                continue
            supervised.progress_seen = key
            status = supervised.status
            status.committed_offsets = _end_offsets(progress)
            measured = self._pending_phases[supervised.name].pop(int(progress.get("batchId", -1)), None)
            if measured is not None and progress.get("numInputRows"):
                for phase, seconds in batch_phases(progress, measured).items():
                    status.phase_seconds[phase] = round(status.phase_seconds.get(phase, 0.0) + seconds, 4)
                status.timed_batches += 1
            self._pending_phases[supervised.name] = {
                batch: phases for batch, phases in self._pending_phases[supervised.name].items()
                if batch > progress.get("batchId", -1)
            }  # fmt: skip
            changed = True
        return changed

    def _save_status(self) -> None:
        self.status.updated_at = format_ns(now_ns())
        self.publisher.publish(self.status)

    def run(self, stop: StopFlag) -> int:
        """Run until stopped (exit 0) or until a query fails too often in a row (exit 1)."""
        stream = self.settings.stream
        self.status.state = "running"
        self._save_status()
        while not stop.is_set():
            for supervised in self.supervised.values():
                if not self._tend(supervised):
                    self._stop_all("failed")
                    return 1
            if self._refresh_progress():
                self._save_status()
            stop.wait(0.2)
        LOG.info("stopping the streaming queries (%s)", stream.app_name)
        self._stop_all("stopped")
        return 0

    def _tend(self, supervised: Supervised) -> bool:
        """Restart a query that ended, after its backoff; False once it has failed too often in a row."""
        query = supervised.query
        if query is not None and query.isActive:
            return True
        if query is not None:
            supervised.query = None
            cause = supervised.batch_error or query_failure(query)
            supervised.batch_error = None
            return self._failed(supervised, cause or "stopped without an error")
        if time.monotonic() >= supervised.restart_at:
            try:
                supervised.query = supervised.start()
                supervised.status.state = "running"
            except Exception as exc:  # a start that fails (e.g. Kafka unreachable) is retried like a failure
                return self._failed(supervised, f"did not start: {failure_text(exc)}")
        return True

    def _failed(self, supervised: Supervised, message: str) -> bool:
        stream = self.settings.stream
        status = supervised.status
        status.consecutive_failures += 1
        status.restarts += 1
        status.last_error = status.last_failure = message
        status.last_failure_at = format_ns(now_ns())
        status.state = "restarting"
        delay = min(stream.restart_backoff_min_s * 2 ** (status.consecutive_failures - 1),
                    stream.restart_backoff_max_s)  # fmt: skip
        supervised.restart_at = time.monotonic() + delay
        LOG.error("query %s failed (%d in a row): %s; restarting from its checkpoint in %.0f s",
                  supervised.name, status.consecutive_failures, message, delay)  # fmt: skip
        if status.consecutive_failures >= stream.max_consecutive_failures:
            status.state = "failed"
            LOG.error("query %s failed %d times in a row; giving up", supervised.name, status.consecutive_failures)
            return False
        self._save_status()
        return True

    def _stop_all(self, state: str) -> None:
        self.stopping = True
        self._refresh_progress()
        for supervised in self.supervised.values():
            if supervised.query is not None:
                try:
                    supervised.query.stop()
                except Exception as exc:  # stopping is best effort; the checkpoint is consistent either way
                    LOG.warning("stopping %s: %s", supervised.name, failure_text(exc))
            supervised.status.state = state
        self.status.state = state
        self._save_status()


def record_batch_metrics(query: str, status: QueryStatus, refused: int, timed: bool) -> None:
    """The batch just written, in the platform's metrics (ray_app.metrics): the same numbers as its status."""
    metrics.set_gauge("stream_batch_duration_seconds", status.last_batch_seconds, query=query)
    metrics.set_gauge("stream_batch_rows", status.last_batch_rows, query=query)
    metrics.inc("stream_rows", status.last_batch_rows, query=query)
    metrics.inc("stream_refused_documents", refused, query=query)
    if timed and status.last_batch_latency_s is not None:
        metrics.observe("stream_indexed_latency_seconds", max(status.last_batch_latency_s, 0.0), query=query)


def batch_phases(progress: dict[str, Any], measured: dict[str, float]) -> dict[str, float]:
    """One batch's time by phase (see spark_jobs.status), from Spark's progress report and what foreachBatch
    measured itself."""
    durations = {key: value / 1000 for key, value in (progress.get("durationMs") or {}).items()}
    phases = {
        "offsets": durations.get("latestOffset", 0.0),
        "planning": durations.get("queryPlanning", 0.0),
        "checkpoint": durations.get("walCommit", 0.0) + durations.get("commitOffsets", 0.0),
        **{name: measured.get(name, 0.0) for name in ("write", "bulk", "bars", "hours", "refresh")},
    }
    inside = sum(measured.get(name, 0.0) for name in ("write", "bars", "hours", "refresh"))
    accounted = phases["offsets"] + phases["planning"] + phases["checkpoint"] + inside
    phases["other"] = max(durations.get("triggerExecution", accounted) - accounted, 0.0)
    return phases


def _end_offsets(progress: dict[str, Any]) -> dict[str, dict[str, int]]:
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


def _one_line(text: str, limit: int = 500) -> str:
    return redact(" ".join(text.split()))[:limit]


def java_failure_text(throwable: Any) -> str:
    """A Java exception in plain words: our sink's failure if it is in the cause chain, else the deepest cause
    (the Kafka or I/O error under Spark's wrappers)."""
    chain: list[Any] = []
    while throwable is not None and len(chain) < 20:
        chain.append(throwable)
        throwable = throwable.getCause()
    for item in chain:
        if item.getClass().getName().endswith(".BulkWriteFailed"):
            return _one_line(f"Elasticsearch: {item.getMessage()}")
    deepest = chain[-1]
    message = deepest.getMessage() or ""
    if "An exception was raised by the Python Proxy" in message:
        message = message.rsplit("\n", 2)[-2] if message.count("\n") >= 2 else message
    return _one_line(f"{deepest.getClass().getSimpleName()}: {message}")


def failure_text(exc: BaseException) -> str:
    """An exception from PySpark, Py4J or Python in plain words, without the wrappers' boilerplate."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return java_failure_text(java)
        except Exception:  # the JVM is gone: fall back to the text
            pass
    return _one_line(f"{type(exc).__name__}: {exc}")


def query_failure(query: StreamingQuery) -> str | None:
    """Why a query that is no longer active ended, or None when it was stopped."""
    try:
        failure = query._jsq.exception()
        if not failure.isDefined():
            return None
        return java_failure_text(failure.get())
    except Exception:
        error = query.exception()
        return _one_line(str(error)) if error else None


def run(settings: Settings, reset: bool = False) -> int:
    """Start Spark on Ray, run the streaming queries until stopped; the exit status of the job."""
    from ray_app.es_indices import ensure_indices
    from ray_app.kafka_topics import ensure_topics
    from spark_jobs.session import start_spark, stop_spark

    if reset and reset_checkpoints(settings):
        LOG.info("discarded the checkpoints in %s: Kafka is read from the start", settings.stream_checkpoint_dir)
    with checkpoint_lock(settings.stream_checkpoint_dir):
        ensure_topics(settings)
        ensure_indices(settings)
        connect(settings)
        executor_nodes = eligible_nodes(ray_nodes(), settings.stream.executor_resources)
        if not executor_nodes:
            raise NotSharedStorage(f"stream.executor_resources: no Ray node offers {settings.stream.executor_resources}"
                                   " (start one with `ray start --resources ...`)")  # fmt: skip
        check_shared(settings.stream_checkpoint_dir, "stream.checkpoint_dir", executor_nodes, ray_probe)
        LOG.info("starting Spark on Ray (%d executor(s) x %d cores, %s)", settings.stream.num_executors,
                 settings.stream.executor_cores, settings.stream.executor_memory)  # fmt: skip
        spark = start_spark(settings)
        LOG.info(metrics.series_note())
        try:
            job = StreamJob(spark, settings)
            LOG.info("streaming %s -> Elasticsearch %s; checkpoints in %s", ", ".join(
                t.name for t in settings.kafka.topics.all()), settings.elasticsearch.url, job.checkpoints)  # fmt: skip
            # after ray.init, which installs its own SIGTERM handler
            with StopFlag().on_signals() as stop:
                try:
                    return job.run(stop)
                finally:
                    if not job.publisher.close():
                        LOG.warning("the stream's final status did not reach Elasticsearch")
        finally:
            stop_spark()


def configure_logging() -> None:
    """The driver's log: INFO to stdout (what `ray job logs` shows), passwords masked, the chatty clients quiet."""
    redact_log_records()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)  # fmt: skip
    for noisy in ("py4j", "elastic_transport", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":  # `python -m spark_jobs.stream_trades [--reset]`: the same as `ray-app stream driver`
    from ray_app.cli import main

    sys.exit(main(["stream", "driver", *sys.argv[1:]], prog_name="python -m spark_jobs.stream_trades"))
