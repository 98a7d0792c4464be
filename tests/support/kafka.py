"""Kafka for tests: topics of a test's own, and reading a topic back from the start."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ray_app.config import Settings
from ray_app.kafka_clients import consumer_config, watermark_offsets


def with_own_topics(settings: Settings, tag: str) -> Settings:
    """The same settings with topics of the test's own (trades-<tag>, ...), so tests never see each other's data."""
    topics = settings.kafka.topics
    renamed = topics.model_copy(
        update={
            name: getattr(topics, name).model_copy(update={"name": f"{getattr(topics, name).name}-{tag}"})
            for name in ("trades", "bars", "dead_letters", "quotes")
        }
    )
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topics": renamed})})


def read_topic(settings: Settings, topic: str, timeout_s: float = 30) -> list[Any]:
    """Every message of a topic, from the start to its current end, in partition order."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(settings, f"read-{uuid.uuid4().hex}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: watermark_offsets(consumer, topic, p)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout_s
        want = sum(ends.values())
        while len(messages) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                messages.append(msg)
        return messages
    finally:
        consumer.close()
