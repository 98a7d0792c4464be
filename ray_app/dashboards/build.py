"""The Grafana dashboards and provisioning, built as code with grafana-foundation-sdk.

    ray-app dashboards build                    # writes grafana/dashboards/*.json and grafana/provisioning/

Two dashboards: **Trading** (every panel of the original, fixed: clock, OHLC candles with volume, the latest
recorded recommendation and sentiment (read from the recommendations index: viewers never trigger the language
model), volatility h - l, close in USD with VWAP, market c * v, trades per symbol with a real title; plus dead
letters) and **Forecasting** (next-week close and volume with 80%/95% bands, highest volume, highest price, lowest
price (the minimum), the chosen model vs naive per target; then forecasts against what happened: the newest scored
run's band with the realized close over it, every scored run's MASE beside naive's with realized coverage and
direction hits, and the close's MASE vs naive's by run). Elasticsearch datasources have
fixed uids, one per index; the Infinity datasource points at the Serve app. A test keeps the committed files equal
to this module's output and runs every panel's query against the real services.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import barchart, candlestick, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import candlestick as candlestick_models
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models.dashboard import DataSourceRef, DataTransformerConfig, DynamicConfigValue

from ray_app.alerts import grafana_alert_rules
from ray_app.config import PROJECT_ROOT, Settings
from ray_app.dashboards.infinity import INFINITY_TYPE, Column, InfinityQuery
from ray_app.metrics import METRICS
from serve_deployments.auth import API_KEY_HEADER, KEY_ENV

GRAFANA_DIR = PROJECT_ROOT / "grafana"
ES_TYPE = "elasticsearch"
SERVE_UID = "ray-app-serve"
ES_INDICES = (
    "trades",
    "bars_1m",
    "bars_1h",
    "dead_letters",
    "recommendations",
    "recommendation_outcomes",
    "forecast_evaluations",
    "indicators_1m",
    "quotes",
)
PROMETHEUS_TYPE = "prometheus"
PROMETHEUS_UID = "ray-app-prometheus"
PROMETHEUS_NAME = "Prometheus"  # the name Ray's generated dashboards look for (RAY_PROMETHEUS_NAME's default)
SYMBOL = 'symbol:"${symbol}"'
DEAD_LETTER_TIME = "received_at"  # when the record was received; the other indices' time field is `timestamp`
EVALUATION_TIME = "as_of"  # a scored run's cut-off


def es_uid(key: str) -> str:
    return f"ray-app-es-{key.replace('_', '-')}"


def es_ref(key: str) -> DataSourceRef:
    return DataSourceRef(type_val=ES_TYPE, uid=es_uid(key))


SERVE = DataSourceRef(type_val=INFINITY_TYPE, uid=SERVE_UID)
PROMETHEUS = DataSourceRef(type_val=PROMETHEUS_TYPE, uid=PROMETHEUS_UID)


def _histogram(query: str, *metrics: es.Average | es.Max | es.Min | es.Sum | es.Count) -> es.Dataquery:
    return (
        es.Dataquery()
        .ref_id("A")
        .query(query)
        .time_field("timestamp")
        .metrics(list(metrics))
        .bucket_aggs(
            [
                es.DateHistogram()
                .id("2")
                .field("timestamp")
                .settings(es.ElasticsearchDateHistogramSettings().interval("auto"))
            ]
        )
    )


def _raw(query: str, size: int = 500) -> es.Dataquery:
    return (
        es.Dataquery()
        .ref_id("A")
        .query(query)
        .time_field("timestamp")
        .metrics([es.RawData().id("1").settings(es.ElasticsearchRawDataSettings().size(str(size)))])
        .bucket_aggs([])
    )


def _count_by(field: str, size: int, time_field: str) -> es.Dataquery:
    """Documents per value of `field` (a terms aggregation with a count)."""
    return (
        es.Dataquery()
        .ref_id("A")
        .query("*")
        .time_field(time_field)
        .metrics([es.Count().id("1")])
        .bucket_aggs([es.Terms().id("2").field(field).settings(es.ElasticsearchTermsSettings().size(str(size)))])
    )


def symbol_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("symbol")
        .label("Symbol")
        .datasource(es_ref("bars_1h"))
        .query(json.dumps({"find": "terms", "field": "symbol"}))
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)  # new symbols appear
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
    )


def _running_sum(field: str, alias: str) -> DataTransformerConfig:
    """A field added by Grafana: the running sum of ``field`` (its cumulative functions)."""
    return DataTransformerConfig(
        id_val="calculateField",
        options={
            "mode": "cumulativeFunctions",
            "cumulative": {"field": field, "reducer": "sum"},
            "alias": alias,
            "replaceFields": False,
        },
    )


def trading() -> db.Dashboard:
    clock = (
        db.Panel()
        .type("grafana-clock-panel")
        .title("Current time")
        .span(4)
        .height(4)
        .options({"mode": "time", "clockType": "24 hour", "timezone": "utc", "timeSettings": {"fontSize": "36px"}})
    )
    candles = (
        candlestick.Panel()
        .title("OHLC candles with volume (1-minute bars)")
        .datasource(es_ref("bars_1m"))
        .with_target(_raw(SYMBOL, 1000))
        .mode(candlestick_models.VizDisplayMode.CANDLES_VOLUME)
        .candle_style(candlestick_models.CandleStyle.CANDLES)
        .fields(candlestick.CandlestickFieldMap().open("open").high("high").low("low").close("close").volume("volume"))
        .unit("currencyUSD")
        .span(24)
        .height(10)
    )
    # stored recommendations (POST /recommendations, `ray-app recommend --every N`): a viewer never triggers the
    # language model, and every viewer sees the same answer
    recommendation = (
        table.Panel()
        .title("Latest recommendation (rules + language model), as recorded")
        .datasource(es_ref("recommendations"))
        .with_target(_raw(SYMBOL, 1))
        .span(14)
        .height(4)
    )
    sentiment = (
        stat.Panel()
        .title("Sentiment (24 h change), as recorded")
        .datasource(es_ref("recommendations"))
        .with_target(_raw(SYMBOL, 1))
        .reduce_options(
            common_builders.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("/^sentiment$/")
        )
        .text_mode(common.BigValueTextMode.VALUE)
        .span(6)
        .height(4)
    )
    # each stored signal scored at 1 h, 24 h and 7 days (serve_deployments/track_record.py), over the last 30 days
    track_record = (
        table.Panel()
        .title("Signals' track record (30 days): hit rate, mean return, and following the signal, per horizon")
        .datasource(es_ref("recommendation_outcomes"))
        .with_target(
            es.Dataquery()
            .ref_id("A")
            .query(SYMBOL)
            .time_field("timestamp")
            .metrics(
                [
                    es.Average().id("1").field("hit"),
                    es.Count().id("3"),
                    es.Average().id("4").field("return_pct"),
                    es.Average().id("5").field("follow_return_pct"),
                ]
            )
            .bucket_aggs(
                [
                    es.Terms().id("2").field("horizon").settings(es.ElasticsearchTermsSettings().size("3")),
                    es.Terms().id("6").field("signal").settings(es.ElasticsearchTermsSettings().size("3")),
                ]
            )
        )
        .time_from("30d")
        .span(12)
        .height(8)
    )
    cumulative = (
        timeseries.Panel()
        .title("Following the 1 h signals vs holding (30 days): cumulative return, % (summed hourly)")
        .datasource(es_ref("recommendation_outcomes"))
        .with_target(
            es.Dataquery()
            .ref_id("A")
            .query(f'{SYMBOL} AND horizon:"1h"')
            .time_field("timestamp")
            .metrics([es.Average().id("1").field("follow_return_pct"), es.Average().id("3").field("return_pct")])
            .bucket_aggs(
                [
                    es.DateHistogram()
                    .id("2")
                    .field("timestamp")
                    .settings(es.ElasticsearchDateHistogramSettings().interval("1h"))
                ]
            )
        )
        .with_transformation(_running_sum("Average follow_return_pct", "following the signals"))
        .with_transformation(_running_sum("Average return_pct", "holding"))
        .with_transformation(
            DataTransformerConfig(
                id_val="filterFieldsByName",
                options={"include": {"names": ["Time", "following the signals", "holding"]}},
            )
        )
        .unit("percent")
        .time_from("30d")
        .span(12)
        .height(8)
    )
    close = (
        timeseries.Panel()
        .title("Close price and VWAP (USD)")
        .datasource(es_ref("bars_1m"))
        .with_target(_histogram(SYMBOL, es.Average().id("1").field("close"), es.Average().id("3").field("vwap")))
        .unit("currencyUSD")
        .span(12)
        .height(8)
    )
    volatility = (
        timeseries.Panel()
        .title("Volatility: high - low per bar (USD)")
        .datasource(es_ref("bars_1m"))
        .with_target(_histogram(SYMBOL, es.Average().id("1").field("range")))
        .unit("currencyUSD")
        .span(12)
        .height(8)
    )
    market = (
        timeseries.Panel()
        .title("Market: USD traded (price x size of the trades in the volume)")
        .datasource(es_ref("bars_1m"))
        .with_target(_histogram(SYMBOL, es.Sum().id("1").field("notional")))
        .unit("currencyUSD")
        .draw_style(common.GraphDrawStyle.BARS)
        .span(12)
        .height(8)
    )
    band_fields = [
        "timestamp",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "bb_upper",
        "bb_middle",
        "bb_lower",
        "ema_fast",
        "ema_slow",
    ]
    bands = (
        candlestick.Panel()
        .title("Bollinger bands (20, 2 sigma) and EMA 12 / 26 over the 1-minute candles")
        .datasource(es_ref("indicators_1m"))
        .with_target(_raw(SYMBOL, 1000))
        .mode(candlestick_models.VizDisplayMode.CANDLES)
        .candle_style(candlestick_models.CandleStyle.CANDLES)
        .fields(candlestick.CandlestickFieldMap().open("open").high("high").low("low").close("close").volume("volume"))
        .include_all_fields(True)
        .with_transformation(
            DataTransformerConfig(id_val="filterFieldsByName", options={"include": {"names": band_fields}})
        )
        .unit("currencyUSD")
        .span(24)
        .height(10)
    )
    rsi = (
        timeseries.Panel()
        .title("RSI (14), Wilder's: above 70 overbought, below 30 oversold")
        .datasource(es_ref("indicators_1m"))
        .with_target(_histogram(SYMBOL, es.Average().id("1").field("rsi")))
        .min(0)
        .max(100)
        .span(12)
        .height(7)
    )
    macd = (
        timeseries.Panel()
        .title("MACD (12, 26, 9): MACD, signal, histogram")
        .datasource(es_ref("indicators_1m"))
        .with_target(
            _histogram(
                SYMBOL,
                es.Average().id("1").field("macd"),
                es.Average().id("3").field("macd_signal"),
                es.Average().id("4").field("macd_histogram"),
            )
        )
        .override_by_name("Average macd_histogram", [DynamicConfigValue(id_val="custom.drawStyle", value="bars")])
        .span(12)
        .height(7)
    )
    # the top of the book: each second's last quote (the quotes index), and the bars' time-weighted spread
    bid_ask = (
        timeseries.Panel()
        .title("Bid and ask (top of the book, USD)")
        .datasource(es_ref("quotes"))
        .with_target(
            _histogram(
                SYMBOL,
                es.Average().id("1").field("bid_price"),
                es.Average().id("3").field("ask_price"),
                es.Average().id("4").field("mid"),
            )
        )
        .unit("currencyUSD")
        .span(12)
        .height(8)
    )
    spread = (
        timeseries.Panel()
        .title("Spread (ask - bid), time-weighted over each 1-minute bar (USD)")
        .datasource(es_ref("bars_1m"))
        .with_target(_histogram(SYMBOL, es.Average().id("1").field("spread_twa")))
        .unit("currencyUSD")
        .span(12)
        .height(8)
    )
    per_symbol = (
        barchart.Panel()
        .title("Trades per symbol")
        .datasource(es_ref("trades"))
        .with_target(_count_by("symbol", 20, "timestamp"))
        .span(6)
        .height(8)
    )
    dead = (
        stat.Panel()
        .title("Dead letters (malformed records, by reason)")
        .datasource(es_ref("dead_letters"))
        .with_target(_count_by("reason", 10, DEAD_LETTER_TIME))
        .span(6)
        .height(8)
    )
    return (
        db.Dashboard("Trading")
        .uid("ray-app-trading")
        .tags(["ray-app", "trading"])
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("30s")
        .with_variable(symbol_variable())
        .with_panel(clock)
        .with_panel(recommendation)
        .with_panel(sentiment)
        .with_panel(track_record)
        .with_panel(cumulative)
        .with_panel(candles)
        .with_panel(bands)
        .with_panel(rsi)
        .with_panel(macd)
        .with_panel(close)
        .with_panel(volatility)
        .with_panel(market)
        .with_panel(bid_ask)
        .with_panel(spread)
        .with_panel(per_symbol)
        .with_panel(dead)
    )


def _bands(target: str) -> list[Column]:
    return [Column("timestamp", "timestamp"), Column(target)] + [
        Column(f"{target}_{side}_{level}") for level in (80, 95) for side in ("lo", "hi")
    ]


def _band_panel(title: str, unit: str, query: InfinityQuery, target: str) -> timeseries.Panel:
    """A timeseries of `target` with its 80% and 95% bounds drawn as filled bands."""
    panel = timeseries.Panel().title(title).datasource(SERVE).with_target(query).unit(unit).span(24).height(9)
    for level, opacity in ((80, 25), (95, 12)):
        panel = panel.override_by_name(
            f"{target}_lo_{level}",
            [
                DynamicConfigValue(id_val="custom.fillBelowTo", value=f"{target}_hi_{level}"),
                DynamicConfigValue(id_val="custom.fillOpacity", value=opacity),
                DynamicConfigValue(id_val="custom.lineWidth", value=0),
            ],
        ).override_by_name(f"{target}_hi_{level}", [DynamicConfigValue(id_val="custom.lineWidth", value=0)])
    return panel


def _forecast_panel(target: str, title: str, unit: str) -> timeseries.Panel:
    query = InfinityQuery("A", "/forecast/${symbol:raw}", SERVE).columns(*_bands(target)).timeseries()
    return _band_panel(title, unit, query, target)


def _summary_stat(field: str, title: str, unit: str) -> stat.Panel:
    """A headline extreme: its forecast median beside its 80% interval's ends, and the most likely hour."""
    return (
        stat.Panel()
        .title(title)
        .description(
            "Forecast as an extreme (ray_app/forecast/extremes.py): the median (the realized value lands above it "
            "about half the time) and the 80% interval; calibrated on real data in bench/forecast.py"
        )
        .datasource(SERVE)
        .with_target(
            InfinityQuery("A", "/forecast/${symbol:raw}/summary", SERVE).columns(
                Column(f"{field}_lo_80", "number", "10%"),
                Column(field, "number", "median"),
                Column(f"{field}_hi_80", "number", "90%"),
                Column(f"{field}_at", "timestamp", "likeliest hour"),
            )
        )
        .unit(unit)
        .span(8)
        .height(5)
    )


def _extremes_band_panel() -> timeseries.Panel:
    """Run by run: the forecast 7-day range (the highest price's and the lowest price's 80% bands and medians)
    against the realized highest and lowest price."""
    columns = [Column("as_of", "timestamp")]
    for extreme in ("highest_price", "lowest_price"):
        columns += [Column(f"{extreme}_{key}") for key in ("median", "lo_80", "hi_80", "realized")]
    panel = (
        timeseries.Panel()
        .title("7-day range forecast vs what happened, by run cut-off: the extremes' 80% bands and the realized ones")
        .datasource(SERVE)
        .with_target(InfinityQuery("A", "/forecast/${symbol:raw}/extremes", SERVE).columns(*columns).timeseries())
        .unit("currencyUSD")
        .span(16)
        .height(8)
    )
    for extreme in ("highest_price", "lowest_price"):
        panel = (
            panel.override_by_name(
                f"{extreme}_lo_80",
                [
                    DynamicConfigValue(id_val="custom.fillBelowTo", value=f"{extreme}_hi_80"),
                    DynamicConfigValue(id_val="custom.fillOpacity", value=20),
                    DynamicConfigValue(id_val="custom.lineWidth", value=0),
                ],
            )
            .override_by_name(f"{extreme}_hi_80", [DynamicConfigValue(id_val="custom.lineWidth", value=0)])
            .override_by_name(
                f"{extreme}_realized",
                [
                    DynamicConfigValue(id_val="custom.lineWidth", value=3),
                    DynamicConfigValue(id_val="custom.drawStyle", value="points"),
                    DynamicConfigValue(id_val="custom.pointSize", value=8),
                ],
            )
        )
    return panel


def _extremes_calibration_panel() -> table.Panel:
    return (
        table.Panel()
        .title("The extremes' calibration over scored runs (about 50% above the median, 80% and 95% inside)")
        .datasource(SERVE)
        .with_target(
            InfinityQuery("A", "/forecast/${symbol:raw}/extremes/calibration", SERVE).columns(
                Column("extreme", "string"),
                Column("runs"),
                Column("above_median_share"),
                Column("coverage_80"),
                Column("coverage_95"),
                Column("pinball"),
                Column("naive_pinball"),
            )
        )
        .span(8)
        .height(8)
    )


def forecasting() -> db.Dashboard:
    backtest = (
        table.Panel()
        .title("Chosen model vs naive in cross-validation (MASE; lower is better)")
        .datasource(SERVE)
        .with_target(
            InfinityQuery("A", "/forecast/${symbol:raw}/backtest", SERVE).columns(
                Column("target", "string"),
                Column("model", "string"),
                Column("mase"),
                Column("naive_mase"),
                Column("mase_vs_naive_pct"),
                Column("beats_naive", "boolean"),
                Column("coverage_80"),
                Column("coverage_95"),
            )
        )
        .span(24)
        .height(7)
    )
    versus = _band_panel(
        "Forecast vs what happened: the newest scored run's close band and the realized close",
        "currencyUSD",
        InfinityQuery("A", "/forecast/${symbol:raw}/vs-realized", SERVE)
        .columns(*_bands("close"), Column("actual_close"))
        .timeseries(),
        "close",
    ).override_by_name("actual_close", [DynamicConfigValue(id_val="custom.lineWidth", value=3)])
    scored = (
        table.Panel()
        .title("Scored against what happened: MASE beside naive's, realized interval coverage, direction hits")
        .datasource(SERVE)
        .with_target(
            InfinityQuery("A", "/forecast/${symbol:raw}/accuracy", SERVE).columns(
                Column("as_of", "timestamp"),
                Column("target", "string"),
                Column("model", "string"),
                Column("elapsed_hours"),
                Column("mase"),
                Column("naive_mase"),
                Column("beats_naive", "boolean"),
                Column("coverage_80"),
                Column("coverage_95"),
                Column("direction", "string"),
                Column("direction_hit_rate"),
            )
        )
        .span(24)
        .height(8)
    )
    over_time = (
        timeseries.Panel()
        .title("Close: MASE of the forecast vs naive's, by run cut-off (what happened since)")
        .datasource(es_ref("forecast_evaluations"))
        .with_target(
            es.Dataquery()
            .ref_id("A")
            .query(f"{SYMBOL} AND target:close")
            .time_field(EVALUATION_TIME)
            .metrics([es.Average().id("1").field("mase"), es.Average().id("3").field("naive_mase")])
            .bucket_aggs(
                [
                    es.DateHistogram()
                    .id("2")
                    .field(EVALUATION_TIME)
                    .settings(es.ElasticsearchDateHistogramSettings().interval("auto"))
                ]
            )
        )
        .span(24)
        .height(7)
    )
    return (
        db.Dashboard("Forecasting")
        .uid("ray-app-forecasting")
        .tags(["ray-app", "forecasting"])
        .timezone("utc")
        .time("now-4d", "now+7d")
        .refresh("5m")
        .with_variable(symbol_variable())
        .with_panel(_summary_stat("highest_volume", "Highest volume next week (hourly; median, 80%)", "short"))
        .with_panel(_summary_stat("highest_price", "Highest price next week (median, 80%)", "currencyUSD"))
        .with_panel(_summary_stat("lowest_price", "Lowest price next week (median, 80%)", "currencyUSD"))
        .with_panel(_forecast_panel("close", "Next week: close with 80% and 95% intervals", "currencyUSD"))
        .with_panel(_forecast_panel("volume", "Next week: volume per hour with 80% and 95% intervals", "short"))
        .with_panel(
            timeseries.Panel()
            .title("Next week: volatility, the forecast hourly range (100 x ln(high/low), % of the price)")
            .datasource(SERVE)
            .with_target(
                InfinityQuery("A", "/forecast/${symbol:raw}", SERVE)
                .columns(Column("timestamp", "timestamp"), Column("range"))
                .timeseries()
            )
            .unit("percent")
            .span(24)
            .height(7)
        )
        .with_panel(backtest)
        .with_panel(versus)
        .with_panel(_extremes_band_panel())
        .with_panel(_extremes_calibration_panel())
        .with_panel(scored)
        .with_panel(over_time)
    )


def promql(metric: str, series: str = "") -> str:
    """A platform metric's name as Prometheus holds it (ray_app.metrics)."""
    return METRICS[metric].promql_name(series)


def _prom_panel(title: str, unit: str, *queries: tuple[str, str]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(PROMETHEUS).unit(unit).span(12).height(7)
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(prom.Dataquery().ref_id(ref).expr(expr).legend_format(legend).range())
    return panel


def _latency_quantiles(bucket: str, by: str) -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by (le, {by}) (rate({bucket}[5m])))", f"p{int(q * 100)} {{{{{by}}}}}")
        for q in (0.5, 0.99)
    ]


def pipeline_health() -> db.Dashboard:
    """The running pipeline from Prometheus: the platform's metrics (ray_app.metrics) and Ray Serve's own."""
    panels = [
        _prom_panel(
            "Ingest: messages delivered to Kafka per second, by topic",
            "short",
            (f"sum by (topic) (rate({promql('ingest_messages')}[1m]))", "{{topic}}"),
        ),
        _prom_panel(
            "Ingest: failures and dead letters per minute, by reason",
            "short",
            (f"sum by (reason) (rate({promql('ingest_failures')}[5m])) * 60", "{{reason}}"),
        ),
        _prom_panel(
            "Stream: last micro-batch's duration, by query",
            "s",
            (f"max by (query) ({promql('stream_batch_duration_seconds')})", "{{query}}"),
        ),
        _prom_panel(
            "Stream: rows in the last micro-batch, and rows per second",
            "short",
            (f"max by (query) ({promql('stream_batch_rows')})", "batch {{query}}"),
            (f"sum by (query) (rate({promql('stream_rows')}[1m]))", "per s {{query}}"),
        ),
        _prom_panel(
            "Trade -> indexed and searchable: p50 and p99 over 5 minutes",
            "s",
            *_latency_quantiles(promql("stream_indexed_latency_seconds", "_bucket"), "query"),
        ),
        _prom_panel(
            "Lag behind Kafka: messages the stream has not committed, by topic",
            "short",
            (f"max by (query, topic) ({promql('kafka_lag_messages')})", "{{query}} {{topic}}"),
        ),
        _prom_panel(
            "Newest trade searchable in Elasticsearch: age by symbol",
            "s",
            (f"max by (symbol) ({promql('newest_trade_age_seconds')})", "{{symbol}}"),
        ),
        _prom_panel(
            "Live parts running (1) or not (0), by part",
            "short",
            (f"max by (part) ({promql('live_part_up')})", "{{part}}"),
        ),
        _prom_panel(
            "Markets in session (1) by symbol: when a stale trade is an alert",
            "short",
            (f"max by (symbol) ({promql('market_open')})", "{{symbol}}"),
        ),
        _prom_panel(
            "Stream: query restarts in the last hour",
            "short",
            (f"sum(increase({promql('stream_query_restarts')}[1h]))", "restarts"),
        ),
        _prom_panel(
            "Forecast: seconds since the last run finished, by status",
            "s",
            (f"time() - max by (status) ({promql('forecast_last_run_timestamp_seconds')})", "{{status}}"),
        ),
        _prom_panel(
            "Sources the monitor reads: up (1) and seconds since the last good reading",
            "short",
            (f"max by (source) ({promql('source_up')})", "{{source}} up"),
            (f"time() - max by (source) ({promql('source_last_success_timestamp_seconds')})", "{{source}} age (s)"),
        ),
        _prom_panel(
            "Dead letters in the last hour, by reason",
            "short",
            (f"max by (reason) ({promql('dead_letters_recent')})", "{{reason}}"),
        ),
        _prom_panel(
            "Forecast: the last run's duration",
            "s",
            (f"max by (status) ({promql('forecast_run_duration_seconds')})", "run {{status}}"),
        ),
        _prom_panel(
            "Forecast: each symbol's last duration (read, fit, write)",
            "s",
            (f"max by (symbol) ({promql('forecast_symbol_duration_seconds')})", "{{symbol}}"),
        ),
        _prom_panel(
            "Serve: request latency p50 and p99 by route (Ray's own metric)",
            "ms",
            *_latency_quantiles("ray_serve_http_request_latency_ms_bucket", "route"),
        ),
        _prom_panel(
            "Indicators: the last cycle's duration over every symbol",
            "s",
            (f"max({promql('indicator_cycle_duration_seconds')})", "cycle"),
        ),
        _prom_panel(
            "Market alerts: the last price and RSI each symbol's alerts read",
            "short",
            (f'max by (symbol, reading) ({promql("market_value")}{{reading=~"price|rsi"}})', "{{symbol}} {{reading}}"),
        ),
        _prom_panel(
            "Vendor parity: share of minutes whose bar equals Alpaca's, by field (worst symbol)",
            "percentunit",
            (f"min by (field) ({promql('bar_parity_ratio')})", "{{field}}"),
        ),
        _prom_panel(
            "Vendor parity: minutes compared, adjusted by a cancel or correction, on one side only",
            "short",
            (f"sum by (kind) ({promql('bar_parity_minutes')})", "{{kind}}"),
        ),
    ]
    board = (
        db.Dashboard("Pipeline health")
        .uid("ray-app-pipeline-health")
        .tags(["ray-app", "pipeline"])
        .timezone("utc")
        .time("now-1h", "now")
        .refresh("10s")
    )
    for panel in panels:
        board = board.with_panel(panel)
    return board


def prometheus_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if (panel.get("datasource") or {}).get("type") == PROMETHEUS_TYPE]


# What the SDK writes that Grafana 13's dashboard schema (grafana/schema/dashboard.schema.json) no longer has:
# the removed `style`, interval-variable fields on every variable, and a null `options` on panels without any.
SDK_LEFTOVERS = {"style"}
VARIABLE_LEFTOVERS = {"auto", "auto_count", "auto_min", "id"}


def dashboard_json(dashboard: db.Dashboard) -> dict[str, Any]:
    model = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(dashboard.build()))
    for key in SDK_LEFTOVERS:
        model.pop(key, None)
    for variable in model.get("templating", {}).get("list", []):
        for key in VARIABLE_LEFTOVERS:
            variable.pop(key, None)
    for panel in model["panels"]:
        if panel.get("options") is None:
            panel["options"] = {}
    return model


DASHBOARDS = {"trading": trading, "forecasting": forecasting, "pipeline-health": pipeline_health}


def datasources(settings: Settings) -> dict[str, Any]:
    """Grafana's datasource provisioning: one Elasticsearch datasource per index (fixed uids), Infinity on Serve."""
    indices = settings.elasticsearch.indices.by_key()
    time_fields = {"dead_letters": DEAD_LETTER_TIME, "forecast_evaluations": EVALUATION_TIME}
    sources: list[dict[str, Any]] = [
        {
            "name": f"ray-app {indices[key]}",
            "uid": es_uid(key),
            "type": ES_TYPE,
            "access": "proxy",
            "url": settings.elasticsearch.url,
            "editable": False,
            "jsonData": {"index": indices[key], "timeField": time_fields.get(key, "timestamp")},
        }
        for key in ES_INDICES
    ]
    # the key from Grafana's environment (Grafana expands ${VAR} in provisioning files): never in a committed file
    sources.append(
        {
            "name": "ray-app Serve",
            "uid": SERVE_UID,
            "type": INFINITY_TYPE,
            "url": settings.serve.url,
            "editable": False,
            "jsonData": {"allowedHosts": [settings.serve.url], "httpHeaderName1": API_KEY_HEADER},
            "secureJsonData": {"httpHeaderValue1": f"${{{KEY_ENV}}}"},
        }
    )
    # the default datasource: Ray's generated dashboards use the default Prometheus one
    sources.append(
        {
            "name": PROMETHEUS_NAME,
            "uid": PROMETHEUS_UID,
            "type": PROMETHEUS_TYPE,
            "access": "proxy",
            "url": settings.prometheus.url,
            "isDefault": True,
            "editable": False,
            "jsonData": {"timeInterval": f"{settings.prometheus.scrape_interval_s:g}s"},
        }
    )
    return {"apiVersion": 1, "datasources": sources}


def es_sources(settings: Settings) -> dict[str, dict[str, Any]]:
    """Elasticsearch datasource uid -> its index and time field, as provisioned."""
    return {s["uid"]: s["jsonData"] for s in datasources(settings)["datasources"] if s["type"] == ES_TYPE}


def dashboard_provider() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "ray-app",
                "folder": "ray-app",
                "type": "file",
                "disableDeletion": True,
                "updateIntervalSeconds": 30,
                "options": {"path": "/var/lib/grafana/dashboards/ray-app"},
            },
            # the dashboards the Ray head generates for its version (<ray temp dir>/session_latest/metrics/grafana/
            # dashboards, mounted here: docs/grafana.md)
            {
                "name": "ray",
                "folder": "Ray",
                "type": "file",
                "disableDeletion": True,
                "updateIntervalSeconds": 30,
                "options": {"path": "/var/lib/grafana/dashboards/ray"},
            },
        ],
    }


def generated_files(settings: Settings) -> dict[Path, str]:
    """Every generated file under grafana/, by path, with its text."""
    files = {
        Path(f"dashboards/{name}.json"): json.dumps(dashboard_json(build()), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }
    header = "# Generated by `ray-app dashboards build` from the default settings; do not edit.\n"
    files[Path("provisioning/datasources/ray-app.yaml")] = header + yaml.safe_dump(
        datasources(settings), sort_keys=False
    )
    files[Path("provisioning/dashboards/ray-app.yaml")] = header + yaml.safe_dump(dashboard_provider(), sort_keys=False)
    files[Path("provisioning/alerting/ray-app.yaml")] = alerting_provisioning(settings)
    return files


def alerting_provisioning(settings: Settings) -> str:
    """Grafana's alert-rule provisioning: the pipeline's alerts and the settings' market alerts, the same definitions
    Prometheus evaluates (``ray_app.alerts``), on the Prometheus datasource. For those who alert from Grafana
    instead of Alertmanager: use one or the other, or each alert arrives twice."""
    header = (
        "# Generated by `ray-app dashboards build` from the settings' alerts (ray_app/alerts.py); do not edit.\n"
        "# The same alerts Prometheus sends to Alertmanager: provision these only where Grafana does the alerting.\n"
    )
    return header + yaml.safe_dump(grafana_alert_rules(settings, PROMETHEUS_UID), sort_keys=False)


def write_files(settings: Settings) -> list[Path]:
    """Write every generated file under grafana/; returns their paths."""
    written = []
    for path, text in generated_files(settings).items():
        target = GRAFANA_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written
