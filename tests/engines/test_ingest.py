"""Ingest end to end into the real Kafka broker, with the real alpaca-py clients pointed at the local fake Alpaca."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ray_app.config import Settings
from ray_app.ingest import IngestFailed, IngestOptions, IngestSource, run_ingest
from ray_app.ingest.alpaca_stream import AlpacaStreamError
from ray_app.ingest.producer import IngestProducer
from ray_app.ingest.simulator import TradeSimulator
from ray_app.kafka_topics import ensure_topics
from ray_app.lifecycle import StopFlag
from ray_app.schemas import Trade
from ray_app.testing.fake_alpaca import FakeAlpaca, trade_message
from ray_app.testing.stack import REPO
from tests.support.kafka import read_topic, with_own_topics

SYMBOLS = ["AAPL", "MSFT", "BTC/USD", "ETH/USD"]
T0 = 1_795_793_400_123_456_789


@pytest.fixture
def fake_alpaca(monkeypatch: pytest.MonkeyPatch):
    with FakeAlpaca(page_size=40) as fake:
        for key, value in fake.settings_env().items():
            monkeypatch.setenv(key, value)
        yield fake


def _settings(stack: Settings, fake: FakeAlpaca | None = None, **alpaca: object) -> Settings:
    settings = with_own_topics(stack, uuid.uuid4().hex[:8]).model_copy(update={"symbols": SYMBOLS})
    if fake:
        secret = alpaca.pop("secret_key", fake.secret_key)
        from pydantic import SecretStr

        settings = settings.model_copy(
            update={
                "alpaca": settings.alpaca.model_copy(
                    update={
                        "api_key": SecretStr(fake.api_key),
                        "secret_key": SecretStr(str(secret)),
                        "stock_stream_url": fake.stock_stream_url,
                        "crypto_stream_url": fake.crypto_stream_url,
                        "data_url": fake.http_url,
                        "reconnect_min_s": 0.2,
                        "reconnect_max_s": 1.0,
                        "rest_retry_wait_s": 0.1,
                        **alpaca,
                    }
                )
            }
        )
    ensure_topics(settings)
    return settings


def _live(settings: Settings, stop: StopFlag, record: Path | None = None) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["report"] = run_ingest(
                settings, IngestOptions(source=IngestSource.ALPACA, record=record, progress=False), stop
            )
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _trades(symbol: str, start: int, count: int, first_id: int = 1) -> list[dict]:
    return [
        trade_message(symbol, T0 + (start + i) * 1_000_003, 100 + i / 100, 1 + i % 7, first_id + i)
        for i in range(count)
    ]


def _values(messages: list) -> list[dict]:
    return [json.loads(m.value()) for m in messages]


def test_live_streams_into_kafka_with_dead_letters_and_a_recording(stack: Settings, fake_alpaca, tmp_path) -> None:
    settings = _settings(stack, fake_alpaca)
    stop = StopFlag()
    recording = tmp_path / "session.alpaca"
    thread, outcome = _live(settings, stop, record=recording)
    fake_alpaca.wait_subscribed("stocks", ["AAPL", "MSFT"])
    fake_alpaca.wait_subscribed("crypto", ["BTC/USD", "ETH/USD"])

    fake_alpaca.publish("stocks", _trades("AAPL", 0, 50) + _trades("MSFT", 0, 30), per_frame=7)
    fake_alpaca.publish("crypto", _trades("BTC/USD", 0, 40), per_frame=5)
    bar = {
        "T": "b",
        "S": "AAPL",
        "o": 100.0,
        "h": 101.0,
        "l": 99.5,
        "c": 100.5,
        "v": 1200,
        "n": 12,
        "vw": 100.3,
        "t": trade_message("AAPL", T0 - T0 % 60_000_000_000, 1, 1, 1)["t"],
    }
    bad = [
        trade_message("AAPL", T0, -5.0, 10, 999),  # negative price
        {k: v for k, v in trade_message("MSFT", T0, 10.0, 1, 998).items() if k != "s"},  # missing size
    ]
    fake_alpaca.publish("stocks", [bar, *bad], per_frame=3)
    fake_alpaca.publish_raw("stocks", b"\xc1this is not msgpack")
    # a symbol we did not subscribe to is still sent on '*' feeds by some clients: the fake honours subscriptions,
    # so send it as a raw frame the way a misbehaving feed would
    import msgpack

    fake_alpaca.publish_raw("crypto", msgpack.packb([trade_message("DOGE/USD", T0, 0.1, 10, 1)]))

    try:
        _wait_for(settings, settings.kafka.topics.dead_letters.name, 4)
    finally:
        stop.set()
        thread.join(30)
    assert "error" not in outcome, outcome
    report = outcome["report"]
    assert report.ok and report.counters.failed == 0

    trades = read_topic(settings, settings.kafka.topics.trades.name)
    assert len(trades) == 120
    by_key = Counter(m.key().decode() for m in trades)
    assert by_key == {"AAPL": 50, "MSFT": 30, "BTC/USD": 40}
    for key in by_key:
        ids = [int(v["trade_id"]) for m, v in zip(trades, _values(trades), strict=True) if m.key().decode() == key]
        assert ids == sorted(ids)  # per-symbol order kept
    first = next(v for v in _values(trades) if v["symbol"] == "AAPL" and v["trade_id"] == "1")
    assert first["timestamp"] == "2026-11-27T15:30:00.123456789Z" and first["timestamp_ns"] == T0
    assert first["source"] == "alpaca-stream" and first["exchange"] == "V"

    (bar_msg,) = read_topic(settings, settings.kafka.topics.bars.name)
    assert bar_msg.key() == b"AAPL" and json.loads(bar_msg.value())["vwap"] == 100.3

    letters = _values(read_topic(settings, settings.kafka.topics.dead_letters.name))
    reasons = Counter(letter["reason"] for letter in letters)
    assert reasons == {"invalid_value": 1, "missing_field": 1, "unparseable": 1, "unknown_symbol": 1}
    negative = next(letter for letter in letters if letter["reason"] == "invalid_value")
    assert "price" in negative["detail"] and json.loads(negative["raw"])["p"] == -5.0

    # the recording replays to the same records (as source=replay), as fast as possible
    assert recording.stat().st_size > 0
    replay_settings = with_own_topics(settings, "replay")
    ensure_topics(replay_settings)
    replayed = run_ingest(
        replay_settings, IngestOptions(source=IngestSource.REPLAY, file=recording, speed=0, progress=False)
    )
    assert replayed.counters.trades == 120 and replayed.counters.bars == 1 and replayed.counters.dead_letters == 4
    again = _values(read_topic(replay_settings, replay_settings.kafka.topics.trades.name))
    assert {v["source"] for v in again} == {"replay"}
    assert sorted((v["symbol"], v["trade_id"], v["timestamp_ns"]) for v in again) == sorted(
        (v["symbol"], v["trade_id"], v["timestamp_ns"]) for v in _values(trades)
    )


def _wait_for(settings: Settings, topic: str, count: int, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    held = 0
    while time.monotonic() < deadline and (held := len(read_topic(settings, topic, 5))) < count:
        time.sleep(0.3)
    return held


def test_dropped_connection_reconnects_and_resumes(stack: Settings, fake_alpaca) -> None:
    settings = _settings(stack, fake_alpaca)
    trades_topic = settings.kafka.topics.trades.name
    stop = StopFlag()
    thread, outcome = _live(settings, stop)
    try:
        fake_alpaca.wait_subscribed("stocks", ["AAPL"])
        fake_alpaca.publish("stocks", _trades("AAPL", 0, 20))
        assert _wait_for(settings, trades_topic, 20) == 20
        assert fake_alpaca.drop_connections() >= 1
        time.sleep(0.3)
        fake_alpaca.wait_subscribed("stocks", ["AAPL"], timeout=30)  # alpaca-py reconnected and re-subscribed
        fake_alpaca.publish("stocks", _trades("AAPL", 20, 20, first_id=21))
        assert _wait_for(settings, trades_topic, 40) == 40
    finally:
        stop.set()
        thread.join(30)
    assert "error" not in outcome, outcome
    assert fake_alpaca.connections_accepted >= 3  # stocks twice, crypto at least once
    ids = [int(v["trade_id"]) for v in _values(read_topic(settings, trades_topic))]
    assert ids == list(range(1, 41))


def test_auth_failure_is_reported_clearly_and_stops(stack: Settings, fake_alpaca) -> None:
    settings = _settings(stack, fake_alpaca, secret_key="wrong")
    began = time.monotonic()
    with pytest.raises(IngestFailed, match="auth failed") as failed:
        run_ingest(settings, IngestOptions(source=IngestSource.ALPACA, progress=False))
    assert isinstance(failed.value.cause, AlpacaStreamError)
    assert time.monotonic() - began < 20  # no endless reconnect loop
    assert fake_alpaca.auth_failures >= 1


def test_connection_limit_406_is_reported(stack: Settings, fake_alpaca) -> None:
    first = _settings(stack, fake_alpaca)
    stop = StopFlag()
    thread, _ = _live(first, stop)
    fake_alpaca.wait_subscribed("stocks", ["AAPL"])
    try:
        with pytest.raises(IngestFailed, match="connection limit exceeded"):
            run_ingest(_settings(stack, fake_alpaca), IngestOptions(source=IngestSource.ALPACA, progress=False))
    finally:
        stop.set()
        thread.join(30)


def test_too_many_symbols_for_the_plan_is_a_clear_error_before_connecting(stack: Settings, fake_alpaca) -> None:
    settings = _settings(stack, fake_alpaca, max_symbols_per_stream=1)
    with pytest.raises(AlpacaStreamError, match="allows 1"):
        run_ingest(settings, IngestOptions(source=IngestSource.ALPACA, progress=False))
    assert fake_alpaca.connections_accepted == 0


def test_backfill_pages_and_retries_429(stack: Settings, fake_alpaca) -> None:
    settings = _settings(stack, fake_alpaca, backfill_chunk_days=2)
    fake_alpaca.fail_next(3, status=429)
    end = datetime(2026, 11, 27, 21, tzinfo=UTC)
    messages: list[str] = []
    from ray_app.ingest.backfill import backfill

    items = list(
        backfill(settings, 4, "1Hour", StopFlag(), symbols=["BTC/USD", "AAPL"], end=end, on_retry=messages.append)
    )
    expected = {
        s: len(fake_alpaca.bars_between(s, end - timedelta(days=4), end, 3600, "/" in s)) for s in ("BTC/USD", "AAPL")
    }
    got = Counter(i.symbol for i in items)
    assert got == expected and expected["BTC/USD"] == 96
    assert all(i.source == "alpaca-rest" and i.timeframe == "1Hour" for i in items)
    tokens = [p for _, p in fake_alpaca.rest_requests if p.get("page_token")]
    assert tokens, "more bars than one page, so next_page_token was followed"
    statuses = len(fake_alpaca.rest_requests)
    assert statuses >= 3 + 2 * 2 + len(tokens)  # the three 429s were retried

    report = run_ingest(
        settings, IngestOptions(source=IngestSource.BACKFILL, days=2, progress=False, symbols=["BTC/USD"])
    )
    assert report.ok and report.counters.bars == 48
    bars = read_topic(settings, settings.kafka.topics.bars.name)
    assert len(bars) == 48 and {m.key() for m in bars} == {b"BTC/USD"}


def test_simulated_history_lands_in_kafka_exactly(stack: Settings) -> None:
    settings = _settings(stack)
    report = run_ingest(
        settings,
        IngestOptions(
            source=IngestSource.SIMULATE,
            history_days=0.25,
            seed=11,
            trades_per_minute=20,
            symbols=["BTC/USD", "ETH/USD"],
            progress=False,
        ),
    )
    assert report.ok
    messages = read_topic(settings, settings.kafka.topics.trades.name)
    assert len(messages) == report.counters.trades == report.counters.delivered - report.counters.quotes > 1000
    assert report.counters.quotes > 0 == report.counters.cancels + report.counters.corrections  # crypto: none
    assert len(read_topic(settings, settings.kafka.topics.quotes.name)) == report.counters.quotes
    values = _values(messages)
    assert {v["source"] for v in values} == {"simulator"}
    assert all(m.key().decode() == v["symbol"] for m, v in zip(messages, values, strict=True))


def test_a_full_local_queue_waits_instead_of_dropping(stack: Settings) -> None:
    settings = _settings(stack)
    producer = IngestProducer(settings, **{"queue.buffering.max.messages": 50, "linger.ms": 50})
    sim = TradeSimulator(["BTC/USD"], seed=2, trades_per_minute=200)
    trades = [t for t, _ in zip(sim.trades(T0, T0 + 3600 * 10**9), range(5000), strict=False)]
    for trade in trades:
        producer.send(trade)
    assert producer.flush(60) == 0
    assert producer.counters.backpressure_waits > 0
    assert producer.counters.delivered == 5000 and producer.counters.failed == 0
    assert len(read_topic(settings, settings.kafka.topics.trades.name)) == 5000


def test_sigterm_flushes_and_exits_cleanly_as_a_process(stack: Settings, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ray_app",
            "ingest",
            "--source",
            "simulate",
            "--history-days",
            "0",
            "--live",
            "--symbols",
            "BTC/USD",
            "--trades-per-minute",
            "3000",
            "--no-progress",
        ],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "failed 0, undelivered 0" in out
    delivered = int(out.split(" delivered")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert delivered > 50


def test_trade_schema_round_trips_through_json() -> None:
    trade = Trade(symbol="AAPL", timestamp_ns=T0, price=1.5, size=2, trade_id="9", source="replay")
    data = json.loads(trade.to_json())
    data.pop("timestamp")
    assert Trade(**data) == trade


def test_ingest_runs_as_a_ray_job(stack: Settings) -> None:
    ray_cli = Path(sys.executable).with_name("ray")
    result = subprocess.run(
        [
            str(ray_cli),
            "job",
            "submit",
            "--address",
            stack.ray.dashboard_url,
            "--working-dir",
            ".",
            "--",
            "python",
            "-m",
            "ray_app",
            "ingest",
            "--source",
            "simulate",
            "--history-days",
            "0.02",
            "--symbols",
            "ETH/USD",
            "--seed",
            "4",
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "succeeded" in result.stdout.lower()
    assert re.search(r"ingest simulate: [\d,]+ delivered .* failed 0, undelivered 0", result.stdout), result.stdout


def _kafka_trade_ids(settings: Settings) -> list[tuple[str, int]]:
    return [(v["symbol"], int(v["trade_id"])) for v in _values(read_topic(settings, settings.kafka.topics.trades.name))]


def _journal_entries(path: Path) -> int:
    import msgpack

    with path.open("rb") as file:
        return sum(1 for _ in msgpack.Unpacker(file))


def _wait_until(condition, timeout_s: float, what: str) -> None:
    """Until ``condition()`` holds; a broker that has just (re)started and has no partition leader yet counts as
    "not yet"."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except KafkaException:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_live_ingest_rides_out_kafka_being_away_and_keeps_what_is_left_for_the_next_run(
    stack: Settings, fake_alpaca, tmp_path: Path
) -> None:
    """Kafka stopped during a live run: the websocket loop keeps taking frames (records spill to the journal, not
    to memory), nothing is lost or doubled when Kafka is back; a run that ends while Kafka is away keeps the rest
    in the journal, and the next run delivers it."""
    from tests.support.own_kafka import own_kafka

    with own_kafka(stack, tmp_path / "own") as broker:
        settings = _settings(broker.settings, fake_alpaca).model_copy(update={"symbols": ["AAPL"]})
        settings = settings.model_copy(
            update={
                "ingest": settings.ingest.model_copy(
                    update={"queue_max_messages": 1000, "memory_queue_messages": 200, "flush_timeout_s": 3}
                )
            }
        )
        from ray_app.ingest import journal_path

        journal = journal_path(settings, IngestSource.ALPACA)
        stop = StopFlag()
        thread, outcome = _live(settings, stop)
        fake_alpaca.wait_subscribed("stocks", ["AAPL"])
        fake_alpaca.publish("stocks", _trades("AAPL", 0, 300, first_id=1), per_frame=50)
        _wait_until(lambda: len(_kafka_trade_ids(settings)) == 300, 30, "the first 300 trades")

        broker.stop()
        away = time.monotonic()
        # far more than librdkafka's queue and the memory queue together hold
        for start in range(300, 3300, 500):
            fake_alpaca.publish("stocks", _trades("AAPL", start, 500, first_id=start + 1), per_frame=50)
        _wait_until(lambda: journal.exists() and journal.stat().st_size > 100_000, 30, "records in the journal")
        assert fake_alpaca.connections_accepted == 1  # the websocket stayed up: its loop was never blocked
        time.sleep(max(0.0, 15 - (time.monotonic() - away)))
        broker.start()
        fake_alpaca.publish("stocks", _trades("AAPL", 3300, 200, first_id=3301), per_frame=50)
        _wait_until(lambda: len(_kafka_trade_ids(settings)) >= 3500, 90, "every trade once Kafka is back")
        stop.set()
        thread.join(60)
        assert "error" not in outcome, outcome
        report = outcome["report"]
        assert report.ok, report.line()
        assert report.counters.spilled > 1000 and report.counters.replayed == report.counters.spilled
        assert _kafka_trade_ids(settings) == [("AAPL", i) for i in range(1, 3501)]  # each once, in order

        # a run that ends while Kafka is away: what is left is kept, reported, and sent by the next run
        stop = StopFlag()
        thread, outcome = _live(settings, stop)
        fake_alpaca.wait_subscribed("stocks", ["AAPL"])
        broker.stop()
        fake_alpaca.publish("stocks", _trades("AAPL", 3500, 2000, first_id=3501), per_frame=50)
        # librdkafka's queue takes 1000, the memory queue 200 and the sender holds one: the rest is in the journal
        _wait_until(lambda: _journal_entries(journal) >= 795, 30, "the rest in the journal")
        time.sleep(1)
        stop.set()
        thread.join(60)
        report = outcome["report"]
        assert not report.ok and report.kept == 2000 and report.undelivered == 0
        assert "kept in" in report.line() and str(journal) in report.line()
        broker.start()
        again = run_ingest(settings, IngestOptions(source=IngestSource.ALPACA, duration_s=8, progress=False))
        assert again.ok and again.counters.replayed == 2000, again.line()
        assert _kafka_trade_ids(settings) == [("AAPL", i) for i in range(1, 5501)]


def test_a_source_that_fails_midway_still_flushes_and_reports_what_was_delivered(stack: Settings, fake_alpaca) -> None:
    settings = _settings(stack, fake_alpaca, backfill_chunk_days=1)
    topic = settings.kafka.topics.bars.name
    # the first day's request succeeds, the second is refused for good: the run fails after sending 24 bars
    original = fake_alpaca._bars

    async def refuse_after_first(request, crypto):
        if len(fake_alpaca.rest_requests) >= 1:
            fake_alpaca.fail_next(1, status=403)
        return await original(request, crypto)

    fake_alpaca._bars = refuse_after_first
    with pytest.raises(IngestFailed, match="HTTP 403") as failed:
        run_ingest(
            settings,
            IngestOptions(source=IngestSource.BACKFILL, days=3, timeframe="1Hour", progress=False, symbols=["BTC/USD"]),
        )
    report = failed.value.report
    assert report.counters.delivered == report.counters.bars == 24 and report.undelivered == 0
    assert len(read_topic(settings, topic)) == 24
    assert "24 delivered" in report.line() and "undelivered 0" in report.line()


def test_simulating_again_never_doubles_the_history_even_after_a_settings_change(stack: Settings) -> None:
    settings = _settings(stack)
    options = {
        "source": IngestSource.SIMULATE,
        "history_days": 0.1,
        "seed": 11,
        "trades_per_minute": 20,
        "symbols": ["BTC/USD", "ETH/USD"],
        "progress": False,
    }
    first = run_ingest(settings, IngestOptions(**options))
    assert first.ok and first.counters.trades > 200
    again = run_ingest(settings, IngestOptions(**options))
    changed = run_ingest(settings, IngestOptions(**{**options, "trades_per_minute": 60, "history_days": 0.2}))
    assert again.ok and changed.ok
    trades = _values(read_topic(settings, settings.kafka.topics.trades.name))
    ids = Counter((t["symbol"], t["trade_id"]) for t in trades)
    assert max(ids.values()) == 1  # no trade twice
    # at most the minute or two between runs is new; the changed settings did not write the window again
    assert again.counters.trades + changed.counters.trades < 0.2 * first.counters.trades
    stamps = [t["timestamp_ns"] for t in trades if t["symbol"] == "BTC/USD"]
    assert stamps == sorted(stamps)  # each run went on where the one before left off

    # --no-resume writes the window again, and with the same seed it is the same trades
    fresh = with_own_topics(settings, "fresh")
    ensure_topics(fresh)
    replayed = run_ingest(fresh, IngestOptions(**{**options, "resume": False}))
    assert replayed.ok
    first_ids = {(t["symbol"], t["trade_id"], t["price"]) for t in trades[: first.counters.trades]}
    fresh_trades = _values(read_topic(fresh, fresh.kafka.topics.trades.name))
    fresh_ids = {(t["symbol"], t["trade_id"], t["price"]) for t in fresh_trades}
    # the same seed, the same trades (the window moved by a minute at most)
    assert len(first_ids & fresh_ids) > 0.95 * len(first_ids)
