"""The one encoding on Kafka (``Record.to_json``, made with orjson for speed) is byte for byte what pydantic's own
``model_dump_json`` gives, on every record kind the feed sends and on values at the edges."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ray_app.ingest.simulator import TradeSimulator
from ray_app.schemas import Bar, Quote, Source, Trade, TradeCancel, TradeCorrection

WEEK_START = 1_795_392_000_000_000_000  # Monday 2026-11-23 00:00 UTC


def _pydantic(record) -> bytes:
    return record.model_dump_json().encode()


def test_every_record_the_simulator_sends_encodes_as_pydantic_does() -> None:
    simulator = TradeSimulator(["AAPL", "IBM", "BTC/USD"], seed=11, trades_per_minute=30, quotes_per_trade=2)
    kinds: dict[str, int] = {}
    # a New York session day: stocks with their conditions, cancels and corrections, crypto, quotes
    for event in simulator.events(WEEK_START + 13 * 3600 * 10**9, WEEK_START + 21 * 3600 * 10**9):
        assert event.to_json() == _pydantic(event), event
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    assert {"trade", "quote", "cancel", "correction"} <= set(kinds), kinds


@pytest.mark.parametrize("seed", range(3))
def test_values_at_the_edges_encode_as_pydantic_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    prices = [
        float(p)
        for p in np.concatenate([10.0 ** rng.uniform(-9, 15, 400), rng.uniform(0, 1e6, 100).round(2), [1e16, 5e-324]])
    ]
    for n, price in enumerate(prices):
        at = int(rng.integers(1, 2**63 - 1))
        trade = Trade(
            symbol="BRK.B",
            timestamp_ns=at,
            source=Source.ALPACA_STREAM,
            price=price,
            size=price,
            trade_id=f"id-é-{n}-\u4e2d",
            exchange="V" if n % 2 else None,
            conditions=["@", "I"] if n % 3 else [],
            tape="A",
        )
        assert trade.to_json() == _pydantic(trade), price
        bar = Bar(
            symbol="BTC/USD",
            timestamp_ns=at,
            source=Source.ALPACA_STREAM,
            timeframe="1Min",
            open=price,
            high=price * 2,
            low=price,
            close=price,
            volume=0.0,
            trade_count=n or None,
            vwap=price,
            updated=bool(n % 2),
        )
        assert bar.to_json() == _pydantic(bar)
        quote = Quote(
            symbol="AAPL",
            timestamp_ns=at,
            source=Source.SIMULATOR,
            bid_price=0.0,
            bid_size=0.0,
            ask_price=price,
            ask_size=1,
        )
        assert quote.to_json() == _pydantic(quote)
    cancel = TradeCancel(
        symbol="AAPL", timestamp_ns=1, source=Source.SIMULATOR, trade_id="1", price=1, size=1, action="C"
    )
    correction = TradeCorrection(
        symbol="AAPL",
        timestamp_ns=1,
        source=Source.SIMULATOR,
        original_trade_id="1",
        original_price=1,
        original_size=1,
        corrected_trade_id="2",
        corrected_price=2,
        corrected_size=1,
    )
    for record in (cancel, correction):
        assert record.to_json() == _pydantic(record)
        assert json.loads(record.to_json())["timestamp"] == "1970-01-01T00:00:00.000000001Z"
