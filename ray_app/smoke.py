"""A round trip through each engine of the stack, printed as a short report by `ray-app smoke`.

Kafka: keyed messages produced, consumed back, each key in one partition and in order. Elasticsearch: a
document indexed with a deterministic id and found by search, its price exact. Ray: a job submitted through
the dashboard's job API that fans out tasks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition
from ray.job_submission import JobStatus, JobSubmissionClient

from ray_app.config import Settings
from ray_app.es_indices import ensure_index, es_client
from ray_app.kafka_clients import consumer_config, producer_config
from ray_app.kafka_topics import ensure_topics
from ray_app.ray_cluster import use_auth_mode


@dataclass(frozen=True)
class CheckResult:
    engine: str
    ok: bool
    detail: str
    seconds: float


def _timed(engine: str, check: Callable[[Settings], str], settings: Settings) -> CheckResult:
    began = time.monotonic()
    try:
        return CheckResult(engine, True, check(settings), time.monotonic() - began)
    except Exception as exc:
        return CheckResult(engine, False, f"{type(exc).__name__}: {exc}", time.monotonic() - began)


def kafka_round_trip(settings: Settings) -> str:
    topic = settings.smoke.topic
    ensure_topics(settings, [topic])
    run = uuid.uuid4().hex[:8]
    keys = settings.symbols
    producer = Producer(producer_config(settings))
    delivered: dict[int, int] = {}  # partition -> lowest offset of this run
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err:
            errors.append(str(err))
        else:
            delivered[msg.partition()] = min(delivered.get(msg.partition(), msg.offset()), msg.offset())

    for seq in range(settings.smoke.messages):
        key = keys[seq % len(keys)]
        producer.produce(
            topic.name, key=key, value=json.dumps({"run": run, "key": key, "seq": seq}), on_delivery=on_delivery
        )
        producer.poll(0)
    if producer.flush(30) or errors:
        raise RuntimeError(f"not every message was delivered: {errors[:3]}")

    consumer = Consumer(consumer_config(settings, f"ray-app-smoke-{run}"))
    consumer.assign([TopicPartition(topic.name, p, offset) for p, offset in delivered.items()])
    seen: dict[str, list[int]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    deadline = time.monotonic() + 30
    count = 0
    while count < settings.smoke.messages and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() or (value := msg.value()) is None:
            continue
        body = json.loads(value)
        if body["run"] != run:
            continue
        seen[body["key"]].append(body["seq"])
        partitions_of[body["key"]].add(msg.partition() or 0)
        count += 1
    consumer.close()
    if count != settings.smoke.messages:
        raise RuntimeError(f"consumed {count} of {settings.smoke.messages} messages")
    split = {k: sorted(p) for k, p in partitions_of.items() if len(p) > 1}
    if split:
        raise RuntimeError(f"keys spread over several partitions: {split}")
    unordered = [k for k, seqs in seen.items() if seqs != sorted(seqs)]
    if unordered:
        raise RuntimeError(f"per-key order broken for {unordered}")
    return (
        f"{count} messages, {len(keys)} keys over {len(delivered)} of {topic.partitions} partitions "
        f"of '{topic.name}'; each key in one partition, in order"
    )


SMOKE_MAPPING = {"symbol": {"type": "keyword"}, "price": {"type": "double"}, "checked_at": {"type": "date"}}


def elasticsearch_round_trip(settings: Settings) -> str:
    es = es_client(settings)
    index = settings.smoke.index
    ensure_index(settings, es, index, SMOKE_MAPPING)
    doc = {"symbol": "BTC/USD", "price": 101234.56, "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    es.index(index=index, id="smoke-BTC/USD", document=doc, refresh="wait_for")
    hits = es.search(index=index, query={"term": {"symbol": "BTC/USD"}})["hits"]["hits"]
    if len(hits) != 1 or hits[0]["_source"]["price"] != doc["price"]:
        raise RuntimeError(f"expected one document with price {doc['price']}, found {hits}")
    total = es.count(index=index)["count"]
    return f"indexed and found id 'smoke-BTC/USD' in '{index}' (price {doc['price']} exact, {total} document)"


RAY_SMOKE_ENTRYPOINT = (
    'python -c "import ray; ray.init(); sq = ray.remote(lambda x: x * x); '
    "print('sum of squares:', sum(ray.get([sq.remote(i) for i in range(10)])))\""
)


def ray_job_round_trip(settings: Settings) -> str:
    use_auth_mode(settings)
    jobs = JobSubmissionClient(settings.ray.dashboard_url)
    job_id = jobs.submit_job(entrypoint=RAY_SMOKE_ENTRYPOINT)
    deadline = time.monotonic() + 120
    job_status = jobs.get_job_status(job_id)
    while not job_status.is_terminal() and time.monotonic() < deadline:
        time.sleep(0.5)
        job_status = jobs.get_job_status(job_id)
    logs = jobs.get_job_logs(job_id)
    if job_status != JobStatus.SUCCEEDED or "sum of squares: 285" not in logs:
        raise RuntimeError(f"job {job_id} ended {job_status}: {logs.strip()[-300:]}")
    return f"job {job_id} SUCCEEDED through {settings.ray.dashboard_url} (10 tasks, sum of squares 285)"


CHECKS: list[tuple[str, Callable[[Settings], str]]] = [
    ("Kafka", kafka_round_trip),
    ("Elasticsearch", elasticsearch_round_trip),
    ("Ray", ray_job_round_trip),
]


def run_smoke(settings: Settings) -> list[CheckResult]:
    return [_timed(engine, check, settings) for engine, check in CHECKS]
