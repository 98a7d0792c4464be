"""The bar view's arithmetic without engines (spark_jobs/bar_recompute.py): the time-weighted spread (a one-sided book
ends the hold of the one before it), a minute bar from its trades' aggregation, an hour from its minutes' prices and its
trades' volume (the spread weighted by the seconds each minute covers), the keys the sink reports, the refusal of a
read that missed a shard. The engine tests hold the whole path (trades, cancels, corrections, sale conditions in
Elasticsearch) to a direct computation."""

from __future__ import annotations

import itertools
import math

import pytest

from ray_app.documents import BarDocument
from spark_jobs.bar_recompute import (
    IncompleteRead,
    complete,
    hour_bar,
    minute_bar,
    parse_keys,
    reading,
    run_chunks,
    time_weighted_spread,
    touched_hours,
)

NS = 1_000_000_000
START = 1_764_511_200  # 2025-11-30T14:00:00Z


def test_each_quote_holds_until_the_next_one_and_the_last_to_the_minute_s_end() -> None:
    book = [((START + 10) * NS, 0.02), ((START + 40) * NS, 0.05)]  # 30 s at 0.02, then 20 s at 0.05
    spread, seconds = time_weighted_spread(START, book)
    assert seconds == 50 and math.isclose(spread, (0.02 * 30 + 0.05 * 20) / 50)


def test_no_two_sided_quote_gives_no_spread() -> None:
    assert time_weighted_spread(START, []) == (None, 0)
    assert time_weighted_spread(START, [((START + 5) * NS, None)]) == (None, 0)


def test_a_one_sided_second_ends_the_two_sided_book_before_it_and_counts_for_nothing() -> None:
    """10-20 s: 0.02; 20-30 s: one side only (the 0.02 does not hold across it); 30-60 s: 0.04."""
    book = [((START + 10) * NS, 0.02), ((START + 20) * NS, None), ((START + 30) * NS, 0.04)]
    spread, seconds = time_weighted_spread(START, book)
    assert seconds == 40 and math.isclose(spread, (0.02 * 10 + 0.04 * 30) / 40)


def test_a_minute_bar_from_its_aggregation_is_its_model_with_the_derived_values() -> None:
    trades = {"open": 10.0, "close": 11.0, "high": 12.0, "low": 9.5, "volume": 6.0, "notional": 65.0, "trade_count": 3}
    bar = minute_bar("AAPL", START, trades, (0.03, 45), "2025-11-30T14:01:00Z")
    BarDocument.model_validate(bar)
    assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["trade_count"]) == (10.0, 12.0, 9.5, 11.0, 3)
    assert math.isclose(bar["vwap"], 65 / 6) and math.isclose(bar["log_return"], math.log(11 / 10))
    # notional: USD traded, the trades' own price x size (not close x volume)
    assert (bar["range"], bar["notional"], bar["spread_twa"], bar["spread_seconds"]) == (2.5, 65.0, 0.03, 45)
    assert minute_bar("AAPL", START, trades, None, "x")["spread_twa"] is None


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1]])
def test_an_hour_is_its_minutes_whatever_their_order(order: list[int]) -> None:
    minutes = [
        {
            "timestamp": "2025-11-30T14:00:00Z",
            "open": 10.0,
            "high": 12.0,
            "low": 9.0,
            "close": 11.0,
            "volume": 2.0,
            "trade_count": 2,
            "vwap": 10.5,
            "spread_twa": 0.02,
            "spread_seconds": 60,
        },
        {
            "timestamp": "2025-11-30T14:07:00Z",
            "open": 11.0,
            "high": 15.0,
            "low": 10.0,
            "close": 14.0,
            "volume": 1.0,
            "trade_count": 1,
            "vwap": 14.0,
            "spread_twa": 0.06,
            "spread_seconds": 20,
        },
        {
            "timestamp": "2025-11-30T14:59:00Z",
            "open": 14.0,
            "high": 14.5,
            "low": 8.0,
            "close": 9.0,
            "volume": 3.0,
            "trade_count": 4,
            "vwap": 9.0,
            "spread_twa": None,
            "spread_seconds": None,
        },
    ]
    # the hour's trades in the volume include a minute of odd lots only, which has no minute bar
    volumes = {"volume": 6.0 + 40.0, "notional": 10.5 * 2 + 14 * 1 + 9 * 3 + 40 * 12.5, "trade_count": 7 + 3}
    bar = hour_bar("AAPL", START, [minutes[i] for i in order], volumes, "2025-11-30T15:00:00Z")
    BarDocument.model_validate(bar)
    assert (bar["open"], bar["close"], bar["high"], bar["low"]) == (10.0, 9.0, 15.0, 8.0)
    assert (bar["volume"], bar["trade_count"]) == (46.0, 10)
    assert math.isclose(bar["vwap"], volumes["notional"] / 46) and bar["notional"] == volumes["notional"]
    assert bar["spread_seconds"] == 80 and math.isclose(bar["spread_twa"], (0.02 * 60 + 0.06 * 20) / 80)


def test_the_sink_s_keys_name_minutes_and_the_hours_they_fall_in() -> None:
    keys = parse_keys(["BTC/USD|1764511260", "AAPL|1764514740", "BTC/USD|1764511260"])
    assert keys == {("BTC/USD", START + 60), ("AAPL", START + 3540)}
    assert touched_hours(keys) == {("BTC/USD", START), ("AAPL", START)}


@pytest.mark.parametrize(
    "shards",
    [
        {"total": 2, "successful": 1, "skipped": 0, "failed": 1, "failures": [{"reason": {"reason": "no shard"}}]},
        {"total": 2, "successful": 1, "skipped": 0, "failed": 0},
    ],
)
def test_a_read_that_missed_a_shard_is_refused_and_retried_then_fails(shards: dict) -> None:
    answers = [{"_shards": shards, "timed_out": False}] * 2 + [{"_shards": {"total": 2, "successful": 2}}]
    with pytest.raises(IncompleteRead, match="read 1 of 2 shards"):
        complete(answers[0], "a search")
    calls = iter(answers)
    assert reading(lambda: complete(next(calls), "a search"), "x", tries=3, wait_s=0)["_shards"]["successful"] == 2
    with pytest.raises(IncompleteRead, match="gave up after 2 tries, no bar written"):
        reading(lambda: complete(answers[0], "a search"), "the bars' read", tries=2, wait_s=0)
    assert complete({"_shards": {"total": 3, "successful": 2, "skipped": 1}}, "x")  # a skipped shard had nothing
    with pytest.raises(IncompleteRead, match="timed out: True"):
        complete({"_shards": {"total": 1, "successful": 1}, "timed_out": True}, "x")


@pytest.mark.parametrize("seed", range(20))
def test_runs_cover_every_key_once_bridge_only_short_gaps_and_bound_each_search(seed: int) -> None:
    import random

    from spark_jobs import bar_recompute

    rng = random.Random(seed)
    keys = {(rng.choice("ABC"), rng.randrange(0, 3000) * 60) for _ in range(rng.randrange(1, 2500))}
    chunks = list(run_chunks(keys, 60))
    seen = [key for part, _ in chunks for key in part]
    assert sorted(seen) == sorted(keys)  # each key in exactly one chunk
    for part, runs in chunks:
        assert len(runs) <= bar_recompute.RUNS_PER_SEARCH
        for symbol, start in part:  # every key of a chunk lies in one of its runs
            assert sum(s == symbol and first <= start <= last for s, first, last in runs) == 1
        for symbol, first, last in runs:  # a run starts and ends on a key, and bridges no gap above the limit
            assert (symbol, first) in keys and (symbol, last) in keys
            inside = sorted(start for s, start in keys if s == symbol and first <= start <= last)
            gaps = [b - a for a, b in itertools.pairwise(inside)]
            assert all(gap <= bar_recompute.MERGE_GAP_WINDOWS * 60 for gap in gaps)
        # within a search, two runs of a symbol are never closer than the limit: they would have been one
        for (s1, _, last), (s2, first, _) in itertools.pairwise(runs):
            assert s1 != s2 or first - last > bar_recompute.MERGE_GAP_WINDOWS * 60
        assert len(part) <= bar_recompute.KEYS_PER_SEARCH


def test_many_far_apart_minutes_are_split_over_searches_of_bounded_clauses() -> None:
    from spark_jobs import bar_recompute

    keys = {("A", i * 3600) for i in range(1000)}  # an hour apart: no two in one run
    chunks = list(run_chunks(keys, 60))
    assert [len(runs) for _, runs in chunks] == [400, 400, 200] and bar_recompute.RUNS_PER_SEARCH == 400


def test_reads_in_parallel_keep_the_parts_order_and_raise_a_part_s_error() -> None:
    import time

    from spark_jobs.bar_recompute import in_parallel

    def slow_first(part: list[int]) -> list[int]:
        time.sleep(0.05 if part[:1] == [0] else 0)  # the first part answers last
        return [value * 10 for value in part]

    parts = [[0, 1], [2], [3, 4, 5], []]
    assert in_parallel(slow_first, parts) == [0, 10, 20, 30, 40, 50]
    assert in_parallel(slow_first, [[7]]) == [70]

    def failing(part: list[int]) -> list[int]:
        if part == [2]:
            raise IncompleteRead("a shard was away")
        return part

    with pytest.raises(IncompleteRead, match="a shard was away"):
        in_parallel(failing, parts)
