"""Write (index, doc_id, source JSON) rows into Elasticsearch with bulk requests from the Spark executors.

Why ``foreachBatch`` with our own bulk writer and not the ES-Hadoop streaming sink:

- one micro-batch feeds several indices (trades, bars, dead letters) and the bar aggregation needs update
  mode; the ES-Hadoop streaming sink writes one index in append mode only;
- a document that Elasticsearch rejects (e.g. a mapping conflict) must become a dead letter, not fail the
  batch forever; here each rejected item comes back to the driver with its reason;
- it speaks to any Elasticsearch 8 with the same client settings as the rest of the platform (the
  integration-test distribution has no ``GET /``, which ES-Hadoop needs to detect the version).

The JSON is made by Spark in the JVM (``to_json``); Python only frames the bulk body. Index operations with
deterministic ids overwrite, so a replayed batch never duplicates. Connection errors and HTTP 429/5xx are
retried with backoff inside the task; when they outlast the retries the task fails, Spark retries it, and
the job's supervisor restarts the query from its checkpoint: nothing is committed that was not written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # executors import this module: keep its imports light
    from pyspark.sql import DataFrame

    from ray_app.config import Settings

RETRYABLE_STATUS = {429, 502, 503, 504}
REJECTION_DETAIL_LIMIT = 500


@dataclass(frozen=True)
class BulkOptions:
    client_kwargs: dict[str, Any]
    batch_entries: int
    batch_bytes: int
    retry_count: int
    retry_wait_s: float

    @classmethod
    def of(cls, settings: Settings) -> BulkOptions:
        stream = settings.stream
        text = stream.es_batch_bytes
        multiplier = {"kb": 1024, "mb": 1024 * 1024}.get(text[-2:], 1)
        return cls(
            client_kwargs=settings.elasticsearch.client_kwargs(),
            batch_entries=stream.es_batch_entries,
            batch_bytes=int(text.rstrip("kmb")) * multiplier,
            retry_count=stream.es_retry_count,
            retry_wait_s=stream.es_retry_wait_s,
        )


@dataclass
class WriteReport:
    """What one write did: documents indexed per index, and the ones Elasticsearch refused, with why."""

    indexed: dict[str, int] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: WriteReport) -> None:
        for index, count in other.indexed.items():
            self.indexed[index] = self.indexed.get(index, 0) + count
        self.rejected += other.rejected


class BulkWriteFailed(RuntimeError):
    """Elasticsearch stayed unreachable or overloaded through every retry; the batch is not committed."""


def _send(es: Any, body: list[bytes], options: BulkOptions) -> dict[str, Any]:
    from elastic_transport import ConnectionError as TransportConnectionError
    from elastic_transport import ConnectionTimeout
    from elasticsearch import ApiError

    payload = b"".join(body)
    attempt = 0
    while True:
        try:
            return es.bulk(body=payload, refresh=False).body
        except (TransportConnectionError, ConnectionTimeout, ApiError) as exc:
            status = getattr(exc, "status_code", None) if isinstance(exc, ApiError) else None
            if isinstance(exc, ApiError) and status not in RETRYABLE_STATUS:
                raise
            attempt += 1
            if attempt > options.retry_count:
                raise BulkWriteFailed(f"bulk request failed {attempt} times: {exc}") from exc
            time.sleep(min(options.retry_wait_s * 2 ** (attempt - 1), 60))


def _results(response: dict[str, Any], requests: list[tuple[str, str, str]]) -> tuple[WriteReport, list[int]]:
    """Count successes; collect permanent rejections; return the positions to retry (429 per item)."""
    report = WriteReport()
    retry: list[int] = []
    for position, item in enumerate(response["items"]):
        result = item.get("index") or next(iter(item.values()))
        index, doc_id, source = requests[position]
        status = result.get("status", 500)
        if status < 300:
            report.indexed[index] = report.indexed.get(index, 0) + 1
        elif status in RETRYABLE_STATUS:
            retry.append(position)
        else:
            error = result.get("error", {})
            detail = f"{error.get('type', status)}: {error.get('reason', '')}"[:REJECTION_DETAIL_LIMIT]
            report.rejected.append({"index": index, "doc_id": doc_id, "source": source, "detail": detail})
    return report, retry


def _flush(es: Any, requests: list[tuple[str, str, str]], options: BulkOptions) -> WriteReport:
    total = WriteReport()
    attempt = 0
    while requests:
        body: list[bytes] = []
        for index, doc_id, source in requests:
            body.append(json.dumps({"index": {"_index": index, "_id": doc_id}}).encode() + b"\n")
            body.append(source.encode() + b"\n")
        report, retry = _results(_send(es, body, options), requests)
        total.add(report)
        if not retry:
            break
        attempt += 1
        if attempt > options.retry_count:
            raise BulkWriteFailed(f"{len(retry)} documents still rejected with HTTP 429 after {attempt} tries")
        time.sleep(min(options.retry_wait_s * 2 ** (attempt - 1), 60))
        requests = [requests[position] for position in retry]
    return total


def bulk_partition(rows: Iterable[Any], options: BulkOptions) -> Iterator[WriteReport]:
    """Runs in a Spark task: bulk-index the partition's rows, yield one report."""
    from elasticsearch import Elasticsearch

    es = Elasticsearch(**options.client_kwargs)
    total = WriteReport()
    pending: list[tuple[str, str, str]] = []
    size = 0
    try:
        for row in rows:
            pending.append((row[0], row[1], row[2]))
            size += len(row[2]) + len(row[1]) + 64
            if len(pending) >= options.batch_entries or size >= options.batch_bytes:
                total.add(_flush(es, pending, options))
                pending, size = [], 0
        if pending:
            total.add(_flush(es, pending, options))
    finally:
        es.close()
    yield total


def _bulk_arrow(batches: Iterable[Any], options: BulkOptions) -> Iterator[Any]:
    """mapInArrow body: Arrow record batches of (index, doc_id, source) in, one JSON report out."""
    import pyarrow as pa

    rows = (row for batch in batches for row in zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True))
    for report in bulk_partition(rows, options):
        yield pa.RecordBatch.from_pydict({"report": [json.dumps(asdict(report))]})


def write_documents(documents: DataFrame, options: BulkOptions) -> WriteReport:
    """Index every row of ``documents`` (columns index, doc_id, source); the report comes back to the driver.

    Rows reach Python as Arrow batches (``mapInArrow``), several times cheaper than pickled rows.
    """
    reports = documents.select("index", "doc_id", "source").mapInArrow(
        lambda batches: _bulk_arrow(batches, options), "report string"
    )
    total = WriteReport()
    for row in reports.collect():
        total.add(WriteReport(**json.loads(row.report)))
    return total
