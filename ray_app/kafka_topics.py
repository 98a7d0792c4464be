"""The project's Kafka topics: created idempotently with their configured partitions, never altered."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ray_app.config import Settings, TopicSettings
from ray_app.kafka_clients import admin_config, probe, watermark_offsets


def ensure_topics(settings: Settings, topics: list[TopicSettings] | None = None, timeout_s: float = 30) -> list[str]:
    """Create missing topics; report (and leave alone) existing ones whose partition count differs.

    Changing a topic's partitions would re-map keys to partitions and break per-symbol order, so that is a
    decision for a person, not for start-up. Brokers that refuse these settings (credentials, certificate) raise
    ``KafkaUnavailable`` within about a second, unreachable ones after ``timeout_s``.
    """
    probe(settings, timeout_s)
    wanted = topics if topics is not None else [*settings.kafka.topics.all(), settings.kafka.topics.simulator_progress]
    admin = AdminClient(admin_config(settings))
    existing = admin.list_topics(timeout=timeout_s).topics
    notes: list[str] = []
    to_create = []
    for topic in wanted:
        if topic.name in existing:
            have = len(existing[topic.name].partitions)
            if have != topic.partitions:
                notes.append(f"topic {topic.name} has {have} partitions, settings say {topic.partitions}: left as is")
            continue
        to_create.append(
            NewTopic(
                topic.name,
                num_partitions=topic.partitions,
                replication_factor=settings.kafka.replication_factor,
                config={
                    "min.insync.replicas": str(settings.kafka.min_insync_replicas),
                    **({"cleanup.policy": "compact"} if topic.compacted else {}),
                },
            )
        )
    if to_create:
        for name, future in admin.create_topics(to_create, operation_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                notes.append(f"created topic {name}")
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        _wait_for_leaders(admin, [t.topic for t in to_create], timeout_s)
    return notes


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """A new topic's partitions get their leader a moment after creation; until then clients see
    NOT_LEADER_FOR_PARTITION. Return once every partition has one."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(
            name in topics
            and topics[name].error is None
            and topics[name].partitions
            and all(p.leader >= 0 and p.error is None for p in topics[name].partitions.values())
            for name in names
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {names} have no leader after {timeout_s:.0f} s")


def _watermarks(settings: Settings, names: list[str], timeout_s: float) -> dict[str, dict[int, tuple[int, int]]]:
    """(low, high) offsets per partition per topic; a missing topic has no partitions."""
    import uuid

    from confluent_kafka import Consumer

    from ray_app.kafka_clients import consumer_config

    consumer = Consumer(consumer_config(settings, f"ray-app-sizes-{uuid.uuid4().hex}"))
    try:
        metadata = consumer.list_topics(timeout=timeout_s).topics
        return {
            name: {
                partition: watermark_offsets(consumer, name, partition, timeout_s)
                for partition in (metadata[name].partitions if name in metadata else {})
            }
            for name in names
        }
    finally:
        consumer.close()


def topic_sizes(settings: Settings, names: list[str], timeout_s: float = 10) -> dict[str, tuple[int, int]]:
    """(partitions, messages currently held) per topic; a missing topic is (0, 0)."""
    return {
        name: (len(partitions), sum(high - low for low, high in partitions.values()))
        for name, partitions in _watermarks(settings, names, timeout_s).items()
    }


def end_offsets(settings: Settings, names: list[str], timeout_s: float = 10) -> dict[str, dict[int, int]]:
    """The next offset to be written, per partition per topic."""
    return {
        name: {partition: high for partition, (_, high) in partitions.items()}
        for name, partitions in _watermarks(settings, names, timeout_s).items()
    }
