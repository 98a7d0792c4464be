"""The sale-condition table (ray_app/conditions.py) and the trading day (ray_app/times.py), without engines.

Every row of the table is held to the vendor's rules as the test doubles transcribe them from Alpaca's own words
(ray_app/testing/alpaca_rules.py: the fake Alpaca builds its bars with them), on every tape: what sets a minute
bar's prices, what counts in its volume. The daily view is held to the consolidated columns of the CTS and UTP
specifications, case by case. Then the Elasticsearch filters generated from the table match exactly the trades the
rules leave out, evaluated here on every combination of codes and tapes the simulator sends (the engine tests run
them on Elasticsearch)."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ray_app import conditions
from ray_app.conditions import TABLE, condition, excluded, excluded_query, updates
from ray_app.testing import alpaca_rules
from ray_app.times import trading_day

TAPES = ["A", "B", "C", None]
CODES = sorted({row.code for row in TABLE})


@pytest.mark.parametrize("tape", TAPES)
@pytest.mark.parametrize("code", CODES)
def test_every_row_sets_a_minute_bar_s_prices_and_volume_as_alpaca_says(code: str, tape: str | None) -> None:
    for codes in ([code], ["@", code]):
        assert updates("minute_open_close", codes, tape) == alpaca_rules.sets_price(codes, tape), (codes, tape)
        assert updates("minute_high_low", codes, tape) == alpaca_rules.sets_price(codes, tape), (codes, tape)
        assert updates("minute_volume", codes, tape) == alpaca_rules.counts_in_volume(codes), (codes, tape)
        assert updates("minute_trade_count", codes, tape) == alpaca_rules.counts_in_volume(codes), (codes, tape)


# the consolidated columns of the CTS output specification and the UTP specification (page 43): (code, tape) ->
# (updates last, updates high/low, updates volume)
DAILY = [
    ("@", "C", (True, True, True)),
    ("I", "C", (False, False, True)),
    ("M", "A", (False, False, False)),
    ("Q", "C", (False, False, False)),
    ("9", "A", (True, True, False)),
    ("T", "C", (False, False, True)),
    ("4", "C", (False, True, True)),
    ("Z", "A", (False, True, True)),
    ("P", "C", (False, True, True)),
    ("W", "C", (False, False, True)),
    ("B", "A", (False, False, True)),
    ("B", "C", (True, True, True)),
    ("O", "A", (True, True, True)),
    ("6", "C", (True, True, True)),
    ("F", "C", (True, True, True)),
    ("C", "A", (False, False, True)),
    ("N", "C", (False, False, True)),
    ("7", "C", (False, False, True)),
    ("G", "C", (False, True, True)),
    ("U", "C", (False, False, True)),
]


@pytest.mark.parametrize(("code", "tape", "want"), DAILY, ids=[f"{c}-{t}" for c, t, _ in DAILY])
def test_the_daily_view_follows_the_consolidated_tape(code: str, tape: str, want: tuple[bool, bool, bool]) -> None:
    got = tuple(updates(f, [code], tape) for f in ("daily_open_close", "daily_high_low", "daily_volume"))
    assert got == want


def test_the_rows_that_matter_most_read_as_alpaca_writes_them() -> None:
    odd_lot = condition("I", "C")
    assert odd_lot is not None and (odd_lot.minute_price, odd_lot.minute_volume) == (False, True)
    for informational in ("M", "Q", "9"):
        row = condition(informational, "A")
        assert row is not None and (row.minute_price, row.minute_volume) == (False, False)
    assert condition("B", "A").name == "Average Price Trade" and condition("B", "C").name == "Bunched Trade"  # type: ignore[union-attr]
    assert condition("B", None).name == "Average Price Trade"  # type: ignore[union-attr]  # no tape: the CTS meaning
    assert updates("minute_open_close", ["@", "T"], "C")  # Form T makes Alpaca's extended-hours minute bars
    assert updates("minute_open_close", [], None) and updates("minute_volume", [], None)  # crypto: no conditions
    assert updates("minute_open_close", ["@", "unknown-code"], "C")  # not in the table: a regular trade
    assert excluded("minute_volume") == (["M", "Q", "9"], {})


def _matches(query: dict, doc: dict) -> bool:
    """A tiny evaluator of the bool/terms/term/exists queries ``excluded_query`` builds."""
    if "bool" in query:
        body = query["bool"]
        if not all(_matches(q, doc) for q in body.get("filter", [])):
            return False
        if any(
            _matches(q, doc)
            for q in ([body["must_not"]] if isinstance(body.get("must_not"), dict) else body.get("must_not", []))
        ):
            return False
        should = body.get("should", [])
        return not should or sum(_matches(q, doc) for q in should) >= body.get("minimum_should_match", 1)
    if "terms" in query:
        ((field, values),) = query["terms"].items()
        value = doc.get(field)
        return any(v in values for v in (value if isinstance(value, list) else [value]) if v is not None)
    if "term" in query:
        ((field, value),) = query["term"].items()
        have = doc.get(field)
        return value in have if isinstance(have, list) else have == value
    if "exists" in query:
        return doc.get(query["exists"]["field"]) is not None
    raise AssertionError(query)


@pytest.mark.parametrize(
    "field", ["minute_open_close", "minute_volume", "daily_open_close", "daily_high_low", "daily_volume"]
)
def test_the_elasticsearch_filter_leaves_out_exactly_what_the_table_does(field: str) -> None:
    query = excluded_query(field)  # type: ignore[arg-type]
    for first, second in itertools.product(["@", *CODES], ["", *CODES]):
        codes = [first, second] if second else [first]
        for tape in TAPES:
            doc = {"conditions": codes, "tape": tape}
            assert _matches(query, doc) == (not updates(field, codes, tape)), (field, codes, tape)  # type: ignore[arg-type]


def test_the_table_is_one_row_per_code_and_tape() -> None:
    seen = [(row.code, tape) for row in TABLE for tape in row.tapes]
    assert len(seen) == len(set(seen))
    assert {row["code"] for row in conditions.table_rows()} == set(CODES)


EASTERN = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    "moment",
    [
        "2026-11-30T04:00:00-05:00",
        "2026-11-30T19:59:59.999-05:00",
        "2026-11-30T23:59:59-05:00",
        "2026-12-01T00:00:00-05:00",
        "2026-03-08T01:59:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-12-31T19:00:00-05:00",
    ],
)
def test_a_trading_day_is_the_new_york_date_of_the_time_itself(moment: str) -> None:
    """A late print keeps the day it happened on (its own time), whenever it arrives; across DST changes too."""
    at = datetime.fromisoformat(moment)
    ns = int(at.timestamp()) * 10**9 + at.microsecond * 1000
    assert trading_day(ns) == at.astimezone(EASTERN).date().isoformat()
