"""Market data as the consolidated tape defines it, on the real engines (Kafka -> Spark on Ray -> Elasticsearch),
with references computed from the vendor's rules (ray_app/testing/alpaca_rules.py, tests/support/expected.py),
never from the platform's own table. The stream here runs with ``stream.refresh_after_batch: false`` and small bulk
requests (two in flight), so every check also holds that the bars never read before the batch's own writes are
visible and that two actions on one document land in Kafka order:

1. two trading days reusing every trade id: both days' trades kept, cancels and corrections find their own day's;
2. every row of the sale-condition table, on a CTS tape (A) and on UTDF (C): each bar field counts what Alpaca's
   minute-bar rules let it count, and a minute of only trades that set no price has no bar (its volume in the hour);
3. correction chains: the first values kept through any number of corrections, cancels and corrections naming any
   id of a chain applied, one dead letter per refused record with its Kafka coordinates, a correction naming an
   id of another day refused;
4. the backfill/live boundary: Alpaca's hour bars never deleted nor overwritten by ours, a quote before the first
   live trade deletes nothing, the forecaster reads the more complete bar of each hour;
5. equal keys in flight: hundreds of revisions of one vendor bar and copies of one trade in one batch land in Kafka
   order;
6. a multi-day simulated session through the fake Alpaca (the live websocket, its ``b`` and ``updatedBars`` built
   with Alpaca's rules from the trades it sends): every minute both have is equal on every field;
7. indicator documents follow their bars: a bar deleted takes its indicators with it, also across a restart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from confluent_kafka import Producer

from ray_app.config import Settings
from ray_app.kafka_clients import producer_config
from ray_app.schemas import Bar, Quote, Source, Trade, TradeCancel, TradeCorrection
from ray_app.testing.settings import module_settings
from ray_app.testing.stack import REPO, run_cli
from tests.support.expected import Tape, assert_trades_and_bars, es_docs, expected_bars, tape_of, trade_doc_id

EASTERN = ZoneInfo("America/New_York")
TIMEOUT_S = 300
SYMBOLS = ["IBM", "MSFT", "AAPL", "GOOG", "BTC/USD"]
Record = Trade | TradeCancel | TradeCorrection | Quote | Bar


def new_york(text: str) -> int:
    """``2026-11-23 10:00:00`` New York -> epoch ns."""
    return int(datetime.fromisoformat(text).replace(tzinfo=EASTERN).timestamp()) * 10**9


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Iterator[Settings]:
    overrides = {
        "symbols": SYMBOLS,
        "stream": {
            "trigger_interval_s": 0.5,
            "spark_log_level": "WARN",
            "refresh_after_batch": False,
            "es_batch_entries": 40,
            "es_max_in_flight": 2,
        },
    }
    with module_settings(stack, "tp", overrides) as settings:
        yield settings
        run_cli("stream", "stop", timeout=120)


class Sent:
    """Every record this module produced, in Kafka order, with where Kafka put each."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.where: list[tuple[str, int, int]] = []  # (topic, partition, offset), parallel to records

    def tape(self) -> Tape:
        return tape_of([r for r in self.records if not isinstance(r, Bar)])

    def quotes(self) -> list[Quote]:
        return [r for r in self.records if isinstance(r, Quote)]


@pytest.fixture(scope="module")
def sent() -> Sent:
    return Sent()


def produce(settings: Settings, sent: Sent, records: list[Record]) -> list[tuple[str, int, int]]:
    topics = settings.kafka.topics
    producer = Producer(producer_config(settings))
    where: list[tuple[str, int, int] | None] = [None] * len(records)
    failed: list[str] = []

    def report(position: int):
        def delivered(error, message) -> None:
            if error:
                failed.append(str(error))
            else:
                where[position] = (message.topic(), message.partition(), message.offset())

        return delivered

    for position, record in enumerate(records):
        topic = (
            topics.quotes if isinstance(record, Quote) else topics.bars if isinstance(record, Bar) else topics.trades
        ).name
        producer.produce(topic, value=record.to_json(), key=record.symbol.encode(), on_delivery=report(position))
        producer.poll(0)
    assert producer.flush(60) == 0 and not failed, failed[:3]
    sent.records += records
    located = [w for w in where if w is not None]
    sent.where += located
    return located


def wait_caught_up(settings: Settings) -> None:
    from spark_jobs.control import lags

    deadline = time.monotonic() + TIMEOUT_S
    while any(lag.messages for lag in lags(settings)):
        assert time.monotonic() < deadline, f"the stream did not catch up: {lags(settings)}"
        time.sleep(0.5)


def check(settings: Settings, sent: Sent) -> None:
    """Every trade once (both days' of a reused id), every bar exact, the trades' fields as their chains leave them."""
    tape = sent.tape()
    assert_trades_and_bars(settings, tape.sent(), tape.standing(), sent.quotes())
    docs = es_docs(settings, settings.elasticsearch.indices.trades)
    for key, trade in tape.trades.items():
        doc = docs[trade_doc_id(trade)]
        assert bool(doc.get("cancelled")) == (key in tape.cancelled), key
        assert (doc["price"], doc["size"], doc.get("conditions") or []) == (trade.price, trade.size, trade.conditions)
        if key in tape.originals:  # the venue's first values, whatever number of corrections came after
            first = tape.originals[key]
            assert (doc["original_price"], doc["original_size"]) == (first.price, first.size), key
            assert doc["corrected_trade_ids"] == tape.corrected_ids[key], key
    letters = es_docs(settings, settings.elasticsearch.indices.dead_letters).values()
    assert sum(1 for d in letters if d["reason"] == "unknown_trade") == tape.unknown


def trades(
    symbol: str,
    start_ns: int,
    count: int,
    ids: list[str],
    price: float,
    exchange: str | None = "V",
    tape: str | None = None,
    conditions: list[str] | None = None,
    gap_s: float = 3.1,
) -> list[Trade]:
    return [
        Trade(
            symbol=symbol,
            timestamp_ns=start_ns + int(n * gap_s * 10**9),
            price=round(price + (n % 7) * 0.05, 2),
            size=float(100 + n % 4),
            trade_id=ids[n],
            exchange=exchange,
            tape=tape,
            conditions=conditions if conditions is not None else ["@"],
            source=Source.SIMULATOR,
        )
        for n in range(count)
    ]


def cancel(symbol: str, trade_id: str, at_ns: int, exchange: str | None = "V", price: float = 1.0) -> TradeCancel:
    return TradeCancel(
        symbol=symbol,
        timestamp_ns=at_ns,
        trade_id=trade_id,
        exchange=exchange,
        price=price,
        size=1.0,
        action="C",
        source=Source.SIMULATOR,
    )


def correct(
    symbol: str,
    named: str,
    new_id: str,
    at_ns: int,
    price: float,
    size: float = 100.0,
    exchange: str | None = "V",
    conditions: list[str] | None = None,
) -> TradeCorrection:
    return TradeCorrection(
        symbol=symbol,
        timestamp_ns=at_ns,
        exchange=exchange,
        original_trade_id=named,
        original_price=1.0,
        original_size=1.0,
        original_conditions=["@"],
        corrected_trade_id=new_id,
        corrected_price=price,
        corrected_size=size,
        corrected_conditions=conditions or ["@"],
        source=Source.SIMULATOR,
    )


DAY1, DAY2 = "2026-11-23", "2026-11-24"  # a Monday and a Tuesday


def test_two_trading_days_reusing_every_trade_id_keep_both_days(settings: Settings, sent: Sent) -> None:
    """Venues number each day's trades afresh: day 2 reuses day 1's ids, on two exchanges (V and the TRF, D). Both
    days' trades are stored; a cancel and a correction on day 2 find day 2's trade, not day 1's; crypto ids are
    unique per symbol, so a crypto id sent again is a copy."""
    day1, day2 = new_york(f"{DAY1} 10:00:00"), new_york(f"{DAY2} 10:00:00")
    ids = [str(n) for n in range(1, 41)]
    records: list[Record] = []
    for start, base in ((day1, 100.0), (day2, 110.0)):
        records += trades("AAPL", start, 40, ids, base, exchange="V", tape="C")
        records += trades(
            "AAPL",
            start + 500_000_000,
            40,
            [str(52_983_525_000_000 + int(i)) for i in ids],
            base + 0.5,
            exchange="D",
            tape="C",
        )
    records += [
        cancel("AAPL", "3", day1 + 200 * 10**9),
        cancel("AAPL", "7", day2 + 200 * 10**9),
        correct("AAPL", "9", "10000009", day2 + 210 * 10**9, 111.11),
    ]
    btc = trades("BTC/USD", day1, 5, ["77", "78", "79", "80", "81"], 90_000.0, exchange=None)
    records += [*btc, btc[0].model_copy(update={"timestamp_ns": day2, "price": 1.0})]  # the same crypto trade again
    produce(settings, sent, records)
    started = run_cli("stream", "--timeout", str(TIMEOUT_S), timeout=TIMEOUT_S + 60)
    assert started.returncode == 0, started.stdout + started.stderr
    wait_caught_up(settings)
    check(settings, sent)
    docs = es_docs(settings, settings.elasticsearch.indices.trades)
    assert len([d for d in docs.values() if d["symbol"] == "AAPL"]) == 160  # the earlier ids lost day 2 (80 trades)
    assert not docs[f"AAPL|V|{DAY2}|3"].get("cancelled") and docs[f"AAPL|V|{DAY1}|3"]["cancelled"]
    assert docs[f"AAPL|V|{DAY2}|7"]["cancelled"] and not docs[f"AAPL|V|{DAY1}|7"].get("cancelled")
    assert docs[f"AAPL|V|{DAY2}|9"]["price"] == 111.11 and docs[f"AAPL|V|{DAY1}|9"]["price"] != 111.11
    assert docs[f"AAPL|V|{DAY2}|9"]["trading_day"] == DAY2
    assert len([d for d in docs.values() if d["symbol"] == "BTC/USD"]) == 5 and "trading_day" not in docs["BTC/USD||77"]


CODES = [
    " ",
    "@",
    "A",
    "B",
    "C",
    "D",
    "E",
    "F",
    "G",
    "H",
    "I",
    "K",
    "L",
    "M",
    "N",
    "O",
    "P",
    "Q",
    "R",
    "S",
    "T",
    "U",
    "V",
    "W",
    "X",
    "Y",
    "Z",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
]


def test_every_sale_condition_counts_where_alpaca_counts_it(settings: Settings, sent: Sent) -> None:
    """Per code and tape (IBM on tape A, MSFT on tape C): a minute with a regular trade and a trade of the code at a
    price above it and later (the high and the close tell whether it set a price; the volume whether it counts),
    and a minute with only the code (a bar only if it sets a price; its volume still in the hour)."""
    start = new_york(f"{DAY1} 11:00:00")
    records: list[Record] = []
    for symbol, tape_code in (("IBM", "A"), ("MSFT", "C")):
        for k, code in enumerate(CODES):
            minute = start + 2 * k * 60 * 10**9
            records += [
                Trade(
                    symbol=symbol,
                    timestamp_ns=minute + 5 * 10**9,
                    price=100.0,
                    size=100.0,
                    trade_id=f"c{k}a",
                    exchange="N",
                    tape=tape_code,
                    conditions=["@"],
                    source=Source.SIMULATOR,
                ),
                Trade(
                    symbol=symbol,
                    timestamp_ns=minute + 20 * 10**9,
                    price=150.0 + k,
                    size=37.0,
                    trade_id=f"c{k}b",
                    exchange="N",
                    tape=tape_code,
                    conditions=[code],
                    source=Source.SIMULATOR,
                ),
                Trade(
                    symbol=symbol,
                    timestamp_ns=minute + 70 * 10**9,
                    price=90.0 - k / 10,
                    size=11.0,
                    trade_id=f"c{k}c",
                    exchange="D",
                    tape=tape_code,
                    conditions=["@", code],
                    source=Source.SIMULATOR,
                ),
            ]
    produce(settings, sent, records)
    wait_caught_up(settings)
    check(settings, sent)
    minutes = es_docs(settings, settings.elasticsearch.indices.bars_1m)

    def minute_of(code: str, alone: bool) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start // 10**9 + (2 * CODES.index(code) + alone) * 60))

    for symbol, tape_code in (("IBM", "A"), ("MSFT", "C")):
        assert f"{symbol}|{minute_of('I', True)}" not in minutes  # an odd lot makes no bar by itself
        bar = minutes[f"{symbol}|{minute_of('I', False)}"]
        assert (bar["high"], bar["close"], bar["volume"], bar["trade_count"]) == (100.0, 100.0, 137.0, 2)
        average = minutes[f"{symbol}|{minute_of('B', False)}"]
        assert (average["high"] == 100.0) == (tape_code == "A")  # B: an average price on CTS, bunched on UTDF


def test_correction_chains_apply_link_by_link_and_refusals_are_one_dead_letter_each(settings, sent) -> None:
    at = new_york(f"{DAY2} 12:00:00")
    base = trades("GOOG", at, 6, ["101", "102", "103", "104", "105", "106"], 50.0, exchange="Q", tape="C")
    records: list[Record] = [*base]
    step = iter(range(1, 100))

    def later() -> int:
        return at + 60 * 10**9 + next(step) * 10**9

    records += [
        correct("GOOG", "101", "201", later(), 50.5, exchange="Q"),  # a correction ...
        correct("GOOG", "201", "301", later(), 50.7, exchange="Q"),  # ... of the correction, by its new id
        correct("GOOG", "101", "401", later(), 50.9, 120.0, exchange="Q"),  # ... and again by the first id
        cancel("GOOG", "301", later(), exchange="Q"),  # a cancel naming a middle link
        correct("GOOG", "102", "202", later(), 49.0, exchange="Q", conditions=["@", "I"]),  # now an odd lot
        correct("GOOG", "103", "203", later(), 51.0, exchange="Q"),
        correct("GOOG", "103", "303", later(), 52.0, 90.0, exchange="Q"),  # corrected twice by its first id
        cancel("GOOG", "204", later(), exchange="Q"),  # an id no trade has
        correct("GOOG", "999", "1999", later(), 1.0, exchange="Q"),  # the same unknown trade, corrected ...
        cancel("GOOG", "999", later(), exchange="Q"),  # ... and cancelled: two dead letters
    ]
    yesterday = trades("GOOG", new_york(f"{DAY1} 12:00:00"), 1, ["888"], 40.0, exchange="Q", tape="C")
    records = [*yesterday, *records, correct("GOOG", "888", "1888", later(), 41.0, exchange="Q")]  # another day's id
    where = produce(settings, sent, records)
    wait_caught_up(settings)
    check(settings, sent)
    docs = es_docs(settings, settings.elasticsearch.indices.trades)
    first = docs[f"GOOG|Q|{DAY2}|101"]
    assert (first["price"], first["size"], first["original_price"], first["cancelled"]) == (50.9, 120.0, 50.0, True)
    assert first["corrected_trade_ids"] == ["201", "301", "401"] and first["corrected_trade_id"] == "401"
    assert (docs[f"GOOG|Q|{DAY2}|103"]["original_price"], docs[f"GOOG|Q|{DAY2}|103"]["price"]) == (50.1, 52.0)
    assert docs[f"GOOG|Q|{DAY1}|888"]["price"] == 40.0 and "corrected" not in docs[f"GOOG|Q|{DAY1}|888"]
    letters = es_docs(settings, settings.elasticsearch.indices.dead_letters)
    refused = {
        position
        for position, record in enumerate(records)
        if isinstance(record, TradeCancel | TradeCorrection)
        and (
            getattr(record, "trade_id", None) in {"204", "999"}
            or getattr(record, "original_trade_id", None) in {"999", "888"}
        )
    }
    assert len(refused) == 4
    for position in refused:
        topic, partition, offset = where[position]
        letter = letters[f"{topic}|{partition}|{offset}"]  # one per record, named by the record
        assert (letter["reason"], letter["topic"], letter["partition"], letter["offset"]) == (
            "unknown_trade",
            topic,
            partition,
            offset,
        )
        assert json.loads(letter["raw"])  # the update the record became, as refused


def test_the_backfill_live_boundary_keeps_alpaca_s_bars_and_the_more_complete_hour_wins(settings, sent) -> None:
    """Alpaca's hour bars backfilled at 14:30 UTC (the 14:00 one partial), then live: a quote at 14:31 before any
    trade, then trades from 14:31:30. Alpaca's bars stay as sent; ours hold only what we saw; the forecaster reads
    Alpaca's 14:00 (it counted more trades) and our 15:00."""
    import pandas as pd

    from ray_app.es_indices import es_client
    from ray_app.forecast.store import load_bars

    hour = new_york(f"{DAY2} 09:00:00")  # 14:00 UTC
    backfill = [
        Bar(
            symbol="IBM",
            timestamp_ns=hour - h * 3600 * 10**9,
            timeframe="1Hour",
            open=200.0,
            high=202.0,
            low=199.0,
            close=201.0,
            volume=50_000.0 + h,
            trade_count=500 + h,
            vwap=200.5,
            source=Source.ALPACA_REST,
        )
        for h in (3, 2, 1, 0)
    ]
    produce(settings, sent, [*backfill])
    wait_caught_up(settings)
    quote = Quote(
        symbol="IBM",
        timestamp_ns=hour + 31 * 60 * 10**9 + 5 * 10**9,
        bid_price=200.0,
        bid_size=100.0,
        ask_price=200.05,
        ask_size=100.0,
        source=Source.SIMULATOR,
    )
    produce(settings, sent, [quote])
    wait_caught_up(settings)
    vendor = es_docs(settings, settings.elasticsearch.indices.vendor_bars_1h)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour // 10**9))
    assert vendor[f"IBM|{stamp}"]["trade_count"] == 500 and vendor[f"IBM|{stamp}"]["volume"] == 50_000.0
    assert f"IBM|{stamp}" not in es_docs(settings, settings.elasticsearch.indices.bars_1h)
    live = trades(
        "IBM",
        hour + 31 * 60 * 10**9 + 30 * 10**9,
        40,
        [f"b{n}" for n in range(40)],
        201.0,
        exchange="N",
        tape="A",
        gap_s=45.0,
    )  # 14:31:30 - 15:00:45: most in the 14:00 hour, some in the 15:00 one
    live_bar = Bar(
        symbol="IBM",
        timestamp_ns=hour + 32 * 60 * 10**9,
        timeframe="1Min",
        open=201.0,
        high=201.0,
        low=201.0,
        close=201.0,
        volume=1.0,
        source=Source.ALPACA_STREAM,
    )  # Alpaca's live minute bar
    produce(settings, sent, [*live, live_bar])
    wait_caught_up(settings)
    check(settings, sent)
    assert es_docs(settings, settings.elasticsearch.indices.vendor_bars_1h)[f"IBM|{stamp}"] == vendor[f"IBM|{stamp}"]
    ours = es_docs(settings, settings.elasticsearch.indices.bars_1h)[f"IBM|{stamp}"]
    assert ours["source"] == "trades" and ours["trade_count"] < 500
    minute = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour // 10**9 + 32 * 60))
    assert es_docs(settings, settings.elasticsearch.indices.bars_1m)[f"IBM|{minute}"]["source"] == "trades"
    assert es_docs(settings, settings.elasticsearch.indices.vendor_bars_1m)[f"IBM|{minute}"]["volume"] == 1.0
    read = load_bars(
        es_client(settings),
        settings,
        ["IBM"],
        pd.Timestamp(hour - 3 * 3600 * 10**9, tz="UTC"),
        pd.Timestamp(hour + 2 * 3600 * 10**9, tz="UTC"),
    )["IBM"]
    assert [bar["trade_count"] for bar in read[:4]] == [503, 502, 501, 500]  # Alpaca's: we saw none or less
    assert read[4]["source"] == "trades" and len(read) == 5  # 15:00: only ours


def test_equal_keys_in_flight_land_in_kafka_order(settings: Settings, sent: Sent) -> None:
    """400 revisions of three vendor minute bars, interleaved, in requests of 40 with two in flight: each bar ends as
    its last revision; a trade sent twice, far apart in one batch, keeps its first copy (its Kafka offset)."""
    start = new_york(f"{DAY2} 13:00:00")
    revisions = [
        Bar(
            symbol="AAPL",
            timestamp_ns=start + (n % 3) * 60 * 10**9,
            timeframe="1Min",
            open=10.0,
            high=12.0,
            low=9.0,
            close=11.0,
            volume=float(n + 1),
            trade_count=n + 1,
            updated=n % 2 == 1,
            source=Source.ALPACA_STREAM,
        )
        for n in range(400)
    ]
    copy = trades("AAPL", start, 1, ["q1"], 10.0, exchange="V", tape="C")[0]
    filler = trades(
        "AAPL", start + 10**9, 120, [f"q{n}" for n in range(2, 122)], 10.0, exchange="V", tape="C", gap_s=0.4
    )
    where = produce(settings, sent, [copy, *revisions, *filler, copy])
    wait_caught_up(settings)
    check(settings, sent)
    vendor = es_docs(settings, settings.elasticsearch.indices.vendor_bars_1m)
    for m in range(3):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start // 10**9 + m * 60))
        last = max(n for n in range(400) if n % 3 == m)
        assert vendor[f"AAPL|{stamp}"]["volume"] == last + 1, (m, vendor[f"AAPL|{stamp}"])
    assert es_docs(settings, settings.elasticsearch.indices.trades)[trade_doc_id(copy)]["kafka_offset"] == where[0][2]


def test_a_simulated_multi_day_session_through_the_fake_alpaca_has_full_vendor_parity(settings, sent) -> None:
    """The simulator's tape (odd lots, auctions and official prints, Form T, late prints, cancels, corrections of
    corrections) over two trading days, streamed by the fake Alpaca to the live ingest, with the minute bars and
    updated bars Alpaca would send for those trades. Every minute both sides have is equal on every field; no
    minute is on one side only; minutes with a cancel or a correction are counted apart."""
    from ray_app.ingest.simulator import TradeSimulator
    from ray_app.testing.fake_alpaca import FakeAlpaca

    symbols = ["IBM", "MSFT", "BTC/USD"]
    simulator = TradeSimulator(symbols, seed=29, trades_per_minute=12, cancel_share=0.02, correction_share=0.02)
    monday, tuesday = "2026-11-30", "2026-12-01"  # days no other test of the module trades on
    windows = [
        (f"{monday} 09:20:00", f"{monday} 09:50:00"),
        (f"{monday} 15:55:00", f"{monday} 16:30:00"),
        (f"{tuesday} 09:20:00", f"{tuesday} 09:50:00"),
    ]
    timeline = []
    for begin, end in windows:
        start_ns = new_york(begin)
        timeline += list(simulator.timeline(start_ns, new_york(end), dict.fromkeys(symbols, start_ns)))
    records = [record for _, record in timeline]
    with FakeAlpaca() as fake:
        env = {**fake.settings_env(), "RAY_APP_SYMBOLS": json.dumps(symbols), "RAY_APP_INGEST__PROGRESS": "false"}
        ingest = subprocess.Popen(
            [sys.executable, "-m", "ray_app", "ingest", "--source", "alpaca"],
            cwd=REPO,
            env={**__import__("os").environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            fake.wait_subscribed("stocks", ["IBM", "MSFT"], timeout=120)
            fake.wait_subscribed("crypto", ["BTC/USD"], timeout=120)
            played = fake.play(timeline)
            time.sleep(3)  # the ingest hands the last frames to Kafka
        finally:
            ingest.terminate()
            output, _ = ingest.communicate(timeout=120)
        assert ingest.returncode == 0, output
    sent.records += records
    bars = [m for messages in played.values() for m in messages if m["T"] in ("b", "u")]
    assert any(m["T"] == "u" for m in bars), "no late print reached a minute after its bar"
    wait_caught_up(settings)
    check(settings, sent)
    first, last = new_york(windows[0][0]) // 10**9, new_york(windows[-1][1]) // 10**9 + 120
    answer = run_cli(
        "bars",
        "parity",
        "--json",
        "--since",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first)),
        "--until",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)),
        *(arg for symbol in symbols for arg in ("-s", symbol)),
    )
    assert answer.returncode == 0, answer.stderr
    result: dict[str, Any] = json.loads(answer.stdout)
    for parity in result["symbols"]:
        assert parity["compared"] > 30, parity
        assert parity["only_ours"] == parity["only_vendor"] == 0, parity
        assert all(share == 1.0 for share in parity["share"].values()), parity
    assert sum(p["adjusted"] for p in result["symbols"]) > 0  # the session's cancels and corrections are counted apart


def test_indicator_documents_follow_their_bars_also_across_a_restart(settings: Settings) -> None:
    """A bar the stream deleted (its trades all cancelled, or only odd lots left) takes its indicator document
    with it, in the next cycle, and in the first cycle of a job started after it was deleted."""
    from elasticsearch.helpers import bulk

    from ray_app.documents import BarDocument
    from ray_app.es_indices import es_client
    from ray_app.indicators.runner import IndicatorStep

    es = es_client(settings)
    mine = settings.model_copy(update={"symbols": ["GHOST"]})
    start = (time.time_ns() // 10**9 - 7200) // 60 * 60  # recent: the job writes the last indicators.written_days
    index = settings.elasticsearch.indices.bars_1m

    def stamp(minute: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 60 * minute))

    bars = [
        BarDocument(
            symbol="GHOST",
            timeframe="1Min",
            timestamp=stamp(m),
            open=10 + m,
            high=11 + m,
            low=9 + m,
            close=10.5 + m,
            volume=100,
            range=2,
            notional=1000,
            log_return=0.01,
            source="trades",
            updated_at=stamp(m),
        ).model_dump()
        for m in range(30)
    ]
    bulk(es, ({"_index": index, "_id": f"GHOST|{bar['timestamp']}", "_source": bar} for bar in bars), refresh=True)
    step = IndicatorStep(mine, es)
    step.cycle()
    indicators = settings.elasticsearch.indices.indicators_1m
    assert len([k for k in es_docs(settings, indicators) if k.startswith("GHOST|")]) == 30
    es.delete(index=index, id=f"GHOST|{stamp(12)}", refresh=True)
    step.cycle()
    left = {k for k in es_docs(settings, indicators) if k.startswith("GHOST|")}
    assert f"GHOST|{stamp(12)}" not in left and len(left) == 29
    es.delete(index=index, id=f"GHOST|{stamp(20)}", refresh=True)
    IndicatorStep(mine, es).cycle()  # a job started after the bar went: its first cycle cleans up
    left = {k for k in es_docs(settings, indicators) if k.startswith("GHOST|")}
    assert f"GHOST|{stamp(20)}" not in left and len(left) == 28


def test_the_expected_bars_are_not_the_stream_s_rule(settings: Settings, sent: Sent) -> None:
    """The reference counts what the stream counts only because both follow Alpaca: with every trade counted
    (the previous rule), the module's bars would differ in most minutes with an odd lot."""
    tape = sent.tape()
    everything = [t.model_copy(update={"conditions": ["@"]}) for t in tape.standing()]
    naive = expected_bars(everything, 60)
    minutes = es_docs(settings, settings.elasticsearch.indices.bars_1m)
    differs = sum(
        1
        for key, bar in naive.items()
        if key in minutes and (bar["volume"], bar["high"]) != (minutes[key]["volume"], minutes[key]["high"])
    )
    assert differs > 20
