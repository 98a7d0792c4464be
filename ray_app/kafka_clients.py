"""Kafka clients as every stage builds them: librdkafka settings from the ``kafka:`` section (producer, consumer,
admin), the Java clients' login line, and Kafka's errors in plain words."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from ray_app.config import Settings

# librdkafka logs through Python logging instead of printing to stderr (retries while a broker starts are normal)
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")
LIBRDKAFKA_LOGGER.addHandler(logging.NullHandler())


def jaas_config(mechanism: str, username: str, password: str) -> str:
    """The Java clients' (and brokers') SASL login line for a user: JAAS quotes values the way JSON does."""
    module = (
        "org.apache.kafka.common.security.plain.PlainLoginModule"
        if mechanism == "PLAIN"
        else "org.apache.kafka.common.security.scram.ScramLoginModule"
    )
    return (
        f"{module} required username={json.dumps(username, ensure_ascii=False)} "
        f"password={json.dumps(password, ensure_ascii=False)};"
    )


def client_config(settings: Settings) -> dict[str, str]:
    """librdkafka settings shared by every producer, consumer and admin client: where the brokers are and how to
    log in."""
    kafka = settings.kafka
    conf: dict[str, str] = {"bootstrap.servers": kafka.bootstrap_servers, "security.protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        conf["sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username:
        conf["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password:
        conf["sasl.password"] = kafka.sasl_password.get_secret_value()
    if kafka.ssl_ca_location:
        conf["ssl.ca.location"] = str(kafka.ssl_ca_location)
    return conf


def admin_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {**client_config(settings), "logger": LIBRDKAFKA_LOGGER, **overrides}


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
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


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        **admin_config(settings),
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        **overrides,
    }


class KafkaUnavailable(RuntimeError):
    """Kafka cannot be used with these settings, in plain words; ``refused``: a broker answered and refused them
    (credentials, certificate), which waiting will not change."""

    def __init__(self, message: str, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


def _refusal(settings: Settings, error: KafkaError) -> str | None:
    """What a broker's refusal means for the settings, or None when the error is not a refusal."""
    kafka = settings.kafka
    where = f"Kafka at {kafka.bootstrap_servers}"
    reason = error.str()
    if error.code() == KafkaError._AUTHENTICATION:
        return (
            f"{where} refused the credentials of user {kafka.sasl_username!r} ({kafka.sasl_mechanism}): check "
            f"kafka.sasl_username and kafka.sasl_password ({reason})"
        )
    if error.code() == KafkaError._SSL:
        return (
            f"the TLS handshake with {where} failed: check kafka.ssl_ca_location (the certificate authority "
            f"clients trust) and that the brokers speak {kafka.security_protocol} ({reason})"
        )
    if "security.protocol" in reason or "sasl" in reason.lower():
        return f"{where} and these settings disagree on the protocol: check kafka.security_protocol ({reason})"
    return None


def probe(settings: Settings, timeout_s: float = 10) -> None:
    """Return once a broker answers a metadata request with these settings; raise ``KafkaUnavailable`` as soon as
    one refuses them (a wrong password fails in about a second, not after ``timeout_s``), or after ``timeout_s``."""
    errors: list[KafkaError] = []
    logger, seen = _collecting_logger()
    admin = AdminClient(admin_config(settings, error_cb=errors.append, logger=logger, **{"socket.timeout.ms": 2000}))
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            errors.append(exc.args[0])
        admin.poll(0)  # serves error_cb
        for error in errors:
            refusal = _refusal(settings, error)
            if refusal:
                raise KafkaUnavailable(refusal, refused=True) from None
        last = errors[-1].str() if errors else last
        errors.clear()
        if time.monotonic() >= deadline:
            hint = ""
            if any("in state APIVERSION_QUERY" in line for line in seen):  # accepted, then closed at the first request
                hint = (
                    f"; the brokers close the connection at its first request: do they speak "
                    f"{settings.kafka.security_protocol} (kafka.security_protocol)?"
                )
            raise KafkaUnavailable(
                f"Kafka at {settings.kafka.bootstrap_servers} is not reachable ({last}){hint}", refused=False
            )


def _collecting_logger() -> tuple[logging.Logger, list[str]]:
    """A logger of the probe's own that keeps librdkafka's lines, to tell a protocol mismatch from a broker away."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.Logger("librdkafka.probe")
    logger.addHandler(Keep())
    return logger, lines


# a partition whose leader is not elected yet (a topic just created, a broker just restarted): ask again
_NOT_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}


def watermark_offsets(consumer: Any, topic: str, partition: int, timeout_s: float = 10) -> tuple[int, int]:
    """(low, high) offsets of a partition, asking again while its leader is not elected yet, up to ``timeout_s``."""
    from confluent_kafka import TopicPartition

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in _NOT_YET or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
