"""The streaming job: Kafka trades (with their cancels and corrections), quotes, bars and dead letters ->
Elasticsearch, on Spark on Ray (RayDP).

Run it as a Ray job (it then shows in the Ray dashboard with its RayDP actors)::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m ray_app stream driver

or with ``ray-app stream`` (which submits that), or ``ray-app stream driver`` in the foreground. One streaming
query, ``records``, reads the ``trades``, ``quotes``, ``bars`` and ``dead-letters`` topics, and each micro-batch:

1. writes every record's action from the executors (``spark_jobs.record_rules``): trades created in ``trades``, then
   cancels and corrections applied to them, each second's last quote in ``quotes``, Alpaca's own bars in
   ``vendor-bars-1m``/``vendor-bars-1h``, dead letters (invalid records with the reason, the ingest stage's dead
   letters);
2. refreshes what it wrote (the trades and quotes always: the bars read them);
3. recomputes every 1-minute bar it touched from the trades as they now stand, then every hour those minutes fall
   in (``spark_jobs.bar_recompute``), and refreshes them.

So a batch commits only once its trades are searchable and every bar it changed is exact. The query starts from
the earliest offsets the first time and from its checkpoint after that (``--reset`` is the only thing that
discards it). A query that fails (Kafka or Elasticsearch away, a task that ran
out of retries) restarts from its checkpoint with backoff; the batch that failed is replayed, and the
deterministic document ids make the replay overwrite what it wrote. SIGTERM/SIGINT stop the query and exit 0.

The job's parts, each a module of this package: the Kafka source (``kafka_source``), the record rules
(``record_rules``, run in the job's JVM code), the bulk sink (``es_sink``), the bar recomputation
(``bar_recompute``), the supervisor that restarts the query (``supervisor``), failures in plain words
(``failures``), checkpoints (``checkpoints``), the status it publishes (``status``); its control as a Ray job
(submit, stop, wait, lag: ``control``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ray_app import metrics
from ray_app.config import Settings
from ray_app.config.redaction import redact_log_records
from ray_app.lifecycle import StopFlag
from ray_app.ray_cluster import connect
from ray_app.times import format_ns, now_ns
from spark_jobs.checkpoints import check_executors_share, checkpoint_lock, reset_checkpoints
from spark_jobs.failures import failure_text
from spark_jobs.kafka_source import kafka_stream
from spark_jobs.status import SUBMISSION_ENV, QueryStatus, StatusPublisher, StreamStatus
from spark_jobs.supervisor import QUERY, Supervisor

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from spark_jobs.es_sink import WriteReport

LOG = logging.getLogger("ray_app.stream")
RATE_WINDOW_S = 60.0


def indices_written(settings: Settings) -> list[str]:
    """The Elasticsearch indices the stream writes."""
    indices = settings.elasticsearch.indices
    return [
        indices.trades,
        indices.quotes,
        indices.bars_1m,
        indices.bars_1h,
        indices.vendor_bars_1m,
        indices.vendor_bars_1h,
        indices.trade_aliases,
        indices.dead_letters,
    ]


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
    """Builds the query and writes its micro-batches; its ``supervisor`` keeps it running."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        from ray_app.es_indices import es_client
        from spark_jobs.es_sink import sink_config
        from spark_jobs.record_rules import register_rules

        register_rules(spark, settings)
        self.spark = spark
        self.settings = settings
        self.sink = sink_config(settings)
        self.es = es_client(settings)
        self.checkpoints = settings.stream_checkpoint_dir
        started = format_ns(now_ns())
        self.status = StreamStatus(
            pid=os.getpid(),
            submission_id=os.environ.get(SUBMISSION_ENV),
            started_at=started,
            updated_at=started,
            checkpoint_dir=str(self.checkpoints),
        )
        self.status.queries[QUERY] = QueryStatus(name=QUERY, writes=indices_written(settings))
        self.publisher = StatusPublisher(settings)
        self.supervisor = Supervisor(settings, self.status, self.publisher, self._start)

    def _start(self) -> StreamingQuery:
        from spark_jobs.record_rules import record_documents

        return (
            record_documents(kafka_stream(self.spark, self.settings))
            .writeStream.queryName(QUERY)
            .foreachBatch(self._write_batch)
            .option("checkpointLocation", str(self.checkpoints / QUERY))
            .trigger(processingTime=f"{self.settings.stream.trigger_interval_s} seconds")
            .start()
        )

    # --- the micro-batches ---------------------------------------------------------------------------------

    def _write_batch(self, batch: DataFrame, batch_id: int) -> None:
        self._batch(batch_id, lambda clock: self._records_batch(batch, clock))

    def _tasks(self) -> int:
        # one task per executor core: a micro-batch is often small and every task pays a fixed cost and a bulk
        # request; the sink balances the Kafka partitions over them by size, so a big batch keeps every core busy
        stream = self.settings.stream
        return stream.num_executors * stream.executor_cores

    def _records_batch(self, batch: DataFrame, clock: BatchClock) -> WriteReport:
        from spark_jobs.es_sink import write_frame

        indices = self.settings.elasticsearch.indices
        with clock.phase("write"):
            report = write_frame(batch, self.sink, self._tasks())
        clock.phases["tasks"] = report.task_seconds / max(report.tasks, 1)
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
        from spark_jobs.bar_recompute import hour_bar_actions, minute_bar_actions, parse_keys, touched_hours
        from spark_jobs.es_sink import write_local

        indices = self.settings.elasticsearch.indices
        keys = parse_keys(touched)
        with clock.phase("bars"):
            minutes = write_local(
                self.spark,
                minute_bar_actions(self.es, indices.trades, indices.quotes, indices.bars_1m, keys),
                self.sink,
            )
        with clock.phase("hours"):  # prices from the minutes by a real-time multi-get: no refresh in between
            hours = write_local(
                self.spark,
                hour_bar_actions(self.es, indices.trades, indices.bars_1m, indices.bars_1h, touched_hours(keys)),
                self.sink,
            )
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

    def _batch(self, batch_id: int, work: Callable[[BatchClock], WriteReport]) -> None:
        supervised = self.supervisor.supervised
        name = supervised.name
        clock = BatchClock()
        began = time.monotonic()
        try:
            report = work(clock)
        except Exception as exc:
            # the query then ends with Py4J's wrapper of this error; the status shows this cause instead
            supervised.batch_error = failure_text(exc)
            if not self.supervisor.stopping:  # a batch cut off by stop() is replayed by the next start; not a failure
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
            LOG.warning(
                "%s batch %d: Elasticsearch refused %d documents, written as dead letters (first: %s, HTTP %s %s: %s)",
                name,
                batch_id,
                report.rejected,
                first.get("doc_id"),
                first.get("status"),
                first.get("type"),
                str(first.get("reason"))[:300],
            )
        if report.lost_dead_letters:
            LOG.error(
                "%s batch %d: %d dead letters were refused too; the executor log has the documents",
                name,
                batch_id,
                report.lost_dead_letters,
            )
        if rows:
            clock.phases["bulk"] = report.bulk_seconds
            self.supervisor.pending_phases[batch_id] = clock.phases
            written = ", ".join(f"{index} {count:,}" for index, count in sorted(report.indexed.items()))
            LOG.info("%s batch %d: %d rows -> %s in %.2f s", name, batch_id, rows, written or "nothing", now - began)
        self.supervisor.save_status()


def record_batch_metrics(query: str, status: QueryStatus, refused: int, timed: bool) -> None:
    """The batch just written, in the platform's metrics (ray_app.metrics): the same numbers as its status."""
    metrics.set_gauge("stream_batch_duration_seconds", status.last_batch_seconds, query=query)
    metrics.set_gauge("stream_batch_rows", status.last_batch_rows, query=query)
    metrics.inc("stream_rows", status.last_batch_rows, query=query)
    metrics.inc("stream_refused_documents", refused, query=query)
    if timed and status.last_batch_latency_s is not None:
        metrics.observe("stream_indexed_latency_seconds", max(status.last_batch_latency_s, 0.0), query=query)


@dataclass(frozen=True)
class StreamReport:
    """How a run of the stream ended (the stage contract's report): stopped on request, or failed too often."""

    state: str
    batches: int
    rows: int

    @property
    def ok(self) -> bool:
        return self.state != "failed"

    def line(self) -> str:
        return f"stream: {self.state} after {self.batches:,} batches, {self.rows:,} Kafka records"


def run(settings: Settings, stop: StopFlag, reset: bool = False) -> StreamReport:
    """Start Spark on Ray and run the streaming query until ``stop`` is set or it fails too often in a row.

    SIGTERM and Ctrl-C set ``stop`` once the query runs (after ``ray.init``, which installs its own SIGTERM handler);
    settings Kafka refuses fail before Ray or Spark is started."""
    from ray_app.es_indices import ensure_indices
    from ray_app.kafka_topics import ensure_topics
    from spark_jobs.session import start_spark, stop_spark

    if reset and reset_checkpoints(settings):
        LOG.info("discarded the checkpoints in %s: Kafka is read from the start", settings.stream_checkpoint_dir)
    with checkpoint_lock(settings.stream_checkpoint_dir):
        ensure_topics(settings)
        ensure_indices(settings)
        connect(settings)
        check_executors_share(settings)
        LOG.info(
            "starting Spark on Ray (%d executor(s) x %d cores, %s)",
            settings.stream.num_executors,
            settings.stream.executor_cores,
            settings.stream.executor_memory,
        )
        spark = start_spark(settings)
        LOG.info(metrics.series_note())
        metrics.start_at_zero("stream_query_restarts")  # "no restart yet" is a 0 on the panel, not a missing series
        try:
            job = StreamJob(spark, settings)
            LOG.info(
                "streaming %s -> Elasticsearch %s; checkpoints in %s",
                ", ".join(t.name for t in settings.kafka.topics.all()),
                settings.elasticsearch.url,
                job.checkpoints,
            )
            try:
                with stop.on_signals():
                    job.supervisor.run(stop)
            finally:
                if not job.publisher.close():
                    LOG.warning("the stream's final status did not reach Elasticsearch")
            query = job.status.queries[QUERY]
            return StreamReport(job.status.state, query.batches, query.rows)
        finally:
            stop_spark()


def configure_logging() -> None:
    """The driver's log: INFO to stdout (what `ray job logs` shows), passwords masked, the chatty clients quiet."""
    redact_log_records()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    for noisy in ("py4j", "elastic_transport", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
