"""The streaming job's Elasticsearch sink, from Python: bulk requests made by the JVM (spark_jobs/jvm).

Each row is one bulk action (``op``: index, create, update, delete; a ``version`` for external versioning), so a
trade is created once, a cancel or correction updates it, a quote keeps the latest of its second, a bar no trade
is left in is deleted; the report names the 1-minute bars the writes touched, which the driver then recomputes.

Why our own sink and not the ES-Hadoop streaming sink: one micro-batch feeds several indices and the bar query
needs update mode (ES-Hadoop's streaming sink writes one index, append only); a document Elasticsearch refuses
must become a dead letter, not fail the batch forever; and it speaks to any Elasticsearch 8 with the platform's
client settings (the integration-test distribution has no ``GET /``, which ES-Hadoop needs to detect the version).

Why in the JVM: the executors send the bulk requests themselves (``EsBulkSink.write``), so a micro-batch pays
no round trip through a Python worker (Arrow out, a forked worker, the Python client, a report back), which
was most of the fixed cost of a small batch. A document Elasticsearch refuses becomes a dead letter in the same
task (``DeadLetters.java``), so refused documents never travel to the driver. The driver writes its few own
documents (the hour bars) through the same code in its JVM (``EsBulkSink.writeLocal``). What the sink does with
refusals and transient errors is described in ``BulkClient.java``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from ray_app.config import Settings

SINK_CLASS = "io.github.raytrading.stream.EsBulkSink"


def sink_config(settings: Settings, return_ids: bool = False) -> str:
    """The sink's configuration (JSON; it travels to the executors with each task, so it holds the credentials)."""
    from spark_jobs.record_rules import limits

    es = settings.elasticsearch
    stream = settings.stream
    text = stream.es_batch_bytes
    multiplier = {"kb": 1024, "mb": 1024 * 1024}.get(text[-2:], 1)
    authorization = None
    if es.api_key:
        authorization = f"ApiKey {es.api_key.get_secret_value()}"
    elif es.username and es.password:
        pair = f"{es.username}:{es.password.get_secret_value()}".encode()
        authorization = f"Basic {base64.b64encode(pair).decode()}"
    return json.dumps(
        {
            "url": es.url,
            "authorization": authorization,
            "ca_certs": str(es.ca_certs) if es.ca_certs else None,
            "verify_certs": es.verify_certs,
            "request_timeout_s": es.request_timeout_s,
            "batch_entries": stream.es_batch_entries,
            "batch_bytes": int(text.rstrip("kmb")) * multiplier,
            "retry_count": stream.es_retry_count,
            "retry_wait_s": stream.es_retry_wait_s,
            "return_ids": return_ids,
            "max_in_flight": stream.es_max_in_flight,
            "dead_letters_index": es.indices.dead_letters,
            "trade_aliases_index": es.indices.trade_aliases,
            "limits": limits(),
        }
    )


@dataclass
class WriteReport:
    """What one write did: documents indexed per index (dead letters included), the documents Elasticsearch
    refused (each written as a dead letter by the sink) with a few samples for the log, and where the time went."""

    indexed: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    lost_dead_letters: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)
    touched: list[str] = field(default_factory=list)  # 1-minute bars (symbol|start seconds) the writes touched
    duplicates: int = 0  # trades already there, quotes older than the one there, bars already deleted
    documents: int = 0
    bytes: int = 0
    requests: int = 0
    splits: int = 0
    retried_items: int = 0
    retried_requests: int = 0
    bulk_seconds: float = 0.0
    task_seconds: float = 0.0
    tasks: int = 0
    newest_produced_ms: int | None = None

    @classmethod
    def from_json(cls, text: str) -> WriteReport:
        return cls(**json.loads(text))

    def add(self, other: WriteReport) -> None:
        for index, count in other.indexed.items():
            self.indexed[index] = self.indexed.get(index, 0) + count
        self.samples += other.samples
        for index, ids in other.ids.items():
            self.ids.setdefault(index, []).extend(ids)
        self.touched = sorted(set(self.touched) | set(other.touched))
        for name in (
            "rejected",
            "lost_dead_letters",
            "documents",
            "bytes",
            "requests",
            "splits",
            "retried_items",
            "retried_requests",
            "tasks",
            "duplicates",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bulk_seconds += other.bulk_seconds
        self.task_seconds += other.task_seconds
        if other.newest_produced_ms is not None:
            self.newest_produced_ms = max(self.newest_produced_ms or other.newest_produced_ms, other.newest_produced_ms)


def write_frame(documents: DataFrame, config: str, tasks: int) -> WriteReport:
    """Write every row of ``documents`` (index, doc_id, source[, op, version, bar_key][, produced_ms]) from the
    executors, in at most ``tasks`` tasks of about equal size (``BalancedCoalescer.java``)."""
    jvm = documents.sparkSession.sparkContext._jvm
    return WriteReport.from_json(_sink(jvm).write(documents._jdf, config, tasks))


def write_local(
    spark: SparkSession, documents: list[tuple[str, str, str]] | list[tuple[str, str, str | None, str]], config: str
) -> WriteReport:
    """Write a few documents from the driver (the same bulk code, in the driver's JVM): (index, doc_id, source),
    or (index, doc_id, source or None, "index" | "delete")."""
    if not documents:
        return WriteReport()
    jvm = spark.sparkContext._jvm
    return WriteReport.from_json(_sink(jvm).writeLocal(json.dumps(documents), config))


def _sink(jvm: Any) -> Any:
    owner: Any = jvm
    for part in SINK_CLASS.split("."):
        owner = getattr(owner, part)
    return owner
