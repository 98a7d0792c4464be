"""Stage 1: market data into Kafka, from Alpaca (live websockets, REST backfill), a recording, or the simulator.

``run_ingest`` is the one entry point: `ray-app ingest` and `python -m ray_app ingest` (for `ray job submit`) both
call it. Records go to the ``trades`` and ``bars`` topics keyed by symbol; anything malformed goes to
``dead-letters`` with the reason and the raw payload, and the ingest keeps running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from confluent_kafka import KafkaException

from ray_app.config import Settings
from ray_app.ingest.journal import SpillJournal
from ray_app.ingest.metering import IngestMetering
from ray_app.ingest.producer import BackgroundSender, Counters, IngestItem, IngestProducer, pump
from ray_app.kafka_clients import KafkaUnavailable
from ray_app.kafka_topics import ensure_topics
from ray_app.lifecycle import StopFlag


class KafkaUnreachable(RuntimeError):
    pass


class IngestSource(StrEnum):
    """Where an ingest run reads from (`ray-app ingest --source`); a record's own origin is ``schemas.Source``."""

    SIMULATE = "simulate"
    ALPACA = "alpaca"
    BACKFILL = "backfill"
    REPLAY = "replay"


@dataclass
class IngestOptions:
    source: IngestSource = IngestSource.SIMULATE
    symbols: list[str] | None = None
    # simulate
    history_days: float | None = None
    live: bool = False
    trades_per_minute: float | None = None
    seed: int | None = None
    # alpaca and simulate --live: stop after this many seconds (None: until Ctrl-C / SIGTERM)
    duration_s: float | None = None
    # replay and simulate --live: x real time; 0 = as fast as possible
    speed: float = 1.0
    # alpaca
    record: Path | None = None
    # backfill
    days: float | None = None
    timeframe: str | None = None
    # replay
    file: Path | None = None
    progress: bool | None = None
    # simulate: go on from where earlier runs left each symbol (False: simulate the whole window again)
    resume: bool = True


@dataclass
class IngestReport:
    source: str
    counters: Counters
    seconds: float
    undelivered: int  # neither delivered nor kept in the spill journal
    recorded_frames: int = 0
    kept: int = 0  # left in the spill journal for the next run
    journal: Path | None = None

    @property
    def ok(self) -> bool:
        c = self.counters
        return c.failed == 0 and c.dropped == 0 and self.undelivered == 0 and self.kept == 0

    def line(self) -> str:
        """What a run delivered, failed and left undelivered, in one line (the CLI prints it on every exit)."""
        c = self.counters
        text = (
            f"ingest {self.source}: {c.delivered:,} delivered in {self.seconds:.1f} s "
            f"({c.delivered / max(self.seconds, 1e-9):,.0f} msg/s): {c.trades:,} trades, {c.cancels:,} cancels, "
            f"{c.corrections:,} corrections, {c.quotes:,} quotes, {c.bars:,} bars, {c.dead_letters:,} dead "
            f"letters; failed {c.failed}, undelivered {self.undelivered}"
        )
        if c.spilled or c.replayed:
            text += f"; spilled {c.spilled:,} to the journal, sent {c.replayed:,} from it"
        if self.kept:
            text += f"; {self.kept:,} kept in {self.journal} for the next run"
        if c.dropped:
            text += f"; DROPPED {c.dropped:,} (the spill journal was full)"
        return text


class IngestFailed(RuntimeError):
    """A source stopped with an error; ``report`` says what was delivered before it did (the producer was
    flushed all the same)."""

    def __init__(self, cause: BaseException, report: IngestReport) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause
        self.report = report


class _SimulatedRun:
    """The simulator's records for a run (trades, quotes, cancels, corrections), from where the previous runs left
    each symbol (``progress.py``), and how far this run got (every symbol is simulated in time order together, so
    one instant covers all of them)."""

    def __init__(self, settings: Settings, options: IngestOptions, stop: StopFlag, idle: Callable[[float], None]):
        from ray_app.ingest.progress import read_progress
        from ray_app.ingest.simulator import TradeSimulator

        sim = settings.simulator
        self.settings, self.options, self.stop, self.idle = settings, options, stop, idle
        self.symbols = options.symbols or settings.symbols
        self.seed = sim.seed if options.seed is None else options.seed
        self.trades_per_minute = options.trades_per_minute or sim.trades_per_minute
        self.simulator = TradeSimulator(
            self.symbols,
            seed=self.seed,
            trades_per_minute=self.trades_per_minute,
            anchor_on_real_data=sim.anchor_on_real_data,
            cancel_share=sim.cancel_share,
            correction_share=sim.correction_share,
            quotes_per_trade=sim.quotes_per_trade,
        )
        self.done = read_progress(settings) if options.resume else {}
        self.until_ns: int | None = None
        self.resumed = {s: self.done[s] for s in self.symbols if s in self.done}

    def __iter__(self) -> Iterator[IngestItem]:
        from ray_app.ingest.pacing import paced
        from ray_app.ingest.simulator import history_window
        from ray_app.times import now_ns

        days = self.settings.simulator.history_days if self.options.history_days is None else self.options.history_days
        start, live_start = history_window(days, now_ns())
        starts = {s: max(start, self.done.get(s, 0)) for s in self.symbols}
        first = min(starts.values())
        # runs are cut by the time a record is sent (a late print after the trades that happened after it)
        if days > 0 and first < live_start:
            # the cancels and corrections of trades an earlier run sent; none of trades no run sent
            sent_since = {s: 0 if s in self.resumed else starts[s] for s in self.symbols}
            hours = self.settings.simulator.history_quotes_hours
            quotes_from = 0 if hours is None else live_start - int(hours * 3600 * 1_000_000_000)
            # quotes older than anyone looks at: most of the history's records, none of its bars; not even made
            for sent_ns, event in self.simulator.timeline(first, live_start, sent_since, quotes_from):
                if sent_ns >= starts[event.symbol]:
                    self.until_ns = sent_ns + 1
                    yield event
            if self.stop.is_set():
                return
            self.until_ns = live_start
        if self.options.live and not self.stop.is_set():
            # unbounded: --duration, Ctrl-C or SIGTERM end it through the stop flag
            live_from = max(live_start, max(starts.values()))
            forever = live_from + 100 * 365 * 86_400 * 1_000_000_000
            history_sent = days > 0 and first < live_start
            sent_since = {s: 0 if s in self.resumed or history_sent else live_from for s in self.symbols}
            timeline = self.simulator.timeline(live_from, forever, sent_since)
            for sent_ns, event in paced(timeline, lambda item: item[0], self.options.speed, self.stop, self.idle):
                self.until_ns = sent_ns + 1
                yield event

    def progress_records(self) -> list[tuple[str, bytes]]:
        from ray_app.ingest.progress import progress_record

        if self.until_ns is None:
            return []
        return [
            progress_record(
                self.settings, s, max(self.until_ns, self.done.get(s, 0)), self.seed, self.trades_per_minute
            )
            for s in self.symbols
        ]


def _stop_after(stop: StopFlag, seconds: float | None) -> None:
    if seconds:
        import threading

        timer = threading.Timer(seconds, stop.set)
        timer.daemon = True
        timer.start()


def _items(
    settings: Settings,
    options: IngestOptions,
    stop: StopFlag,
    producer: IngestProducer,
    on_message: Callable[[str], None] | None,
) -> Iterator[IngestItem]:
    """The records of replay and backfill (the simulator is ``_SimulatedRun``; the live Alpaca streams push)."""
    if options.source is IngestSource.REPLAY:
        from ray_app.ingest.recording import replay

        if not options.file:
            raise ValueError("--source replay needs --file RECORDING")
        return replay(options.file, options.symbols or settings.symbols, options.speed, stop, producer.poll)
    from ray_app.ingest.backfill import backfill

    return backfill(
        settings,
        options.days or settings.alpaca.backfill_days,
        options.timeframe or settings.alpaca.backfill_timeframe,
        stop,
        symbols=options.symbols,
        on_retry=on_message,
    )


def _resumed_text(resumed: dict[str, int]) -> str:
    from ray_app.times import format_ns

    until = min(resumed.values())
    return (
        f"simulate: {len(resumed)} symbol(s) already simulated up to {format_ns(until)[:19]}Z or later "
        "(simulator-progress); going on from there"
    )


def _pull(
    settings: Settings,
    options: IngestOptions,
    stop: StopFlag,
    producer: IngestProducer,
    on_message: Callable[[str], None] | None,
) -> None:
    """A source that yields its records: first what a previous run left in the journal, then the source; the
    simulator then records how far it got (``progress.py``)."""
    say = on_message or (lambda _: None)
    journal = producer.journal
    if journal is not None and journal.pending() and (sent := producer.send_journal(stop)):
        producer.flush(settings.ingest.flush_timeout_s)
        say(f"sent {sent:,} records a previous run left in {journal.path}")
    if options.source is not IngestSource.SIMULATE:
        pump(_items(settings, options, stop, producer, on_message), producer, stop)
        return
    simulated = _SimulatedRun(settings, options, stop, producer.poll)
    if simulated.resumed:
        say(_resumed_text(simulated.resumed))
    try:
        pump(simulated, producer, stop)
    finally:
        for key, value in simulated.progress_records():
            producer.produce_bookkeeping(settings.kafka.topics.simulator_progress.name, key, value)


def journal_path(settings: Settings, source: IngestSource) -> Path:
    return settings.state_dir / "ingest" / f"spill-{source.value}-{settings.kafka.topics.trades.name}.journal"


Watch = Callable[[Counters, str], AbstractContextManager[object]]


def run_ingest(
    settings: Settings,
    options: IngestOptions,
    stop: StopFlag | None = None,
    on_message: Callable[[str], None] | None = None,
    watch: Watch | None = None,
) -> IngestReport:
    """Run one source into Kafka until it ends, fails or is stopped; on every one of those exits flush, keep what
    Kafka did not take in the spill journal, and report what was delivered (``IngestFailed`` carries the report).

    ``on_message`` hears what a person should know (a source's notes); ``watch`` is entered around the run with
    the live counters when progress is on (the CLI's progress line)."""
    stop = stop or StopFlag()
    if options.source is IngestSource.ALPACA:
        from ray_app.ingest.alpaca_stream import check_ready

        check_ready(settings, options.symbols or settings.symbols)
    try:
        ensure_topics(settings)
    except KafkaUnavailable as exc:
        advice = (
            ""
            if exc.refused
            else ("; start the local stack with `ray-app stack up` or point kafka.bootstrap_servers at your brokers")
        )
        raise KafkaUnreachable(f"{exc}{advice}") from None
    except KafkaException as exc:
        raise KafkaUnreachable(
            f"Kafka at {settings.kafka.bootstrap_servers} is not reachable ({exc.args[0].str()}); "
            "start the local stack with `ray-app stack up` or point kafka.bootstrap_servers at your brokers"
        ) from None
    ingest = settings.ingest
    journal = SpillJournal(journal_path(settings, options.source), ingest.spill_max_mb * 1024 * 1024)
    producer = IngestProducer(
        settings,
        journal,
        **{
            "queue.buffering.max.messages": ingest.queue_max_messages,
            "queue.buffering.max.kbytes": ingest.queue_max_mb * 1024,
            # never give a record up because the brokers are away; memory is bounded by the queues above
            "message.timeout.ms": 0,
        },
    )
    began = time.monotonic()
    metering = IngestMetering(producer.counters, options.source.value).start()
    show_progress = ingest.progress if options.progress is None else options.progress
    recorder = None
    leftover: list = []
    error: BaseException | None = None
    try:
        progress = watch(producer.counters, options.source.value) if show_progress and watch else nullcontext()
        with stop.on_signals(), progress:
            _stop_after(stop, options.duration_s)
            if options.source is IngestSource.ALPACA:
                from ray_app.ingest.alpaca_stream import AlpacaLiveSource
                from ray_app.ingest.recording import FrameRecorder

                recorder = FrameRecorder(options.record) if options.record else None
                sender = BackgroundSender(producer, ingest.memory_queue_messages, on_message)
                try:
                    AlpacaLiveSource(settings, sender.submit, stop, recorder, options.symbols).run()
                finally:
                    leftover = sender.close()
                    if recorder:
                        recorder.close()
            else:
                _pull(settings, options, stop, producer, on_message)
    except (Exception, KeyboardInterrupt) as exc:
        error = exc
    finally:
        undelivered = producer.close(ingest.flush_timeout_s, leftover)
        metering.close()
    recorded = recorder.frames if recorder else 0
    report = IngestReport(
        options.source.value,
        producer.counters,
        time.monotonic() - began,
        undelivered,
        recorded,
        kept=journal.count(),
        journal=journal.path,
    )
    if error is not None:
        raise IngestFailed(error, report) from error
    return report


def run(settings: Settings, stop: StopFlag) -> IngestReport:
    """The simulator part of the live platform: the simulator's live trades into Kafka until stopped (what
    `ray-app ingest --source simulate --live` does), its notes logged."""
    options = IngestOptions(source=IngestSource.SIMULATE, live=True, progress=False)
    return run_ingest(settings, options, stop, on_message=logging.getLogger(__name__).info)
