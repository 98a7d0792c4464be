"""Bring data an earlier version stored up to this one, in place: ``ray-app stream upgrade`` (with the stream
stopped). Idempotent: run it again and it finds nothing left to do.

1. **Stock trades under per-day ids.** Earlier versions gave a trade the id ``symbol|exchange|trade_id``; a venue
   reuses its ids every day, so this version adds the New York date (``symbol|exchange|trading day|trade_id``,
   ``ray_app.schemas.trade_doc_id``). Each stock trade without ``trading_day`` is written again under its new id
   (``create``: one already there stays) and its old document deleted; a corrected one gets the alias of its
   corrected id, so a later cancel naming that id finds it. Crypto ids do not change.
2. **Alpaca's bars out of ours.** Earlier versions wrote Alpaca's bars (backfill, live ``b``) into ``bars-1m`` /
   ``bars-1h`` under the ids of the bars built from trades; they move to ``vendor-bars-1m`` / ``vendor-bars-1h``.
3. **Every bar recomputed** from the trades as they stand, with the sale-condition rules of this version
   (``spark_jobs.bar_recompute``): every minute that has trades or a bar, then every hour of those minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan, streaming_bulk

from ray_app.config import Settings
from ray_app.documents import TradeAliasDocument, VendorBarDocument, checked
from ray_app.es_indices import ensure_indices
from ray_app.schemas import trade_doc_id
from ray_app.times import format_ns, trading_day

CHUNK = 2000  # minutes (or hours) recomputed per round


class UpgradeFailed(RuntimeError):
    """Elasticsearch refused part of the upgrade; running it again goes on from where it stopped."""


@dataclass
class UpgradeReport:
    trades_renamed: int = 0
    aliases: int = 0
    vendor_bars_moved: int = 0
    minutes: int = 0
    hours: int = 0
    seconds: float = 0.0


def _bulk(es: Elasticsearch, actions: Iterable[dict[str, Any]]) -> int:
    """Send the actions; a create finding its document (409) or a delete finding none (404) is done already."""
    done = 0
    for ok, item in streaming_bulk(
        es, actions, chunk_size=1000, max_retries=5, raise_on_error=False, raise_on_exception=True
    ):
        status = next(iter(item.values())).get("status", 500)
        if not ok and status not in (404, 409):
            raise UpgradeFailed(f"Elasticsearch refused {item}")
        done += 1
    return done


def rename_stock_trades(es: Elasticsearch, settings: Settings) -> tuple[int, int]:
    """Step 1: (trades renamed, aliases written)."""
    indices = settings.elasticsearch.indices
    query = {"query": {"bool": {"must_not": [{"exists": {"field": "trading_day"}}, {"wildcard": {"symbol": "*/*"}}]}}}
    renamed = aliases = 0

    def actions() -> Iterator[dict[str, Any]]:
        nonlocal renamed, aliases
        for hit in scan(es, index=indices.trades, query=query, size=2000):
            doc = dict(hit["_source"])
            day = trading_day(int(doc["timestamp_ns"]))
            new_id = trade_doc_id(doc["symbol"], doc.get("exchange"), day, doc["trade_id"])
            doc["trading_day"] = day
            corrected = doc.get("corrected_trade_id")
            if corrected:
                doc.setdefault("corrected_trade_ids", [corrected])
            yield {"_op_type": "create", "_index": indices.trades, "_id": new_id, "_source": doc}
            if hit["_id"] != new_id:
                yield {"_op_type": "delete", "_index": indices.trades, "_id": hit["_id"]}
            renamed += 1
            if corrected:
                alias = checked(
                    TradeAliasDocument,
                    {
                        "symbol": doc["symbol"],
                        "exchange": doc.get("exchange"),
                        "trading_day": day,
                        "trade_id": corrected,
                        "trade_doc_id": new_id,
                        "created_at": doc.get("corrected_at") or format_ns(int(doc["timestamp_ns"])),
                    },
                )
                yield {
                    "_op_type": "index",
                    "_index": indices.trade_aliases,
                    "_id": trade_doc_id(doc["symbol"], doc.get("exchange"), day, corrected),
                    "_source": alias,
                }
                aliases += 1

    _bulk(es, actions())
    return renamed, aliases


def move_vendor_bars(es: Elasticsearch, settings: Settings) -> int:
    """Step 2: Alpaca's bars found among ours, moved to the vendor's indices."""
    indices = settings.elasticsearch.indices
    query = {"query": {"bool": {"must_not": [{"term": {"source": "trades"}}]}}}
    moved = 0

    def actions() -> Iterator[dict[str, Any]]:
        nonlocal moved
        for ours, vendor in ((indices.bars_1m, indices.vendor_bars_1m), (indices.bars_1h, indices.vendor_bars_1h)):
            for hit in scan(es, index=ours, query=query, size=2000):
                bar = dict(hit["_source"])
                if bar.get("vwap") is not None:
                    bar["notional"] = bar["vwap"] * bar["volume"]
                bar["updated"] = False
                yield {
                    "_op_type": "index",
                    "_index": vendor,
                    "_id": hit["_id"],
                    "_source": checked(VendorBarDocument, bar),
                }
                yield {"_op_type": "delete", "_index": ours, "_id": hit["_id"]}
                moved += 1

    _bulk(es, actions())
    return moved


def _keys(es: Elasticsearch, index: str, time_field: str, interval: str) -> set[tuple[str, int]]:
    """Every (symbol, window start) with a document in ``index``."""
    sources = [
        {"symbol": {"terms": {"field": "symbol"}}},
        {"window": {"date_histogram": {"field": time_field, "fixed_interval": interval}}},
    ]
    keys: set[tuple[str, int]] = set()
    after = None
    while True:
        composite: dict[str, Any] = {"size": 5000, "sources": sources, **({"after": after} if after else {})}
        result = es.search(index=index, size=0, aggs={"k": {"composite": composite}})["aggregations"]["k"]
        keys |= {(b["key"]["symbol"], b["key"]["window"] // 1000) for b in result["buckets"]}
        after = result.get("after_key")
        if not after or not result["buckets"]:
            return keys


def _as_bulk(actions: list[tuple[str, str, str | None, str]]) -> Iterator[dict[str, Any]]:
    for index, doc_id, source, op in actions:
        action: dict[str, Any] = {"_op_type": op, "_index": index, "_id": doc_id}
        if source is not None:
            action["_source"] = json.loads(source)
        yield action


def recompute_bars(es: Elasticsearch, settings: Settings, on_step: Callable[[str], None]) -> tuple[int, int]:
    """Step 3: every minute with trades or a bar, then every hour of them, recomputed (minutes, hours)."""
    from spark_jobs.bar_recompute import hour_bar_actions, minute_bar_actions, touched_hours

    indices = settings.elasticsearch.indices
    es.indices.refresh(index=f"{indices.trades},{indices.quotes},{indices.bars_1m},{indices.bars_1h}")
    minutes = sorted(_keys(es, indices.trades, "timestamp", "1m") | _keys(es, indices.bars_1m, "timestamp", "1m"))
    for done in range(0, len(minutes), CHUNK):
        part = set(minutes[done : done + CHUNK])
        _bulk(es, _as_bulk(minute_bar_actions(es, indices.trades, indices.quotes, indices.bars_1m, part)))
        on_step(f"minute bars: {min(done + CHUNK, len(minutes)):,} of {len(minutes):,}")
    hours = sorted(touched_hours(minutes) | _keys(es, indices.bars_1h, "timestamp", "1h"))
    for done in range(0, len(hours), CHUNK):
        part = set(hours[done : done + CHUNK])
        _bulk(es, _as_bulk(hour_bar_actions(es, indices.trades, indices.bars_1m, indices.bars_1h, part)))
        on_step(f"hour bars: {min(done + CHUNK, len(hours)):,} of {len(hours):,}")
    return len(minutes), len(hours)


def upgrade(settings: Settings, es: Elasticsearch, on_step: Callable[[str], None]) -> UpgradeReport:
    """The three steps in order (the stream must be stopped: the caller holds its checkpoint lock)."""
    began = time.monotonic()
    report = UpgradeReport()
    ensure_indices(settings, es)
    report.trades_renamed, report.aliases = rename_stock_trades(es, settings)
    on_step(f"stock trades under per-day ids: {report.trades_renamed:,} renamed, {report.aliases:,} aliases")
    report.vendor_bars_moved = move_vendor_bars(es, settings)
    on_step(f"Alpaca's bars moved out of ours: {report.vendor_bars_moved:,}")
    report.minutes, report.hours = recompute_bars(es, settings, on_step)
    report.seconds = round(time.monotonic() - began, 1)
    return report
