"""The ingest side of Kafka: records to their topics, keyed by symbol, nothing dropped, nothing silently lost.

confluent-kafka with idempotence and acks=all (``kafka_clients.producer_config``). Every delivery report is counted, so
the end of a run can say exactly what reached the broker, what failed and what was left undelivered.

Two ways in:

- ``IngestProducer.send`` (the pull sources: simulator, replay, backfill) blocks while librdkafka's local queue is
  full (back-pressure): the source simply waits for Kafka.
- ``BackgroundSender.submit`` (the live websockets) never blocks: records go through a bounded queue to a thread of
  their own that does the blocking sends, and when that queue is full too (Kafka away for long) into the spill
  journal on disk (``journal.py``), sent in order once Kafka is back.

``message.timeout.ms`` is 0 (no timeout) on purpose: a record is never given up because the brokers are away. Memory
stays bounded by librdkafka's queue (``ingest.queue_max_messages``, ``ingest.queue_max_mb``) and the hand-off queue
(``ingest.memory_queue_messages``); what librdkafka still holds when a run ends is purged into the journal, so the
next run sends it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer

from ray_app.config import Settings
from ray_app.ingest.journal import JournalEntry, SpillJournal
from ray_app.kafka_clients import producer_config
from ray_app.lifecycle import StopFlag
from ray_app.schemas import Bar, DeadLetter, Quote, Trade, TradeCancel, TradeCorrection

IngestItem = Trade | TradeCancel | TradeCorrection | Quote | Bar | DeadLetter
_PURGED = {KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT}


@dataclass
class Counters:
    produced: int = 0
    failed: int = 0
    trades: int = 0
    cancels: int = 0  # trade cancels and errors
    corrections: int = 0
    quotes: int = 0
    bars: int = 0
    dead_letters: int = 0
    backpressure_waits: int = 0
    spilled: int = 0  # records written to the spill journal (Kafka away, or left at the end of a run)
    replayed: int = 0  # records sent from the spill journal
    dropped: int = 0  # records the full spill journal could not take
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # per topic, a one-element list its delivery callback adds to (the cheapest count a callback can keep)
    delivered_cells: dict[str, list[int]] = field(default_factory=dict)

    @property
    def delivered_by_topic(self) -> dict[str, int]:
        """What the platform's metrics count."""
        return {topic: cell[0] for topic, cell in list(self.delivered_cells.items())}

    @property
    def delivered(self) -> int:
        return sum(cell[0] for cell in list(self.delivered_cells.values()))

    def rate(self) -> float:
        return self.delivered / max(time.monotonic() - self.started, 1e-9)

    def note(self, error: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(error)


class IngestProducer:
    def __init__(self, settings: Settings, journal: SpillJournal | None = None, **overrides: str | int | bool) -> None:
        self.settings = settings
        self.topics = settings.kafka.topics
        self.counters = Counters()
        self.journal = journal
        self._purged: list[JournalEntry] = []
        self.unsent: list[JournalEntry] = []  # taken from a source, never handed to librdkafka (stopped while full)
        self._producer = Producer(producer_config(settings, **overrides))
        self._callbacks: dict[str, Callable[[KafkaError | None, Message], None]] = {}
        # the hot path's routing: record type -> (topic, the counter of its kind)
        self._routes: dict[type, tuple[str, str]] = {
            Trade: (self.topics.trades.name, "trades"),
            TradeCancel: (self.topics.trades.name, "cancels"),  # behind their trade: same topic, same key
            TradeCorrection: (self.topics.trades.name, "corrections"),
            Quote: (self.topics.quotes.name, "quotes"),
            Bar: (self.topics.bars.name, "bars"),
        }

    def encode(self, item: IngestItem) -> JournalEntry:
        """The record's topic, key and bytes; a record that cannot be encoded becomes a dead letter that says why."""
        try:
            return self._encoded(item)
        except Exception as exc:  # a value that validated and still cannot be written (e.g. a year past 9999)
            from ray_app.ingest.parse import dead_letter, raw_json

            detail = f"the record cannot be encoded for Kafka: {exc}"
            source = getattr(item, "source", "ingest")
            letter = dead_letter(raw_json(_fields_of(item)), "unserialisable", detail, source)
            return self._encoded(letter)

    def _encoded(self, item: IngestItem) -> JournalEntry:
        if isinstance(item, Trade):
            entry = JournalEntry(self.topics.trades.name, item.symbol.encode(), item.to_json())
            self.counters.trades += 1
        elif isinstance(item, TradeCancel | TradeCorrection):  # behind their trade: same topic, same key
            entry = JournalEntry(self.topics.trades.name, item.symbol.encode(), item.to_json())
            if isinstance(item, TradeCancel):
                self.counters.cancels += 1
            else:
                self.counters.corrections += 1
        elif isinstance(item, Quote):
            entry = JournalEntry(self.topics.quotes.name, item.symbol.encode(), item.to_json())
            self.counters.quotes += 1
        elif isinstance(item, Bar):
            entry = JournalEntry(self.topics.bars.name, item.symbol.encode(), item.to_json())
            self.counters.bars += 1
        else:
            entry = JournalEntry(self.topics.dead_letters.name, item.source.encode(), item.to_json())
            self.counters.dead_letters += 1
        return entry

    def send(self, item: IngestItem, stop: StopFlag | None = None) -> bool:
        route = self._routes.get(type(item))
        if route is None:  # a dead letter
            entry = self.encode(item)
            topic, key, value = entry.topic, entry.key, entry.value
        else:
            topic, kind = route
            try:
                value = item.to_json()
                key = item.symbol.encode()  # type: ignore[union-attr]
            except Exception:  # not encodable: the dead letter that says why (encode's)
                entry = self.encode(item)
                topic, key, value = entry.topic, entry.key, entry.value
            else:
                counters = self.counters
                if kind == "trades":
                    counters.trades += 1
                else:
                    setattr(counters, kind, getattr(counters, kind) + 1)
        try:  # the common case inline (the hottest line of the ingest): librdkafka's queue has room
            callback = self._callbacks.get(topic) or self._delivery_callback(topic)
            self._producer.produce(topic, value=value, key=key, on_delivery=callback)
        except BufferError:
            if not self.produce(topic, key, value, stop):  # waits for room, as long as it may
                self.unsent.append(JournalEntry(topic, key, value))
                return False
            return True
        self.counters.produced += 1
        self._producer.poll(0)
        return True

    def _delivery_callback(self, topic: str) -> Callable[[KafkaError | None, Message], None]:
        """The delivery report handler of ``topic``'s messages: a delivery adds one to the topic's cell, as cheaply
        as a bare loop counts; anything else goes to ``_on_delivery``."""
        callback = self._callbacks.get(topic)
        if callback is None:
            cell = self.counters.delivered_cells.setdefault(topic, [0])
            failed = self._on_delivery

            def callback(err: KafkaError | None, msg: Message) -> None:
                if err is None:
                    cell[0] += 1
                else:
                    failed(err, msg)

            self._callbacks[topic] = callback
        return callback

    def produce(self, topic: str, key: bytes | str | None, value: bytes, stop: StopFlag | None = None) -> bool:
        """Hand one message to librdkafka, waiting while its queue is full; False only when ``stop`` ends the wait
        (the caller keeps the message: ``close`` takes it)."""
        while True:
            try:
                callback = self._callbacks.get(topic) or self._delivery_callback(topic)
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                break
            except BufferError:
                # the local queue is full: serve delivery reports until there is room, never drop
                self.counters.backpressure_waits += 1
                self._producer.poll(0.05)
                if stop is not None and stop.is_set():
                    return False
        self.counters.produced += 1
        self._producer.poll(0)
        return True

    def produce_bookkeeping(self, topic: str, key: str, value: bytes) -> None:
        """A record about the run (not market data): not counted as delivered, a failure is still reported."""

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None and err.code() not in _PURGED:
                self.counters.failed += 1
                self.counters.note(f"{msg.topic()}: {err.str()}")

        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
        except BufferError:
            self._producer.flush(self.settings.ingest.flush_timeout_s)
            self._producer.produce(topic, value=value, key=key, on_delivery=delivered)

    def _keep(self, entry: JournalEntry) -> None:
        if self.journal is not None and self.journal.append(entry):
            self.counters.spilled += 1
        else:
            self.counters.dropped += 1
            self.counters.note(f"{entry.topic}: dropped, the spill journal is full or absent")

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            topic = msg.topic() or ""
            self.counters.delivered_cells.setdefault(topic, [0])[0] += 1
        elif err.code() in _PURGED:
            # purged at the end of a run: kept for the next run, not lost
            self.counters.produced -= 1
            self._purged.append(JournalEntry(msg.topic() or "", msg.key(), msg.value() or b""))
        else:
            self.counters.failed += 1
            self.counters.note(f"{msg.topic()}: {err.str()}")

    def poll(self, timeout_s: float = 0) -> None:
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 60) -> int:
        """Wait for every outstanding delivery; returns how many are still undelivered."""
        return self._producer.flush(timeout_s)

    def send_journal(self, stop: StopFlag) -> int:
        """Send what a previous run left in the journal (blocking); returns how many records that was."""
        if self.journal is None:
            return 0
        sent = 0
        while not stop.is_set() and (entries := self.journal.read()):
            for position, entry in enumerate(entries):
                if not self.produce(entry.topic, entry.key, entry.value, stop):
                    self.unsent.extend(entries[position:])
                    return sent
                self.counters.replayed += 1
                sent += 1
        return sent

    def close(self, timeout_s: float, leftover: list[JournalEntry] | None = None) -> int:
        """Flush; what Kafka has not taken within ``timeout_s`` (and ``leftover``, records that never reached
        librdkafka) goes to the front of the journal, oldest first. Returns how many messages were neither
        delivered nor kept."""
        not_taken: list[JournalEntry] = []
        for entry in [*self.unsent, *(leftover or [])]:
            if not_taken or not self._try_produce(entry):
                not_taken.append(entry)
        left = self._producer.flush(timeout_s)
        if self.journal is None:
            return left + len(not_taken)
        if left:
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            left = self._producer.flush(5)
        kept = self._purged + not_taken
        if kept or self.journal.pending():
            self.journal.put_front(kept)
        else:
            self.journal.clear_if_read()
        self.counters.spilled += len(kept)
        self._purged, self.unsent = [], []
        self.journal.close()
        return left

    def _try_produce(self, entry: JournalEntry) -> bool:
        try:
            self._producer.produce(
                entry.topic, value=entry.value, key=entry.key, on_delivery=self._delivery_callback(entry.topic)
            )
        except BufferError:
            return False
        self.counters.produced += 1
        return True


def _fields_of(item: IngestItem) -> dict:
    try:
        return item.model_dump(mode="python", exclude={"timestamp"})
    except Exception:
        return {"repr": repr(item)}


class BackgroundSender:
    """Takes records from an event loop without ever blocking it, and sends them from a thread of its own.

    Order is kept: records wait in a bounded queue; once it is full, they (and every record after them) go to the
    spill journal, and the thread sends the journal, oldest first, before it takes from the queue again.
    """

    def __init__(
        self, producer: IngestProducer, memory_messages: int, on_message: Callable[[str], None] | None = None
    ) -> None:
        if producer.journal is None:
            raise ValueError("a BackgroundSender needs a producer with a spill journal")
        self.producer = producer
        self.journal = journal = producer.journal
        self._queue: queue.Queue[JournalEntry] = queue.Queue(maxsize=memory_messages)
        self._lock = threading.Lock()
        self._spilling = journal.pending()  # a previous run left records: they go first
        self._closing = StopFlag()
        self._on_message = on_message
        self._thread = threading.Thread(target=self._run, name="ingest-sender", daemon=True)
        self._thread.start()

    def submit(self, item: IngestItem) -> None:
        entry = self.producer.encode(item)
        with self._lock:
            if not self._spilling:
                try:
                    self._queue.put_nowait(entry)
                    return
                except queue.Full:
                    self._spilling = True
                    self._say(f"Kafka is not taking records: spilling to the journal {self.journal.path} until it does")
            self.producer._keep(entry)

    def _say(self, text: str) -> None:
        if self._on_message:
            self._on_message(text)

    def _run(self) -> None:
        while True:
            try:
                entry = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._closing.is_set():
                    return
                self.producer.poll(0)
                if self._spilling:
                    self._send_journal()
                continue
            if not self.producer.produce(entry.topic, entry.key, entry.value, self._closing):
                self.producer.unsent.append(entry)

    def _send_journal(self) -> None:
        sent = 0
        while not self._closing.is_set():
            sent += self.producer.send_journal(self._closing)
            # everything read was handed to librdkafka: once delivered, the journal can go
            if not self._closing.is_set() and self.producer.flush(0.5) == 0:
                with self._lock:
                    if self.journal.clear_if_read():
                        self._spilling = False
                        if sent:
                            self._say(f"Kafka is back: sent {sent:,} records from the spill journal")
                        return

    def close(self) -> list[JournalEntry]:
        """Stop the thread; returns the records still queued, oldest first (``IngestProducer.close`` takes them)."""
        self._closing.set()
        self._thread.join()
        leftover = []
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                return leftover


def pump(items: Iterable[IngestItem], producer: IngestProducer, stop: StopFlag) -> None:
    """Send every item until the source ends or the stop flag is set."""
    for item in items:
        if not producer.send(item, stop) or stop.is_set():
            break
