"""The Serve application on real Ray Serve and real Elasticsearch: the forecast endpoints and their errors."""

from __future__ import annotations

import json
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
from ray_app.es_indices import MAPPINGS, client, ensure_index
from ray_app.forecast import store
from ray_app.forecast.calendar import market_of
from ray_app.forecast.runner import run_forecast
from ray_app.forecast.testing import bar_actions, synthetic_bars
from tests.conftest import environment, free_ports, own_indices_env

pytestmark = pytest.mark.engines

AS_OF = pd.Timestamp("2026-11-11T00:00Z")
SHAPES = {"BTC/USD": ("daily_cycle", 12), "AAPL": ("random_walk", 12), "IBM": ("random_walk", 2)}


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Iterator[Settings]:
    """A forecast run of this module's own (own indices), then the app deployed on the stack's Ray."""
    from ray import serve

    from serve_deployments.app import application

    http_port, dead_port = free_ports(2)
    env = {
        **own_indices_env(stack, "sv"),
        "RAY_APP_SYMBOLS": json.dumps(list(SHAPES)),
        "RAY_APP_FORECAST__LOOKBACK_DAYS": "12",
        "RAY_APP_FORECAST__HORIZON_DAYS": "1",
        "RAY_APP_FORECAST__CV_WINDOWS": "2",
        "RAY_APP_FORECAST__MODELS": '["AutoETS"]',
        "RAY_APP_SERVE__HTTP_PORT": str(http_port),
    }  # fmt: skip
    with environment(env) as patch:
        settings = load_settings()
        es = client(settings)
        ensure_index(settings, es, settings.elasticsearch.indices.bars_1h, MAPPINGS["bars_1h"])
        for seed, (symbol, (shape, days)) in enumerate(SHAPES.items()):
            bars = synthetic_bars(market_of(symbol), AS_OF - pd.Timedelta(days=days), AS_OF, shape, seed=seed)
            bulk(es, bar_actions(settings.elasticsearch.indices.bars_1h, symbol, bars), refresh="wait_for")
        assert run_forecast(settings, as_of=AS_OF).status == "partial"  # IBM is skipped

        serve.start(http_options={"host": settings.serve.http_host, "port": http_port})
        serve.run(application(settings), name="test-api", route_prefix="/")
        patch.setenv("RAY_APP_ELASTICSEARCH__URL", f"http://127.0.0.1:{dead_port}")
        serve.run(application(load_settings()), name="test-api-dead-es", route_prefix="/dead")
        patch.setenv("RAY_APP_ELASTICSEARCH__URL", settings.elasticsearch.url)
        try:
            yield settings
        finally:
            import ray

            serve.shutdown()
            ray.shutdown()  # later modules restart the stack's Ray head: this process must not hang on to it


@pytest.fixture(scope="module")
def http(settings: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settings.serve.url, timeout=30) as http_client:
        yield http_client


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
    stored = store.run_forecasts(client(settings), settings, run_id, "BTC/USD")
    close = stored[stored["target"] == "close"].sort_values("timestamp")["value"].tolist()
    assert [row["close"] for row in rows] == close
    assert http.get("/forecast/btc-usd").json() == rows  # case does not matter


def test_summary_is_the_stored_one(settings: Settings, http: httpx.Client) -> None:
    summary = http.get("/forecast/AAPL/summary").json()
    run_id = store.run_id_for(settings, AS_OF, list(SHAPES))
    doc = client(settings).get(index=settings.elasticsearch.indices.forecast_runs, id=f"{run_id}|AAPL")["_source"]
    assert summary["lowest_price"] == doc["lowest_price"] and summary["lowest_price_at"] == doc["lowest_price_at"]
    assert summary["highest_volume_at"].endswith("Z") and summary["run_id"] == run_id


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


def test_openapi_lists_every_endpoint(http: httpx.Client) -> None:
    paths = set(http.get("/openapi.json").json()["paths"])
    assert {"/healthz", "/symbols", "/forecast/{symbol}", "/forecast/{symbol}/summary"} <= paths
    assert http.get("/docs").status_code == 200


def test_ray_app_serve_deploys_shows_and_stops_the_app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import run_cli

    monkeypatch.setenv("RAY_APP_SERVE__APP_NAME", "cli-app")
    monkeypatch.setenv("RAY_APP_SERVE__ROUTE_PREFIX", "/cli")
    deployed = run_cli("serve", timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"{settings.serve.url}/cli" in deployed.stdout and "'status': 'ok'" in deployed.stdout
    assert httpx.get(f"{settings.serve.url}/cli/forecast/AAPL/summary", timeout=30).status_code == 200
    status = run_cli("serve", "status")
    assert "cli-app: RUNNING" in status.stdout and "Forecast: HEALTHY" in status.stdout, status.stdout + status.stderr
    stopped = run_cli("serve", "stop")
    assert stopped.returncode == 0 and "deleted app 'cli-app'" in stopped.stdout
    assert httpx.get(f"{settings.serve.url}/cli/healthz", timeout=30).status_code == 404


def test_the_generated_config_file_deploys_with_rays_serve_cli(settings: Settings, tmp_path: Path) -> None:
    from serve_deployments.config_file import serve_config

    config = serve_config(settings)
    config["applications"][0].update(name="yaml-app", route_prefix="/yaml")
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    serve_cli = Path(sys.executable).with_name("serve")
    result = subprocess.run([str(serve_cli), "deploy", str(path), "--address", settings.ray.dashboard_url],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
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
