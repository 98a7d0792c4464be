"""The stream's Kafka source: the topics it reads and the Spark Kafka source's options, from the same settings the
Python clients use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ray_app.config import Settings
from ray_app.kafka_clients import jaas_config

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


POLL_RECORDS = 20_000
FETCH_BYTES = 16 * 1024 * 1024
FETCH_WAIT_MS = 10


def topics_read(settings: Settings) -> list[str]:
    """The Kafka topics the stream reads: trades (with cancels and corrections), quotes, Alpaca's bars, dead
    letters."""
    topics = settings.kafka.topics
    return [topics.trades.name, topics.quotes.name, topics.bars.name, topics.dead_letters.name]


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
        # Spark's Kafka reader seeks and asks the broker for the partition's offset range on every poll, and a poll
        # returned 500 records (1 MB per fetch): three round trips per 500 records were most of a task's time in a
        # backlog. One poll now takes up to a whole batch's share of a partition.
        "kafka.max.poll.records": str(POLL_RECORDS),
        "kafka.max.partition.fetch.bytes": str(FETCH_BYTES),
        # a fetch that finds nothing new waits at the broker up to this long, and the next batch's first poll of the
        # partition waits for it (Kafka's 500 ms default made a small batch's tasks 140 ms instead of 76)
        "kafka.fetch.max.wait.ms": str(FETCH_WAIT_MS),
    }
    if kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password:
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = jaas_config(
            kafka.sasl_mechanism, kafka.sasl_username, kafka.sasl_password.get_secret_value()
        )
    if kafka.ssl_ca_location:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(kafka.ssl_ca_location)
    if settings.stream.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(settings.stream.max_offsets_per_trigger)
    return options


def kafka_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    """The topics' records as rows: topic, partition, offset, Kafka's time and the value."""
    from pyspark.sql import functions as F

    reader = spark.readStream.format("kafka").option("subscribe", ",".join(topics_read(settings)))
    for key, value in kafka_options(settings).items():
        reader = reader.option(key, value)
    return reader.load().select("topic", "partition", "offset", F.col("timestamp").alias("kafka_ts"), "value")
