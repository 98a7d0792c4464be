"""Benchmark: our ingest producer path vs a bare confluent-kafka produce loop, on the same real broker.

Same messages (simulated trades), same producer settings (idempotent, acks=all, lz4, murmur2), each run into a
fresh 6-partition topic, alternating bare and ours, median of --repeat runs. "ours" is the real path: a Trade
object encoded to JSON and sent through IngestProducer (delivery callbacks, back-pressure). "bare" produces the
already-encoded bytes in a plain loop. Also reports how fast the simulator makes trades.

    .venv/bin/python bench/ingest.py [--messages 200000] [--repeat 3] [--json]

With --json it prints one JSON object last (the rates, the ratios against the bare loop, every run's seconds).

It starts the local stack if it is not running (`ray-app stack up`), with the usual settings.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from typing import Annotated

import typer
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from ray_app.config import TopicSettings, load_settings
from ray_app.ingest.producer import IngestProducer
from ray_app.ingest.simulator import TradeSimulator
from ray_app.kafka_clients import producer_config
from ray_app.kafka_topics import ensure_topics
from ray_app.stack import manager

WEEK_START = 1_795_392_000_000_000_000  # Monday 2026-11-23 00:00 UTC


def _topic(settings, tag: str) -> str:
    topic = TopicSettings(name=f"bench-{tag}-{uuid.uuid4().hex[:8]}", partitions=6)
    ensure_topics(settings, [topic])
    return topic.name


def bare_loop(settings, topic: str, encoded: list[tuple[str, bytes]]) -> float:
    producer = Producer(producer_config(settings))
    delivered = 0

    def on_delivery(err, _msg) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1

    began = time.perf_counter()
    for key, value in encoded:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    seconds = time.perf_counter() - began
    assert delivered == len(encoded), f"bare: {delivered} of {len(encoded)} delivered"
    return seconds


def _our_producer(settings, topic: str) -> IngestProducer:
    topics = settings.kafka.topics.model_copy(update={"trades": TopicSettings(name=topic, partitions=6)})
    bench_settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topics": topics})})
    return IngestProducer(bench_settings, **{"queue.buffering.max.messages": settings.ingest.queue_max_messages})


def our_producer_only(settings, topic: str, encoded: list[tuple[str, bytes]]) -> float:
    producer = _our_producer(settings, topic)
    began = time.perf_counter()
    for key, value in encoded:
        producer.produce(topic, key, value)
    producer.flush(120)
    seconds = time.perf_counter() - began
    assert producer.counters.delivered == len(encoded)
    return seconds


def our_path(settings, topic: str, trades: list) -> float:
    producer = _our_producer(settings, topic)
    began = time.perf_counter()
    for trade in trades:
        producer.send(trade)
    producer.flush(120)
    seconds = time.perf_counter() - began
    assert producer.counters.delivered == len(trades), f"ours: {producer.counters.delivered} of {len(trades)}"
    return seconds


def main(
    messages: Annotated[int, typer.Option(help="simulated trades per run")] = 200_000,
    repeat: Annotated[int, typer.Option(help="runs of each path; the median counts")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object last")] = False,
) -> None:
    console = Console(width=120)
    settings = load_settings()
    with console.status("local stack up"):
        manager.up(settings)

    symbols = ["AAPL", "MSFT", "GOOG", "IBM", "BTC/USD", "ETH/USD"]
    simulator = TradeSimulator(symbols, seed=7, trades_per_minute=200)
    began = time.perf_counter()
    trades = []
    for trade in simulator.trades(WEEK_START, WEEK_START + 30 * 86400 * 10**9):
        trades.append(trade)
        if len(trades) == messages:
            break
    sim_seconds = time.perf_counter() - began
    encoded = [(t.symbol, t.to_json()) for t in trades]
    size = sum(len(v) for _, v in encoded) / len(encoded)

    bare, ours, wrapper = [], [], []
    for round_no in range(repeat):
        with console.status(f"round {round_no + 1}/{repeat}"):
            bare.append(bare_loop(settings, _topic(settings, "bare"), encoded))
            ours.append(our_path(settings, _topic(settings, "ours"), trades))
            wrapper.append(our_producer_only(settings, _topic(settings, "wrap"), encoded))

    bare_rate = len(trades) / statistics.median(bare)
    our_rate = len(trades) / statistics.median(ours)
    table = Table(
        title=f"ingest into Kafka at {settings.kafka.bootstrap_servers}: {len(trades):,} trades "
        f"(~{size:.0f} B JSON), median of {repeat}, idempotent acks=all lz4"
    )
    for column in ("path", "seconds (median)", "msgs/s", "vs bare"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row(
        "bare confluent-kafka loop (pre-encoded bytes)", f"{statistics.median(bare):.2f}", f"{bare_rate:,.0f}", "1.00"
    )
    table.add_row(
        "ours: Trade -> JSON -> IngestProducer.send",
        f"{statistics.median(ours):.2f}",
        f"{our_rate:,.0f}",
        f"{our_rate / bare_rate:.2f}",
    )
    wrapper_rate = len(trades) / statistics.median(wrapper)
    table.add_row(
        "ours, producer only: IngestProducer.produce (pre-encoded)",
        f"{statistics.median(wrapper):.2f}",
        f"{wrapper_rate:,.0f}",
        f"{wrapper_rate / bare_rate:.2f}",
    )
    table.add_row(
        "simulator alone (make Trade objects)", f"{sim_seconds:.2f}", f"{len(trades) / sim_seconds:,.0f}", "-"
    )
    console.print(table)
    console.print(f"runs (s): bare {[round(x, 2) for x in bare]}, ours {[round(x, 2) for x in ours]}")
    if as_json:
        print(
            json.dumps(
                {
                    "messages": len(trades),
                    "repeat": repeat,
                    "message_bytes": round(size, 1),
                    "bare_msgs_s": round(bare_rate),
                    "ours_msgs_s": round(our_rate),
                    "ours_ratio": round(our_rate / bare_rate, 3),
                    "producer_only_msgs_s": round(wrapper_rate),
                    "producer_only_ratio": round(wrapper_rate / bare_rate, 3),
                    "simulator_trades_s": round(len(trades) / sim_seconds),
                    "runs_s": {
                        "bare": [round(x, 3) for x in bare],
                        "ours": [round(x, 3) for x in ours],
                        "producer_only": [round(x, 3) for x in wrapper],
                    },
                }
            )
        )


if __name__ == "__main__":
    typer.run(main)
