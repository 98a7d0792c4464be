"""The Grafana dashboards and provisioning: generated = committed, valid against Grafana's dashboard schema,
every panel's datasource provisioned, and the searches the Elasticsearch panels send."""

from __future__ import annotations

import json
import os

import jsonschema
import pandas as pd
import pytest
import yaml

from ray_app.config import load_settings
from ray_app.dashboards.build import GRAFANA_DIR, generated_files
from ray_app.dashboards.es_query import es_panels, infinity_panels, interpolate, search_for

SCHEMA = json.loads((GRAFANA_DIR / "schema" / "dashboard.schema.json").read_text())
DASHBOARDS = {
    name: json.loads((GRAFANA_DIR / "dashboards" / f"{name}.json").read_text())
    for name in ("trading", "forecasting", "pipeline-health")
}


def test_committed_files_are_the_generated_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("RAY_APP_")]:
        monkeypatch.delenv(key)
    for path, text in generated_files(load_settings()).items():
        assert (GRAFANA_DIR / path).read_text() == text, f"regenerate {path}: ray-app dashboards build"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboards_validate_against_grafanas_dashboard_schema(name: str) -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(DASHBOARDS[name])]
    assert not errors, errors
    broken = dict(DASHBOARDS[name], refresh=30)  # the schema is strict: a wrong type fails
    assert list(validator.iter_errors(broken))


def test_every_panel_and_variable_uses_a_provisioned_datasource_and_times_are_relative() -> None:
    provisioned = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "ray-app.yaml").read_text())
    uids = {source["uid"]: source for source in provisioned["datasources"]}
    for dashboard in DASHBOARDS.values():
        assert dashboard["time"]["from"].startswith("now-") and dashboard["refresh"]
        if dashboard["uid"] != "ray-app-pipeline-health":  # the whole pipeline: no symbol to choose
            assert [v["name"] for v in dashboard["templating"]["list"]] == ["symbol"]
        for panel in dashboard["panels"]:
            if panel["type"] != "grafana-clock-panel":
                assert panel["datasource"]["uid"] in uids, panel["title"]
                assert panel["datasource"]["type"] == uids[panel["datasource"]["uid"]]["type"]
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "ray-app.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/ray-app"
    assert providers["providers"][1]["options"]["path"] == "/var/lib/grafana/dashboards/ray"  # Ray's generated ones
    prometheus = [source for source in provisioned["datasources"] if source["type"] == "prometheus"]
    assert len(prometheus) == 1 and prometheus[0]["isDefault"] and prometheus[0]["name"] == "Prometheus"


def test_the_trading_dashboard_has_every_panel_of_the_original_and_real_titles() -> None:
    titles = " | ".join(panel["title"] for panel in DASHBOARDS["trading"]["panels"])
    for wanted in (
        "Current time",
        "OHLC candles with volume",
        "recommendation",
        "Sentiment",
        "Volatility",
        "Close price",
        "Market",
        "Trades per symbol",
        "Dead letters",
        "VWAP",
    ):
        assert wanted in titles, wanted
    assert "Panel Title" not in titles
    forecasting = " | ".join(panel["title"] for panel in DASHBOARDS["forecasting"]["panels"])
    for wanted in (
        "Highest volume",
        "Highest price",
        "Lowest price next week (median, 80%)",
        "80% and 95%",
        "vs naive",
    ):
        assert wanted in forecasting, wanted
    for wanted in (
        "Forecast vs what happened",
        "Scored against what happened",
        "MASE of the forecast vs naive",
        "7-day range forecast vs what happened",
        "extremes' calibration",
        "volatility",
    ):
        assert wanted in forecasting, wanted
    for wanted in ("Bollinger bands (20, 2 sigma)", "RSI (14)", "MACD (12, 26, 9)"):
        assert wanted in titles, wanted
    assert len(infinity_panels(DASHBOARDS["forecasting"])) == 11 and len(es_panels(DASHBOARDS["trading"])) == 15
    assert len(es_panels(DASHBOARDS["forecasting"])) == 1


def test_no_panel_makes_the_language_model_generate() -> None:
    """A viewer (every refresh of every browser) must never trigger generation: only stored recommendations."""
    for name, dashboard in DASHBOARDS.items():
        for panel in infinity_panels(dashboard):
            for target in panel["targets"]:
                assert not target["url"].startswith("/recommendation"), (name, panel["title"], target["url"])
    titles = {panel["title"]: panel for panel in es_panels(DASHBOARDS["trading"])}
    recorded = [panel for title, panel in titles.items() if "recommendation" in title.lower() or "Sentiment" in title]
    assert len(recorded) == 2 and all(p["datasource"]["uid"] == "ray-app-es-recommendations" for p in recorded)


def test_the_search_a_panel_sends_filters_time_and_symbol_like_grafana() -> None:
    assert interpolate('symbol:"${symbol}"', {"symbol": "BTC/USD"}, lucene=True) == 'symbol:"BTC\\/USD"'
    assert interpolate("/forecast/${symbol:raw}", {"symbol": "BTC/USD"}, lucene=False) == "/forecast/BTC/USD"
    close = next(p for p in DASHBOARDS["trading"]["panels"] if p["title"].startswith("Close price"))
    start, end = pd.Timestamp("2026-11-27T00:00Z"), pd.Timestamp("2026-11-28T00:00Z")
    search = search_for(close["targets"][0], "timestamp", start, end, {"symbol": "AAPL"})
    histogram = search.body["aggs"]["2"]["date_histogram"]
    assert histogram["fixed_interval"] == "5m" and set(search.body["aggs"]["2"]["aggs"]) == {"1", "3"}
    assert search.body["query"]["bool"]["filter"][0]["range"]["timestamp"]["gte"] == int(start.timestamp() * 1000)


def test_the_pipeline_health_dashboard_reads_every_platform_metric_that_is_a_reading() -> None:
    from ray_app.dashboards.build import prometheus_panels
    from ray_app.metrics import METRICS

    panels = prometheus_panels(DASHBOARDS["pipeline-health"])
    exprs = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    assert len(panels) == len(DASHBOARDS["pipeline-health"]["panels"]) >= 12
    totals_only = {"stream_refused_documents", "forecast_runs", "indicator_documents"}  # totals, not readings
    for name, metric in METRICS.items():
        if name not in totals_only:
            assert metric.promql_name() in exprs or metric.promql_name("_bucket") in exprs, name
    assert "ray_serve_http_request_latency_ms_bucket" in exprs  # Serve's latency is Ray's own metric
