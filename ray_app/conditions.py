"""Sale conditions: which trades a bar counts, field by field. The one table the stream's bars, the record rules'
documentation and the parity check read.

A US stock trade carries up to four condition codes (Alpaca ``c``), and each bar field filters by them: an odd
lot (``I``) sets no price and makes no bar by itself but counts in the volume; the official open and close prints
(``Q``, ``M``) and the corrected consolidated close (``9``) repeat a price the tape already carries and count
nowhere in a minute bar; an average-price, cash, next-day or derivatively priced trade counts in the volume but
sets no price. Codes mean different things on the two tapes' feeds: ``B`` is an average-price trade on the CTS
feed (tapes A and B) and a bunched trade on the UTDF feed (tape C).

Sources, cited per column:

- **minute bars** (``minute_*``): Alpaca, "Stock Minute Bars" (alpaca.markets/learn/stock-minute-bars) lists the
  conditions that keep a trade out of a minute bar's prices: B (CTS), W, 4, 7, 9, C, G, H, I, M, N, P, Q, R, U, V, Z.
  Alpaca's staff note on its forum ("Bar Calculation (CTS guidance) and Alpaca Article Discrepancy") that the CTS
  and UTP tables apply to daily bars and that informational prints (``9``, the official open and close) are left
  out of minute bars altogether. Form T (``T``) is the one code of the article's list that Alpaca's minute bars do
  count today: every pre-market and after-hours trade carries it, and Alpaca streams and serves extended-hours
  minute bars ("Trades from pre-market and aftermarket are also aggregated and sent out on the bars channel",
  docs.alpaca.markets, real-time stock data). Open, close, high and low filter alike; the volume, the trade count,
  VWAP and notional count every trade but the informational prints (M, Q, 9).
- **the daily view** (``daily_*``): the consolidated columns of the CTS output specification's sale-condition table
  and of the UTP binary output specification's (page 43), as summarised in Polygon's condition table that Alpaca's
  marketstore (models/bar.go) carries: the consolidated last (open and close), high/low and volume.

A code missing from the table counts everywhere (a regular trade), as marketstore treats one. Crypto trades carry
no conditions: every field counts them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Field = Literal[
    "minute_open_close",
    "minute_high_low",
    "minute_volume",
    "minute_trade_count",
    "daily_open_close",
    "daily_high_low",
    "daily_volume",
]
CTS_TAPES = ("A", "B")
UTDF_TAPES = ("C",)
ALL_TAPES = CTS_TAPES + UTDF_TAPES


@dataclass(frozen=True)
class Condition:
    """One code on the tapes it means this on: whether it updates each field of a minute bar and of a daily bar."""

    code: str
    name: str
    tapes: tuple[str, ...]
    minute_price: bool  # sets open, close, high and low of a minute bar (and makes the bar)
    minute_volume: bool  # counts in a minute bar's volume, trade count, VWAP and notional
    daily_open_close: bool
    daily_high_low: bool
    daily_volume: bool

    def updates(self, field: Field) -> bool:
        if field in ("minute_open_close", "minute_high_low"):
            return self.minute_price
        if field in ("minute_volume", "minute_trade_count"):
            return self.minute_volume
        return bool(getattr(self, field))


def _row(code: str, name: str, minute: str, daily: str, tapes: tuple[str, ...] = ALL_TAPES) -> Condition:
    """``minute``: two flags (price, volume); ``daily``: three (open/close, high/low, volume); ``y`` or ``n``."""
    m, d = [flag == "y" for flag in minute], [flag == "y" for flag in daily]
    return Condition(code, name, tapes, m[0], m[1], d[0], d[1], d[2])


#                 code name                                          minute  daily
TABLE: tuple[Condition, ...] = (
    _row("@", "Regular Sale", "yy", "yyy"),
    _row(" ", "Regular Sale (blank)", "yy", "yyy"),
    _row("A", "Acquisition", "yy", "yyy"),
    _row("B", "Average Price Trade", "ny", "nny", CTS_TAPES),
    _row("B", "Bunched Trade", "yy", "yyy", UTDF_TAPES),
    _row("C", "Cash Sale", "ny", "nny"),
    _row("D", "Distribution", "yy", "yyy"),
    _row("E", "Automatic Execution (CTS) / Placeholder (UTDF)", "yy", "yyy"),
    _row("F", "Intermarket Sweep", "yy", "yyy"),
    _row("G", "Bunched Sold Trade", "ny", "nyy"),
    _row("H", "Price Variation Trade", "ny", "nny"),
    _row("I", "Odd Lot Trade", "ny", "nny"),
    _row("K", "Rule 127 / Rule 155 Trade", "yy", "yyy"),
    _row("L", "Sold Last", "yy", "yyy"),
    _row("M", "Market Center Official Close", "nn", "nnn"),
    _row("N", "Next Day", "ny", "nny"),
    _row("O", "Opening Prints (Market Center Opening Trade)", "yy", "yyy"),
    _row("P", "Prior Reference Price", "ny", "nyy"),
    _row("Q", "Market Center Official Open", "nn", "nnn"),
    _row("R", "Seller", "ny", "nny"),
    _row("S", "Split Trade", "yy", "yyy"),
    _row("T", "Form T (Extended Hours Trade)", "yy", "nny"),
    _row("U", "Extended Trading Hours (Sold Out of Sequence)", "ny", "nny"),
    _row("V", "Contingent Trade (CTS) / Stock-Option Trade (UTDF)", "ny", "nny"),
    _row("W", "Average Price Trade", "ny", "nny"),
    _row("X", "Cross Trade", "yy", "yyy"),
    _row("Y", "Yellow Flag Regular Trade", "yy", "yyy"),
    _row("Z", "Sold (Out of Sequence)", "ny", "nyy"),
    _row("1", "Stopped Stock (Regular Trade)", "yy", "yyy"),
    _row("2", "Stopped Stock (Sold Last)", "yy", "yyy"),
    _row("3", "Stopped Stock (Sold Out of Sequence)", "yy", "nyy"),
    _row("4", "Derivatively Priced", "ny", "nyy"),
    _row("5", "Re-Opening Prints", "yy", "yyy"),
    _row("6", "Closing Prints", "yy", "yyy"),
    _row("7", "Qualified Contingent Trade", "ny", "nny"),
    _row("8", "Placeholder for 611 Exempt", "yy", "yyy"),
    _row("9", "Corrected Consolidated Close (per listing market)", "nn", "yyn"),
)


def condition(code: str, tape: str | None) -> Condition | None:
    """The row a code means on a tape (the CTS meaning when the tape is unknown); None for a code not in the table."""
    rows = [row for row in TABLE if row.code == code]
    return next((row for row in rows if tape in row.tapes), rows[0] if rows else None)


def updates(field: Field, conditions: Iterable[str], tape: str | None) -> bool:
    """Whether a trade with these conditions on this tape updates ``field``: every code of it must allow it."""
    rows = (condition(code, tape) for code in conditions)
    return all(row is None or row.updates(field) for row in rows)


def excluded(field: Field) -> tuple[list[str], dict[str, list[str]]]:
    """What keeps a trade out of ``field``: (codes that do on every tape, {code: the tapes it does on})."""
    everywhere: list[str] = []
    on_tapes: dict[str, list[str]] = {}
    for code in dict.fromkeys(row.code for row in TABLE):
        tapes = [tape for tape in ALL_TAPES if not condition(code, tape).updates(field)]  # type: ignore[union-attr]
        if len(tapes) == len(ALL_TAPES):
            everywhere.append(code)
        elif tapes:
            on_tapes[code] = tapes
    return everywhere, on_tapes


def excluded_query(field: Field) -> dict[str, Any]:
    """An Elasticsearch query matching the trades ``field`` leaves out (on the ``conditions`` and ``tape`` fields
    of the trades index): any code excluded on every tape, or a tape-bound code on its tapes (or with no tape, where
    the CTS meaning holds)."""
    everywhere, on_tapes = excluded(field)
    should: list[dict[str, Any]] = [{"terms": {"conditions": everywhere}}]
    for code, tapes in on_tapes.items():
        tape_clause: dict[str, Any] = {"terms": {"tape": tapes}}
        if condition(code, None) is not None and not condition(code, None).updates(field):  # type: ignore[union-attr]
            tape_clause = {"bool": {"should": [tape_clause, {"bool": {"must_not": {"exists": {"field": "tape"}}}}]}}
        should.append({"bool": {"filter": [{"term": {"conditions": code}}, tape_clause]}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def table_rows() -> list[dict[str, Any]]:
    """The table as plain rows (docs, `ray-app bars conditions`)."""
    return [
        {
            "code": row.code,
            "name": row.name,
            "tapes": "".join(row.tapes),
            "minute_price": row.minute_price,
            "minute_volume": row.minute_volume,
            "daily_open_close": row.daily_open_close,
            "daily_high_low": row.daily_high_low,
            "daily_volume": row.daily_volume,
        }
        for row in TABLE
    ]
