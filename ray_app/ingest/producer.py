"""The ingest side of Kafka: records to their topics, keyed by symbol, nothing dropped.

confluent-kafka with idempotence and acks=all (``kafka_io.producer_config``). When librdkafka's local queue is
full, ``send`` waits for deliveries to make room (back-pressure) instead of dropping or raising. Every delivery
report is counted, so the end of a run can say exactly what reached the broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ray_app.config import Settings
from ray_app.kafka_io import producer_config
from ray_app.lifecycle import StopFlag
from ray_app.schemas import Bar, DeadLetter, Trade

IngestItem = Trade | Bar | DeadLetter


@dataclass
class Counters:
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    trades: int = 0
    bars: int = 0
    dead_letters: int = 0
    backpressure_waits: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.delivered / max(time.monotonic() - self.started, 1e-9)


class IngestProducer:
    def __init__(self, settings: Settings, **overrides: str | int | bool) -> None:
        self.settings = settings
        self.topics = settings.kafka.topics
        self.counters = Counters()
        self._producer = Producer(producer_config(settings, **overrides))

    def send(self, item: IngestItem) -> None:
        if isinstance(item, Trade):
            self.counters.trades += 1
            self.produce(self.topics.trades.name, item.symbol, item.to_json())
        elif isinstance(item, Bar):
            self.counters.bars += 1
            self.produce(self.topics.bars.name, item.symbol, item.to_json())
        else:
            self.counters.dead_letters += 1
            self.produce(self.topics.dead_letters.name, item.source, item.to_json())

    def produce(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:
                # the local queue is full: serve delivery reports until there is room, never drop
                self.counters.backpressure_waits += 1
                self._producer.poll(0.05)
        self.counters.produced += 1
        self._producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.counters.delivered += 1
        else:
            self.counters.failed += 1
            if len(self.counters.errors) < 20:
                self.counters.errors.append(f"{msg.topic()}: {err.str()}")

    def poll(self, timeout_s: float = 0) -> None:
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 60) -> int:
        """Wait for every outstanding delivery; returns how many are still undelivered."""
        return self._producer.flush(timeout_s)


@contextmanager
def progress_line(counters: Counters, label: str, console: Console | None = None) -> Iterator[None]:
    """A live line: messages/s, delivered, failed, dead letters, back-pressure waits."""

    def render() -> Text:
        return Text(
            f"{label}: {counters.rate():,.0f} msg/s  produced {counters.produced:,}  delivered {counters.delivered:,}"
            f"  failed {counters.failed:,}  dead letters {counters.dead_letters:,}"
            f"  back-pressure waits {counters.backpressure_waits:,}"
        )

    console = console or Console(stderr=True)
    with Live(get_renderable=render, console=console, refresh_per_second=2, transient=False):
        yield
    if not console.is_terminal:
        console.line()  # a log gets the last state as a line of its own


def pump(items: Iterable[IngestItem], producer: IngestProducer, stop: StopFlag) -> None:
    """Send every item until the source ends or the stop flag is set."""
    for item in items:
        producer.send(item)
        if stop.is_set():
            break
