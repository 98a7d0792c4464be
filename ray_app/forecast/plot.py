"""PNG per symbol of a forecast run: the training window's hourly bars, the forecast, its 80% and 95% intervals.

Drawn from what is stored (bars-1h and forecasts), so a plot shows exactly what Grafana and the API serve.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from elasticsearch import Elasticsearch

from ray_app.config import Settings
from ray_app.forecast import store
from ray_app.forecast.series import bars_frame
from ray_app.forecast.volatility import RANGE, range_pct
from ray_app.times import iso

_BAND_ALPHA = {80: 0.35, 95: 0.18}


def _with_breaks(frame: pd.DataFrame, index_column: str | None = None) -> pd.DataFrame:
    """Rows of NaN where more than an hour passes (nights, weekends), so lines and bands do not bridge them."""
    times = pd.DatetimeIndex(frame[index_column] if index_column else frame.index)
    gaps = times[1:][(times[1:] - times[:-1]) > pd.Timedelta(hours=1)] - pd.Timedelta(minutes=1)
    if len(gaps) == 0:
        return frame
    filler = pd.DataFrame(index=range(len(gaps)), columns=frame.columns, dtype="float64")
    if index_column:
        filler[index_column] = gaps
        return pd.concat([frame, filler]).sort_values(index_column, kind="stable")
    return pd.concat([frame, filler.set_index(gaps)]).sort_index(kind="stable")


def file_name(symbol: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", symbol) + ".png"


_EXTREME_OF = {"high": "highest_price", "low": "lowest_price", "volume": "highest_volume"}


def render_symbol(
    path: Path,
    symbol: str,
    history: pd.DataFrame,
    forecasts: pd.DataFrame,
    target_reports: dict[str, dict[str, Any]],
    as_of: pd.Timestamp,
    run_id: str,
    summary: dict[str, Any] | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    targets = list(forecasts["target"].drop_duplicates()) if not forecasts.empty else []
    figure, axes = plt.subplots(len(targets) or 1, 1, figsize=(13, 2.6 * max(len(targets), 1)), sharex=True)
    axes = axes if len(targets) > 1 else [axes]
    history = _with_breaks(history)
    for axis, target in zip(axes, targets, strict=False):
        rows = _with_breaks(forecasts[forecasts["target"] == target].sort_values("timestamp"), "timestamp")
        if target in history:
            axis.plot(history.index, history[target], color="#444444", linewidth=0.8, label="hourly bars")
        for level in sorted(_BAND_ALPHA, reverse=True):
            if f"lo_{level}" in rows:
                axis.fill_between(
                    rows["timestamp"],
                    rows[f"lo_{level}"],
                    rows[f"hi_{level}"],
                    color="#1f77b4",
                    alpha=_BAND_ALPHA[level],
                    linewidth=0,
                    label=f"{level}% interval",
                )
        axis.plot(rows["timestamp"], rows["value"], color="#1f77b4", linewidth=1.2, label="forecast")
        extreme = _EXTREME_OF.get(target)
        if summary and extreme and summary.get(extreme) is not None and not rows.empty:
            span = [rows["timestamp"].min(), rows["timestamp"].max()]
            lo, hi = summary.get(f"{extreme}_lo_80"), summary.get(f"{extreme}_hi_80")
            if lo is not None and hi is not None:
                axis.fill_between(span, [lo, lo], [hi, hi], color="#d62728", alpha=0.12, linewidth=0)
            axis.plot(span, [summary[extreme]] * 2, color="#d62728", linewidth=1.0, linestyle=":", label=extreme)
        axis.axvline(as_of, color="#999999", linestyle="--", linewidth=0.8)
        report = target_reports.get(target, {})
        mase, naive = report.get("mase"), report.get("naive_mase")
        scores = f"CV MASE {mase:.3f} vs naive {naive:.3f}" if mase is not None and naive is not None else ""
        axis.set_title(f"{target}: {report.get('chosen_model', '?')}   {scores}", fontsize=9, loc="left")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=7, ncol=4)
    locator = mdates.AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.suptitle(f"{symbol}: forecast from {iso(as_of)} (run {run_id})", fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_run(es: Elasticsearch, settings: Settings, run: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per forecast symbol of `run` (a run document) in `out_dir`."""
    as_of = pd.Timestamp(run["as_of"])
    start = as_of - pd.Timedelta(days=settings.forecast.lookback_days)
    targets = store.run_records(es, settings, run["run_id"], "target")
    paths = []
    for symbol_doc in store.run_records(es, settings, run["run_id"], "symbol"):
        if symbol_doc.get("status") != "ok":
            continue
        symbol = symbol_doc["symbol"]
        history = bars_frame(store.load_bars(es, settings, [symbol], start, as_of)[symbol])
        if not history.empty:
            history[RANGE] = range_pct(history["high"].to_numpy(), history["low"].to_numpy())
        reports = {doc["target"]: doc for doc in targets if doc["symbol"] == symbol}
        forecasts = store.run_forecasts(es, settings, run["run_id"], symbol)
        paths.append(
            render_symbol(
                out_dir / file_name(symbol), symbol, history, forecasts, reports, as_of, run["run_id"], symbol_doc
            )
        )
    return paths
