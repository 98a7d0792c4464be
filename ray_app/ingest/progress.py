"""How far the simulator has written each symbol's trades, kept in Kafka (a compacted topic), so that running the
simulator again (or `make run` again, or after changing its settings) goes on from there: the history is never
written twice.

One record per trades topic and symbol: key ``<trades topic>|<symbol>``, value ``{"until_ns", "seed",
"trades_per_minute"}``; trades at or after ``until_ns`` are the ones still to simulate. It is written at the end of
a run, after the trades it covers were produced (delivered, or kept in the spill journal for the next run). A run
that dies without writing it is repeated from the last record; with the same seed that repeats the same trades
(the same ids: Elasticsearch holds them once).
"""

from __future__ import annotations

import json
import uuid

from confluent_kafka import Consumer, TopicPartition

from ray_app.config import Settings
from ray_app.kafka_clients import consumer_config, watermark_offsets


def _key(settings: Settings, symbol: str) -> str:
    return f"{settings.kafka.topics.trades.name}|{symbol}"


def read_progress(settings: Settings, timeout_s: float = 10) -> dict[str, int]:
    """Symbol -> the time (ns) up to which its simulated trades are in this trades topic."""
    topic = settings.kafka.topics.simulator_progress.name
    consumer = Consumer(consumer_config(settings, f"ray-app-progress-{uuid.uuid4().hex}"))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {}
        ends = {p: watermark_offsets(consumer, topic, p, timeout_s) for p in metadata.partitions}
        wanted = {p: high for p, (low, high) in ends.items() if high > low}
        if not wanted:
            return {}
        consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in wanted])
        prefix = f"{settings.kafka.topics.trades.name}|"
        found: dict[str, int] = {}
        remaining = dict(wanted)
        while remaining:
            message = consumer.poll(timeout_s)
            if message is None:
                break
            if message.error():
                continue
            offset, partition, value = message.offset(), message.partition(), message.value()
            if offset is not None and partition is not None and offset + 1 >= remaining.get(partition, 0):
                remaining.pop(partition, None)
            key = (message.key() or b"").decode("utf-8", "replace")
            if key.startswith(prefix) and value:
                try:
                    found[key[len(prefix) :]] = int(json.loads(value)["until_ns"])
                except (ValueError, KeyError, TypeError):
                    continue  # not ours to understand: simulate that symbol's window again
        return found
    finally:
        consumer.close()


def progress_record(
    settings: Settings, symbol: str, until_ns: int, seed: int, trades_per_minute: float
) -> tuple[str, bytes]:
    value = {"until_ns": until_ns, "seed": seed, "trades_per_minute": trades_per_minute}
    return _key(settings, symbol), json.dumps(value).encode()
