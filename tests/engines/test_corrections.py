"""Trade cancels and corrections, and quotes, on the real engines (Kafka -> Spark on Ray -> Elasticsearch).

Every 1-minute and 1-hour bar must equal a direct computation over the trades as they stand (cancelled ones out,
corrected ones at their corrected values; tests/support/expected.py), whatever the timing:

1. a cancel and a correction in the same micro-batch as their trade (all produced before the job starts);
2. in a later micro-batch;
3. hours after their trade, long after the 10-minute watermark the job's bars had before, with newer trades since;
4. a correction of a trade that was corrected before, a trade sent again after it was cancelled (it stays
   cancelled), a cancel of a trade never seen (a dead letter, ``unknown_trade``);
5. a replay of the whole topic (`stream --reset`): the same trades and the same bars;
6. the simulator's own cancels, corrections and quotes (its shares), through the ingest stage's producer;
7. quotes: each symbol's last quote of each second kept, the bars' time-weighted spread equal to a direct
   computation, whatever order the quotes of one second are written in.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from ray_app.config import Settings, load_settings
from ray_app.kafka_clients import producer_config
from ray_app.schemas import Quote, Source, Trade, TradeCancel, TradeCorrection
from ray_app.testing.settings import module_settings
from ray_app.testing.stack import run_cli
from tests.support.expected import assert_trades_and_bars, es_docs, tape_of, trade_doc_id

MINUTE_NS = 60 * 10**9
TIMEOUT_S = 240
# a fixed trading day (2026-11-30, a Monday), 10:00 New York: a trade's cancels and corrections, hours later, are
# still on its day (ids are unique within a trading day only, so one sent the next day names another trade)
BASE = 1_796_050_800 * 10**9
Record = Trade | TradeCancel | TradeCorrection | Quote


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Iterator[Settings]:
    with module_settings(stack, "cx", {"stream": {"trigger_interval_s": 0.5, "spark_log_level": "WARN"}}) as settings:
        yield settings
        run_cli("stream", "stop", timeout=120)


class Sent:
    """Every record this module produced, in Kafka order (one partition per symbol)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    @property
    def trades(self) -> list[Trade]:
        return tape_of(self.records).sent()

    @property
    def unknown(self) -> int:
        """Cancels and corrections of trades never seen: each a dead letter."""
        return tape_of(self.records).unknown

    @property
    def quotes(self) -> list[Quote]:
        return [r for r in self.records if isinstance(r, Quote)]

    def standing(self) -> list[Trade]:
        return tape_of(self.records).standing()


@pytest.fixture(scope="module")
def sent() -> Sent:
    return Sent()


def _produce(settings: Settings, sent: Sent, records: list[Record]) -> None:
    producer = Producer(producer_config(settings))
    failed: list[str] = []
    for record in records:
        topic = settings.kafka.topics.quotes.name if isinstance(record, Quote) else settings.kafka.topics.trades.name
        producer.produce(
            topic,
            value=record.to_json(),
            key=record.symbol.encode(),
            on_delivery=lambda error, _: failed.append(str(error)) if error else None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0 and not failed, failed[:3]
    sent.records += records


def _wait_caught_up(settings: Settings) -> None:
    from spark_jobs.control import lags

    deadline = time.monotonic() + TIMEOUT_S
    while any(lag.messages for lag in lags(settings)):
        assert time.monotonic() < deadline, f"the stream did not catch up: {lags(settings)}"
        time.sleep(0.5)


def _check(settings: Settings, sent: Sent) -> None:
    assert_trades_and_bars(settings, sent.trades, sent.standing(), sent.quotes)
    trades = es_docs(settings, settings.elasticsearch.indices.trades)
    standing = {trade_doc_id(t): t for t in sent.standing()}
    for doc_id, doc in trades.items():
        assert bool(doc.get("cancelled")) == (doc_id not in standing), doc_id
        if doc_id in standing:  # its current values are the corrected ones
            assert (doc["price"], doc["size"]) == (standing[doc_id].price, standing[doc_id].size), doc_id
            assert doc["notional"] == standing[doc_id].price * standing[doc_id].size
    letters = es_docs(settings, settings.elasticsearch.indices.dead_letters).values()
    assert sum(1 for d in letters if d["reason"] == "unknown_trade") == sent.unknown


def _trades(symbol: str, start_ns: int, count: int, tag: str, price: float, exchange: str = "V") -> list[Trade]:
    """``count`` trades 997 ms apart from ``start_ns``; every fifth shares its time with the one before."""
    trades = []
    for n in range(count):
        at = start_ns + (n - (1 if n % 5 == 4 else 0)) * 997_000_000
        trades.append(
            Trade(
                symbol=symbol,
                timestamp_ns=at,
                price=round(price + (n % 7) * 0.05, 2),
                size=float(1 + n % 4),
                trade_id=f"{tag}-{n}",
                exchange=exchange,
                conditions=["@"],
                source=Source.SIMULATOR,
            )
        )
    return trades


def _cancel(trade: Trade, after_s: float, action: str = "C") -> TradeCancel:
    return TradeCancel(
        symbol=trade.symbol,
        timestamp_ns=trade.timestamp_ns + int(after_s * 10**9),
        trade_id=trade.trade_id,
        exchange=trade.exchange,
        price=trade.price,
        size=trade.size,
        action=action,
        source=Source.SIMULATOR,
    )


def _correct(trade: Trade, after_s: float, price: float, size: float | None = None) -> TradeCorrection:
    return TradeCorrection(
        symbol=trade.symbol,
        timestamp_ns=trade.timestamp_ns + int(after_s * 10**9),
        exchange=trade.exchange,
        original_trade_id=trade.trade_id,
        original_price=trade.price,
        original_size=trade.size,
        original_conditions=trade.conditions,
        corrected_trade_id=f"{trade.trade_id}c",
        corrected_price=price,
        corrected_size=size if size is not None else trade.size,
        corrected_conditions=["@", "I"],
        source=Source.SIMULATOR,
    )


def _quotes(symbol: str, start_ns: int, seconds: int, mid: float) -> list[Quote]:
    """Two quotes in most seconds (the later one must win), one-sided ones now and then, gaps between."""
    out = []
    for s in range(0, seconds, 3):
        for k, spread in ((0, 0.04), (600_000_000, 0.02 + (s % 5) * 0.01)):
            bid = round(mid + s * 0.001, 2)
            one_sided = s % 21 == 0 and k
            out.append(
                Quote(
                    symbol=symbol,
                    timestamp_ns=start_ns + s * 10**9 + 1_000 + k,
                    bid_price=0.0 if one_sided else bid,
                    bid_size=0.0 if one_sided else 300.0,
                    ask_price=round(bid + spread, 2),
                    ask_size=200.0,
                    source=Source.SIMULATOR,
                )
            )
    return out


def test_a_cancel_and_a_correction_in_their_trade_s_micro_batch(settings: Settings, sent: Sent) -> None:
    """All produced before the job starts: its first micro-batch holds the trades and what undoes them."""
    base = BASE
    aapl = _trades("AAPL", base, 150, "same", 100.0)
    msft = _trades("MSFT", base + 30 * 10**9, 90, "same", 50.0, exchange="Q")
    quotes = _quotes("AAPL", base, 150, 100.0) + _quotes("MSFT", base, 120, 50.0)
    records: list[Record] = [*aapl, *msft, *quotes]
    records += [_cancel(aapl[3], 1), _cancel(aapl[61], 2, "E"), _cancel(msft[0], 1)]  # msft[0]: its minute's open
    records += [_correct(aapl[10], 5, 250.0), _correct(aapl[40], 3, 100.1, size=9.0), _correct(msft[89], 1, 10.0)]
    _produce(settings, sent, records)
    started = run_cli("stream", "--timeout", str(TIMEOUT_S), timeout=TIMEOUT_S + 60)
    assert started.returncode == 0, started.stdout + started.stderr
    _wait_caught_up(settings)
    _check(settings, sent)


def test_a_cancel_and_a_correction_in_a_later_micro_batch(settings: Settings, sent: Sent) -> None:
    trades = sent.trades
    aapl = [t for t in trades if t.symbol == "AAPL"]
    _produce(settings, sent, [_cancel(aapl[20], 30), _correct(aapl[21], 40, 99.5), _cancel(aapl[149], 1)])
    _wait_caught_up(settings)
    _check(settings, sent)


def test_hours_late_after_newer_trades_again_and_of_a_trade_never_seen(settings: Settings, sent: Sent) -> None:
    """Three hours after their trades, with an hour of newer trades in between (far beyond the ten minutes the
    job's watermark used to allow): still applied, bars exact. A corrected trade corrected again; a cancelled
    trade sent again stays cancelled; a cancel and a correction of trades never seen are dead letters."""
    newer = _trades("AAPL", BASE + 2 * 3600 * 10**9, 120, "newer", 101.0)
    _produce(settings, sent, newer)
    _wait_caught_up(settings)
    old = [t for t in sent.trades if t.trade_id.startswith("same-")]
    by_id = {t.trade_id: t for t in old}
    again = by_id["same-3"]  # cancelled in the first micro-batch
    records: list[Record] = [
        _cancel(by_id["same-100"], 3 * 3600),
        _correct(by_id["same-10"], 3 * 3600, 101.0),
        again,
        _cancel(again.model_copy(update={"trade_id": "never-seen"}), 5),
        _correct(again.model_copy(update={"trade_id": "never-seen-2"}), 5, 1.0),
    ]
    _produce(settings, sent, records)
    assert sent.unknown == 2
    _wait_caught_up(settings)
    _check(settings, sent)
    doc = es_docs(settings, settings.elasticsearch.indices.trades)[trade_doc_id(by_id["same-10"])]
    assert (doc["price"], doc["original_price"], doc["corrected"]) == (101.0, by_id["same-10"].price, True)


def test_a_replay_of_the_whole_topic_gives_the_same_trades_and_bars(
    settings: Settings, sent: Sent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 33: the reset is the job's, wherever the CLI runs: from a CLI whose state directory no node has (here an
    empty one), the job still discards its checkpoints (before, the CLI deleted its own empty folder and the job
    resumed from its checkpoint: nothing was replayed, silently)."""
    from ray_app.ray_cluster import job_client
    from spark_jobs.control import running_job

    indices = settings.elasticsearch.indices
    before = {index: es_docs(settings, index) for index in (indices.trades, indices.bars_1m, indices.bars_1h)}
    assert run_cli("stream", "stop", timeout=180).returncode == 0
    elsewhere = {"RAY_APP_STATE_DIR": str(tmp_path_factory.mktemp("another-machine"))}
    replayed = run_cli("stream", "--reset", "--timeout", str(TIMEOUT_S), env=elsewhere, timeout=TIMEOUT_S + 60)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    job = running_job(job_client(settings))
    assert job is not None and job.entrypoint.endswith("--reset")
    logs = job_client(settings).get_job_logs(job.submission_id)
    assert f"discarded the checkpoints in {settings.stream_checkpoint_dir}" in logs, logs[-3000:]
    _wait_caught_up(settings)
    _check(settings, sent)
    after = {index: es_docs(settings, index) for index in before}
    assert after[indices.trades] == before[indices.trades]  # every trade found there: nothing rewritten
    for index in (indices.bars_1m, indices.bars_1h):
        strip = lambda docs: {k: {f: v for f, v in d.items() if f != "updated_at"} for k, d in docs.items()}  # noqa: E731
        assert strip(after[index]) == strip(before[index])


def test_the_simulator_s_cancels_corrections_and_quotes_land_as_it_sent_them(settings: Settings, sent: Sent) -> None:
    """Two hours of a Monday session from the simulator (three symbols, its default shares), through the ingest
    stage's producer: every cancel and correction applies to its trade, the bars are exact, the shares as set."""
    from ray_app.ingest.producer import IngestProducer
    from ray_app.ingest.simulator import TradeSimulator

    monday_open = 1_795_444_200 * 10**9  # 2026-11-23 14:30 UTC: 09:30 New York
    sim = load_settings().simulator
    simulator = TradeSimulator(
        ["IBM", "GOOG", "ETH/USD"],
        seed=5,
        trades_per_minute=40,
        cancel_share=sim.cancel_share,
        correction_share=sim.correction_share,
        quotes_per_trade=sim.quotes_per_trade,
    )
    # a first run: no cancel or correction of a trade it did not send (the pre-market's, reported before it)
    events = list(
        simulator.events(
            monday_open, monday_open + 2 * 3600 * 10**9, dict.fromkeys(["IBM", "GOOG", "ETH/USD"], monday_open)
        )
    )
    producer = IngestProducer(settings)
    for event in events:
        assert producer.send(event)
    assert producer.flush(60) == 0
    counters = producer.counters
    assert counters.failed == 0 and counters.delivered == len(events)
    stock_trades = sum(1 for e in events if isinstance(e, Trade) and e.symbol != "ETH/USD")
    assert 0.002 < counters.cancels / stock_trades < 0.01 and 0.001 < counters.corrections / stock_trades < 0.006
    sent.records += events
    _wait_caught_up(settings)
    _check(settings, sent)
    trades = [
        d
        for d in es_docs(settings, settings.elasticsearch.indices.trades).values()
        if d["symbol"] == "IBM" or d["symbol"] == "GOOG"
    ]
    tape = tape_of(events)
    assert tape.unknown == 0  # every one named a trade the run sent, by its id or by one a correction gave it
    assert sum(bool(d.get("cancelled")) for d in trades) == len(tape.cancelled)
    assert sum(bool(d.get("corrected")) for d in trades) == len(tape.originals)
    assert sum(len(d.get("corrected_trade_ids") or []) for d in trades) == counters.corrections


def test_each_second_keeps_its_last_quote_whatever_order_they_arrive_in(settings: Settings, sent: Sent) -> None:
    second = BASE + 90 * 60 * 10**9 + 7 * 10**9
    late, early = (
        Quote(
            symbol="MSFT",
            timestamp_ns=second + offset,
            bid_price=50.0,
            bid_size=100.0,
            ask_price=50.0 + spread,
            ask_size=100.0,
            source=Source.SIMULATOR,
        )
        for offset, spread in ((900_000_000, 0.07), (100_000_000, 0.03))
    )
    trade = Trade(
        symbol="MSFT",
        timestamp_ns=second + 500_000_000,
        price=50.02,
        size=5.0,
        trade_id="q-1",
        exchange="Q",
        source=Source.SIMULATOR,
    )
    _produce(settings, sent, [late, trade])
    _wait_caught_up(settings)
    _produce(settings, sent, [early])  # older than the one kept: it changes nothing
    _wait_caught_up(settings)
    _check(settings, sent)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second // 10**9))
    kept = es_docs(settings, settings.elasticsearch.indices.quotes)[f"MSFT|{stamp}"]
    assert (kept["quoted_ns"], round(kept["spread"], 2), kept["mid"]) == (second + 900_000_000, 0.07, 50.035)


def test_twenty_quotes_a_trade_keep_each_second_s_latest_and_count_every_record(settings: Settings, sent: Sent) -> None:
    """A real feed's quote rate: 20 quotes per trade, in no time order, with equal times (the later produced wins),
    all in Kafka at once so a micro-batch holds many quotes of one second (the sink sends one of them)."""
    from spark_jobs.status import read_status

    rng = random.Random(34)
    start = BASE + 3 * 3600 * 10**9
    trades = _trades("IBM", start, 40, "qrate", 150.0, exchange="N")
    quotes = []
    for trade in trades:
        for _ in range(20):
            at = trade.timestamp_ns + rng.randrange(-400_000_000, 400_000_000, 50_000_000)  # ties on purpose
            bid = round(150.0 + rng.uniform(-0.5, 0.5), 2)
            quotes.append(
                Quote(
                    symbol="IBM",
                    timestamp_ns=at,
                    bid_price=bid,
                    bid_size=100.0,
                    ask_price=round(bid + rng.choice((0.01, 0.02, 0.05)), 2),
                    ask_size=100.0,
                    source=Source.SIMULATOR,
                )
            )
    rng.shuffle(quotes)
    before = read_status(settings)
    records: list[Record] = [*trades, *quotes]
    _produce(settings, sent, records)
    _wait_caught_up(settings)
    _check(settings, sent)
    kept = es_docs(settings, settings.elasticsearch.indices.quotes)
    latest: dict[int, Quote] = {}
    for quote in quotes:  # in the order produced: on equal times the later one stays
        second = quote.timestamp_ns // 10**9
        if second not in latest or quote.timestamp_ns >= latest[second].timestamp_ns:
            latest[second] = quote
    for second, quote in latest.items():
        doc = kept[f"IBM|{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(second))}"]
        assert (doc["quoted_ns"], doc["bid_price"], doc["ask_price"]) == (
            quote.timestamp_ns,
            quote.bid_price,
            quote.ask_price,
        )
    assert before is not None
    deadline, rows = time.monotonic() + 30, -1
    while rows != len(records) and time.monotonic() < deadline:  # the status is published after the batch
        after = read_status(settings)
        rows = after.queries["records"].rows - before.queries["records"].rows if after else -1
        time.sleep(0.5)
    assert rows == len(records)  # every Kafka record counted, the quotes the sink did not send too
