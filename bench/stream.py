"""Benchmark: the streaming job (Kafka -> Spark on Ray -> Elasticsearch) vs a bare Elasticsearch bulk loader.

One run, same machine, same trade documents, the whole job as in production (its query writes the trades, then
recomputes the bars they touched from the trades index):

1. throughput: --trades simulated trades are put in a fresh topic first; the streaming driver starts on it
   (Spark start-up is not counted: the clock starts when its queries are running) and the clock stops when
   Elasticsearch holds every trade and both queries have caught up with Kafka. Batches are capped at
   --batch-cap offsets, so the number is a sustained rate over several micro-batches. The bare loader indexes the
   same documents (as the job writes them) with ``elasticsearch.helpers.parallel_bulk`` (2 threads, 5,000 per
   request) into a fresh index with the same mapping.
2. latency at fixed input rates (--rates, trades/s, each for --seconds): trades for six symbols, paced in 50 ms
   slices by one producer. The first trade of every slice is a probe: a poller searches Elasticsearch every
   100 ms for the probes not seen yet and records when each became searchable in ``trades`` and when its
   1-minute bar in ``bars-1m`` counted it (both after Elasticsearch's refresh, as Grafana sees them). The bare
   reference indexes the same stream straight into Elasticsearch every 100 ms and is measured the same way.
   Per rate: where a micro-batch's time goes, per query (from the job's status), and the CPU each process used.
3. --executors 1,2: the whole run again with that many RayDP executors.

    .venv/bin/python bench/stream.py [--trades 60000] [--rates 200,1000,5000] [--seconds 20] [--executors 1,2] [--json]

It starts the local stack if it is not running (`ray-app stack up`) and removes its own topics and indices.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
from confluent_kafka import Producer
from elasticsearch import Elasticsearch
from elasticsearch.helpers import parallel_bulk
from rich.console import Console
from rich.table import Table

from ray_app.config import Settings, load_settings
from ray_app.es_indices import MAPPINGS, ensure_index, es_client
from ray_app.ingest.simulator import TradeSimulator, history_window
from ray_app.kafka_clients import producer_config
from ray_app.kafka_topics import ensure_topics
from ray_app.schemas import Quote, Source, Trade, is_crypto, trade_doc_id
from ray_app.stack import manager
from ray_app.times import format_ns, trading_day

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = ["AAPL", "MSFT", "GOOG", "IBM", "BTC/USD", "ETH/USD"]
SLICE_S = 0.05
POLL_S = 0.1
console = Console(width=None if sys.stdout.isatty() else 140, stderr=False)


def _env(tag: str, settings: Settings, executors: int, batch_cap: int) -> dict[str, str]:
    bench_dir = settings.state_dir / "bench" / tag
    env = {
        "RAY_APP_KAFKA__TOPICS__TRADES__NAME": f"bench-trades-{tag}",
        "RAY_APP_KAFKA__TOPICS__BARS__NAME": f"bench-bars-{tag}",
        "RAY_APP_KAFKA__TOPICS__DEAD_LETTERS__NAME": f"bench-dead-letters-{tag}",
        "RAY_APP_KAFKA__TOPICS__QUOTES__NAME": f"bench-quotes-{tag}",
        # the driver's state dir, status and checkpoints of its own; the stack is found by its addresses
        "RAY_APP_STATE_DIR": str(bench_dir),
        "RAY_APP_CACHE_DIR": str(settings.cache_dir),
        "RAY_APP_STREAM__CHECKPOINT_DIR": str(bench_dir / "checkpoints"),
        "RAY_APP_STREAM__APP_NAME": f"bench-stream-{tag}",
        "RAY_APP_STREAM__NUM_EXECUTORS": str(executors),
        "RAY_APP_STREAM__MAX_OFFSETS_PER_TRIGGER": str(batch_cap),
    }
    for key, index in settings.elasticsearch.indices.by_key().items():
        env[f"RAY_APP_ELASTICSEARCH__INDICES__{key.upper()}"] = f"bench-{tag}-{index}"
    return env


def _trade_doc(trade: Trade, partition: int = 0, offset: int = 0) -> dict:
    """The trades document as the job writes it (records.trade_document_columns)."""
    return {
        "symbol": trade.symbol,
        "price": trade.price,
        "size": trade.size,
        "trade_id": trade.trade_id,
        "exchange": trade.exchange,
        "conditions": trade.conditions,
        "tape": trade.tape,
        "taker_side": trade.taker_side,
        "source": trade.source.value,
        "timestamp": trade.timestamp,
        "timestamp_ns": trade.timestamp_ns,
        "schema_version": 1,
        "ingested_at": trade.timestamp,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def _doc_id(trade: Trade) -> str:
    day = None if is_crypto(trade.symbol) else trading_day(trade.timestamp_ns)
    return trade_doc_id(trade.symbol, trade.exchange, day, trade.trade_id)


def _produce_all(settings: Settings, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(producer_config(settings))
    topic = settings.kafka.topics.trades.name
    for value, key in payloads:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


def _count(es: Elasticsearch, index: str) -> int:
    return es.count(index=index)["count"] if es.indices.exists(index=index) else 0


def _wait(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    driver: subprocess.Popen | None = None,
    env: dict[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if driver is not None and driver.poll() is not None:
            raise RuntimeError(f"the streaming driver exited ({driver.returncode}) while waiting for {what}")
        failing = [q for q in (_status(env) if env else {}).values() if q.get("consecutive_failures", 0) >= 3]
        if failing:
            raise RuntimeError(f"query {failing[0]['name']} keeps failing: {failing[0].get('last_error')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout_s:.0f} s")
        time.sleep(0.2)


def _pct(values: list[float], q: float) -> float | None:
    return sorted(values)[min(int(q * len(values)), len(values) - 1)] if values else None


class FastTrade:
    """Trade JSON from a template (a few microseconds, so the feeder never competes with what it measures),
    checked once against the model's own encoding."""

    def __init__(self) -> None:
        sample = Trade(
            symbol="AAPL",
            timestamp_ns=1_700_000_000_123_456_789,
            price=101.5,
            size=1.0,
            trade_id="t-1",
            exchange="V",
            source=Source.REPLAY,
        )
        assert json.loads(self.encode("AAPL", sample.timestamp_ns, 101.5, "t-1")) == json.loads(sample.to_json())
        quote = Quote(
            symbol="AAPL",
            timestamp_ns=sample.timestamp_ns,
            bid_price=101.5,
            bid_size=100.0,
            ask_price=101.52,
            ask_size=100.0,
            source=Source.REPLAY,
        )
        assert json.loads(self.quote("AAPL", quote.timestamp_ns, 101.5, 101.52)) == json.loads(quote.to_json())

    @staticmethod
    def encode(symbol: str, ts_ns: int, price: float, trade_id: str) -> bytes:
        return (
            f'{{"schema_version":1,"symbol":"{symbol}","timestamp_ns":{ts_ns},"source":"replay","kind":"trade",'
            f'"price":{price!r},"size":1.0,"trade_id":"{trade_id}","exchange":"V","conditions":[],"tape":null,'
            f'"taker_side":null,"timestamp":"{format_ns(ts_ns)}"}}'
        ).encode()

    @staticmethod
    def quote(symbol: str, ts_ns: int, bid: float, ask: float) -> bytes:
        return (
            f'{{"schema_version":1,"symbol":"{symbol}","timestamp_ns":{ts_ns},"source":"replay","kind":"quote",'
            f'"bid_price":{bid!r},"bid_size":100.0,"bid_exchange":null,"ask_price":{ask!r},"ask_size":100.0,'
            f'"ask_exchange":null,"conditions":[],"tape":null,"timestamp":"{format_ns(ts_ns)}"}}'
        ).encode()


@dataclass
class Probe:
    trade_id: str
    doc_id: str
    bar_id: str
    produced_at: float
    needed: int  # trades of its symbol in its minute up to and including it
    searchable_at: float | None = None
    bar_at: float | None = None


class Poller(threading.Thread):
    """Every 100 ms: which probes are searchable in trades, and which minute bars count them."""

    def __init__(self, es: Elasticsearch, trades: str, bars: str | None) -> None:
        super().__init__(daemon=True)
        self.es, self.trades, self.bars = es, trades, bars
        self.probes: list[Probe] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def add(self, probe: Probe) -> None:
        with self.lock:
            self.probes.append(probe)

    def pending(self) -> int:
        with self.lock:
            return sum(1 for p in self.probes if p.searchable_at is None or (self.bars and p.bar_at is None))

    def run(self) -> None:
        while not self.done.is_set():
            with self.lock:
                unseen = [p for p in self.probes if p.searchable_at is None][:2000]
                no_bar = [p for p in self.probes if self.bars and p.bar_at is None][:2000]
            if unseen:
                found = self.es.search(
                    index=self.trades,
                    size=len(unseen),
                    source=False,
                    query={"ids": {"values": [p.doc_id for p in unseen]}},
                )
                now = time.time()
                hits = {hit["_id"] for hit in found["hits"]["hits"]}
                for probe in unseen:
                    if probe.doc_id in hits:
                        probe.searchable_at = now
            if no_bar and self.bars:
                ids = sorted({p.bar_id for p in no_bar})
                found = self.es.search(
                    index=self.bars, size=len(ids), source=["trade_count"], query={"ids": {"values": ids}}
                )
                now = time.time()
                counts = {hit["_id"]: hit["_source"]["trade_count"] for hit in found["hits"]["hits"]}
                for probe in no_bar:
                    if counts.get(probe.bar_id, 0) >= probe.needed:
                        probe.bar_at = now
            time.sleep(POLL_S)


class CpuMeter:
    """CPU seconds each kind of process used between start() and stop(), and the machine's total."""

    def __init__(self) -> None:
        self.before: dict[int, tuple[str, float]] = {}
        self.began = 0.0

    @staticmethod
    def _kind(proc: psutil.Process) -> str:
        try:
            line = " ".join(proc.cmdline())
            name = proc.name()
        except psutil.Error:
            return "other"
        if name == "java" and "DefaultWorker" in line:
            return "spark executors"
        if name == "java" and ("SparkSubmit" in line or "pyspark-shell" in line):
            return "spark driver (JVM)"
        if "es.path.home" in line or "org.elasticsearch" in line:
            return "elasticsearch"
        if name == "java" and "kafka" in line:
            return "kafka"
        if "spark_jobs.job" in line or "stream driver" in line:
            return "spark driver (Python)"
        if "worker_daemon" in line or "pyspark.daemon" in line or "pyspark/daemon" in line:
            return "spark python workers"
        if "bench/stream.py" in line:
            return "bench (feeder, poller)"
        if "ray" in line.lower():
            return "ray"
        return "other"

    def _sample(self) -> dict[int, tuple[str, float]]:
        sample = {}
        for proc in psutil.process_iter():
            try:
                times = proc.cpu_times()
                sample[proc.pid] = (self._kind(proc), times.user + times.system)
            except psutil.Error:
                continue
        return sample

    def start(self) -> None:
        self.before = self._sample()
        self.began = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Cores used on average, by kind, over the interval ('machine': all of them)."""
        after = self._sample()
        seconds = max(time.monotonic() - self.began, 1e-9)
        used: Counter[str] = Counter()
        for pid, (kind, cpu) in after.items():
            used[kind] += cpu - self.before.get(pid, (kind, 0.0))[1]
        cores = {kind: round(value / seconds, 2) for kind, value in used.most_common() if value > 0}
        cores["machine"] = round(sum(used.values()) / seconds, 2)
        return cores


@dataclass
class LatencyRun:
    rate: int
    seconds: int
    quotes_per_trade: float
    achieved_rate: float
    probes: int
    searchable: list[float] = field(default_factory=list)
    bar: list[float] = field(default_factory=list)
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # query -> phase -> mean ms per batch
    batch: dict[str, dict[str, float]] = field(default_factory=dict)  # query -> mean rows and seconds per batch
    cores: dict[str, float] = field(default_factory=dict)


Send = Callable[[list[tuple[str, bytes]]], None]


def _feed(
    settings: Settings,
    es: Elasticsearch,
    rate: int,
    seconds: int,
    tag: str,
    counts: Counter,
    send: Send,
    trades_index: str,
    bars_index: str | None,
    quotes_per_trade: float = 0.0,
    send_quotes: Send | None = None,
) -> LatencyRun:
    """`rate` trades/s in 50 ms slices for `seconds`; the first trade of each slice is a probe. With
    `quotes_per_trade`, that many quotes per trade besides (their symbols in turn, stamped within the slice)."""
    poller = Poller(es, trades_index, bars_index)
    poller.start()
    per_slice = max(int(rate * SLICE_S), 1)
    quotes_per_slice = round(per_slice * quotes_per_trade) if send_quotes else 0
    n = q = 0
    began = time.monotonic()
    for step in range(int(seconds / SLICE_S)):
        time.sleep(max(began + step * SLICE_S - time.monotonic(), 0))
        batch: list[tuple[str, bytes]] = []
        for k in range(per_slice):
            n += 1
            symbol = SYMBOLS[n % len(SYMBOLS)]
            ts_ns = time.time_ns()
            trade_id = f"{tag}-{n}"
            minute = ts_ns // 60_000_000_000 * 60
            counts[(symbol, minute)] += 1
            batch.append((symbol, FastTrade.encode(symbol, ts_ns, 100 + n % 7, trade_id)))
            if k == 0:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute))
                day = None if is_crypto(symbol) else trading_day(ts_ns)
                poller.add(
                    Probe(
                        trade_id,
                        trade_doc_id(symbol, "V", day, trade_id),
                        f"{symbol}|{stamp}",
                        ts_ns / 1e9,
                        counts[(symbol, minute)],
                    )
                )
        send(batch)
        if quotes_per_slice:
            quotes = []
            for _ in range(quotes_per_slice):
                q += 1
                symbol = SYMBOLS[q % len(SYMBOLS)]
                bid = 100.0 + q % 7
                quotes.append((symbol, FastTrade.quote(symbol, time.time_ns(), bid, bid + 0.01 * (1 + q % 3))))
            send_quotes(quotes)
    feed_seconds = time.monotonic() - began
    deadline = time.monotonic() + 90
    while poller.pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    poller.done.set()
    poller.join(5)
    run = LatencyRun(
        rate=rate,
        seconds=seconds,
        quotes_per_trade=round(q / n, 2) if n else 0.0,
        achieved_rate=round(n / feed_seconds, 1),
        probes=len(poller.probes),
    )
    run.searchable = sorted(p.searchable_at - p.produced_at for p in poller.probes if p.searchable_at)
    run.bar = sorted(p.bar_at - p.produced_at for p in poller.probes if p.bar_at)
    return run


def _status(settings_env: dict[str, str]) -> dict[str, Any]:
    """The driver's status: from Elasticsearch (index stream-status), or from the status file older versions wrote."""
    index, app = settings_env["RAY_APP_ELASTICSEARCH__INDICES__STREAM_STATUS"], settings_env["RAY_APP_STREAM__APP_NAME"]
    try:
        found = es_client(load_settings()).get(index=index, id=app)
        return found["_source"]["status"]["queries"]
    except Exception:
        pass
    path = Path(settings_env["RAY_APP_STATE_DIR"]) / "run" / "stream-status.json"
    try:
        return json.loads(path.read_text())["queries"]
    except (OSError, ValueError, KeyError):
        return {}


def _caught_up(settings: Settings, env: dict[str, str]) -> bool:
    """Every query in the driver's status has committed the end offsets Kafka holds now, on every topic it read
    (from the status file, so it works for any version of the job)."""
    from ray_app.kafka_topics import end_offsets

    queries = _status(env)
    if not queries:
        return False
    topics = [t.name for t in settings.kafka.topics.all()]
    ends = end_offsets(settings, topics)
    for query in queries.values():
        committed = query.get("committed_offsets") or {}
        if not committed:
            return False
        for topic, partitions in committed.items():
            for partition, end in ends.get(topic, {}).items():
                if partitions.get(str(partition), 0) < end:
                    return False
    return True


def _phase_means(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    phases, batches = {}, {}
    for name, query in after.items():
        old = before.get(name, {})
        timed = query.get("timed_batches", 0) - old.get("timed_batches", 0)
        done = query.get("batches", 0) - old.get("batches", 0)
        if timed > 0:
            phases[name] = {
                phase: round((seconds - old.get("phase_seconds", {}).get(phase, 0.0)) / timed * 1000, 1)
                for phase, seconds in query.get("phase_seconds", {}).items()
            }
        if done > 0:
            batches[name] = {"rows": round((query["rows"] - old.get("rows", 0)) / done, 1), "batches": done}
    return phases, batches


@dataclass
class Throughput:
    trades_indexed_s: float  # trades/s until every trade was searchable
    caught_up_s: float  # trades/s until the job had committed everything (its bars included)
    phases: dict[str, dict[str, float]]
    cores: dict[str, float]


@dataclass
class ExecutorRun:
    executors: int
    trades: int
    bare_s: float
    cold: Throughput  # the backlog waiting when the job starts (just-in-time compilers still busy)
    warm: Throughput  # the same trades as a burst into the running, warmed-up job: the sustained rate
    latency: list[LatencyRun]
    bare_latency: LatencyRun | None
    quotes_latency: LatencyRun | None = None  # the first rate again, with --quotes-per-trade quotes beside
    quotes_burst: QuoteBurst | None = None


@dataclass
class QuoteBurst:
    """Trades with --quotes-per-trade quotes each, produced at once into the running job: the sustained rate."""

    trades: int
    quotes: int
    records_s: float  # Kafka records (trades and quotes) per second until the job had committed them all
    trades_indexed_s: float  # trades per second until every trade was searchable
    phases: dict[str, dict[str, float]]
    cores: dict[str, float]


def _one_run(
    base: Settings,
    executors: int,
    trades: int,
    rates: list[int],
    seconds: int,
    batch_cap: int,
    bare_latency: bool,
    warmup_s: int,
    warmup_rate: int,
    quotes_per_trade: float,
) -> ExecutorRun:
    tag = uuid.uuid4().hex[:6]
    env = _env(tag, base, executors, batch_cap)
    os.environ.update(env)
    settings = load_settings()
    ensure_topics(settings)
    es = es_client(settings)
    indices = settings.elasticsearch.indices
    simulated: list[Trade] = []
    start_ns, end_ns = history_window(7, time.time_ns() - 3600 * 10**9)
    for trade in TradeSimulator(settings.symbols, seed=11, trades_per_minute=60).trades(start_ns, end_ns):
        simulated.append(trade)
        if len(simulated) >= trades:
            break
    console.print(
        f"[{executors} executor(s)] producing {len(simulated):,} simulated trades into "
        f"{settings.kafka.topics.trades.name} ...",
        highlight=False,
    )
    _produce_all(settings, [(t.to_json(), t.symbol.encode()) for t in simulated])

    log_path = Path(env["RAY_APP_STATE_DIR"]) / f"stream-{tag}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "ray_app", "stream", "driver"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ},
    )
    latency: list[LatencyRun] = []
    quotes_run: LatencyRun | None = None
    counts: Counter = Counter()
    try:
        _wait(lambda: "streaming " in log_path.read_text(), 300, "Spark start", driver)
        meter = CpuMeter()
        meter.start()
        began = time.monotonic()
        _wait(lambda: _count(es, indices.trades) >= len(simulated), 1800, "indexing every trade", driver, env)
        trades_done = time.monotonic() - began

        _wait(lambda: _caught_up(settings, env), 600, "the bars catching up", driver, env)
        all_done = time.monotonic() - began
        cold_cores = meter.stop()
        cold_phases, _ = _phase_means({}, _status(env))

        producer = Producer(producer_config(settings, **{"linger.ms": 5}))
        topic = settings.kafka.topics.trades.name

        def to_kafka(batch: list[tuple[str, bytes]]) -> None:
            for symbol, value in batch:
                while True:
                    try:
                        producer.produce(topic, value=value, key=symbol.encode())
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)

        quotes_topic = settings.kafka.topics.quotes.name

        def quotes_to_kafka(batch: list[tuple[str, bytes]]) -> None:
            for symbol, value in batch:
                while True:
                    try:
                        producer.produce(quotes_topic, value=value, key=symbol.encode())
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)

        # warm: the JVMs' just-in-time compilers have seen the job's code; then the same trades again, as a burst
        console.print(f"[{executors} executor(s)] warming up: {warmup_rate:,} trades/s for {warmup_s} s ...")
        _feed(settings, es, warmup_rate, warmup_s, f"warm-{tag}", counts, to_kafka, indices.trades, None)
        producer.flush(30)
        _wait(lambda: _caught_up(settings, env), 600, "the warm-up catching up", driver, env)
        before = _status(env)
        # the same trades, stamped over the last 9 minutes (as a live burst would be)
        first_ns = time.time_ns() - 540 * 10**9
        span = max(len(simulated) - 1, 1)
        restamped = (
            t.model_copy(update={"trade_id": f"burst-{t.trade_id}", "timestamp_ns": first_ns + i * 540 * 10**9 // span})
            for i, t in enumerate(simulated)
        )
        burst = [(t.to_json(), t.symbol.encode()) for t in restamped]
        console.print(f"[{executors} executor(s)] {len(burst):,} trades as fast as they can be produced ...")
        meter = CpuMeter()
        meter.start()
        began = time.monotonic()
        _produce_all(settings, burst)
        _wait(
            lambda: _count(es, indices.trades) >= 2 * len(simulated) + _warm_count(counts),
            1800,
            "indexing the burst",
            driver,
            env,
        )
        warm_trades_done = time.monotonic() - began
        _wait(lambda: _caught_up(settings, env), 600, "the bars catching up with the burst", driver, env)
        warm_done = time.monotonic() - began
        warm_cores = meter.stop()
        warm_phases, _ = _phase_means(before, _status(env))

        bare_index = f"bench-{tag}-bare"
        ensure_index(settings, es, bare_index, MAPPINGS["trades"])
        actions = [{"_index": bare_index, "_id": _doc_id(t), "_source": _trade_doc(t)} for t in simulated]
        began = time.monotonic()
        for ok, item in parallel_bulk(es, actions, thread_count=2, chunk_size=5000):
            assert ok, item
        es.indices.refresh(index=bare_index)
        bare_seconds = time.monotonic() - began
        assert _count(es, bare_index) == len(simulated)

        for rate in rates:
            console.print(f"[{executors} executor(s)] {rate:,} trades/s for {seconds} s through the stream ...")
            _feed(settings, es, rate, 5, f"warm-{tag}-{rate}", counts, to_kafka, indices.trades, None)
            before = _status(env)
            meter = CpuMeter()
            meter.start()
            run = _feed(
                settings, es, rate, seconds, f"lat-{tag}-{rate}", counts, to_kafka, indices.trades, indices.bars_1m
            )
            run.cores = meter.stop()
            run.phases, run.batch = _phase_means(before, _status(env))
            latency.append(run)
            if quotes_per_trade and rate == rates[0]:
                console.print(
                    f"[{executors} executor(s)] {rate:,} trades/s with {quotes_per_trade:g} quotes per trade "
                    f"for {seconds} s ..."
                )
                before = _status(env)
                meter = CpuMeter()
                meter.start()
                quotes_run = _feed(
                    settings,
                    es,
                    rate,
                    seconds,
                    f"qlat-{tag}-{rate}",
                    counts,
                    to_kafka,
                    indices.trades,
                    indices.bars_1m,
                    quotes_per_trade,
                    quotes_to_kafka,
                )
                quotes_run.cores = meter.stop()
                quotes_run.phases, quotes_run.batch = _phase_means(before, _status(env))
        producer.flush(30)

        quote_burst = None
        if quotes_per_trade:
            quote_burst = _quote_burst(
                settings, es, env, driver, simulated[: max(len(simulated) // 4, 1)], quotes_per_trade
            )

        bare_run = None
        if bare_latency:
            console.print(f"[{executors} executor(s)] {rates[0]:,} trades/s for {seconds} s straight into ES ...")

            def direct(batch: list[tuple[str, bytes]]) -> None:
                lines = []
                for symbol, value in batch:
                    doc = json.loads(value)
                    day = None if is_crypto(symbol) else trading_day(doc["timestamp_ns"])
                    doc_id = trade_doc_id(symbol, "V", day, doc["trade_id"])  # the id the poller looks for
                    lines += [{"index": {"_index": bare_index, "_id": doc_id}}, doc]
                es.bulk(operations=lines)

            bare_run = _feed(settings, es, rates[0], seconds, f"blat-{tag}", Counter(), direct, bare_index, None)
    except Exception:
        log.flush()
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        console.print(f"[red]the run failed; the streaming driver's log ends ({log_path}):[/red]", highlight=False)
        console.print("\n".join(tail), markup=False, highlight=False)
        raise
    finally:
        driver.send_signal(signal.SIGTERM)
        try:
            driver.wait(90)
        except subprocess.TimeoutExpired:
            driver.kill()
        log.close()
        _clean_up(settings, es, tag, Path(env["RAY_APP_STATE_DIR"]))
        for key in env:
            os.environ.pop(key, None)
    return ExecutorRun(
        executors,
        len(simulated),
        len(simulated) / bare_seconds,
        cold=Throughput(len(simulated) / trades_done, len(simulated) / all_done, cold_phases, cold_cores),
        warm=Throughput(len(simulated) / warm_trades_done, len(simulated) / warm_done, warm_phases, warm_cores),
        latency=latency,
        bare_latency=bare_run,
        quotes_latency=quotes_run,
        quotes_burst=quote_burst,
    )


def _quote_burst(
    settings: Settings,
    es: Elasticsearch,
    env: dict[str, str],
    driver: subprocess.Popen,
    trades: list[Trade],
    quotes_per_trade: float,
) -> QuoteBurst:
    """``trades`` restamped over the last 9 minutes, each with ``quotes_per_trade`` quotes around it (within 0.5 s),
    all produced at once: records/s until the job has committed every one (its bars included)."""
    indices = settings.elasticsearch.indices
    first_ns = time.time_ns() - 540 * 10**9
    span = max(len(trades) - 1, 1)
    trades_topic, quotes_topic = settings.kafka.topics.trades.name, settings.kafka.topics.quotes.name
    payloads: list[tuple[str, bytes, bytes]] = []  # (topic, value, key)
    quotes = 0
    for i, trade in enumerate(trades):
        at = first_ns + i * 540 * 10**9 // span
        key = trade.symbol.encode()
        payloads.append((trades_topic, FastTrade.encode(trade.symbol, at, trade.price, f"qb-{i}"), key))
        for k in range(round(quotes_per_trade * (i + 1)) - round(quotes_per_trade * i)):
            quotes += 1
            quoted = at + k * 47_000_000 % 1_000_000_000 - 500_000_000
            bid = round(trade.price - 0.01 * (1 + k % 3), 2)
            payloads.append((quotes_topic, FastTrade.quote(trade.symbol, quoted, bid, trade.price), key))
    indexed_before = _count(es, indices.trades)
    console.print(f"{len(trades):,} trades with {quotes:,} quotes as fast as they can be produced ...")
    producer = Producer(producer_config(settings))
    meter = CpuMeter()
    meter.start()
    before = _status(env)
    began = time.monotonic()
    for topic, value, key in payloads:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    _wait(lambda: _count(es, indices.trades) >= indexed_before + len(trades), 1800, "indexing the trades", driver, env)
    trades_done = time.monotonic() - began
    _wait(lambda: _caught_up(settings, env), 1800, "the quotes catching up", driver, env)
    done = time.monotonic() - began
    phases, _ = _phase_means(before, _status(env))
    return QuoteBurst(
        trades=len(trades),
        quotes=quotes,
        records_s=(len(trades) + quotes) / done,
        trades_indexed_s=len(trades) / trades_done,
        phases=phases,
        cores=meter.stop(),
    )


def _warm_count(counts: Counter) -> int:
    return sum(counts.values())


def _clean_up(settings: Settings, es: Elasticsearch, tag: str, state: Path) -> None:
    from confluent_kafka.admin import AdminClient

    from ray_app.kafka_clients import admin_config

    for name in es.indices.get(index=f"bench-{tag}-*"):  # wildcard deletes are refused by default, rightly
        es.indices.delete(index=name)
    AdminClient(admin_config(settings)).delete_topics([t.name for t in settings.kafka.topics.all()])
    if not os.environ.get("BENCH_KEEP_STATE"):
        shutil.rmtree(state, ignore_errors=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f}"


def _print(runs: list[ExecutorRun]) -> None:
    table = Table(title="throughput: trades already in Kafka (2-core machine, one run)", title_justify="left")
    for column in ("executors", "path", "trades", "trades/s", "vs bare", "cores used (machine: 2)"):
        table.add_column(column, justify="left" if column in {"path", "cores used (machine: 2)"} else "right")
    for run in runs:
        table.add_row(
            str(run.executors),
            "bare ES bulk loader (parallel_bulk, 2 threads)",
            f"{run.trades:,}",
            f"{run.bare_s:,.0f}",
            "1.00",
            "",
        )
        for label, part in (("warm", run.warm), ("cold", run.cold)):
            what = "a burst into the running job" if label == "warm" else "the backlog at start"
            cores = ", ".join(f"{k} {v:.2f}" for k, v in part.cores.items() if v >= 0.05)
            table.add_row(
                "",
                f"ours, {what}: trades searchable",
                f"{run.trades:,}",
                f"{part.trades_indexed_s:,.0f}",
                f"{part.trades_indexed_s / run.bare_s:.2f}",
                "",
            )
            table.add_row(
                "",
                f"ours, {what}: trades + bars caught up",
                f"{run.trades:,}",
                f"{part.caught_up_s:,.0f}",
                f"{part.caught_up_s / run.bare_s:.2f}",
                cores,
            )
        if run.quotes_burst:
            qb = run.quotes_burst
            table.add_row(
                "",
                f"ours, a burst of trades with {qb.quotes / qb.trades:g} quotes each: records caught up",
                f"{qb.trades + qb.quotes:,}",
                f"{qb.records_s:,.0f}",
                "-",
                ", ".join(f"{k} {v:.2f}" for k, v in qb.cores.items() if v >= 0.05),
            )
    console.print(table)

    table = Table(
        title="latency: trade produced -> searchable (p50 / p99 ms) and -> its 1-minute bar updated",
        title_justify="left",
    )
    for column in (
        "executors",
        "rate/s",
        "achieved",
        "probes",
        "searchable p50",
        "p99",
        "max",
        "bar p50",
        "bar p99",
        "records batch",
        "bars batch",
        "cores used (machine: 2)",
    ):
        table.add_column(column, justify="left" if column.startswith("cores") else "right")
    for run in runs:
        for lat in [*run.latency, *([run.quotes_latency] if run.quotes_latency else [])]:
            batches = []
            for name in ("records", "bars"):
                b, p = lat.batch.get(name, {}), lat.phases.get(name, {})
                total = sum(v for k, v in p.items() if k not in {"bulk", "state", "worker", "tasks"})
                batches.append(f"{b.get('rows', 0):,.0f} rows, {total:,.0f} ms" if b else "-")
            cores = ", ".join(f"{k} {v:.2f}" for k, v in lat.cores.items() if v >= 0.05)
            table.add_row(
                str(run.executors),
                f"{lat.rate:,}" + (f" + {lat.quotes_per_trade:g} quotes/trade" if lat.quotes_per_trade else ""),
                f"{lat.achieved_rate:,.0f}",
                str(lat.probes),
                _ms(_pct(lat.searchable, 0.5)),
                _ms(_pct(lat.searchable, 0.99)),
                _ms(max(lat.searchable) if lat.searchable else None),
                _ms(_pct(lat.bar, 0.5)),
                _ms(_pct(lat.bar, 0.99)),
                *batches,
                cores,
            )
        if run.bare_latency:
            b = run.bare_latency
            table.add_row(
                str(run.executors),
                f"{b.rate:,}",
                f"{b.achieved_rate:,.0f}",
                str(b.probes),
                _ms(_pct(b.searchable, 0.5)),
                _ms(_pct(b.searchable, 0.99)),
                _ms(max(b.searchable) if b.searchable else None),
                "-",
                "-",
                "bare: bulk straight into ES every 100 ms",
                "",
                "",
            )
    console.print(table)

    # the phases the job's status reports (an older job reported "build": its plan made in Python per batch, and
    # "worker": time in the executors' Python workers, inside "write")
    order = [
        "offsets",
        "build",
        "planning",
        "checkpoint",
        "write",
        "tasks",
        "worker",
        "bulk",
        "state",
        "bars",
        "hours",
        "refresh",
        "other",
    ]
    seen = {
        phase
        for run in runs
        for phases in [
            run.warm.phases,
            run.cold.phases,
            *(lat.phases for lat in run.latency),
            *([run.quotes_latency.phases] if run.quotes_latency else []),
            *([run.quotes_burst.phases] if run.quotes_burst else []),
        ]
        for values in phases.values()
        for phase in values
    }
    PHASES = [phase for phase in order if phase in seen] + sorted(seen - set(order))

    table = Table(
        title=(
            "where a micro-batch's time goes (mean ms per batch; inside write: tasks, a task's own time on average, "
            "and worker, bulk, state)"
        ),
        title_justify="left",
    )
    for column in ("executors", "phase of the run", "query", *PHASES):
        table.add_column(column, justify="left" if column in {"phase of the run", "query"} else "right")
    for run in runs:
        for label, phases in [
            ("burst (warm)", run.warm.phases),
            ("backlog (cold)", run.cold.phases),
            *((f"{lat.rate:,}/s", lat.phases) for lat in run.latency),
            *([(f"{run.quotes_latency.rate:,}/s + quotes", run.quotes_latency.phases)] if run.quotes_latency else []),
            *([("burst with quotes", run.quotes_burst.phases)] if run.quotes_burst else []),
        ]:
            for name, values in phases.items():
                table.add_row(str(run.executors), label, name, *(f"{values.get(p, 0):,.0f}" for p in PHASES))
    console.print(table)


def _summary(runs: list[ExecutorRun]) -> dict[str, Any]:
    head = runs[0]
    first = head.latency[0] if head.latency else None
    return {
        "throughput_trades_s": round(head.warm.caught_up_s, 1),
        "trades_indexed_s": round(head.warm.trades_indexed_s, 1),
        "bare_trades_s": round(head.bare_s, 1),
        "throughput_ratio": round(head.warm.caught_up_s / head.bare_s, 4),
        "cold_throughput_trades_s": round(head.cold.caught_up_s, 1),
        "cold_throughput_ratio": round(head.cold.caught_up_s / head.bare_s, 4),
        "rate_trades_s": first.rate if first else None,
        "latency_p50_s": _pct(first.searchable, 0.5) if first else None,
        "latency_p99_s": _pct(first.searchable, 0.99) if first else None,
        "bar_latency_p50_s": _pct(first.bar, 0.5) if first else None,
        "bar_latency_p99_s": _pct(first.bar, 0.99) if first else None,
        "bare_latency_p50_s": _pct(head.bare_latency.searchable, 0.5) if head.bare_latency else None,
        "latency_ratio_to_bare": (
            round(_pct(first.searchable, 0.5) / _pct(head.bare_latency.searchable, 0.5), 4)  # type: ignore[operator]
            if first and first.searchable and head.bare_latency and head.bare_latency.searchable
            else None
        ),
        **_quotes_summary(head),
        "runs": [
            {
                **{
                    k: v
                    for k, v in asdict(run).items()
                    if k not in {"latency", "bare_latency", "quotes_latency", "quotes_burst"}
                },
                "quotes_burst": asdict(run.quotes_burst) if run.quotes_burst else None,
                "latency": [
                    {
                        **{k: v for k, v in asdict(lat).items() if k not in {"searchable", "bar"}},
                        "p50_s": _pct(lat.searchable, 0.5),
                        "p99_s": _pct(lat.searchable, 0.99),
                        "bar_p50_s": _pct(lat.bar, 0.5),
                        "bar_p99_s": _pct(lat.bar, 0.99),
                    }
                    for lat in run.latency
                ],
            }
            for run in runs
        ],
    }


def _quotes_summary(run: ExecutorRun) -> dict[str, Any]:
    """The numbers with quotes: the burst's records/s and the trade latency beside the run without quotes."""
    plain = run.latency[0] if run.latency else None
    quoted, burst = run.quotes_latency, run.quotes_burst
    p50 = _pct(quoted.searchable, 0.5) if quoted else None
    plain_p50 = _pct(plain.searchable, 0.5) if plain else None
    return {
        "quotes_per_trade": quoted.quotes_per_trade if quoted else None,
        "quotes_records_s": round(burst.records_s, 1) if burst else None,
        "quotes_trades_indexed_s": round(burst.trades_indexed_s, 1) if burst else None,
        "quotes_latency_p50_s": p50,
        "quotes_latency_p99_s": _pct(quoted.searchable, 0.99) if quoted else None,
        "quotes_bar_latency_p50_s": _pct(quoted.bar, 0.5) if quoted else None,
        "quotes_latency_p50_ratio": round(p50 / plain_p50, 4) if p50 and plain_p50 else None,
    }


def main(
    trades: Annotated[int, typer.Option(help="simulated trades for the throughput run")] = 60_000,
    rates: Annotated[str, typer.Option(help="input rates (trades/s) for the latency runs, comma-separated")] = "200",
    seconds: Annotated[int, typer.Option(help="seconds per latency run")] = 20,
    executors: Annotated[str, typer.Option(help="RayDP executor counts to run, comma-separated")] = "1",
    batch_cap: Annotated[int, typer.Option(help="max offsets per micro-batch in the throughput run")] = 20_000,
    warmup: Annotated[int, typer.Option(help="seconds of input before the warm throughput run")] = 30,
    warmup_rate: Annotated[int, typer.Option(help="trades/s during the warm-up")] = 1000,
    quotes_per_trade: Annotated[
        float, typer.Option(help="quotes per trade: the first rate again with quotes, and a burst with quotes")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object last")] = False,
) -> None:
    base = load_settings()
    console.print("stack up ...")
    manager.up(base)
    FastTrade()
    rate_list = [int(r) for r in rates.split(",") if r]
    runs = []
    for count in [int(e) for e in executors.split(",") if e]:
        runs.append(
            _one_run(
                base, count, trades, rate_list, seconds, batch_cap, not runs, warmup, warmup_rate, quotes_per_trade
            )
        )
    _print(runs)
    if as_json:
        print(json.dumps(_summary(runs)))


if __name__ == "__main__":
    typer.run(main)
