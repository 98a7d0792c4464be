"""The streaming job: Kafka trades, bars and dead letters -> Elasticsearch, on Spark on Ray (RayDP).

Run it as a Ray job (it then shows in the Ray dashboard with its RayDP actors)::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m spark_jobs.stream_trades

or with ``ray-app stream``. Three streaming queries share one Spark session:

``records``
    every record of the ``trades``, ``bars`` and ``dead-letters`` topics -> ``trades`` (one document per trade),
    ``bars-1m``/``bars-1h`` (Alpaca's own bars), ``dead-letters`` (invalid records with the reason, and the
    ingest stage's dead letters). Stateless.
``bars-1m`` and ``bars-1h``
    the ``trades`` topic -> 1-minute and 1-hour bars (``spark_jobs.bars``), update mode, watermark.

Both start from the earliest offsets the first time and from their checkpoints after that (``--reset`` is the
only thing that discards the checkpoints). A query that fails (Kafka or Elasticsearch away, a task that ran
out of retries) restarts from its checkpoint with backoff; the batch that failed is replayed, and the
deterministic document ids make the replay overwrite what it wrote. SIGTERM/SIGINT stop the queries and exit 0.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ray_app.config import ConfigError, Settings, load_settings
from ray_app.lifecycle import StopFlag
from ray_app.schemas import format_ns, now_ns
from spark_jobs.status import QueryStatus, StreamStatus, write_status

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from spark_jobs.es_sink import BulkOptions, WriteReport

LOG = logging.getLogger("ray_app.stream")
BAR_QUERIES = {"bars-1m": "1Min", "bars-1h": "1Hour"}


def query_topics(settings: Settings) -> dict[str, list[str]]:
    """The Kafka topics each streaming query reads, by query name."""
    topics = settings.kafka.topics
    return {
        "records": [topics.trades.name, topics.bars.name, topics.dead_letters.name],
        **{name: [topics.trades.name] for name in BAR_QUERIES},
    }


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
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if kafka.sasl_mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")  # fmt: skip
        secret = kafka.sasl_password.get_secret_value()
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f"{module} required username={json.dumps(kafka.sasl_username)} password={json.dumps(secret)};"
        )
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


class StreamJob:
    """Builds the two queries, writes their micro-batches, restarts them when they fail, reports status."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        from spark_jobs.es_sink import BulkOptions

        self.spark = spark
        self.settings = settings
        self.bulk_options: BulkOptions = BulkOptions.of(settings)
        self.checkpoints = settings.stream_checkpoint_dir
        started = format_ns(now_ns())
        self.status = StreamStatus(pid=os.getpid(), started_at=started, updated_at=started,
                                   checkpoint_dir=str(self.checkpoints))  # fmt: skip
        self.supervised = {
            "records": Supervised("records", self._start_records, self._query_status("records")),
            **{name: Supervised(name, partial(self._start_bars, name), self._query_status(name))
               for name in BAR_QUERIES},
        }  # fmt: skip

    def _query_status(self, name: str) -> QueryStatus:
        self.status.queries[name] = QueryStatus(name=name)
        return self.status.queries[name]

    # --- the queries ---------------------------------------------------------------------------------------

    def _trigger(self) -> dict[str, str]:
        return {"processingTime": f"{self.settings.stream.trigger_interval_s} seconds"}

    def _start_records(self) -> StreamingQuery:
        source = kafka_stream(self.spark, self.settings, query_topics(self.settings)["records"])
        return (
            source.writeStream.queryName("records")
            .foreachBatch(self._write_records)
            .option("checkpointLocation", str(self.checkpoints / "records"))
            .trigger(**self._trigger())
            .start()
        )

    def _start_bars(self, name: str) -> StreamingQuery:
        from spark_jobs.bars import bars_from_trades
        from spark_jobs.records import parsed_trades, trade_columns

        stream = self.settings.stream
        topic = self.settings.kafka.topics.trades.name
        trades = trade_columns(parsed_trades(kafka_stream(self.spark, self.settings, [topic]), topic,
                                             stream.max_future_s))  # fmt: skip
        return (
            bars_from_trades(trades, BAR_QUERIES[name], stream.bar_lateness_s)
            .writeStream.queryName(name)
            .outputMode("update")
            .foreachBatch(partial(self._write_bars, name))
            .option("checkpointLocation", str(self.checkpoints / name))
            .trigger(**self._trigger())
            .start()
        )

    # --- the micro-batches ---------------------------------------------------------------------------------

    def _write_records(self, batch: DataFrame, batch_id: int) -> None:
        from spark_jobs.records import record_documents

        self._write("records", batch, batch_id, lambda frame: record_documents(frame, self.settings))

    def _write_bars(self, name: str, batch: DataFrame, batch_id: int) -> None:
        from spark_jobs.bars import bar_documents

        indices = self.settings.elasticsearch.indices.by_key()
        self._write(name, batch, batch_id, lambda frame: bar_documents(frame, indices))

    def _write(self, name: str, batch: DataFrame, batch_id: int, documents: Callable[[DataFrame], DataFrame]) -> None:
        from spark_jobs.es_sink import write_documents

        began = time.monotonic()
        stream = self.settings.stream
        # one task per executor core: a micro-batch is often small, and every task pays for a Python worker
        # round trip and a bulk request; a big batch still keeps every core busy
        report = write_documents(documents(batch).coalesce(stream.num_executors * stream.executor_cores),
                                 self.bulk_options)  # fmt: skip
        if report.rejected:
            self._dead_letter_rejections(report)
        rows = sum(report.indexed.values()) + len(report.rejected)  # one document per record (or bar)
        seconds = time.monotonic() - began
        status = self.supervised[name].status
        status.batches += 1
        status.last_batch_id = batch_id
        status.last_batch_rows = rows
        status.last_batch_seconds = round(seconds, 3)
        status.rows += rows
        status.consecutive_failures = 0
        status.state = "running"
        status.last_error = None
        for index, count in report.indexed.items():
            status.indexed[index] = status.indexed.get(index, 0) + count
        status.rejected += len(report.rejected)
        if rows:
            written = ", ".join(f"{index} {count:,}" for index, count in sorted(report.indexed.items()))
            LOG.info("%s batch %d: %d documents (%s) in %.2f s", name, batch_id, rows, written, seconds)
        self._save_status()

    def _dead_letter_rejections(self, report: WriteReport) -> None:
        """Documents Elasticsearch refused (e.g. a mapping conflict) -> dead letters, so the batch can commit."""
        from spark_jobs.es_sink import write_documents

        index = self.settings.elasticsearch.indices.dead_letters
        rows = [
            (index, f"rejected|{item['index']}|{item['doc_id']}", json.dumps({
                "schema_version": 1, "stage": "stream", "reason": "rejected", "detail": item["detail"],
                "raw": item["source"], "raw_encoding": "utf-8", "intended_index": item["index"],
                "timestamp": format_ns(now_ns()), "received_at": format_ns(now_ns()),
            }))
            for item in report.rejected
        ]  # fmt: skip
        LOG.warning("Elasticsearch rejected %d documents; they go to %s", len(rows), index)
        frame = self.spark.createDataFrame(rows, "index string, doc_id string, source string")
        again = write_documents(frame, self.bulk_options)
        if again.rejected:
            raise RuntimeError(f"dead-letter index {index} rejected documents too: {again.rejected[0]['detail']}")

    # --- supervision ---------------------------------------------------------------------------------------

    def _refresh_progress(self) -> bool:
        """Take each query's newest progress report into the status (its offsets, rows dropped as late);
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
            supervised.status.committed_offsets = _end_offsets(progress)
            for operator in progress.get("stateOperators", []):
                supervised.status.dropped_late += operator.get("numRowsDroppedByWatermark", 0)
            changed = True
        return changed

    def _save_status(self) -> None:
        self.status.updated_at = format_ns(now_ns())
        write_status(self.settings, self.status)

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
            stop.wait(0.5)
        LOG.info("stopping the streaming queries (%s)", stream.app_name)
        self._stop_all("stopped")
        return 0

    def _tend(self, supervised: Supervised) -> bool:
        """Restart a query that ended, after its backoff; False once it has failed too often in a row."""
        query = supervised.query
        if query is not None and query.isActive:
            return True
        if query is not None:
            error = query.exception()
            supervised.query = None
            return self._failed(supervised, _one_line(str(error)) if error else "stopped without an error")
        if time.monotonic() >= supervised.restart_at:
            try:
                supervised.query = supervised.start()
                supervised.status.state = "running"
            except Exception as exc:  # a start that fails (e.g. Kafka unreachable) is retried like a failure
                return self._failed(supervised, f"did not start: {_one_line(str(exc))}")
        return True

    def _failed(self, supervised: Supervised, message: str) -> bool:
        stream = self.settings.stream
        status = supervised.status
        status.consecutive_failures += 1
        status.restarts += 1
        status.last_error = message
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
        self._refresh_progress()
        for supervised in self.supervised.values():
            if supervised.query is not None:
                try:
                    supervised.query.stop()
                except Exception as exc:  # stopping is best effort; the checkpoint is consistent either way
                    LOG.warning("stopping %s: %s", supervised.name, _one_line(str(exc)))
            supervised.status.state = state
        self.status.state = state
        self._save_status()


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


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("at ", "File ", "...", "Traceback"))]
    return (useful[0] if useful else text)[:500]


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
        LOG.info("starting Spark on Ray (%d executor(s) x %d cores, %s)", settings.stream.num_executors,
                 settings.stream.executor_cores, settings.stream.executor_memory)  # fmt: skip
        spark = start_spark(settings)
        try:
            job = StreamJob(spark, settings)
            LOG.info("streaming %s -> Elasticsearch %s; checkpoints in %s", ", ".join(
                t.name for t in settings.kafka.topics.all()), settings.elasticsearch.url, job.checkpoints)  # fmt: skip
            # after ray.init, which installs its own SIGTERM handler
            with StopFlag().on_signals() as stop:
                return job.run(stop)
        finally:
            stop_spark()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.stream_trades", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a YAML settings file (as `ray-app --config`)")
    parser.add_argument("--reset", action="store_true", help="discard the checkpoints first (re-read Kafka)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)  # fmt: skip
    for noisy in ("py4j", "elastic_transport", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return run(settings, reset=args.reset)
    except CheckpointInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
