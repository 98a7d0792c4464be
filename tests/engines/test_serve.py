"""The Serve application on real Ray Serve and real Elasticsearch: forecast and recommendation endpoints, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from elasticsearch.helpers import bulk

from ray_app.config import Settings, load_settings
from ray_app.es_indices import MAPPINGS, ensure_index, es_client
from ray_app.forecast import store
from ray_app.forecast.calendar import CRYPTO, market_of
from ray_app.forecast.runner import run_forecast
from ray_app.testing.bars import bar_actions, synthetic_bars
from ray_app.testing.settings import module_env, settings_env
from ray_app.testing.stack import environment, free_ports
from ray_app.times import iso
from serve_deployments.claims import CLAIM_KINDS, check_text
from serve_deployments.market_facts import MarketFacts, judge
from tests.support.prometheus import prometheus_range

AS_OF = pd.Timestamp("2026-11-11T00:00Z")
BACK_DATED = AS_OF - pd.Timedelta(days=1)
SHAPES = {"BTC/USD": ("daily_cycle", 12), "AAPL": ("random_walk", 12), "IBM": ("random_walk", 2)}


@pytest.fixture(scope="module")
def settings(stack: Settings, tiny_model: Path) -> Iterator[Settings]:
    """A forecast run of this module's own (own indices), then the app deployed on the stack's Ray."""
    from ray import serve

    from serve_deployments.app import application

    http_port, dead_port = free_ports(2)
    overrides = {
        "symbols": list(SHAPES),
        "forecast": {"lookback_days": 12, "horizon_days": 1, "cv_windows": 2, "models": ["AutoETS"]},
        # four apps (this one, its dead-Elasticsearch twin, the CLI's, the YAML's) share 2 CPUs with the stack
        "serve": {
            "http_port": http_port,
            **{name: {"num_cpus": 0.1} for name in ("forecast", "recommender", "ingress")},
        },
        # the concurrency test's requests land in one batch
        "recommend": {"model": tiny_model, "max_new_tokens": 16, "batch_wait_timeout_s": 0.5},
    }
    env = module_env(stack, "sv", overrides, topics=())
    with environment(env):
        settings = load_settings()
        es = es_client(settings)
        ensure_index(settings, es, settings.elasticsearch.indices.bars_1h, MAPPINGS["bars_1h"])
        for seed, (symbol, (shape, days)) in enumerate(SHAPES.items()):
            bars = synthetic_bars(market_of(symbol), AS_OF - pd.Timedelta(days=days), AS_OF, shape, seed=seed)
            bulk(es, bar_actions(settings.elasticsearch.indices.bars_1h, symbol, bars), refresh="wait_for")
        assert run_forecast(settings, as_of=AS_OF).status == "partial"  # IBM is skipped
        # a run cut off a day earlier, scored on the day of bars that followed it (what `make run` does too)
        assert run_forecast(settings, as_of=BACK_DATED).status == "partial"
        from ray_app.forecast.evaluation import evaluate

        assert evaluate(settings, run_ids=[store.run_id_for(settings, BACK_DATED, list(SHAPES))])

        serve.start(http_options={"host": settings.serve.http_host, "port": http_port})
        serve.run(application(settings), name="test-api", route_prefix="/")
        with environment(settings_env({"elasticsearch": {"url": f"http://127.0.0.1:{dead_port}"}})):
            serve.run(application(load_settings()), name="test-api-dead-es", route_prefix="/dead")
        try:
            yield settings
        finally:
            import ray

            serve.shutdown()
            ray.shutdown()  # later modules restart the stack's Ray head: this process must not hang on to it


@pytest.fixture(scope="module")
def http(settings: Settings) -> Iterator[httpx.Client]:
    """A client of the app that sends its API key, as `ray-app recommend` and Grafana do."""
    from serve_deployments.auth import API_KEY_HEADER, api_key

    with httpx.Client(base_url=settings.serve.url, timeout=30, headers={API_KEY_HEADER: api_key(settings)}) as client_:
        yield client_


def test_health_and_symbols(http: httpx.Client) -> None:
    assert http.get("/healthz").json()["status"] == "ok"
    symbols = {row["slug"]: row for row in http.get("/symbols").json()}
    assert set(symbols) == {"BTC-USD", "AAPL", "IBM"}
    assert symbols["BTC-USD"]["symbol"] == "BTC/USD" and symbols["BTC-USD"]["status"] == "ok"
    assert symbols["IBM"]["status"] == "skipped" and "trading hours of history" in symbols["IBM"]["reason"]


def test_forecast_rows_are_flat_hourly_and_match_the_stored_forecasts(settings: Settings, http: httpx.Client) -> None:
    response = http.get("/forecast/BTC-USD")
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 24 and rows[0]["timestamp"] == "2026-11-11T00:00:00Z"
    for target in ("high", "low", "close", "volume"):
        assert {target, f"{target}_lo_80", f"{target}_hi_95", f"{target}_model"} <= set(rows[0])
    run_id = store.run_id_for(settings, AS_OF, list(SHAPES))
    stored = store.run_forecasts(es_client(settings), settings, run_id, "BTC/USD")
    close = stored[stored["target"] == "close"].sort_values("timestamp")["value"].tolist()
    assert [row["close"] for row in rows] == close
    assert http.get("/forecast/btc-usd").json() == rows  # case does not matter


def test_summary_is_the_stored_one(settings: Settings, http: httpx.Client) -> None:
    summary = http.get("/forecast/AAPL/summary").json()
    run_id = store.run_id_for(settings, AS_OF, list(SHAPES))
    doc = es_client(settings).get(index=settings.elasticsearch.indices.forecast_runs, id=f"{run_id}|AAPL")["_source"]
    assert summary["lowest_price"] == doc["lowest_price"] and summary["lowest_price_at"] == doc["lowest_price_at"]
    assert summary["highest_volume_at"].endswith("Z") and summary["run_id"] == run_id
    crypto = http.get("/forecast/BTC-USD/summary").json()
    assert http.get("/forecast/BTC/USD/summary").json() == crypto  # the symbol as Grafana's variable holds it
    assert http.get("/forecast/BTC/USD").json() == http.get("/forecast/BTC-USD").json()


def test_backtest_rows_are_the_stored_cross_validation(settings: Settings, http: httpx.Client) -> None:
    rows = {row["target"]: row for row in http.get("/forecast/BTC-USD/backtest").json()}
    assert set(rows) == {"high", "low", "close", "volume", "range"}
    run_id = store.run_id_for(settings, AS_OF, list(SHAPES))
    doc = es_client(settings).get(index=settings.elasticsearch.indices.forecast_runs, id=f"{run_id}|BTC/USD|close")
    close = rows["close"]
    assert close["model"] == doc["_source"]["chosen_model"] and close["naive_mase"] == doc["_source"]["naive_mase"]
    assert close["beats_naive"] is True and close["mase_vs_naive_pct"] < -10  # a strong daily cycle: far below naive


def test_errors_have_their_status_and_say_why(http: httpx.Client) -> None:
    unknown = http.get("/forecast/NOPE")
    assert unknown.status_code == 404 and "unknown symbol 'NOPE'" in unknown.json()["detail"]
    skipped = http.get("/forecast/IBM/summary")
    assert skipped.status_code == 404 and "was not forecast" in skipped.json()["detail"]
    bad = http.get("/forecast/not!a;symbol")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "symbol"]
    down = http.get("/dead/symbols")
    assert down.status_code == 503 and "unreachable" in down.json()["detail"]
    assert http.get("/dead/healthz").status_code == 503
    for answer in (unknown, skipped, down, http.get("/recommendation/NOPE"), http.get("/forecast/IBM/accuracy")):
        detail = answer.json()["detail"]  # a sentence, not Python's or Ray's class paths
        class_path = re.search(r"[a-z_]+\.[a-z_]+\.[A-Z]\w*|Traceback|^\w+(Error|Exception): ", detail)
        assert answer.status_code in {404, 503} and not class_path, detail


def test_openapi_lists_every_endpoint(http: httpx.Client) -> None:
    paths = set(http.get("/openapi.json").json()["paths"])
    assert {
        "/healthz",
        "/symbols",
        "/forecast/{symbol}",
        "/forecast/{symbol}/summary",
        "/forecast/{symbol}/backtest",
        "/recommendation/{symbol}",
        "/recommendations",
        "/recommendations/latest",
        "/model",
        "/quote/{symbol}",
        "/indicators/{symbol}",
    } <= paths
    assert http.get("/docs").status_code == 200


def test_ray_app_serve_deploys_shows_and_stops_the_app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray_app.testing.stack import run_cli

    monkeypatch.setenv("RAY_APP_SERVE__APP_NAME", "cli-app")
    monkeypatch.setenv("RAY_APP_SERVE__ROUTE_PREFIX", "/cli")
    deployed = run_cli("serve", timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"{settings.serve.url}/cli" in deployed.stdout and "'status': 'ok'" in deployed.stdout
    assert httpx.get(f"{settings.serve.url}/cli/forecast/AAPL/summary", timeout=30).status_code == 200
    version = httpx.get(f"{settings.serve.url}/cli/healthz", timeout=30).json()["app_version"]
    again = run_cli("serve", timeout=300)  # nothing changed: the running app is kept, not restarted
    assert again.returncode == 0 and "unchanged, not redeployed" in again.stdout, again.stdout + again.stderr
    monkeypatch.setenv("RAY_APP_SERVE__CACHE_TTL_S", "7")  # a setting changed: a new version is deployed
    changed = run_cli("serve", timeout=300)
    assert changed.returncode == 0 and "unchanged" not in changed.stdout, changed.stdout + changed.stderr
    assert httpx.get(f"{settings.serve.url}/cli/healthz", timeout=30).json()["app_version"] != version
    status = run_cli("serve", "status")
    assert "cli-app: RUNNING" in status.stdout and "Forecast: HEALTHY" in status.stdout, status.stdout + status.stderr
    stopped = run_cli("serve", "stop")
    assert stopped.returncode == 0 and "deleted app 'cli-app'" in stopped.stdout
    assert httpx.get(f"{settings.serve.url}/cli/healthz", timeout=30).status_code == 404


def test_the_generated_config_file_deploys_with_rays_serve_cli(settings: Settings, tmp_path: Path) -> None:
    from serve_deployments.config_file import serve_config

    config = serve_config(settings)
    model = {"RAY_APP_RECOMMEND__MODEL": settings.recommend.model}  # the cluster's processes do not have it
    config["applications"][0].update(name="yaml-app", route_prefix="/yaml", runtime_env={"env_vars": model})
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    serve_cli = Path(sys.executable).with_name("serve")
    result = subprocess.run(
        [str(serve_cli), "deploy", str(path), "--address", settings.ray.dashboard_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{settings.serve.url}/yaml/healthz", timeout=10).status_code
        except httpx.HTTPError:
            status = None
        if status == 200:
            break
        time.sleep(2)
    assert status == 200


# --- recommendations ------------------------------------------------------------------------------------------


def test_a_recommendation_carries_facts_verdict_text_and_an_honest_model_label(
    settings: Settings, http: httpx.Client
) -> None:
    response = http.get("/recommendation/BTC-USD")
    assert response.status_code == 200, response.text
    answer = response.json()
    bars = synthetic_bars(market_of("BTC/USD"), AS_OF - pd.Timedelta(days=12), AS_OF, "daily_cycle", seed=0)
    assert answer["last_bar_at"] == "2026-11-10T23:00:00Z" and answer["last_price"] == bars["close"].iloc[-1]
    assert answer["change_24h_pct"] == pytest.approx((bars["close"].iloc[-1] / bars["close"].iloc[-25] - 1) * 100)
    run_id = store.run_id_for(settings, AS_OF, list(SHAPES))
    forecast = http.get("/forecast/BTC-USD").json()
    assert answer["run_id"] == run_id and answer["forecast_close"] == forecast[-1]["close"]
    judgement = judge(MarketFacts.model_validate(answer), settings.recommend.rules)
    assert (answer["signal"], answer["sentiment"]) == (judgement.signal, judgement.sentiment)
    assert answer["model"] == settings.recommend.model and answer["model_is_trained"] is False
    assert "UNTRAINED TEST MODEL" in answer["model_note"] and answer["prompt"].startswith("Market report for BTC/USD")
    assert 1 <= answer["new_tokens"] <= 16
    # the untrained model's text is noise: every attempt refused, the template from the facts served
    assert answer["text_source"] == "template" and answer["text_attempt"] is None
    assert [reason.split(":")[0] for reason in answer["text_rejected"]] == settings.recommend.attempts
    assert check_text(answer["text"], MarketFacts.model_validate(answer)).passed and answer["text_claims"] > 0
    assert answer["text_checks"] == list(CLAIM_KINDS)
    assert http.get("/recommendation/btc-usd").json()["text"] == answer["text"]  # greedy: same facts, same text
    model = http.get("/model").json()
    assert model["model_is_trained"] is False and model["parameters"] > 0 and model["max_batch_size"] == 8


def test_concurrent_requests_are_decoded_in_one_batch(http: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: http.get("/recommendation/AAPL").json(), range(6)))
    assert max(answer["batch_size"] for answer in answers) > 1
    assert len({answer["text"] for answer in answers}) == 1


def test_recommendation_errors_have_their_status(http: httpx.Client) -> None:
    unknown = http.get("/recommendation/NOPE")
    assert unknown.status_code == 404 and "unknown symbol 'NOPE'" in unknown.json()["detail"]
    skipped = http.get("/recommendation/IBM")
    assert skipped.status_code == 404 and "was not forecast" in skipped.json()["detail"]
    bad = http.post("/recommendations", params={"symbol": "no;pe"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "symbol", 0]
    assert http.get("/dead/recommendation/AAPL").status_code == 503


def test_recording_writes_one_document_per_symbol_and_again_overwrites(settings: Settings, http: httpx.Client) -> None:
    es = es_client(settings)
    index = settings.elasticsearch.indices.recommendations
    first = http.post("/recommendations")
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["written"] == 2 and result["skipped"][0]["symbol"] == "IBM"
    assert http.post("/recommendations").json()["written"] == 2
    assert es.count(index=index)["count"] == 2  # same facts and model -> same ids
    stored = es.get(
        index=index, id=f"AAPL|2026-11-10T20:00:00Z|{result['recommendations'][0]['run_id']}|{settings.recommend.model}"
    )["_source"]
    assert stored["timestamp"] == stored["last_bar_at"] and stored["model_is_trained"] is False
    latest = http.get("/recommendations/latest").json()
    assert [row["symbol"] for row in latest] == ["AAPL", "BTC/USD"]


def test_recording_is_bounded_deduplicated_and_a_bad_symbol_fails_only_itself(
    settings: Settings, http: httpx.Client
) -> None:
    repeated = http.post("/recommendations", params={"symbol": ["AAPL"] * 64}, timeout=120)
    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["written"] == 1 and len(repeated.json()["recommendations"]) == 1  # one generation
    too_many = http.post("/recommendations", params={"symbol": [f"S{i}" for i in range(33)]})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["query", "symbol"]
    assert "at most 32" in too_many.json()["detail"][0]["msg"]
    mixed = http.post("/recommendations", params={"symbol": ["AAPL", "NOPE", "IBM", "aapl"]}, timeout=120)
    assert mixed.status_code == 200, mixed.text
    body = mixed.json()
    assert body["written"] == 1 and [r["symbol"] for r in body["recommendations"]] == ["AAPL"]
    reasons = {row["symbol"]: row["reason"] for row in body["skipped"]}
    assert set(reasons) == {"NOPE", "IBM"} and "unknown symbol" in reasons["NOPE"] and "not forecast" in reasons["IBM"]


def test_ray_app_recommend_prints_and_records(settings: Settings) -> None:
    from ray_app.testing.stack import run_cli

    result = run_cli("recommend", "-s", "AAPL")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AAPL at 2026-11-10T20:00:00Z" in result.stdout and "UNTRAINED TEST MODEL" in result.stdout
    assert "1 written to 'sv-recommendations'" in result.stdout


def test_ray_app_serve_fails_fast_when_the_model_is_missing(tmp_path: Path) -> None:
    from ray_app.testing.stack import run_cli

    began = time.monotonic()
    result = run_cli("serve", env={"RAY_APP_RECOMMEND__MODEL": str(tmp_path / "nothing")})
    assert result.returncode != 0 and "cannot load its model" in result.stderr and "no such folder" in result.stderr
    assert time.monotonic() - began < 60


def test_indicators_answer_the_stored_documents_oldest_first_equal_to_talib(
    settings: Settings, http: httpx.Client
) -> None:
    """1-minute bars -> the indicators step -> GET /indicators/{symbol}: the newest N bars' values, TA-Lib's."""
    import numpy as np
    import talib

    from ray_app.indicators.runner import IndicatorStep
    from ray_app.times import format_seconds

    es = es_client(settings)
    indices = settings.elasticsearch.indices
    for key in ("bars_1m", "indicators_1m"):
        ensure_index(settings, es, getattr(indices, key), MAPPINGS[key])
    count, first = 300, (int(time.time()) // 60 - 300) * 60
    closes = 60_000 * np.exp(np.cumsum(np.random.default_rng(4).normal(0, 0.001, count)))
    bars = [
        {
            "_index": indices.bars_1m,
            "_id": f"BTC/USD|{format_seconds(first + 60 * i)}",
            "_source": {
                "symbol": "BTC/USD",
                "timeframe": "1Min",
                "timestamp": format_seconds(first + 60 * i),
                "open": close,
                "high": close + 5,
                "low": close - 5,
                "close": close,
                "volume": 1.5,
                "range": 10.0,
                "notional": close * 1.5,
                "log_return": 0.0,
                "source": "trades",
                "updated_at": format_seconds(first),
            },
        }
        for i, close in enumerate(closes)
    ]
    late = bars[100:110]  # bars a catch-up batch writes after newer ones (its tasks write in no time order)
    bulk(es, bars[:100] + bars[110:], refresh="wait_for")
    step = IndicatorStep(settings, es)
    assert step.cycle().written["BTC/USD"] == count - 10
    bulk(es, late, refresh="wait_for")
    report = step.cycle()
    assert report.bars["BTC/USD"] == count and report.written["BTC/USD"] == count - 100  # from the first gap on
    assert step.cycle().written["BTC/USD"] == 0  # nothing changed
    # a bar the stream rewrites hours later (a cancel, a correction, a late trade): from that bar on, again
    revised = {**bars[50]["_source"], "close": closes[50] * 1.01, "updated_at": format_seconds(int(time.time()))}
    bulk(es, [{**bars[50], "_source": revised}], refresh="wait_for")
    assert step.cycle().written["BTC/USD"] == count - 50
    bars[50]["_source"]["updated_at"] = format_seconds(int(time.time()))  # and back, for the values below
    bulk(es, [bars[50]], refresh="wait_for")
    assert step.cycle().written["BTC/USD"] == count - 50
    es.indices.refresh(index=indices.indicators_1m)
    rows = http.get("/indicators/BTC-USD", params={"minutes": 50}).json()
    assert [row["timestamp"] for row in rows] == [format_seconds(first + 60 * i) for i in range(count - 50, count)]
    macd, signal, _ = talib.MACD(closes, 12, 26, 9)
    upper, _, lower = talib.BBANDS(closes, 20, 2, 2)
    for column, reference in (
        ("rsi", talib.RSI(closes, 14)),
        ("ema_slow", talib.EMA(closes, 26)),
        ("macd", macd),
        ("macd_signal", signal),
        ("bb_upper", upper),
        ("bb_lower", lower),
    ):
        np.testing.assert_allclose([row[column] for row in rows], reference[-50:], rtol=1e-9, err_msg=column)
    assert rows[-1]["close"] == closes[-1] and rows[-1]["bars"] == count
    assert len(http.get("/indicators/BTC/USD").json()) == 120  # the default: two hours of minutes
    unknown = http.get("/indicators/DOGE")
    assert unknown.status_code == 404 and "BTC-USD" in unknown.json()["detail"]
    for bad in (0, -1, 10_001, "ten"):
        answer = http.get("/indicators/BTC-USD", params={"minutes": bad})
        assert answer.status_code == 422 and answer.json()["detail"], bad


def test_serve_latency_reaches_prometheus_as_rays_own_metric(settings: Settings, http: httpx.Client) -> None:
    """The Pipeline health dashboard's Serve panel: Ray Serve's request latency, per route, scraped by Prometheus."""
    from ray_app.dashboards.build import GRAFANA_DIR, prometheus_panels

    for _ in range(5):
        assert http.get("/forecast/BTC-USD/summary").status_code == 200
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "pipeline-health.json").read_text())
    (panel,) = [p for p in prometheus_panels(dashboard) if p["title"].startswith("Serve:")]
    deadline = time.monotonic() + 90
    while True:
        results = [prometheus_range(settings, target["expr"]) for target in panel["targets"]]
        if all(results) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert all(results), panel["targets"]
    routes = {series["metric"].get("route") for series in results[0]}
    assert any(route and route.startswith("/forecast") for route in routes), routes


# --- Grafana's Infinity panels --------------------------------------------------------------------------------


def test_accuracy_is_the_back_dated_run_scored_on_the_bars_that_followed(
    settings: Settings, http: httpx.Client
) -> None:
    rows = http.get("/forecast/BTC-USD/accuracy").json()
    back_dated = store.run_id_for(settings, BACK_DATED, list(SHAPES))
    assert {row["run_id"] for row in rows} == {back_dated}  # the current run's horizon has no bar yet
    extremes = {"highest_price", "lowest_price", "highest_volume"}
    assert {row["target"] for row in rows} == {"high", "low", "close", "volume", "range"} | extremes
    assert all(row["elapsed_hours"] == 24 and row["complete"] for row in rows)
    assert all(row["mase"] is not None for row in rows if row["target"] not in extremes)
    assert all(row["pinball"] is not None for row in rows if row["target"] in extremes)
    close = next(row for row in rows if row["target"] == "close")
    assert close["direction"] in {"up", "down", "flat"} and 0 <= close["direction_hit_rate"] <= 1
    versus = http.get("/forecast/BTC-USD/vs-realized").json()
    bars = synthetic_bars(market_of("BTC/USD"), AS_OF - pd.Timedelta(days=12), AS_OF, "daily_cycle", seed=0)
    assert len(versus) == 24 and versus[0]["timestamp"] == "2026-11-10T00:00:00Z"
    assert [row["actual_close"] for row in versus] == list(bars["close"].iloc[-24:])
    assert all(row["low"] <= row["close"] <= row["high"] for row in versus)
    assert http.get("/forecast/IBM/accuracy").status_code == 404  # skipped: never forecast, never scored


def test_the_dashboards_es_panels_read_the_stored_recommendation_and_evaluations(
    settings: Settings, http: httpx.Client
) -> None:
    from ray_app.dashboards.build import GRAFANA_DIR, es_sources
    from ray_app.dashboards.es_query import es_panels, search_for

    assert http.post("/recommendations").status_code == 200
    es = es_client(settings)
    sources = es_sources(settings)
    indices = settings.elasticsearch.indices
    wanted_indices = {indices.recommendations, indices.forecast_evaluations}
    checked = 0
    for name in ("trading", "forecasting"):
        for panel in es_panels(json.loads((GRAFANA_DIR / "dashboards" / f"{name}.json").read_text())):
            source = sources[panel["datasource"]["uid"]]
            if source["index"] not in wanted_indices:
                continue
            for target in panel["targets"]:
                start = AS_OF - pd.Timedelta(days=3)
                search = search_for(target, source["timeField"], start, AS_OF, {"symbol": "AAPL"})
                result = es.search(index=source["index"], body=search.body)
                if search.raw:
                    hits = [hit["_source"] for hit in result["hits"]["hits"]]
                    assert len(hits) == 1 and hits[0]["symbol"] == "AAPL", panel["title"]
                    assert {"signal", "sentiment", "text", "model_is_trained"} <= set(hits[0]), panel["title"]
                else:
                    buckets = result["aggregations"][target["bucketAggs"][0]["id"]]["buckets"]
                    assert any(all(b[m]["value"] is not None for m in search.reads) for b in buckets), panel["title"]
                checked += 1
    assert checked == 3  # recommendation, sentiment, MASE over time


def test_the_weeks_extremes_are_served_and_scored_against_the_bars_that_followed(
    settings: Settings, http: httpx.Client
) -> None:
    summary = http.get("/forecast/BTC-USD/summary").json()
    for extreme in ("highest_price", "lowest_price", "highest_volume"):
        ends = [
            summary[f"{extreme}_{key}"] if key else summary[extreme] for key in ("lo_95", "lo_80", "", "hi_80", "hi_95")
        ]
        assert ends == sorted(ends) and summary[f"{extreme}_at"].endswith("Z"), extreme
    assert summary["lowest_price"] < summary["highest_price"] and summary["range_pct_mean"] > 0
    # the back-dated run's whole horizon (a day) has passed: its extremes against the bars written for that day
    (scored,) = http.get("/forecast/BTC-USD/extremes").json()
    assert scored["as_of"] == iso(BACK_DATED)
    bars = synthetic_bars(CRYPTO, AS_OF - pd.Timedelta(days=12), AS_OF, "daily_cycle", seed=0)
    day = bars[(bars.index >= BACK_DATED) & (bars.index < AS_OF)]
    assert scored["highest_price_realized"] == pytest.approx(day["high"].max())
    assert scored["lowest_price_realized"] == pytest.approx(day["low"].min())
    assert scored["highest_volume_realized"] == pytest.approx(day["volume"].max())
    calibration = {row["extreme"]: row for row in http.get("/forecast/BTC-USD/extremes/calibration").json()}
    assert set(calibration) == {"highest_price", "lowest_price", "highest_volume"}
    high = calibration["highest_price"]
    inside = scored["highest_price_lo_80"] <= day["high"].max() <= scored["highest_price_hi_80"]
    assert high["runs"] == 1 and high["coverage_80"] == float(inside) and high["pinball"] >= 0
    unknown = http.get("/forecast/NOPE/extremes")
    assert unknown.status_code == 404 and "unknown symbol" in unknown.json()["detail"]


def test_every_infinity_panel_url_answers_with_the_columns_the_panel_reads(
    settings: Settings, http: httpx.Client
) -> None:
    dashboard = "forecasting"  # the Trading dashboard reads only Elasticsearch (stored recommendations)
    from ray_app.dashboards.build import GRAFANA_DIR
    from ray_app.dashboards.es_query import infinity_panels, interpolate

    panels = infinity_panels(json.loads((GRAFANA_DIR / "dashboards" / f"{dashboard}.json").read_text()))
    assert panels
    for panel in panels:
        for target in panel["targets"]:
            url = interpolate(target["url"], {"symbol": "BTC/USD"}, lucene=False)
            response = http.get(url)
            assert response.status_code == 200, (panel["title"], url, response.text)
            body = response.json()
            rows = body if isinstance(body, list) else [body]
            assert rows, (panel["title"], url)
            missing = [c["selector"] for c in target["columns"] if c["selector"] not in rows[0]]
            assert not missing, (panel["title"], url, missing)
            for column in target["columns"]:
                if column["type"] == "timestamp":
                    assert pd.Timestamp(rows[0][column["selector"]]).tzinfo is not None


# --- in a browser -----------------------------------------------------------------------------------------------


def test_a_headless_browser_sees_the_app_in_the_ray_dashboard_and_every_endpoint_on_docs(
    settings: Settings,
) -> None:
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (scripts/bootstrap.sh installs it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{settings.serve.url}/docs")  # Swagger UI from the app's own files: no CDN needed
            page.wait_for_selector(".opblock-summary-path", timeout=60_000)
            assert page.title() == "ray-app - Swagger UI"
            paths = set(page.locator(".opblock-summary-path").all_inner_texts())
            assert {
                "/forecast/{symbol}",
                "/forecast/{symbol}/summary",
                "/recommendation/{symbol}",
                "/healthz",
                "/symbols",
                "/recommendations",
            } <= paths, paths

            page.goto(f"{settings.ray.dashboard_url}/#/serve")
            page.get_by_text("test-api", exact=True).first.wait_for(timeout=90_000)
            assert "Ray Dashboard" in page.title()
            text = page.locator("body").inner_text()
            assert "test-api" in text and "RUNNING" in text
        finally:
            browser.close()


@pytest.fixture(scope="module")
def guarded(settings: Settings) -> Iterator[str]:
    """A second app, as if it listened beyond the loopback (so every request needs the key), whose Recommender
    takes one request at a time, queues one more and is waited for 2 s, while its batch waits 5 s to fill."""
    from ray import serve

    from serve_deployments.app import application

    serve_settings = settings.serve
    recommender = serve_settings.recommender.model_copy(
        update={
            "max_ongoing_requests": 1,
            "target_ongoing_requests": 1,
            "max_queued_requests": 1,
            "request_timeout_s": 2.0,
        }
    )
    guarded_settings = settings.model_copy(
        update={
            "serve": serve_settings.model_copy(update={"recommender": recommender, "http_host": "0.0.0.0"}),
            "recommend": settings.recommend.model_copy(update={"batch_wait_timeout_s": 5.0}),
        }
    )
    serve.run(application(guarded_settings), name="test-api-guarded", route_prefix="/guarded")
    try:
        yield f"{settings.serve.url}/guarded"
    finally:
        serve.delete("test-api-guarded")


def test_a_full_queue_is_503_at_once_and_a_slow_answer_504_both_in_plain_words(guarded: str, http) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(12) as pool:
        began = time.monotonic()
        answers = list(pool.map(lambda _: http.get(f"{guarded}/recommendation/AAPL", timeout=60), range(12)))
        seconds = time.monotonic() - began
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {503, 504} and statuses.count(503) >= 8, statuses
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert "busy" in busy.json()["detail"] and busy.headers["retry-after"] == "1"
    late = next(answer for answer in answers if answer.status_code == 504)
    assert late.json()["detail"] == (
        "the Recommender deployment did not answer within 2 s (serve.recommender.request_timeout_s)"
    )
    assert seconds < 15  # nobody waited for the 5 s batches to finish
    assert http.get(f"{guarded}/forecast/AAPL/summary").status_code == 200  # the app's other deployment answers


def test_writes_always_and_reads_beyond_the_loopback_need_the_api_key_as_grafana_sends_it(
    settings: Settings, guarded: str, http: httpx.Client
) -> None:
    import os

    from ray_app.dashboards.build import GRAFANA_DIR, SERVE_UID
    from ray_app.dashboards.es_query import infinity_panels, interpolate
    from serve_deployments.auth import API_KEY_HEADER, KEY_ENV, api_key

    key = api_key(settings)
    with httpx.Client(timeout=30) as anonymous:
        # on the loopback: reads are open, the write needs the key
        assert anonymous.get(f"{settings.serve.url}/symbols").status_code == 200
        refused = anonymous.post(f"{settings.serve.url}/recommendations")
        assert refused.status_code == 401 and "missing" in refused.json()["detail"]
        wrong = anonymous.post(f"{settings.serve.url}/recommendations", headers={API_KEY_HEADER: key + "x"})
        assert wrong.status_code == 401 and "wrong" in wrong.json()["detail"]
        # beyond the loopback every read needs it too; the docs page stays open
        for path in ("/symbols", "/forecast/AAPL", "/healthz", "/recommendations/latest"):
            answer = anonymous.get(f"{guarded}{path}")
            assert answer.status_code == 401 and API_KEY_HEADER in answer.json()["detail"], path
        assert anonymous.get(f"{guarded}/docs").status_code == 200
    assert key not in json.dumps(dict(refused.headers)) + refused.text

    # Grafana's provisioned Infinity datasource: its header, with the value Grafana takes from its environment
    provisioned = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "ray-app.yaml").read_text())
    serve_source = next(s for s in provisioned["datasources"] if s["uid"] == SERVE_UID)
    header = serve_source["jsonData"]["httpHeaderName1"]
    template = serve_source["secureJsonData"]["httpHeaderValue1"]
    assert template == f"${{{KEY_ENV}}}"  # a reference to the environment, never the key itself
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, key)
        value = os.path.expandvars(template)
    panels = infinity_panels(json.loads((GRAFANA_DIR / "dashboards" / "forecasting.json").read_text()))
    with httpx.Client(timeout=30, headers={header: value}) as grafana:
        for panel in panels:
            for target in panel["targets"]:
                url = interpolate(target["url"], {"symbol": "BTC/USD"}, lucene=False)
                answer = grafana.get(f"{guarded}{url}")
                assert answer.status_code == 200, (panel["title"], url, answer.text)


def test_the_forecast_and_recommender_deployments_grow_under_load_and_shrink_after(settings: Settings) -> None:
    """A bounded loopback load above target_ongoing_requests: both deployments go from 1 replica to the settings'
    default maximum, read from Serve's own status, and back to 1 after the load (delays shortened: 1 s / 3 s)."""
    from ray import serve

    from ray_app.config import load_settings as defaults
    from ray_app.testing.serve_load import load_and_watch
    from serve_deployments.app import application

    default_max = {name: getattr(defaults().serve, name.lower()).max_replicas for name in ("Forecast", "Recommender")}
    assert all(count >= 2 for count in default_max.values()), default_max  # the defaults can grow at all
    scaled = {
        name: getattr(settings.serve, name).model_copy(
            update={
                "min_replicas": 1,
                "max_replicas": default_max[name.capitalize()],
                "target_ongoing_requests": 1,
                "max_ongoing_requests": 8,
                "upscale_delay_s": 1,
                "downscale_delay_s": 3,
            }
        )
        for name in ("forecast", "recommender")
    }
    auto = settings.model_copy(
        update={
            "serve": settings.serve.model_copy(update={"cache_ttl_s": 0, **scaled}),  # every read reaches Forecast
            "recommend": settings.recommend.model_copy(update={"batch_wait_timeout_s": 0.3}),
        }
    )
    serve.run(application(auto), name="test-autoscale", route_prefix="/auto")
    try:
        base = f"{settings.serve.url}/auto"
        timeline = load_and_watch(
            "test-autoscale",
            [f"{base}/forecast/BTC-USD", f"{base}/recommendation/BTC-USD"],
            concurrency=12,
            load_s=120,
            stop_when=default_max,
            settle_s=150,
            settle_until={"Forecast": 1, "Recommender": 1},
        )
    finally:
        serve.delete("test-autoscale")
    rows = [(s.seconds, s.loaded, s.running) for s in timeline.samples]
    assert set(timeline.statuses) == {200}, timeline.statuses
    for name, most in default_max.items():
        assert timeline.peak(name) == most, (name, rows)
        assert timeline.samples[0].running.get(name) == 1, rows  # it started at its minimum
    after = [s for s in timeline.samples if not s.loaded]
    assert after and after[-1].running.get("Forecast") == 1 and after[-1].running.get("Recommender") == 1, rows


def test_the_latest_quote_is_each_symbol_s_newest_top_of_the_book(settings: Settings, http: httpx.Client) -> None:
    from ray_app.documents import QuoteDocument, checked
    from ray_app.times import format_ns, format_seconds

    es = es_client(settings)
    index = settings.elasticsearch.indices.quotes
    ensure_index(settings, es, index, MAPPINGS["quotes"])
    now = time.time_ns() // 10**9 * 10**9
    docs = []
    for offset, bid in ((-30, 90_000.0), (-2, 90_010.0), (-65, 89_000.0)):
        at = now + offset * 10**9 + 5
        docs.append(
            {
                "_index": index,
                "_id": f"BTC/USD|{format_seconds(at // 10**9)}",
                "_source": checked(
                    QuoteDocument,
                    {
                        "symbol": "BTC/USD",
                        "timestamp": format_seconds(at // 10**9),
                        "quoted_at": format_ns(at),
                        "quoted_ns": at,
                        "bid_price": bid,
                        "bid_size": 0.5,
                        "ask_price": bid + 2.5,
                        "ask_size": 0.25,
                        "spread": 2.5,
                        "mid": bid + 1.25,
                        "source": "simulator",
                        "kafka_partition": 0,
                        "kafka_offset": offset + 100,
                    },
                ),
            }
        )
    bulk(es, docs, refresh="wait_for")
    answer = http.get("/quote/BTC-USD")
    assert answer.status_code == 200, answer.text
    quote = answer.json()
    assert (quote["bid_price"], quote["ask_price"], quote["spread"], quote["mid"]) == (
        90_010.0,
        90_012.5,
        2.5,
        90_011.25,
    )
    assert http.get("/quote/BTC/USD").json() == quote
    assert http.get("/quote/AAPL").status_code == 404  # traded, but no quote yet
    unknown = http.get("/quote/DOGE")
    assert unknown.status_code == 404 and "BTC-USD" in unknown.json()["detail"]


# --- the track record (last: it adds back-dated recommendations to the module's index) -----------------------


def test_the_track_record_scores_every_stored_signal_against_the_bars_that_followed(
    settings: Settings, http: httpx.Client
) -> None:
    from serve_deployments.track_record import backdate_recommendations, score_recommendations

    es = es_client(settings)
    run_id = store.run_id_for(settings, BACK_DATED, list(SHAPES))
    written = backdate_recommendations(es, settings, run_id)
    closes = {
        symbol: synthetic_bars(market_of(symbol), AS_OF - pd.Timedelta(days=days), AS_OF, shape, seed=seed)["close"]
        for seed, (symbol, (shape, days)) in enumerate(SHAPES.items())
    }
    # one back-dated recommendation per hourly bar from the hour before the run's cut-off (IBM was not forecast)
    hours = {s: int((c.index >= BACK_DATED - pd.Timedelta(hours=1)).sum()) for s, c in closes.items() if s != "IBM"}
    assert written == sum(hours.values())
    es.indices.refresh(index=settings.elasticsearch.indices.recommendations)
    stored = [
        hit["_source"]
        for hit in es.search(
            index=settings.elasticsearch.indices.recommendations, query={"term": {"model": "back-dated"}}, size=1000
        )["hits"]["hits"]
    ]
    assert len(stored) == written
    for doc in stored:
        assert doc["text_source"] == "template" and check_text(doc["text"], MarketFacts.model_validate(doc)).passed
    assert score_recommendations(es, settings, everything=True) > 0  # the fixture's days are weeks old

    # the reference, from the synthetic bars: the close of the newest bar started by t + horizon, once one exists
    expected: dict[tuple[str, str, str], list[bool]] = {}
    hourly: dict[str, dict[str, tuple[float, float]]] = {}  # symbol -> hour -> (return %, following it %)
    for doc in stored + http.get("/recommendations/latest").json():
        close = closes[doc["symbol"]]
        t = pd.Timestamp(doc["last_bar_at"])
        for name, hours_ahead in (("1h", 1), ("24h", 24), ("7d", 168)):
            when = t + pd.Timedelta(hours=hours_ahead)
            if close.index[-1] < when:
                continue
            change = (close[close.index <= when].iloc[-1] / doc["last_price"] - 1) * 100
            band = settings.recommend.rules.move_threshold_pct * (hours_ahead / 168) ** 0.5
            hit = {"buy": change > 0, "sell": change < 0, "hold": abs(change) <= band}[doc["signal"]]
            expected.setdefault((doc["symbol"], name, doc["signal"]), []).append(hit)
            if name == "1h":
                follow = {"buy": change, "sell": -change, "hold": 0.0}[doc["signal"]]
                hourly.setdefault(doc["symbol"], {})[doc["last_bar_at"]] = (change, follow)
    for symbol in ("BTC/USD", "AAPL"):
        record = http.get(f"/recommendation/{symbol.replace('/', '-')}/track-record")
        assert record.status_code == 200, record.text
        body = record.json()
        got = {(symbol, row["horizon"], row["signal"]): (row["scored"], row["hits"]) for row in body["rows"]}
        want = {key: (len(hits), sum(hits)) for key, hits in expected.items() if key[0] == symbol}
        assert got == want
        hours_scored = [hourly[symbol][hour] for hour in sorted(hourly[symbol])]
        assert len(body["cumulative"]) == len(hours_scored)
        holding = following = 1.0
        for change, follow in hours_scored:
            holding, following = holding * (1 + change / 100), following * (1 + follow / 100)
        last = body["cumulative"][-1]
        assert last["hold_return_pct"] == pytest.approx((holding - 1) * 100)
        assert last["follow_return_pct"] == pytest.approx((following - 1) * 100)
    assert any(key[:2] == ("BTC/USD", "24h") for key in expected)  # the day's first hours have passed a day
    assert http.get("/recommendation/NOPE/track-record").status_code == 404

    # the Trading dashboard's two track-record panels, as Grafana sends them: the hit rate (an average of a boolean)
    # per horizon and signal equals the reference
    from ray_app.dashboards.build import GRAFANA_DIR, es_sources
    from ray_app.dashboards.es_query import es_panels, search_for

    sources = es_sources(settings)
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "trading.json").read_text())
    panels = [
        p for p in es_panels(dashboard) if sources[p["datasource"]["uid"]]["index"] == es_index_outcomes(settings)
    ]
    assert len(panels) == 2
    for panel in panels:
        (target,) = panel["targets"]
        search = search_for(target, "timestamp", AS_OF - pd.Timedelta(days=3), AS_OF, {"symbol": "BTC/USD"})
        result = es.search(index=es_index_outcomes(settings), body=search.body)
        outer = result["aggregations"][target["bucketAggs"][0]["id"]]["buckets"]
        assert outer, panel["title"]
        if target["bucketAggs"][0]["type"] == "terms":
            for horizon in outer:
                for signal in horizon[target["bucketAggs"][1]["id"]]["buckets"]:
                    hits = expected[("BTC/USD", horizon["key"], signal["key"])]
                    assert signal["1"]["value"] == pytest.approx(sum(hits) / len(hits)), (horizon["key"], signal["key"])
        else:
            assert any(bucket["1"]["value"] is not None for bucket in outer), panel["title"]


def es_index_outcomes(settings: Settings) -> str:
    return settings.elasticsearch.indices.recommendation_outcomes
