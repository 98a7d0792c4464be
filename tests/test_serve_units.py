"""Serve pieces that need no engine: the committed Serve config file is the one the settings generate."""

from __future__ import annotations

import os

import yaml
from ray.serve.schema import ServeDeploySchema

from ray_app.config import load_settings
from serve_deployments.config_file import serve_config
from serve_deployments.forecast_reader import slug
from tests.conftest import REPO


def test_committed_serve_yaml_is_generated_from_the_default_settings_and_valid_for_serve_deploy(monkeypatch) -> None:
    for key in [k for k in os.environ if k.startswith("RAY_APP_")]:
        monkeypatch.delenv(key)
    committed = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text())
    assert committed == serve_config(load_settings()), "regenerate: ray-app serve config > configs/serve.yaml"
    schema = ServeDeploySchema.model_validate(committed)
    forecast = next(d for d in schema.applications[0].deployments if d.name == "Forecast")
    assert forecast.autoscaling_config["min_replicas"] == 1 and forecast.autoscaling_config["max_replicas"] >= 1


def test_symbols_in_urls_write_the_slash_as_a_dash() -> None:
    assert slug("BTC/USD") == "BTC-USD" and slug("BRK.B") == "BRK.B"
