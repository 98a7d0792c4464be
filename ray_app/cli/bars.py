"""`ray-app bars`: our bars against the vendor's (parity), and the sale-condition table the bars follow."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from ray_app.cli.common import console, fail, settings_of

bars_app = typer.Typer(no_args_is_help=True, help="Bars: parity with Alpaca's own bars, the sale-condition table.")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


@bars_app.command("parity")
def bars_parity(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None, typer.Option("--symbol", "-s", help="A symbol (repeat); default: all.")
    ] = None,
    hours: Annotated[float, typer.Option(help="The last this many hours (unless --since).", min=0.01)] = 24,
    since: Annotated[str | None, typer.Option(help="From this UTC time, 2026-11-30T14:30:00Z.")] = None,
    until: Annotated[str | None, typer.Option(help="Until this UTC time (default: now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of the tables.")] = False,
) -> None:
    """For every minute both exist, our 1-minute bar (from the trades) against Alpaca's (b, updatedBars, backfill):
    the share of minutes equal per field and symbol."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from ray_app.bars.parity import FIELDS, parity, window
    from ray_app.es_indices import es_client

    settings = settings_of(ctx)
    wanted = symbols or settings.symbols
    try:
        start, end = window(hours, since, until, int(time.time()))
    except ValueError as exc:
        fail(f"--since/--until must be UTC times like 2026-11-30T14:30:00Z ({exc})", 2)
    try:
        results = parity(es_client(settings), settings, wanted, start, end)
    except (TransportError, ApiError) as exc:
        fail(f"Elasticsearch at {settings.elasticsearch.url} could not be read: {exc}")
    if as_json:
        print(json.dumps({"start": start, "end": end, "symbols": [r.as_dict() for r in results.values()]}))
        return
    table = Table(
        title=f"Our 1-minute bars against Alpaca's, {time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))}"
        f" - {time.strftime('%Y-%m-%d %H:%M', time.gmtime(end))} UTC: share of minutes equal",
        title_justify="left",
    )
    table.add_column("symbol")
    for column in ("compared", "adjusted", "only ours", "only vendor"):
        table.add_column(column, justify="right")
    for name in FIELDS:
        table.add_column(name, justify="right")
    for result in results.values():
        table.add_row(
            result.symbol,
            f"{result.compared:,}",
            f"{result.adjusted:,}",
            f"{result.only_ours:,}",
            f"{result.only_vendor:,}",
            *(_share(result.share(name)) for name in FIELDS),
        )
    console.print(table)
    console.print(
        "adjusted: minutes where a cancel or correction changed a trade (Alpaca's live bars keep it), counted"
        " but not compared; only ours / only vendor: minutes with one bar and not the other",
        highlight=False,
    )
    for result in results.values():
        for difference in result.differences:
            console.print(
                f"  {result.symbol} {difference['minute']} {difference['field']}: ours {difference['ours']}"
                f", Alpaca's {difference['vendor']}",
                highlight=False,
            )


@bars_app.command("conditions")
def bars_conditions() -> None:
    """The sale-condition table: which conditions set a minute bar's prices and volume, and a daily bar's."""
    from ray_app.conditions import table_rows

    table = Table(title="Sale conditions (ray_app/conditions.py: sources in its docstring)", title_justify="left")
    for column in (
        "code",
        "tapes",
        "name",
        "minute: prices",
        "minute: volume",
        "daily: open/close",
        "daily: high/low",
        "daily: volume",
    ):
        table.add_column(column)
    yes = {True: "yes", False: "-"}
    for row in table_rows():
        table.add_row(
            repr(row["code"]),
            row["tapes"],
            row["name"],
            yes[row["minute_price"]],
            yes[row["minute_volume"]],
            yes[row["daily_open_close"]],
            yes[row["daily_high_low"]],
            yes[row["daily_volume"]],
        )
    console.print(table)
