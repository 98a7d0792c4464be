"""librdkafka client settings shared by every stage that produces to or consumes from Kafka."""

from __future__ import annotations

import logging

from ray_app.config import Settings

# librdkafka logs through Python logging instead of printing to stderr (retries while a broker starts are normal)
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")
LIBRDKAFKA_LOGGER.addHandler(logging.NullHandler())


def admin_config(settings: Settings, **overrides: str | int | bool) -> dict[str, object]:
    return {**settings.kafka.client_config(), "logger": LIBRDKAFKA_LOGGER, **overrides}


def producer_config(settings: Settings, **overrides: str | int | bool) -> dict[str, object]:
    """Durable, ordered, deduplicated delivery; keys map to partitions exactly as Java clients map them."""
    return {
        **admin_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        # murmur2, like Kafka's Java clients (Spark, Kafka Streams): one symbol -> one partition everywhere
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        **overrides,
    }


def consumer_config(settings: Settings, group_id: str, **overrides: str | int | bool) -> dict[str, object]:
    return {
        **admin_config(settings),
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        **overrides,
    }
