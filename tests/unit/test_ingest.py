"""Ingest without engines: parsing Alpaca's messages, dead-letter reasons, timestamps, the simulator."""

from __future__ import annotations

import base64
import itertools
import json

import msgpack
import numpy as np
import pytest

from ray_app.ingest import parse
from ray_app.ingest.recording import frame_items
from ray_app.ingest.simulator import MINUTE_NS, TradeSimulator, real_daily_anchors
from ray_app.schemas import Bar, DeadLetter, Source, Trade
from ray_app.times import format_ns, parse_rfc3339_ns

ALLOWED = {"AAPL", "BTC/USD"}
T0 = 1_795_793_400_123_456_789  # 2026-11-27T15:30:00.123456789Z


def stock_trade(**changes: object) -> dict:
    message = {
        "T": "t",
        "S": "AAPL",
        "i": 52983525029461,
        "x": "V",
        "p": 231.45,
        "s": 100,
        "c": ["@"],
        "z": "C",
        "t": msgpack.Timestamp.from_unix_nano(T0),
    }
    message.update(changes)
    return {k: v for k, v in message.items() if v is not None}


def test_stream_trade_keeps_nanoseconds_and_every_field() -> None:
    trade = parse.stream_message(stock_trade(), Source.ALPACA_STREAM, ALLOWED)
    assert isinstance(trade, Trade)
    assert trade.timestamp_ns == T0
    assert trade.timestamp == "2026-11-27T15:30:00.123456789Z"
    assert (trade.price, trade.size, trade.trade_id, trade.exchange, trade.conditions, trade.tape) == (
        231.45,
        100,
        "52983525029461",
        "V",
        ["@"],
        "C",
    )
    encoded = json.loads(trade.to_json())
    assert encoded["timestamp"] == "2026-11-27T15:30:00.123456789Z"
    assert encoded["source"] == "alpaca-stream" and encoded["schema_version"] == 1 and encoded["kind"] == "trade"


def test_crypto_trade_and_bar() -> None:
    crypto = {"T": "t", "S": "BTC/USD", "i": 7, "p": 101234.56, "s": 0.0012, "tks": "S", "t": "2026-11-27T15:30:01Z"}
    trade = parse.stream_message(crypto, Source.ALPACA_STREAM, ALLOWED)
    assert isinstance(trade, Trade) and trade.taker_side == "S" and trade.price == 101234.56
    bar = parse.stream_message(
        {"T": "b", "S": "AAPL", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 300, "n": 4, "vw": 1.2, "t": T0},
        Source.ALPACA_STREAM,
        ALLOWED,
    )
    assert isinstance(bar, Bar) and bar.timeframe == "1Min" and bar.trade_count == 4


@pytest.mark.parametrize(
    ("message", "reason", "detail"),
    [
        (stock_trade(p=-1.5), "invalid_value", "price"),
        (stock_trade(s=0), "invalid_value", "size"),
        (stock_trade(p=None), "missing_field", "'p' (price)"),
        (stock_trade(t=None), "missing_field", "'t'"),
        (stock_trade(t="yesterday"), "invalid_value", "timestamp"),
        (stock_trade(S="ZZZZ"), "unknown_symbol", "ZZZZ"),
        (stock_trade(p="abc"), "invalid_value", "price"),
        ({"T": "o", "S": "BTC/USD"}, "unknown_type", "T='o'"),  # an order book: not what the platform takes
        ({"T": "b", "S": "AAPL", "o": 5, "h": 4, "l": 3, "c": 4, "v": 1, "t": T0}, "invalid_value", "low <= open"),
        ("not a map", "unparseable", "must be a map"),
    ],
)
def test_bad_messages_become_dead_letters_with_the_reason_and_raw_payload(message, reason, detail) -> None:
    letter = parse.stream_message(message, Source.ALPACA_STREAM, ALLOWED)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == reason
    assert detail in letter.detail
    assert letter.stage == "ingest" and letter.source == "alpaca-stream"
    if isinstance(message, dict) and message.get("S"):
        assert json.loads(letter.raw)["S"] == message["S"]  # the payload as it came, readable


def test_control_messages_are_not_records() -> None:
    for message in ({"T": "success", "msg": "authenticated"}, {"T": "subscription", "trades": ["AAPL"]}):
        assert parse.stream_message(message, Source.ALPACA_STREAM, ALLOWED) is None


def test_a_frame_that_is_not_msgpack_is_one_dead_letter_with_the_bytes() -> None:
    garbage = b"\xc1\xff\x00garbage"
    (letter,) = frame_items(garbage, Source.ALPACA_STREAM, ALLOWED)
    assert isinstance(letter, DeadLetter) and letter.reason == "unparseable"
    assert letter.raw_encoding == "base64" and base64.b64decode(letter.raw) == garbage


def test_a_frame_with_good_and_bad_messages_keeps_the_good_ones() -> None:
    frame = msgpack.packb([stock_trade(), stock_trade(p=-1), stock_trade(i=2), {"T": "success", "msg": "x"}])
    items = list(frame_items(frame, Source.REPLAY, ALLOWED))
    assert [type(i).__name__ for i in items] == ["Trade", "DeadLetter", "Trade"]


def test_rfc3339_nanoseconds_round_trip() -> None:
    assert parse_rfc3339_ns(format_ns(T0)) == T0
    assert parse_rfc3339_ns("2026-11-27T10:30:00.5-05:00") == parse_rfc3339_ns("2026-11-27T15:30:00.500000000Z")
    with pytest.raises(ValueError, match="time zone"):
        parse_rfc3339_ns("2026-11-27T15:30:00")


# --- the simulator -----------------------------------------------------------------------------------------
WEEK_START = 1_795_392_000_000_000_000  # Monday 2026-11-23 00:00 UTC


def test_simulator_is_seeded_and_reproducible() -> None:
    def run(seed: int) -> list[bytes]:
        sim = TradeSimulator(["AAPL", "BTC/USD"], seed=seed, trades_per_minute=20)
        return [t.to_json() for t in sim.trades(WEEK_START, WEEK_START + 86400 * 10**9)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert all(json.loads(t)["source"] == "simulator" for t in first[:100])


def test_the_same_seed_gives_the_same_trades_whatever_window_a_run_covers() -> None:
    """Runs that start at different times (a rerun, a longer history, a live run after the history) agree on
    every trade of the time they share; that is what lets a rerun overwrite instead of doubling."""
    symbols = ["AAPL", "BTC/USD", "ZZZ"]
    hour = 3600 * 10**9

    def run(start: int, end: int, seed: int = 7) -> list[bytes]:
        return [t.to_json() for t in TradeSimulator(symbols, seed=seed, trades_per_minute=20).trades(start, end)]

    monday_open = WEEK_START + 14 * hour + 30 * 60 * 10**9  # 09:30 New York
    whole = run(WEEK_START, WEEK_START + 2 * 86400 * 10**9)
    later = run(monday_open + 17 * 60 * 10**9 + 123, WEEK_START + 2 * 86400 * 10**9)
    assert len(later) > 1000 and whole[-len(later) :] == later
    earlier = run(WEEK_START - 3 * 86400 * 10**9, WEEK_START + 86400 * 10**9)
    first_day = run(WEEK_START, WEEK_START + 86400 * 10**9)
    assert earlier[-len(first_day) :] == first_day
    assert run(WEEK_START, WEEK_START + 86400 * 10**9, seed=8) != first_day
    # a day opens where the one before it closed: no jump at midnight for 24/7 crypto
    btc = [json.loads(t) for t in whole if b'"BTC/USD"' in t]
    midnight = WEEK_START + 86400 * 10**9
    before = max((t for t in btc if t["timestamp_ns"] < midnight), key=lambda t: t["timestamp_ns"])
    after = min((t for t in btc if t["timestamp_ns"] >= midnight), key=lambda t: t["timestamp_ns"])
    assert abs(after["price"] / before["price"] - 1) < 0.005


def test_simulator_trades_stocks_in_the_extended_session_and_crypto_all_day() -> None:
    """Stocks 04:00-20:00 New York on weekdays, most of it in the regular session; every extended-hours trade is
    Form T (or, reported out of sequence, U); crypto around the clock. Trades come in the order the tape reports
    them: a late print comes after trades that happened up to 10 s after it."""
    from ray_app.ingest.simulator import MAX_LATE_S, session_phase

    sim = TradeSimulator(["AAPL", "BTC/USD"], seed=1, trades_per_minute=10)
    saturday = WEEK_START + 5 * 86400 * 10**9
    trades = list(sim.trades(WEEK_START, saturday + 86400 * 10**9))
    aapl = [t for t in trades if t.symbol == "AAPL"]
    phases = [session_phase(t.timestamp_ns - t.timestamp_ns % MINUTE_NS) for t in aapl]
    assert None not in phases and {p[0] for p in phases if p} == {"pre", "regular", "post"}
    regular = [t for t, p in zip(aapl, phases, strict=True) if p and p[0] == "regular"]
    assert len(regular) > 0.85 * len(aapl)
    auction = {"6", "M", "9"}  # the closing auction's prints and a corrected close, just after 16:00
    for trade, phase in zip(aapl, phases, strict=True):
        if phase and phase[0] != "regular" and not auction & set(trade.conditions):
            assert {"T", "U"} & set(trade.conditions), trade
        if phase and phase[0] == "regular":
            assert not {"T", "U"} & set(trade.conditions), trade
    crypto_hours = {(t.timestamp_ns // 3_600_000_000_000) % 24 for t in trades if t.symbol == "BTC/USD"}
    assert crypto_hours == set(range(24))
    newest = 0
    for trade in trades:
        assert trade.timestamp_ns > newest - MAX_LATE_S * 10**9  # reported at most 10 s after it happened
        newest = max(newest, trade.timestamp_ns)
    late = sum(1 for a, b in itertools.pairwise(aapl) if b.timestamp_ns < a.timestamp_ns)
    assert 0.002 < late / len(aapl) < 0.03


def test_trade_ids_restart_every_day_per_exchange_in_the_order_the_tape_reports_them() -> None:
    """A venue numbers each day's trades from 1 (exchange D, the reporting facility, from its own offset): the same
    ids come back every day, so only (symbol, trading day, exchange, id) names a trade."""
    from ray_app.ingest.simulator import TRF_ID_BASE
    from ray_app.testing.alpaca_rules import new_york_date

    sim = TradeSimulator(["MSFT"], seed=4, trades_per_minute=15)
    trades = list(sim.trades(WEEK_START, WEEK_START + 2 * 86400 * 10**9))
    by_day: dict[tuple[str, str | None], list[int]] = {}
    for trade in trades:  # in the order the tape reports them
        by_day.setdefault((new_york_date(trade.timestamp_ns), trade.exchange), []).append(int(trade.trade_id))
    days = sorted({day for day, _ in by_day})
    assert len(days) == 2
    for (_, exchange), ids in by_day.items():
        base = TRF_ID_BASE if exchange == "D" else 0
        assert ids == list(range(base + 1, base + len(ids) + 1)), exchange  # consecutive, from 1, no gaps
    reused = {(e, i) for (d, e), ids in by_day.items() if d == days[0] for i in ids} & {
        (e, i) for (d, e), ids in by_day.items() if d == days[1] for i in ids
    }
    assert len(reused) > 0.9 * sum(len(ids) for (d, _), ids in by_day.items() if d == days[1])


def test_the_simulator_sends_the_tape_s_sale_conditions_in_realistic_shares() -> None:
    sim = TradeSimulator(["IBM", "MSFT"], seed=6, trades_per_minute=40)
    trades = list(sim.trades(WEEK_START, WEEK_START + 5 * 86400 * 10**9))
    regular = [
        t for t in trades if TradeSimulator.stock_minute_of_session(t.timestamp_ns // MINUTE_NS * MINUTE_NS) is not None
    ]
    odd_lots = [t for t in regular if "I" in t.conditions]
    assert 0.35 < len(odd_lots) / len(regular) < 0.45 and all(t.size < 100 for t in odd_lots)
    codes = {code for t in trades for code in t.conditions}
    assert {
        "@",
        "I",
        "F",
        "T",
        "O",
        "Q",
        "6",
        "M",
        "4",
        "7",
        "C",
        "N",
        "R",
        "H",
        "P",
        "G",
        "V",
        "X",
        "L",
        "Z",
        "U",
        "1",
        "9",
    } <= codes
    # the average-price code is the feed's: B on CTS (IBM, tape A), W on UTDF (MSFT, tape C)
    assert {t.tape for t in trades if "B" in t.conditions} == {"A"}
    assert {t.tape for t in trades if "W" in t.conditions} == {"C"}
    for symbol, listing in (("IBM", "N"), ("MSFT", "Q")):  # each day: the listing market's auctions and officials
        for code in ("O", "Q", "6", "M"):
            prints = [t for t in trades if t.symbol == symbol and code in t.conditions]
            assert len(prints) == 5 and {t.exchange for t in prints} == {listing}, (symbol, code)


def test_simulator_volume_profile_and_volatility_clustering() -> None:
    sim = TradeSimulator(["MSFT"], seed=3, trades_per_minute=40)
    trades = list(sim.trades(WEEK_START, WEEK_START + 5 * 86400 * 10**9))
    per_minute: dict[int, list[float]] = {}
    for t in trades:
        per_minute.setdefault(
            TradeSimulator.stock_minute_of_session(t.timestamp_ns - t.timestamp_ns % MINUTE_NS), []
        ).append(t.price)
    counts = np.array([len(per_minute.get(m, [])) for m in range(390)], dtype=float)
    assert counts[:30].mean() > 1.5 * counts[150:240].mean()  # a busy open, a quiet lunch
    assert counts[-30:].mean() > 1.3 * counts[150:240].mean()  # and a busy close
    last_price: dict[int, float] = {}
    for t in trades:
        last_price[t.timestamp_ns // MINUTE_NS] = t.price
    closes = [last_price[minute] for minute in sorted(last_price)]  # every minute of the five sessions, in order
    returns = np.diff(np.log(closes))
    magnitude = np.abs(returns - returns.mean())
    autocorr = np.corrcoef(magnitude[:-1], magnitude[1:])[0, 1]
    assert autocorr > 0.05  # volatility clusters (i.i.d. returns would give ~0)


def test_simulator_prices_and_sizes_are_plausible_and_anchored_on_real_bars() -> None:
    anchors = real_daily_anchors()
    assert {"AAPL", "IBM", "MSFT", "GOOG"} <= set(anchors)
    sim = TradeSimulator(["IBM", "ETH/USD", "ZZZ"], seed=5, trades_per_minute=20)
    trades = list(sim.trades(WEEK_START, WEEK_START + 86400 * 10**9))
    ibm = [t for t in trades if t.symbol == "IBM"]
    assert abs(ibm[0].price / anchors["IBM"].closes[-1] - 1) < 0.05
    assert all(t.size >= 1 and t.size == int(t.size) and t.tape == "A" for t in ibm)
    assert any(t.conditions == ["@", "I"] and t.size < 100 for t in ibm)  # odd lots are marked
    eth = [t for t in trades if t.symbol == "ETH/USD"]
    assert all(0 < t.size < 1000 and t.taker_side in {"B", "S"} for t in eth)
    assert all(1000 < t.price < 10000 for t in eth)
    assert all(t.price > 0 for t in trades)


def test_cli_ingest_errors_are_one_clear_line(tmp_path) -> None:
    from ray_app.testing.stack import free_ports, run_cli

    nowhere = {
        "RAY_APP_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_ports(1)[0]}",
        "ALPACA_API_KEY": "",
        "ALPACA_SECRET_KEY": "",
        "RAY_APP_STATE_DIR": str(tmp_path),
    }
    no_keys = run_cli("ingest", "--source", "alpaca", env=nowhere, timeout=120)
    assert no_keys.returncode == 1
    assert "need API keys: set ALPACA_API_KEY and ALPACA_SECRET_KEY" in no_keys.stderr
    no_kafka = run_cli("ingest", "--source", "simulate", "--history-days", "0.01", env=nowhere, timeout=120)
    assert no_kafka.returncode == 1
    assert "is not reachable" in no_kafka.stderr and "ray-app stack up" in no_kafka.stderr
    assert "Traceback" not in no_keys.stderr + no_kafka.stderr
    bad = run_cli("ingest", "--source", "carrier-pigeon", env=nowhere)
    assert bad.returncode == 2 and "--source must be one of" in bad.stderr


# --- cancels, corrections and quotes: Alpaca's messages, and the simulator's -----------------------------------


def test_alpaca_s_cancel_correction_and_quote_messages_become_their_records() -> None:
    from ray_app.schemas import Quote, TradeCancel, TradeCorrection
    from ray_app.testing.fake_alpaca import cancel_message, correction_message, quote_message

    cancel = parse.stream_message(
        cancel_message("AAPL", T0, 52983525029461, 231.45, 100, action="E"), Source.ALPACA_STREAM, ALLOWED
    )
    assert isinstance(cancel, TradeCancel)
    assert (cancel.trade_id, cancel.exchange, cancel.action, cancel.timestamp_ns) == ("52983525029461", "V", "E", T0)
    corrected = parse.stream_message(
        correction_message("AAPL", T0, 5, 231.45, 100, 6, 231.55, 80, cc=["@", "I"]), Source.ALPACA_STREAM, ALLOWED
    )
    assert isinstance(corrected, TradeCorrection)
    assert (
        corrected.original_trade_id,
        corrected.corrected_trade_id,
        corrected.corrected_price,
        corrected.corrected_size,
        corrected.corrected_conditions,
    ) == ("5", "6", 231.55, 80, ["@", "I"])
    quoted = parse.stream_message(
        quote_message("BTC/USD", T0, 90_000.0, 90_001.0, 0.5, 0.25), Source.ALPACA_STREAM, ALLOWED
    )
    assert isinstance(quoted, Quote) and (quoted.bid_price, quoted.ask_size) == (90_000.0, 0.25)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {"T": "q", "S": "AAPL", "bp": 10.0, "bs": 1, "ap": 9.0, "as": 1, "t": msgpack.Timestamp.from_unix_nano(T0)},
            "invalid_value",
        ),  # a crossed book
        (
            {"T": "x", "S": "AAPL", "x": "V", "p": 1.0, "s": 1, "t": msgpack.Timestamp.from_unix_nano(T0)},
            "missing_field",
        ),
        (
            {
                "T": "c",
                "S": "AAPL",
                "oi": 1,
                "op": 1.0,
                "os": 1,
                "ci": 2,
                "cp": -1.0,
                "cs": 1,
                "t": msgpack.Timestamp.from_unix_nano(T0),
            },
            "invalid_value",
        ),
        (
            {"T": "x", "S": "ZZZZ", "i": 1, "p": 1.0, "s": 1, "t": msgpack.Timestamp.from_unix_nano(T0)},
            "unknown_symbol",
        ),
    ],
    ids=["crossed quote", "cancel without id", "correction to a negative price", "cancel of another symbol"],
)
def test_a_bad_cancel_correction_or_quote_is_a_dead_letter(message: dict, reason: str) -> None:
    letter = parse.stream_message(message, Source.ALPACA_STREAM, ALLOWED)
    assert isinstance(letter, DeadLetter) and letter.reason == reason, letter


def _day_of_events(seed: int = 7) -> list:
    sim = TradeSimulator(["AAPL", "MSFT", "BTC/USD"], seed=seed, trades_per_minute=30)
    return list(sim.events(WEEK_START, WEEK_START + 86400 * 10**9))


def test_the_simulator_sends_a_small_share_of_cancels_and_corrections_of_earlier_stock_trades() -> None:
    """Each names a trade it sent before it, on the same trading day, by the trade's id or by the id a correction
    gave it; some corrected trades are corrected again or cancelled (a chain)."""
    from ray_app.ingest.simulator import MAX_ADJUST_DELAY_S, MAX_CHAIN_DELAY_S
    from ray_app.schemas import Quote, TradeCancel, TradeCorrection
    from tests.support.expected import tape_of, trade_key

    events = _day_of_events()
    trades = [e for e in events if isinstance(e, Trade)]
    stock_trades = sum(1 for t in trades if t.symbol != "BTC/USD")
    cancels = [e for e in events if isinstance(e, TradeCancel)]
    corrections = [e for e in events if isinstance(e, TradeCorrection)]
    assert 0.003 < len(cancels) / stock_trades < 0.009 and 0.002 < len(corrections) / stock_trades < 0.006
    tape = tape_of([])
    chained = 0
    for event in events:
        if isinstance(event, TradeCancel | TradeCorrection):
            named = event.trade_id if isinstance(event, TradeCancel) else event.original_trade_id
            key = trade_key(event.symbol, event.exchange, event.timestamp_ns, named)
            found = tape._find(key)
            assert found is not None, event  # it names a trade sent before it (or a correction's id of one)
            chained += key not in tape.trades
            trade = tape.first_sent[found]
            assert event.symbol != "BTC/USD"  # Alpaca's crypto feed sends none
            delay = event.timestamp_ns - trade.timestamp_ns
            assert 0.5 * 10**9 <= delay <= (MAX_ADJUST_DELAY_S + MAX_CHAIN_DELAY_S) * 10**9
        tape.apply(event)
    assert tape.unknown == 0 and chained > 0
    assert {c.action for c in cancels} == {"C", "E"}
    assert all(c.corrected_price != c.original_price or c.corrected_size != c.original_size for c in corrections)
    quotes = [e for e in events if isinstance(e, Quote)]
    assert 1.2 < len(quotes) / len(trades) < 1.8
    assert all(0 < q.bid_price < q.ask_price for q in quotes)
    assert all(q.ask_price - q.bid_price > 0.01 - 1e-9 for q in quotes if q.symbol != "BTC/USD")  # a cent at least


def test_the_simulator_s_events_are_the_same_whatever_window_a_run_covers() -> None:
    """A run that stops and one that goes on from there send the same records as one run: the cancels and
    corrections of trades before the cut come after it."""
    sim = TradeSimulator(["AAPL", "BTC/USD"], seed=3, trades_per_minute=60)
    open_ns = WEEK_START + 14 * 3600 * 10**9 + 30 * 60 * 10**9
    cut, end = open_ns + 1800 * 10**9 + 12_345, open_ns + 3600 * 10**9
    whole = [e.to_json() for e in sim.events(open_ns, end)]
    parts = [e.to_json() for e in [*sim.events(open_ns, cut), *sim.events(cut, end)]]
    assert parts == whole and any(b'"kind":"cancel"' in e for e in whole)
    assert [e for e in whole if b'"kind":"trade"' in e] == [t.to_json() for t in sim.trades(open_ns, end)]


def test_a_first_run_sends_no_cancel_or_correction_of_a_trade_it_did_not_send() -> None:
    from ray_app.schemas import TradeCancel, TradeCorrection
    from tests.support.expected import tape_of

    sim = TradeSimulator(["AAPL", "MSFT"], seed=9, trades_per_minute=120, cancel_share=0.05, correction_share=0.05)
    open_ns = WEEK_START + 14 * 3600 * 10**9 + 30 * 60 * 10**9
    start = open_ns + 600 * 10**9
    events = list(sim.events(start, start + 300 * 10**9, {"AAPL": start, "MSFT": start}))
    adjustments = [e for e in events if isinstance(e, TradeCancel | TradeCorrection)]
    assert adjustments and tape_of(events).unknown == 0  # each names a trade this run sent
    # without the mark (a run going on from an earlier one), the earlier trades' adjustments come too
    assert len([e for e in sim.events(start, start + 300 * 10**9) if isinstance(e, TradeCancel)]) > len(
        [a for a in adjustments if isinstance(a, TradeCancel)]
    )


@pytest.mark.parametrize("hours", [6.0, None])
def test_the_history_keeps_quotes_for_its_last_hours_only_and_every_trade(hours: float | None) -> None:
    """`simulator.history_quotes_hours`: quotes older than the window are left out of the history (nobody looks at
    them); every trade, cancel and correction of the history is still sent, the same as with every quote kept."""
    from ray_app.config import load_settings
    from ray_app.ingest import IngestOptions, _SimulatedRun
    from ray_app.ingest.simulator import history_window
    from ray_app.lifecycle import StopFlag
    from ray_app.times import now_ns

    base = load_settings()
    simulator = base.simulator.model_copy(update={"history_quotes_hours": hours, "trades_per_minute": 2})
    settings = base.model_copy(update={"simulator": simulator})
    options = IngestOptions(symbols=["BTC/USD"], history_days=1, resume=False)
    _, live_start = history_window(1, now_ns())
    events = list(_SimulatedRun(settings, options, StopFlag(), lambda _: None))
    quotes = [e.timestamp_ns for e in events if e.kind == "quote"]
    others = [e for e in events if e.kind != "quote"]
    assert others and quotes
    if hours is None:
        assert min(quotes) < live_start - 20 * 3600 * 10**9
    else:
        assert min(quotes) >= live_start - int(hours * 3600 * 10**9)  # (a minute turning over only raises it)
    everything = base.model_copy(update={"simulator": simulator.model_copy(update={"history_quotes_hours": None})})
    all_events = list(_SimulatedRun(everything, options, StopFlag(), lambda _: None))
    assert [e for e in all_events if e.kind != "quote"] == others


def test_quotes_left_out_of_a_window_leave_every_other_record_as_it_was() -> None:
    """The history's quotes before its last day are not even made (``quotes_from_ns``): the records sent are the
    full timeline's, less those quotes, every trade, cancel, correction and later quote the same to the byte."""
    from ray_app.schemas import Quote

    symbols, seed = ["AAPL", "MSFT", "BTC/USD"], 11
    start, end = WEEK_START, WEEK_START + 86400 * 10**9
    quotes_from = start + 14 * 3600 * 10**9 + 123_456_789
    full = TradeSimulator(symbols, seed=seed, trades_per_minute=30).timeline(start, end)
    expected = [(sent, e.to_json()) for sent, e in full if not (isinstance(e, Quote) and sent < quotes_from)]
    cut = TradeSimulator(symbols, seed=seed, trades_per_minute=30).timeline(start, end, None, quotes_from)
    got = [(sent, e.to_json(), isinstance(e, Quote)) for sent, e in cut]
    assert [(sent, text) for sent, text, _ in got] == expected
    assert any(quote for _, _, quote in got)  # the quotes after the cut are there
