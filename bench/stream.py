"""Benchmark: the streaming job (Kafka -> Spark on Ray -> Elasticsearch) vs a bare Elasticsearch bulk loader.

One run, same machine, same trade documents:

1. throughput: --trades simulated trades are put in a fresh topic first; the streaming driver starts on it
   (Spark start-up is not counted: the clock starts when its queries are running) and the clock stops when
   Elasticsearch holds every trade and all three queries (records, bars-1m, bars-1h) have caught up. The bare
   loader indexes the same documents (as the job writes them) with ``elasticsearch.helpers.parallel_bulk``
   (2 threads, 5,000 per request) into a fresh index with the same mapping.
2. latency at a fixed input rate: --rate trades/s for --seconds, each stamped when produced; a poller searches
   Elasticsearch every 100 ms and records when each trade became searchable (this includes Elasticsearch's
   1 s refresh). The bare reference indexes the same stream directly every 100 ms and is measured the same way.

    .venv/bin/python bench/stream.py [--trades 100000] [--rate 200] [--seconds 30]

It starts the local stack if it is not running (`ray-app stack up`) and removes its own topics and indices.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import typer
from confluent_kafka import Producer
from elasticsearch import Elasticsearch
from elasticsearch.helpers import parallel_bulk
from rich.console import Console
from rich.table import Table

from ray_app.config import Settings, load_settings
from ray_app.es_indices import MAPPINGS, client, ensure_index
from ray_app.ingest.simulator import TradeSimulator, history_window
from ray_app.kafka_io import producer_config
from ray_app.kafka_topics import ensure_topics
from ray_app.schemas import Source, Trade
from ray_app.stack import manager

REPO = Path(__file__).resolve().parent.parent
console = Console(width=None if sys.stdout.isatty() else 120)


def _env(tag: str, settings: Settings) -> dict[str, str]:
    env = {
        "RAY_APP_KAFKA__TOPICS__TRADES__NAME": f"bench-trades-{tag}",
        "RAY_APP_KAFKA__TOPICS__BARS__NAME": f"bench-bars-{tag}",
        "RAY_APP_KAFKA__TOPICS__DEAD_LETTERS__NAME": f"bench-dead-letters-{tag}",
        "RAY_APP_STREAM__CHECKPOINT_DIR": str(settings.state_dir / "bench" / f"checkpoints-{tag}"),
        "RAY_APP_STREAM__APP_NAME": f"bench-stream-{tag}",
        "RAY_APP_STREAM__MAX_OFFSETS_PER_TRIGGER": "20000",  # several micro-batches: a sustained rate, not one
    }
    for key, index in settings.elasticsearch.indices.by_key().items():
        env[f"RAY_APP_ELASTICSEARCH__INDICES__{key.upper()}"] = f"bench-{tag}-{index}"
    return env


def _trade_doc(trade: Trade, partition: int = 0, offset: int = 0) -> dict:
    """The trades document as the job writes it (records.trade_document_columns)."""
    return {"symbol": trade.symbol, "timestamp": trade.timestamp, "timestamp_ns": trade.timestamp_ns,
            "price": trade.price, "size": trade.size, "trade_id": trade.trade_id, "exchange": trade.exchange,
            "conditions": trade.conditions, "tape": trade.tape, "taker_side": trade.taker_side,
            "source": trade.source.value, "schema_version": 1, "ingested_at": trade.timestamp,
            "kafka_partition": partition, "kafka_offset": offset}  # fmt: skip


def _doc_id(trade: Trade) -> str:
    return f"{trade.symbol}|{trade.exchange or ''}|{trade.trade_id}"


def _produce(settings: Settings, trades: list[Trade]) -> None:
    producer = Producer(producer_config(settings))
    topic = settings.kafka.topics.trades.name
    for trade in trades:
        while True:
            try:
                producer.produce(topic, value=trade.to_json(), key=trade.symbol.encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


def _count(es: Elasticsearch, index: str) -> int:
    return es.count(index=index)["count"] if es.indices.exists(index=index) else 0


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout_s:.0f} s")
        time.sleep(0.2)


class Poller(threading.Thread):
    """Every 100 ms: which of the expected trades are searchable now; first-seen times by trade id."""

    def __init__(self, es: Elasticsearch, index: str, produced_at: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.es, self.index, self.produced_at = es, index, produced_at
        self.seen: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            unseen = [tid for tid in list(self.produced_at) if tid not in self.seen]
            if unseen:
                result = self.es.search(index=self.index, size=len(unseen[:10000]), source=["trade_id"],
                                        query={"terms": {"trade_id": unseen[:10000]}})  # fmt: skip
                now = time.time()
                for hit in result["hits"]["hits"]:
                    self.seen.setdefault(hit["_source"]["trade_id"], now)
            time.sleep(0.1)


def _latency(es: Elasticsearch, index: str, rate: int, seconds: int, tag: str,
             send: Callable[[list[Trade]], None]) -> list[float]:  # fmt: skip
    """Send `rate` trades/s in 100 ms slices for `seconds`; return trade -> searchable latencies (s)."""
    produced_at: dict[str, float] = {}
    poller = Poller(es, index, produced_at)
    poller.start()
    per_slice = max(rate // 10, 1)
    n = 0
    began = time.monotonic()
    for step in range(seconds * 10):
        target = began + step * 0.1
        time.sleep(max(target - time.monotonic(), 0))
        trades = []
        for _ in range(per_slice):
            n += 1
            trades.append(Trade(symbol="AAPL", timestamp_ns=time.time_ns(), price=100 + n % 7, size=1.0,
                                trade_id=f"{tag}-{n}", exchange="V", source=Source.REPLAY))  # fmt: skip
        for trade in trades:
            produced_at[trade.trade_id] = trade.timestamp_ns / 1e9
        send(trades)
    deadline = time.monotonic() + 60
    while len(poller.seen) < len(produced_at) and time.monotonic() < deadline:
        time.sleep(0.2)
    poller.done.set()
    poller.join(5)
    return sorted(poller.seen[tid] - produced_at[tid] for tid in poller.seen)


def _pct(values: list[float], q: float) -> float:
    return values[min(int(q * len(values)), len(values) - 1)] if values else float("nan")


def main(trades: int = 100_000, rate: int = 200, seconds: int = 30) -> None:
    base = load_settings()
    console.print("stack up ...")
    manager.up(base)
    tag = uuid.uuid4().hex[:6]
    env = _env(tag, base)
    os.environ.update(env)
    settings = load_settings()
    ensure_topics(settings)
    es = client(settings)
    index = settings.elasticsearch.indices.trades

    simulated = []
    start_ns, end_ns = history_window(7, time.time_ns())
    for trade in TradeSimulator(settings.symbols, seed=11, trades_per_minute=60).trades(start_ns, end_ns):
        simulated.append(trade)
        if len(simulated) >= trades:
            break
    console.print(f"producing {len(simulated):,} simulated trades into {settings.kafka.topics.trades.name} ...")
    _produce(settings, simulated)

    log_path = settings.state_dir / "bench" / f"stream-{tag}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    driver = subprocess.Popen([sys.executable, "-m", "spark_jobs.stream_trades"], stdout=log, stderr=subprocess.STDOUT,
                              cwd=REPO, env={**os.environ})  # fmt: skip
    rows = []
    try:
        _wait(lambda: "streaming " in log_path.read_text() or driver.poll() is not None, 300, "Spark start")
        if driver.poll() is not None:
            raise RuntimeError(f"the driver exited: {log_path.read_text()[-2000:]}")
        began = time.monotonic()
        _wait(lambda: _count(es, index) >= len(simulated), 1800, "indexing every trade")
        trades_done = time.monotonic() - began

        from ray_app.stream_control import lags

        _wait(lambda: all(lag.messages == 0 for lag in lags(settings)), 600, "bars catching up")
        all_done = time.monotonic() - began
        ours = len(simulated) / trades_done

        bare_index = f"bench-{tag}-bare"
        ensure_index(settings, es, bare_index, MAPPINGS["trades"])
        actions = [{"_index": bare_index, "_id": _doc_id(t), "_source": _trade_doc(t)} for t in simulated]
        began = time.monotonic()
        for ok, item in parallel_bulk(es, actions, thread_count=2, chunk_size=5000):
            assert ok, item
        es.indices.refresh(index=bare_index)
        bare_seconds = time.monotonic() - began
        bare = len(simulated) / bare_seconds
        assert _count(es, bare_index) == len(simulated)
        rows.append(("bare ES bulk loader (parallel_bulk, 2 threads)", len(simulated), bare_seconds, bare, 1.0))
        rows.append(("ours: trades indexed (Kafka -> Spark -> ES)", len(simulated), trades_done, ours, ours / bare))
        rows.append(("ours: trades + bars-1m + bars-1h caught up", len(simulated), all_done,
                     len(simulated) / all_done, len(simulated) / all_done / bare))  # fmt: skip

        console.print(f"latency: {rate} trades/s for {seconds} s through the stream, then straight into ES ...")
        ours_latency = _latency(es, index, rate, seconds, f"lat-{tag}", lambda batch: _produce(settings, batch))

        def direct(batch: list[Trade]) -> None:
            es.bulk(operations=[line for t in batch for line in (
                {"index": {"_index": bare_index, "_id": _doc_id(t)}}, _trade_doc(t))])  # fmt: skip

        bare_latency = _latency(es, bare_index, rate, seconds, f"blat-{tag}", direct)
    finally:
        driver.send_signal(signal.SIGTERM)
        try:
            driver.wait(60)
        except subprocess.TimeoutExpired:
            driver.kill()
        log.close()

    table = Table(title=f"throughput: {len(simulated):,} trades already in Kafka (2-core machine, one run)",
                  title_justify="left")  # fmt: skip
    for column in ("path", "trades", "seconds", "trades/s", "vs bare"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for path, count, secs, per_s, ratio in rows:
        table.add_row(path, f"{count:,}", f"{secs:.1f}", f"{per_s:,.0f}", f"{ratio:.2f}")
    console.print(table)
    table = Table(title=f"trade -> searchable latency at {rate} trades/s for {seconds} s", title_justify="left")
    for column in ("path", "trades seen", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for path, values in (("ours: Kafka -> Spark (trigger "
                          f"{settings.stream.trigger_interval_s:g} s) -> ES", ours_latency),
                         ("bare: bulk straight into ES every 100 ms", bare_latency)):  # fmt: skip
        table.add_row(path, f"{len(values):,}", f"{_pct(values, 0.5) * 1000:,.0f}",
                      f"{_pct(values, 0.99) * 1000:,.0f}", f"{(max(values) if values else 0) * 1000:,.0f}")  # fmt: skip
    console.print(table)
    console.print(json.dumps({"median_ours_latency_s": statistics.median(ours_latency) if ours_latency else None}))

    for name in es.indices.get(index=f"bench-{tag}-*"):  # wildcard deletes are refused by default, rightly
        es.indices.delete(index=name)
    from confluent_kafka.admin import AdminClient

    from ray_app.kafka_io import admin_config

    AdminClient(admin_config(settings)).delete_topics([t.name for t in settings.kafka.topics.all()])


if __name__ == "__main__":
    typer.run(main)
