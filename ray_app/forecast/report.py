"""Terminal tables of a forecast run, rendered from its ``forecast-runs`` documents (what Grafana reads too)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.table import Table

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red"}


def _when(value: str | None) -> str:
    return pd.Timestamp(value).strftime("%a %m-%d %H:%M") if value else "-"


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:,.{digits}f}"


def run_line(run: dict[str, Any]) -> str:
    targets, beating = run.get("targets", 0), run.get("targets_beating_naive", 0)
    return (
        f"forecast run {run['run_id']} ({run['status']}): cut-off {run['as_of']}, "
        f"{run.get('forecasted', 0)} forecast, {run.get('skipped', 0)} skipped, {run.get('failed', 0)} failed "
        f"of {len(run.get('symbols', []))} symbols in {run.get('duration_s', 0):.1f} s; "
        f"{beating} of {targets} target series beat naive in cross-validation"
    )


def _extreme(doc: dict[str, Any], prefix: str) -> str:
    """``median [80% interval]`` and the most likely hour, or "-" before extremes were forecast."""
    median = doc.get(prefix)
    if median is None:
        return "-"
    lo, hi = doc.get(f"{prefix}_lo_80"), doc.get(f"{prefix}_hi_80")
    interval = f" [{_number(lo)} - {_number(hi)}]" if lo is not None and hi is not None else ""
    return f"{_number(median)}{interval}\nlikeliest {_when(doc.get(f'{prefix}_at'))}"


def summary_table(symbols: list[dict[str, Any]], horizon_days: int) -> Table:
    """Per symbol: the next days' highest volume, highest price and lowest price, each a forecast median with its
    80% interval and its most likely hour, and the hourly range (volatility) forecast."""
    table = Table(
        title=f"Next {horizon_days} days per symbol: each extreme's median [80% interval] and likeliest hour (UTC)",
        title_justify="left",
    )
    for column in ("symbol", "status", "highest volume", "highest price", "lowest price", "hourly range %"):
        table.add_column(column, justify="right" if column not in ("symbol", "status") else "left")
    table.add_column("note", overflow="fold")
    for doc in symbols:
        status = doc.get("status", "?")
        chosen = doc.get("chosen_models") or {}
        beating = doc.get("targets_beating_naive", 0)
        detail = f"{beating}/{len(chosen)} beat naive" if status == "ok" else doc.get("reason", "")
        range_pct = doc.get("range_pct_mean")
        table.add_row(
            doc["symbol"],
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
            _extreme(doc, "highest_volume"),
            _extreme(doc, "highest_price"),
            _extreme(doc, "lowest_price"),
            "-" if range_pct is None else f"{range_pct:.2f} ({doc.get('range_model', '?')})",
            detail,
        )
    return table


def cv_table(targets: list[dict[str, Any]]) -> Table:
    """Per symbol and target: the chosen model beside naive in rolling-origin cross-validation."""
    table = Table(title="Cross-validation: chosen model vs naive (MASE < naive's is better)", title_justify="left")
    for column in (
        "symbol",
        "target",
        "chosen",
        "MASE",
        "naive MASE",
        "sMAPE %",
        "naive sMAPE %",
        "cover 80%",
        "cover 95%",
        "best other model",
    ):
        table.add_column(
            column, justify="left" if column in {"symbol", "target", "chosen", "best other model"} else "right"
        )
    for doc in targets:
        others = {
            name: score["mase"]
            for name, score in (doc.get("cv") or {}).items()
            if name not in {doc.get("chosen_model"), "Naive"} and score.get("mase") is not None
        }
        best_other = min(others, key=lambda name: others[name]) if others else None
        mark = "[green]" if doc.get("beats_naive") else ""
        table.add_row(
            doc["symbol"],
            doc["target"],
            f"{mark}{doc.get('chosen_model')}",
            _number(doc.get("mase"), 3),
            _number(doc.get("naive_mase"), 3),
            _number(doc.get("smape"), 2),
            _number(doc.get("naive_smape"), 2),
            _number(doc.get("coverage_80"), 2),
            _number(doc.get("coverage_95"), 2),
            f"{best_other} {others[best_other]:.3f}" if best_other else "-",
        )
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def evaluation_table(rows: list[dict[str, Any]]) -> Table:
    """Past runs scored against what happened: per run, symbol and target, MASE beside naive's, interval
    coverage and (close) the direction's hit rate."""
    table = Table(
        title="Forecasts vs what happened (forecast-evaluations; MASE: lower is better, below naive's beats it)",
        title_justify="left",
    )
    for column in (
        "run",
        "symbol",
        "target",
        "model",
        "hours",
        "MASE",
        "naive MASE",
        "beats naive",
        "80% in",
        "95% in",
        "direction",
        "hit rate",
    ):
        table.add_column(
            column, justify="left" if column in {"run", "symbol", "target", "model", "direction"} else "right"
        )
    for row in rows:
        table.add_row(
            row["run_id"],
            row["symbol"],
            row["target"],
            row["model"],
            f"{row['elapsed_hours']}/{row['horizon']}",
            _number(row.get("mase"), 3),
            _number(row.get("naive_mase"), 3),
            "[green]yes[/]" if row.get("beats_naive") else "no",
            _pct(row.get("coverage_80")),
            _pct(row.get("coverage_95")),
            row.get("direction") or "",
            _pct(row.get("direction_hit_rate")),
        )
    return table
