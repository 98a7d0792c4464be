"""PNG charts of the main Grafana panels, from the same queries, for people without Grafana.

The Trading dashboard's Elasticsearch panels run through :mod:`ray_app.dashboards.es_query` (the searches Grafana
sends) and the Forecasting dashboard's close panel through its Infinity URL on the Serve app; matplotlib draws
what Grafana would: candles with volume, close and VWAP, volatility, market, trades per symbol, and next week's
close with 80%/95% bands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from elasticsearch import Elasticsearch

from ray_app.config import Settings
from ray_app.dashboards.build import GRAFANA_DIR, es_sources
from ray_app.dashboards.es_query import interpolate, search_for


def _dashboard(name: str) -> dict[str, Any]:
    return json.loads((GRAFANA_DIR / "dashboards" / f"{name}.json").read_text())


def _panel(dashboard: dict[str, Any], starts_with: str) -> dict[str, Any]:
    return next(panel for panel in dashboard["panels"] if panel["title"].startswith(starts_with))


def _run(es: Elasticsearch, settings: Settings, panel: dict[str, Any], symbol: str, start, end) -> tuple[Any, Any]:
    source = es_sources(settings)[panel["datasource"]["uid"]]
    search = search_for(panel["targets"][0], source["timeField"], start, end, {"symbol": symbol})
    return search, es.search(index=source["index"], body=search.body)


def _series(result: dict[str, Any], metric: str) -> pd.Series:
    buckets = next(iter(result["aggregations"].values()))["buckets"]
    return pd.Series(
        [bucket[metric]["value"] for bucket in buckets],
        index=pd.to_datetime([bucket["key"] for bucket in buckets], unit="ms", utc=True),
    ).dropna()


def render_trading(es: Elasticsearch, settings: Settings, symbol: str, end: pd.Timestamp, out: Path) -> Path:
    dashboard = _dashboard("trading")
    start = end - pd.Timedelta(hours=24)
    figure, axes = plt.subplots(3, 2, figsize=(15, 11), constrained_layout=True)
    figure.suptitle(f"Trading: {symbol}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC (the dashboard's queries)")

    _, raw = _run(es, settings, _panel(dashboard, "OHLC"), symbol, start, end)
    bars = pd.DataFrame([hit["_source"] for hit in raw["hits"]["hits"]])
    ax = axes[0][0]
    if not bars.empty:
        bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
        bars = bars.sort_values("timestamp").set_index("timestamp")
        candles = (
            bars.resample("15min")
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .dropna()
        )
        width = pd.Timedelta(minutes=10)
        for moment, row in candles.iterrows():
            color = "tab:green" if row["close"] >= row["open"] else "tab:red"
            ax.vlines(moment, row["low"], row["high"], color=color, linewidth=0.8)
            ax.bar(moment, row["close"] - row["open"], width, bottom=row["open"], color=color)
        twin = ax.twinx()
        twin.bar(candles.index, candles["volume"], width, color="tab:gray", alpha=0.25)
        twin.set_ylim(0, candles["volume"].max() * 4 or 1)
        twin.set_yticks([])
    ax.set_title("OHLC candles with volume (1-minute bars, 15-minute candles)")

    for ax, prefix, label in (
        (axes[0][1], "Close price", "USD"),
        (axes[1][0], "Volatility", "high - low, USD"),
        (axes[1][1], "Market", "close x volume, USD"),
    ):
        panel = _panel(dashboard, prefix)
        search, result = _run(es, settings, panel, symbol, start, end)
        names = {m["id"]: m.get("field", m["type"]) for m in panel["targets"][0]["metrics"]}
        for metric in search.reads:
            series = _series(result, metric)
            ax.plot(series.index, series.values, label=names[metric], linewidth=1)
        ax.set_title(panel["title"])
        ax.set_ylabel(label)
        ax.legend(loc="upper left")

    _, per_symbol = _run(es, settings, _panel(dashboard, "Trades per symbol"), symbol, start, end)
    buckets = per_symbol["aggregations"]["2"]["buckets"]
    axes[2][0].bar([b["key"] for b in buckets], [b["doc_count"] for b in buckets], color="tab:blue")
    axes[2][0].set_title("Trades per symbol")
    _, dead = _run(es, settings, _panel(dashboard, "Dead letters"), symbol, start - pd.Timedelta(days=60), end)
    reasons = dead["aggregations"]["2"]["buckets"]
    axes[2][1].barh([b["key"] for b in reasons] or ["none"], [b["doc_count"] for b in reasons] or [0], color="tab:red")
    axes[2][1].set_title("Dead letters by reason")
    for ax in axes.flat:
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out


def _close_band(settings: Settings, panel: dict[str, Any], symbol: str) -> tuple[str, httpx.Response]:
    url = settings.serve.url + interpolate(panel["targets"][0]["url"], {"symbol": symbol}, lucene=False)
    return url, httpx.get(url, timeout=60)


def _plot_close_band(response: httpx.Response, label: str, title: str, out: Path, realized: bool = False) -> Path:
    """The close forecast with its 80%/95% bands (and the realized close over it), as a PNG."""
    rows = pd.DataFrame(response.raise_for_status().json())
    rows["timestamp"] = pd.to_datetime(rows["timestamp"], utc=True)
    figure, ax = plt.subplots(figsize=(12, 4.5), constrained_layout=True)
    for level, alpha in ((95, 0.15), (80, 0.3)):
        ax.fill_between(
            rows["timestamp"],
            rows[f"close_lo_{level}"],
            rows[f"close_hi_{level}"],
            alpha=alpha,
            color="tab:blue",
            label=f"{level}% interval",
            step="mid",
        )
    ax.plot(rows["timestamp"], rows["close"], color="tab:blue", label=f"{label} ({rows['close_model'].iloc[0]})")
    if realized:
        ax.plot(
            rows["timestamp"], rows["actual_close"].astype(float), color="black", linewidth=2, label="realized close"
        )
        title = f"{title}, run {rows['run_id'].iloc[0]}"
    ax.set_title(title)
    ax.legend(loc="upper left")
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out


def render_forecast(settings: Settings, symbol: str, out: Path) -> Path:
    panel = _panel(_dashboard("forecasting"), "Next week: close")
    url, response = _close_band(settings, panel, symbol)
    return _plot_close_band(response, "close", f"{panel['title']}: {symbol} ({url})", out)


def render_vs_realized(settings: Settings, symbol: str, out: Path) -> Path | None:
    """The newest scored run's close band with the realized close over it; None before any run is scored."""
    panel = _panel(_dashboard("forecasting"), "Forecast vs what happened")
    _, response = _close_band(settings, panel, symbol)
    if response.status_code == 404:
        return None
    return _plot_close_band(response, "forecast close", f"{panel['title'][:60]}: {symbol}", out, realized=True)


def render_panels(es: Elasticsearch, settings: Settings, symbol: str, folder: Path) -> list[Path]:
    """The Trading panels (last 24 h) and the next-week close panel for `symbol`, as PNG files in `folder`."""
    slug = symbol.replace("/", "-")
    paths = [
        render_trading(es, settings, symbol, pd.Timestamp.now(tz="UTC"), folder / f"trading-{slug}.png"),
        render_forecast(settings, symbol, folder / f"forecast-close-{slug}.png"),
        render_vs_realized(settings, symbol, folder / f"forecast-vs-realized-{slug}.png"),
    ]
    return [path for path in paths if path is not None]
