"""Benchmark: a simulated trading day of 500 symbols through the whole streaming job, as a backlog (what a restart
after a day's outage, or ``stream --reset``, finds in Kafka): how long the job takes to catch up on this machine,
where its time goes, and what that projects to for the whole day and per worker node.

The day: the regular session (09:30-16:00 New York) of a weekday for 500 stock symbols whose daily trade counts
spread like a large-cap universe's (log-normal: median 45,000 trades a day, the busiest capped at 1.5 million;
about 34 million prints in all, the order of what the S&P 500's names print on an ordinary day), each with the
simulator's U-shaped day (busy at the open and the close), its late prints, its cancels (0.5% of trades) and
corrections (0.3%), and ``--quotes-per-trade`` top-of-book quotes per trade (20: a SIP sends tens per trade). These
are assumptions about the market, not Alpaca's data.

All of it is some 640 million records: hours of replay on a 2-core machine. So a run replays part of it and
measures the job's rate per record; the whole day's catch-up time is the day's records at that rate. Two ways:

- ``--sample N`` (default 1000): 1/N of every symbol's rate over the whole session: the day's shape (every symbol,
  every minute's bars), but sparse: a second holds one or two quotes where the real day has tens, so the per-second
  reduction saves little and the rate is a floor;
- ``--sample 1 --window-start 30 --window-minutes 1``: one minute of the session at the full rate (10:00 New York,
  an average minute of the simulator's U-shaped day): the real day's density, for a minute.

The symbols are grouped by rate (20 groups of 25); each group's records are one simulated symbol's, copied under
each name of the group (the simulator alone would take longer than the replay).

    .venv/bin/python bench/day.py [--symbols 500] [--sample 1000] [--quotes-per-trade 20] [--json]

It starts the local stack if it is not running and removes its own topics, indices and state afterwards.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream import CpuMeter, _caught_up, _clean_up, _count, _env, _phase_means, _status, _wait

from ray_app.config import Settings, load_settings
from ray_app.es_indices import es_client
from ray_app.ingest.simulator import TradeSimulator
from ray_app.kafka_clients import producer_config
from ray_app.kafka_topics import ensure_topics
from ray_app.schemas import Quote
from ray_app.stack import manager

REPO = Path(__file__).resolve().parent.parent
SESSION_MINUTES = 390
MEDIAN_TRADES = 45_000  # a median large-cap's prints per day
SPREAD = 0.9  # log-normal sigma of the daily trade counts across symbols
BUSIEST = 1_500_000
TIERS = 20  # symbols grouped by rate, one simulator per group
console = Console(width=None if sys.stdout.isatty() else 140, stderr=False)


def daily_trades(symbols: int, seed: int = 34) -> list[int]:
    """Each symbol's prints in a day, busiest first."""
    counts = np.random.default_rng(seed).lognormal(math.log(MEDIAN_TRADES), SPREAD, symbols)
    return sorted((int(min(c, BUSIEST)) for c in counts), reverse=True)


def session_start(day: str) -> int:
    """09:30 New York of ``day`` (YYYY-MM-DD, a weekday in winter time: 14:30 UTC), in ns."""
    year, month, date = (int(part) for part in day.split("-"))
    return int(datetime(year, month, date, 14, 30, tzinfo=UTC).timestamp()) * 10**9


@dataclass
class DayRun:
    symbols: int
    sample: int
    window: tuple[int, int]  # (first minute of the session, minutes) replayed
    quotes_per_trade: float
    day_trades: int  # the whole day's prints (the unsampled day)
    day_records: int  # ... and its records of every kind
    produced: dict[str, int]  # the sampled run's records by kind
    produce_s: float
    catch_up_s: float  # the job started on the backlog -> every record committed (bars included)
    records_s: float
    batches: int
    phases: dict[str, dict[str, float]]
    cores: dict[str, float]
    trades_indexed: int

    @property
    def records(self) -> int:
        return sum(self.produced.values())

    @property
    def day_catch_up_s(self) -> float:
        return self.day_records / self.records_s


def produce_day(
    settings: Settings, symbols: int, sample: int, quotes_per_trade: float, day: str, window: tuple[int, int]
) -> Counter:
    """The sampled day (its ``window``: first minute of the session, minutes) into the run's topics, symbol groups
    one after the other (each symbol in Kafka order)."""
    counts = daily_trades(symbols)
    names = [f"D{i:03d}" for i in range(symbols)]
    start = session_start(day) + window[0] * 60 * 10**9
    end = start + window[1] * 60 * 10**9
    topics = settings.kafka.topics
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    produced: Counter = Counter()
    per_tier = math.ceil(symbols / TIERS)
    for tier in range(0, symbols, per_tier):
        group = names[tier : tier + per_tier]
        rate = sum(counts[tier : tier + per_tier]) / len(group) / SESSION_MINUTES / sample
        # one symbol simulated at the group's mean rate, its records copied to each symbol of the group (names are
        # fixed-width, so the copy is a byte replacement): the simulator's own pace would take hours
        simulator = TradeSimulator(
            group[:1], seed=tier, trades_per_minute=rate, anchor_on_real_data=False, quotes_per_trade=quotes_per_trade
        )
        events = [
            (topics.quotes.name if isinstance(event, Quote) else topics.trades.name, event.to_json(), type(event))
            for event in simulator.events(start, end)
        ]
        token = f'"symbol":"{group[0]}"'.encode()
        for symbol in group:
            renamed = f'"symbol":"{symbol}"'.encode()
            key = symbol.encode()
            for topic, value, kind in events:
                while True:
                    try:
                        producer.produce(topic, value=value.replace(token, renamed, 1), key=key)
                        break
                    except BufferError:
                        producer.poll(0.05)
                produced[kind.__name__] += 1
            producer.poll(0)
        console.print(
            f"  symbols {tier:>3}-{tier + len(group) - 1:<3} ({rate * sample * SESSION_MINUTES:>9,.0f} prints a day "
            f"each): {sum(produced.values()):>9,} records so far",
            highlight=False,
        )
    assert producer.flush(120) == 0
    return produced


def run_day(
    base: Settings, symbols: int, sample: int, quotes_per_trade: float, day: str, window: tuple[int, int]
) -> DayRun:
    tag = uuid.uuid4().hex[:6]
    env = _env(tag, base, base.stream.num_executors, 0)
    env.pop("RAY_APP_STREAM__MAX_OFFSETS_PER_TRIGGER")  # the job's own default, as in production
    os.environ.update(env)
    settings = load_settings()
    ensure_topics(settings)
    es = es_client(settings)
    console.print(
        f"producing 1/{sample} of a {symbols}-symbol day, minutes {window[0]}-{window[0] + window[1]} of its session, "
        f"into {settings.kafka.topics.trades.name} ...",
        highlight=False,
    )
    began = time.monotonic()
    produced = produce_day(settings, symbols, sample, quotes_per_trade, day, window)
    produce_s = time.monotonic() - began
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
    try:
        _wait(lambda: "streaming " in log_path.read_text(), 300, "Spark start", driver)
        console.print(f"the job runs; catching up on {sum(produced.values()):,} records ...")
        meter = CpuMeter()
        meter.start()
        began = time.monotonic()
        _wait(lambda: _caught_up(settings, env), 3600, "the job catching up", driver, env)
        catch_up_s = time.monotonic() - began
        cores = meter.stop()
        phases, batches = _phase_means({}, _status(env))
        trades_indexed = _count(es, settings.elasticsearch.indices.trades)
    except Exception:
        log.flush()
        console.print("\n".join(log_path.read_text(errors="replace").splitlines()[-40:]), markup=False)
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
    day_trades = sum(daily_trades(symbols))
    per_trade = sum(produced.values()) / max(produced["Trade"], 1)  # the sampled mix: quotes, cancels, corrections
    records = sum(produced.values())
    return DayRun(
        symbols=symbols,
        sample=sample,
        window=window,
        quotes_per_trade=quotes_per_trade,
        day_trades=day_trades,
        day_records=round(day_trades * per_trade),
        produced=dict(produced),
        produce_s=round(produce_s, 1),
        catch_up_s=round(catch_up_s, 1),
        records_s=round(records / catch_up_s, 1),
        batches=int(batches.get("records", {}).get("batches", 0)),
        phases=phases,
        cores=cores,
        trades_indexed=trades_indexed,
    )


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def _print(run: DayRun, settings: Settings) -> None:
    table = Table(
        title=f"a simulated day of {run.symbols} symbols, 1/{run.sample} of it replayed", title_justify="left"
    )
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        ("records replayed (trades, quotes, cancels, corrections)", f"{run.records:,}"),
        ("  of them", ", ".join(f"{kind} {count:,}" for kind, count in sorted(run.produced.items()))),
        ("trades indexed (every one)", f"{run.trades_indexed:,}"),
        ("micro-batches", f"{run.batches:,}"),
        ("catch-up: job started on the backlog -> all committed", f"{run.catch_up_s:,.1f} s"),
        ("the job's rate", f"{run.records_s:,.0f} records/s"),
        ("cores used (machine: 2)", ", ".join(f"{k} {v:.2f}" for k, v in run.cores.items() if v >= 0.05)),
        ("the whole day: prints", f"{run.day_trades:,}"),
        ("the whole day: records", f"{run.day_records:,}"),
        ("the whole day's catch-up on this machine, at that rate", _duration(run.day_catch_up_s)),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    phases = next(iter(run.phases.values()), {})
    if phases:
        table = Table(title="where a micro-batch's time goes (mean ms per batch)", title_justify="left")
        for name in phases:
            table.add_column(name, justify="right")
        table.add_row(*(f"{value:,.0f}" for value in phases.values()))
        console.print(table)


def main(
    symbols: Annotated[int, typer.Option(help="symbols in the day")] = 500,
    sample: Annotated[int, typer.Option(help="replay 1/N of every symbol's rate")] = 1000,
    quotes_per_trade: Annotated[float, typer.Option(help="top-of-book quotes per trade")] = 20.0,
    day: Annotated[str, typer.Option(help="the trading day (a weekday in New York winter time)")] = "2026-12-01",
    window_start: Annotated[int, typer.Option(help="first minute of the session replayed (0: 09:30)")] = 0,
    window_minutes: Annotated[int, typer.Option(help="minutes of the session replayed")] = SESSION_MINUTES,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object last")] = False,
) -> None:
    base = load_settings()
    console.print("stack up ...")
    manager.up(base)
    if not (0 <= window_start < SESSION_MINUTES and 0 < window_minutes <= SESSION_MINUTES - window_start):
        raise typer.BadParameter("the window must lie within the session's 390 minutes")
    run = run_day(base, symbols, sample, quotes_per_trade, day, (window_start, window_minutes))
    _print(run, base)
    if as_json:
        summary: dict[str, Any] = {
            **asdict(run),
            "records": run.records,
            "day_catch_up_s": round(run.day_catch_up_s, 1),
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    typer.run(main)
