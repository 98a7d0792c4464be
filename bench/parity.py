"""Benchmark: fidelity to the vendor on a simulated multi-day session, through the real pipeline.

The simulator's tape (per-day trade ids, sale conditions in their real shares, late prints, cancels, corrections of
corrections) for --days trading days (04:00-20:00 New York for stocks, around the clock for crypto) goes into
Kafka as the ingest writes it; the streaming job (this checkout's, or an older one's with --code) turns it into
trades and bars in Elasticsearch. The vendor's minute bars are what Alpaca would stream for those trades, built by
the fake Alpaca with Alpaca's published rules (``ray_app.testing.fake_alpaca.MinuteBars``: each minute's latest
revision, ``b`` or ``updatedBars``). Measured, in one run:

- **parity**: for every minute both have (none of whose trades was cancelled or corrected: Alpaca's live bars keep
  those), the share equal on open, high, low, close, volume, trade count and VWAP (``ray_app.bars.parity``); and
  minutes on one side only;
- **trades lost**: the distinct stock trades of each day sent (by symbol, exchange, trading day and id) that are not
  in Elasticsearch.

With this checkout's job the vendor's bars also go through Kafka into ``vendor-bars-1m`` and the report adds what
`ray-app bars parity` reads there (it must agree). An older job (``--code``: a checkout of an earlier commit, run with
this virtual environment) gets only the trades and quotes: it wrote the vendor's bars over its own.

    .venv/bin/python bench/parity.py [--days 2] [--trades-per-minute 8] [--code DIR] [--json]

It starts the local stack if it is not running and removes its own topics and indices.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ray_app.bars.parity import FIELDS, adjusted_minutes, compare, minute_bars
from ray_app.config import load_settings
from ray_app.es_indices import es_client
from ray_app.ingest.producer import IngestProducer
from ray_app.ingest.simulator import TradeSimulator
from ray_app.kafka_topics import ensure_topics
from ray_app.schemas import Bar, Source, Trade, is_crypto
from ray_app.stack import manager
from ray_app.testing.alpaca_rules import new_york_date
from ray_app.testing.fake_alpaca import MinuteBars
from ray_app.times import NEW_YORK, format_seconds
from spark_jobs.control import lags

REPO = Path(__file__).resolve().parent.parent
FIRST_DAY = datetime(2026, 11, 23, tzinfo=NEW_YORK)  # a Monday, midnight in New York
NEW_INDICES = ("vendor_bars_1m", "vendor_bars_1h", "trade_aliases")  # settings an earlier checkout does not know
console = Console(width=None if sys.stdout.isatty() else 140, stderr=False)


def _env(tag: str, state_dir: Path, cache_dir: Path, indices: dict[str, str]) -> dict[str, str]:
    bench = state_dir / "bench" / tag
    env = {
        f"RAY_APP_KAFKA__TOPICS__{key.upper()}__NAME": f"bench-{name}-{tag}"
        for key, name in (
            ("trades", "trades"),
            ("bars", "bars"),
            ("dead_letters", "dead-letters"),
            ("quotes", "quotes"),
        )
    }
    env |= {
        "RAY_APP_STATE_DIR": str(bench),
        "RAY_APP_CACHE_DIR": str(cache_dir),
        "RAY_APP_STREAM__CHECKPOINT_DIR": str(bench / "checkpoints"),
        "RAY_APP_STREAM__APP_NAME": f"bench-{tag}",
    }
    env |= {f"RAY_APP_ELASTICSEARCH__INDICES__{key.upper()}": f"bench-{tag}-{name}" for key, name in indices.items()}
    return env


def _vendor_minutes(records: list[tuple[int, Any]]) -> tuple[list[Bar], dict[str, dict[str, Any]]]:
    """Alpaca's minute bars of the session as its stream sends them (every revision, in order) and the latest of
    each minute, by id."""
    bars = MinuteBars()
    sent: list[dict] = []
    for at, record in records:
        sent += bars.due(at)
        if isinstance(record, Trade):
            bars.add(record)
    sent += bars.due(None)
    revisions, latest = [], {}
    for message in sent:
        start = message["t"].to_unix_nano()
        revisions.append(
            Bar(
                symbol=message["S"],
                timestamp_ns=start,
                timeframe="1Min",
                open=message["o"],
                high=message["h"],
                low=message["l"],
                close=message["c"],
                volume=message["v"],
                trade_count=message["n"],
                vwap=message["vw"],
                updated=message["T"] == "u",
                source=Source.ALPACA_STREAM,
            )
        )
        latest[f"{message['S']}|{format_seconds(start // 10**9)}"] = {
            "symbol": message["S"],
            "timestamp": format_seconds(start // 10**9),
            "open": message["o"],
            "high": message["h"],
            "low": message["l"],
            "close": message["c"],
            "volume": message["v"],
            "trade_count": message["n"],
            "vwap": message["vw"],
        }
    return revisions, latest


def main(
    days: Annotated[int, typer.Option(help="days simulated, from Monday 2026-11-23 (New York)", min=2)] = 2,
    trades_per_minute: Annotated[float, typer.Option(help="per symbol, regular session")] = 8,
    symbols: Annotated[str, typer.Option(help="comma-separated")] = "AAPL,IBM,MSFT,BTC/USD",
    code: Annotated[Path | None, typer.Option(help="run the streaming job of this checkout (an earlier one)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object last")] = False,
) -> None:
    base = load_settings()
    console.print("stack up ...")
    manager.up(base)
    names = symbols.split(",")
    ours = code is None
    tag = uuid.uuid4().hex[:6]
    indices = {key: name for key, name in base.elasticsearch.indices.by_key().items() if ours or key not in NEW_INDICES}
    env = _env(tag, base.state_dir, base.cache_dir, indices)
    os.environ.update(env)
    settings = load_settings()
    ensure_topics(settings)
    es = es_client(settings)
    start = int(FIRST_DAY.timestamp()) * 10**9
    simulator = TradeSimulator(names, seed=31, trades_per_minute=trades_per_minute)
    timeline = list(simulator.timeline(start, start + days * 86_400 * 10**9, dict.fromkeys(names, start)))
    records = [record for _, record in timeline]
    revisions, vendor = _vendor_minutes(timeline)
    console.print(
        f"session: {len(records):,} records ({sum(isinstance(r, Trade) for r in records):,} trades), "
        f"{len(vendor):,} vendor minute bars ({len(revisions):,} revisions)",
        highlight=False,
    )
    producer = IngestProducer(settings)
    for record in records:
        assert producer.send(record)
    if ours:
        for bar in revisions:
            assert producer.send(bar)
    assert producer.flush(120) == 0
    checkout = code or REPO
    log_path = Path(env["RAY_APP_STATE_DIR"]) / "stream.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    driver = subprocess.Popen(
        [sys.executable, "-m", "ray_app", "stream", "driver"],
        cwd=checkout,
        env={**os.environ},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    began = time.monotonic()
    try:
        time.sleep(20)
        while any(lag.messages is None or lag.messages for lag in lags(settings)):
            if driver.poll() is not None:
                raise RuntimeError(f"the streaming driver exited ({driver.returncode}): see {log_path}")
            if time.monotonic() - began > 1800:
                raise TimeoutError("the stream did not catch up in 30 minutes")
            time.sleep(1)
        seconds = time.monotonic() - began
        found = settings.elasticsearch.indices
        es.indices.refresh(index=f"{found.trades},{found.bars_1m}")
        window = (start // 10**9, start // 10**9 + (days + 1) * 86_400)
        built = minute_bars(es, found.bars_1m, names, *window)
        adjusted = adjusted_minutes(es, found.trades, names, *window)
        result = compare(built, vendor, adjusted, names)
        through = (
            compare(built, minute_bars(es, found.vendor_bars_1m, names, *window), adjusted, names) if ours else None
        )
        sent: dict[str, set] = defaultdict(set)
        for record in records:
            if isinstance(record, Trade) and not is_crypto(record.symbol):
                sent[new_york_date(record.timestamp_ns)].add((record.symbol, record.exchange, record.trade_id))
        stored: dict[str, set] = defaultdict(set)
        query = {"query": {"bool": {"must_not": [{"wildcard": {"symbol": "*/*"}}]}}}
        from elasticsearch.helpers import scan

        for hit in scan(
            es, index=found.trades, query=query, size=5000, _source=["symbol", "exchange", "trade_id", "timestamp_ns"]
        ):
            doc = hit["_source"]
            stored[new_york_date(doc["timestamp_ns"])].add((doc["symbol"], doc.get("exchange"), doc["trade_id"]))
    finally:
        driver.terminate()
        try:
            driver.wait(120)
        except subprocess.TimeoutExpired:
            driver.kill()
        for name in settings.elasticsearch.indices.by_key().values():
            es.indices.delete(index=name, ignore_unavailable=True)
        from confluent_kafka.admin import AdminClient

        from ray_app.kafka_clients import admin_config

        AdminClient(admin_config(settings)).delete_topics([t.name for t in settings.kafka.topics.all()])
        if not os.environ.get("BENCH_KEEP_STATE"):
            shutil.rmtree(env["RAY_APP_STATE_DIR"], ignore_errors=True)

    label = "this checkout" if ours else f"the job of {code}"
    table = Table(title=f"parity with Alpaca's minute bars ({label}): share of minutes equal", title_justify="left")
    for column in ("symbol", "compared", "adjusted", "only ours", "only vendor", *FIELDS):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for item in result.values():
        table.add_row(
            item.symbol,
            f"{item.compared:,}",
            f"{item.adjusted:,}",
            f"{item.only_ours:,}",
            f"{item.only_vendor:,}",
            *(f"{item.share(f):.1%}" if item.compared else "-" for f in FIELDS),
        )
    console.print(table)
    compared = sum(item.compared for item in result.values())
    overall = {f: sum(item.equal[f] for item in result.values()) / compared if compared else None for f in FIELDS}
    lost = {day: len(sent[day] - stored[day]) for day in sorted(sent)}
    console.print(f"all symbols: {', '.join(f'{f} {v:.1%}' for f, v in overall.items() if v is not None)}")
    console.print(
        "stock trades sent and lost per trading day: "
        + "; ".join(f"{day}: {len(sent[day]):,} sent, {lost[day]:,} lost" for day in sorted(sent))
    )
    reused = len({(s, e, i) for s, e, i in sent[min(sent)]} & {(s, e, i) for s, e, i in sent[max(sent)]})
    console.print(f"ids of the last day already used on the first: {reused:,} of {len(sent[max(sent)]):,}")
    if through is not None:
        agree = all(through[s].as_dict()["equal"] == result[s].as_dict()["equal"] for s in result)
        console.print(f"`ray-app bars parity` (the vendor's bars through Kafka into vendor-bars-1m) agrees: {agree}")
    console.print(f"stream caught up in {seconds:.0f} s")
    if as_json:
        print(
            json.dumps(
                {
                    "code": label,
                    "days": days,
                    "records": len(records),
                    "vendor_minutes": len(vendor),
                    "parity": {f: overall[f] for f in FIELDS},
                    "compared": compared,
                    "adjusted": sum(i.adjusted for i in result.values()),
                    "only_ours": sum(i.only_ours for i in result.values()),
                    "only_vendor": sum(i.only_vendor for i in result.values()),
                    "trades_sent": {d: len(v) for d, v in sent.items()},
                    "trades_lost": lost,
                    "ids_reused": reused,
                    "through_vendor_index_agrees": None if through is None else agree,
                    "seconds": round(seconds, 1),
                }
            )
        )


if __name__ == "__main__":
    typer.run(main)
