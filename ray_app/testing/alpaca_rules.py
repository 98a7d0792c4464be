"""Alpaca's published rules for minute bars and trade ids, as the test doubles apply them: the fake Alpaca builds its
``b`` and ``updatedBars`` with them, and the tests' expected bars and trade ids come from them. Transcribed from
Alpaca's own words, not from the platform's table (``ray_app.conditions``), so the tests hold the platform to the
vendor rather than to itself:

- "Stock Minute Bars" (alpaca.markets/learn/stock-minute-bars): a trade is bucketed by its own (participant) time,
  ``start <= t < end``; these conditions keep it out of the minute's prices: Average Price Trade (``B`` on the CTS
  feed, tapes A and B; ``W`` on UTDF), ``4 7 9 C G H I M N P Q R U V Z``; a minute with no such trade has no bar.
  Form T (``T``) is not among them any more: Alpaca's extended-hours minute bars are made of Form T trades.
- Alpaca's forum (staff): the official open and close (``Q``, ``M``) and the corrected consolidated close (``9``) are
  informational and count in no field of a minute bar; the volume counts every other trade.
- Alpaca's market-data FAQ: a trade id is unique per (symbol, trading day, exchange, id).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

NO_PRICE = frozenset({"W", "4", "7", "9", "C", "G", "H", "I", "M", "N", "P", "Q", "R", "U", "V", "Z"})
AVERAGE_PRICE_ON_CTS = "B"  # on tapes A and B (the CTS feed); on tape C the same letter is a bunched trade
INFORMATIONAL = frozenset({"M", "Q", "9"})
EASTERN = ZoneInfo("America/New_York")


def sets_price(conditions: Sequence[str], tape: str | None) -> bool:
    if any(code in NO_PRICE for code in conditions):
        return False
    return not (AVERAGE_PRICE_ON_CTS in conditions and tape != "C")


def counts_in_volume(conditions: Sequence[str]) -> bool:
    return not any(code in INFORMATIONAL for code in conditions)


def new_york_date(epoch_ns: int) -> str:
    return datetime.fromtimestamp(epoch_ns // 10**9, tz=EASTERN).date().isoformat()


def is_stock(symbol: str) -> bool:
    return "/" not in symbol
