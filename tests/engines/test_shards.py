"""A bar is never written, nor deleted, from part of its trades: the stream's recomputation
(spark_jobs/bar_recompute.py) on a real two-node Elasticsearch whose trades and bars indices have a shard on each node,
one node killed with SIGKILL.

Elasticsearch answers a search with a shard away as a success with fewer shards read (and the sums of half the
trades); a multi-get with an error for each document on the lost shard. The recomputation refuses both: it retries,
then raises (the batch fails and is replayed once the shard is back), and the bars it makes once the node is back
equal those made before it went away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk

from ray_app.config import Settings, load_settings
from ray_app.documents import TradeDocument
from ray_app.es_indices import ensure_indices
from ray_app.schemas import trade_doc_id
from ray_app.testing.settings import settings_env
from ray_app.testing.stack import environment
from ray_app.times import format_ns, trading_day
from spark_jobs.bar_recompute import IncompleteRead, hour_bar_actions, minute_bar_actions, touched_hours
from tests.support.es_cluster import TwoNodeElasticsearch

START = 1_795_446_000  # 2026-11-23 10:00 New York
SYMBOLS = ("AAPL", "MSFT", "IBM")


@pytest.fixture(scope="module")
def cluster(stack: Settings, stack_dir: Path) -> Iterator[tuple[TwoNodeElasticsearch, Settings]]:
    with TwoNodeElasticsearch(stack) as nodes:
        with environment(
            settings_env({"elasticsearch": {"url": nodes.url, "number_of_shards": 2, "number_of_replicas": 0}})
        ):
            settings = load_settings()
        yield nodes, settings


def _spread(es: Elasticsearch, index: str) -> None:
    """One shard of ``index`` on each node."""
    es.indices.put_settings(index=index, settings={"index.routing.allocation.total_shards_per_node": 1})
    es.cluster.health(index=index, wait_for_status="green", wait_for_no_relocating_shards=True, timeout="120s")
    nodes = {shard["node"] for shard in es.cat.shards(index=index, format="json")}
    assert len(nodes) == 2, es.cat.shards(index=index)


def _trades() -> list[dict]:
    docs = []
    for s_index, symbol in enumerate(SYMBOLS):
        for n in range(600):  # 20 minutes, a trade every 2 s
            at = (START + 2 * n) * 10**9 + s_index
            doc = TradeDocument(
                symbol=symbol,
                timestamp=format_ns(at),
                price=100.0 + s_index + (n % 13) * 0.01,
                size=float(1 + n % 7),
                notional=0.0,
                timestamp_ns=at,
                trade_id=str(n + 1),
                trading_day=trading_day(at),
                exchange="V",
                conditions=["@", "I"] if n % 5 == 0 else ["@"],
                tape="C",
                source="test",
                schema_version=1,
                kafka_partition=0,
                kafka_offset=n,
            ).model_dump(exclude_none=True)
            doc["notional"] = doc["price"] * doc["size"]
            docs.append(doc)
    return docs


def test_a_shard_away_fails_the_recomputation_and_its_return_gives_the_same_bars(cluster) -> None:
    nodes, settings = cluster
    es = Elasticsearch(nodes.url, request_timeout=60)
    ensure_indices(settings, es)
    indices = settings.elasticsearch.indices
    for index in (indices.trades, indices.bars_1m):
        _spread(es, index)
    trades = _trades()
    bulk(
        es,
        (
            {
                "_index": indices.trades,
                "_id": trade_doc_id(d["symbol"], d["exchange"], d["trading_day"], d["trade_id"]),
                "_source": d,
            }
            for d in trades
        ),
        refresh=True,
    )
    keys = {(symbol, START + 60 * m) for symbol in SYMBOLS for m in range(20)}
    minutes = minute_bar_actions(es, indices.trades, indices.quotes, indices.bars_1m, keys)
    bulk(es, ({"_index": i, "_id": d, "_source": s} for i, d, s, _ in minutes), refresh=True)
    hours = hour_bar_actions(es, indices.trades, indices.bars_1m, indices.bars_1h, touched_hours(keys))
    assert len(minutes) == 60 and len(hours) == 3 and all(op == "index" for *_, op in minutes + hours)

    nodes.kill_data_node()
    partial = es.search(index=indices.trades, size=0, aggs={"v": {"sum": {"field": "size"}}})
    assert partial["_shards"]["failed"] == 1  # what a read that does not check gets: half the trades, as a success
    assert partial["aggregations"]["v"]["value"] < sum(d["size"] for d in trades)
    began = time.monotonic()
    with pytest.raises(IncompleteRead, match="gave up after 4 tries, no bar written"):
        minute_bar_actions(es, indices.trades, indices.quotes, indices.bars_1m, keys)
    assert time.monotonic() - began > 3  # retried with backoff before giving up
    with pytest.raises(IncompleteRead):
        hour_bar_actions(es, indices.trades, indices.bars_1m, indices.bars_1h, touched_hours(keys))

    nodes.start_data_node()
    es.cluster.health(index=f"{indices.trades},{indices.bars_1m}", wait_for_status="green", timeout="180s")

    def strip(actions: list) -> list:
        import json

        return [(i, d, {k: v for k, v in json.loads(s).items() if k != "updated_at"}, op) for i, d, s, op in actions]

    assert strip(minute_bar_actions(es, indices.trades, indices.quotes, indices.bars_1m, keys)) == strip(minutes)
    again = hour_bar_actions(es, indices.trades, indices.bars_1m, indices.bars_1h, touched_hours(keys))
    assert strip(again) == strip(hours)
