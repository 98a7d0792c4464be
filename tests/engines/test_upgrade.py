"""`ray-app stream upgrade` on the real Elasticsearch (ray_app/bars/upgrade.py): data an earlier version stored, as
it stored it (stock trades under ``symbol|exchange|trade_id``, Alpaca's bars among ours, bars counting every
trade), brought up to this version in place; a second run finds nothing to do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch.helpers import bulk

from ray_app.config import Settings
from ray_app.documents import BarDocument
from ray_app.es_indices import es_client
from ray_app.schemas import Source, Trade
from ray_app.testing.settings import own_indices_created
from ray_app.times import format_ns
from tests.support.expected import assert_bars_equal, es_docs, expected_bars, trade_doc_id

START = 1_795_446_000  # 2026-11-23 10:00 New York


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Iterator[Settings]:
    with own_indices_created(stack, "up") as settings:
        yield settings


def _old_trade(index: str, trade: Trade, offset: int, **extra: object) -> dict:
    """A trade document as the previous version wrote it: no trading day, the id without it."""
    return {
        "_index": index,
        "_id": f"{trade.symbol}|{trade.exchange or ''}|{trade.trade_id}",
        "_source": {
            "symbol": trade.symbol,
            "timestamp": format_ns(trade.timestamp_ns),
            "price": trade.price,
            "size": trade.size,
            "notional": trade.price * trade.size,
            "timestamp_ns": trade.timestamp_ns,
            "trade_id": trade.trade_id,
            "exchange": trade.exchange,
            "conditions": trade.conditions,
            "tape": trade.tape,
            "source": "simulator",
            "schema_version": 1,
            "kafka_partition": 0,
            "kafka_offset": offset,
            **extra,
        },
    }


def test_an_upgrade_renames_stock_trades_moves_alpaca_s_bars_and_recomputes_every_bar(settings: Settings) -> None:
    from ray_app.bars.upgrade import upgrade

    es = es_client(settings)
    indices = settings.elasticsearch.indices
    trades = [
        Trade(
            symbol="AAPL" if n % 3 else "BTC/USD",
            timestamp_ns=(START + 7 * n) * 10**9,
            price=100 + n % 9,
            size=float(1 + n % 120),
            trade_id=str(1000 + n),
            exchange="V" if n % 3 else None,
            tape="C" if n % 3 else None,
            conditions=(["@", "I"] if n % 4 == 0 else ["@"]) if n % 3 else [],
            source=Source.SIMULATOR,
        )
        for n in range(400)
    ]
    actions = [_old_trade(indices.trades, t, n) for n, t in enumerate(trades)]
    corrected = trades[1]
    actions[1]["_source"] |= {
        "corrected": True,
        "corrected_trade_id": "9001",
        "original_price": 50.0,
        "original_size": 1.0,
        "corrected_at": format_ns(corrected.timestamp_ns + 10**9),
    }
    stamp = "2026-11-23T15:00:00Z"
    vendor = BarDocument(
        symbol="AAPL",
        timeframe="1Hour",
        timestamp=stamp,
        open=1.0,
        high=2.0,
        low=1.0,
        close=2.0,
        volume=10.0,
        trade_count=3,
        vwap=1.5,
        range=1.0,
        notional=20.0,
        log_return=0.69,
        source="alpaca-rest",
        updated_at=stamp,
    ).model_dump()
    actions += [
        {"_index": indices.bars_1h, "_id": f"AAPL|{stamp}", "_source": vendor},
        {"_index": indices.bars_1m, "_id": f"AAPL|{stamp}", "_source": {**vendor, "timeframe": "1Min"}},
    ]
    bulk(es, actions, refresh=True)

    steps: list[str] = []
    report = upgrade(settings, es, steps.append)
    assert (report.trades_renamed, report.aliases, report.vendor_bars_moved) == (266, 1, 2)
    docs = es_docs(settings, indices.trades)
    assert set(docs) == {trade_doc_id(t) for t in trades}  # stock: per-day ids; crypto: as before
    assert docs[trade_doc_id(corrected)]["corrected_trade_ids"] == ["9001"]
    aliases = es_docs(settings, indices.trade_aliases)
    assert aliases["AAPL|V|2026-11-23|9001"]["trade_doc_id"] == trade_doc_id(corrected)
    assert es_docs(settings, indices.vendor_bars_1h)[f"AAPL|{stamp}"]["trade_count"] == 3
    assert f"AAPL|{stamp}" in es_docs(settings, indices.vendor_bars_1m)
    assert_bars_equal(es_docs(settings, indices.bars_1m), expected_bars(trades, 60))
    assert_bars_equal(es_docs(settings, indices.bars_1h), expected_bars(trades, 3600))
    assert any("minute bars" in step for step in steps)

    again = upgrade(settings, es, steps.append)
    assert (again.trades_renamed, again.aliases, again.vendor_bars_moved) == (0, 0, 0)
    assert set(es_docs(settings, indices.trades)) == set(docs)
