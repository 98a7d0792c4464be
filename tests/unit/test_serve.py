"""Serve pieces that need no engine: the Serve config file, the recommendation's facts and rules, the LM."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from ray_app.config import ConfigError, load_settings
from ray_app.config.serve import SignalRules
from ray_app.testing.stack import REPO, free_ports
from ray_app.times import iso
from serve_deployments.config_file import serve_config
from serve_deployments.forecast_reader import slug
from serve_deployments.language_model import ModelUnavailable, TextGenerator, check_model
from serve_deployments.market_facts import MarketFacts, chat_prompt_for, direction_of, judge, price_facts, prompt_for


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


# --- recommendation facts and rules -------------------------------------------------------------------------


def _hourly(closes: list[float], end: str = "2026-11-10T23:00Z") -> list[dict]:
    hours = pd.date_range(end=pd.Timestamp(end), periods=len(closes), freq="h")
    return [{"timestamp": iso(hour), "close": close} for hour, close in zip(hours, closes, strict=True)][::-1]


def test_price_facts_are_the_24h_change_and_the_realized_volatility_of_hourly_bars() -> None:
    closes = [100.0] * 10 + [100.0 * 1.01**i for i in range(1, 26)]  # 35 bars; the last 25 rise 1% an hour
    last_at, last, change, volatility = price_facts(_hourly(closes))
    assert last_at == pd.Timestamp("2026-11-10T23:00Z") and last == pytest.approx(100 * 1.01**25)
    assert change == pytest.approx((1.01**24 - 1) * 100)  # against the bar exactly 24 h before the last
    assert volatility == pytest.approx(math.sqrt(24 * math.log(1.01) ** 2) * 100)  # 24 hourly returns of 1%


def test_without_a_bar_24h_back_there_is_no_change_and_volatility_uses_what_there_is() -> None:
    _, _, change, volatility = price_facts(_hourly([100.0, 101.0, 100.0]))
    assert change is None and volatility == pytest.approx(math.hypot(math.log(1.01), math.log(100 / 101)) * 100)


RULES = SignalRules(move_threshold_pct=1.0, trend_threshold_pct=0.5, require_beats_naive=True)


def _facts(forecast_change: float, change_24h: float | None, beats_naive: bool = True) -> MarketFacts:
    return MarketFacts(
        symbol="AAPL",
        last_bar_at="2026-11-10T20:00:00Z",
        last_price=100.0,
        change_24h_pct=change_24h,
        realized_volatility_24h_pct=1.2,
        run_id="r",
        forecast_as_of="2026-11-10T21:00:00Z",
        forecast_end="2026-11-17T20:00:00Z",
        forecast_close=100 + forecast_change,
        forecast_change_pct=forecast_change,
        forecast_direction=direction_of(forecast_change, RULES),
        range_7d_low=95.0,
        range_7d_high=105.0,
        range_7d_low_lo_80=92.5,
        range_7d_high_hi_80=108.25,
        close_model="AutoETS",
        close_beats_naive=beats_naive,
    )


@pytest.mark.parametrize(
    ("forecast_change", "change_24h", "beats_naive", "signal", "sentiment"),
    [
        (2.0, 0.6, True, "buy", "bullish"),
        (1.0, 0.5, True, "buy", "bullish"),  # thresholds are inclusive
        (-1.5, -0.7, True, "sell", "bearish"),
        (0.99, 0.49, True, "hold", "neutral"),
        (5.0, -2.0, False, "hold", "bearish"),  # a forecast no better than naive says nothing
        (-5.0, None, True, "sell", "neutral"),
    ],
)
def test_signal_and_sentiment_follow_the_documented_rules(
    forecast_change: float, change_24h: float | None, beats_naive: bool, signal: str, sentiment: str
) -> None:
    judgement = judge(_facts(forecast_change, change_24h, beats_naive), RULES)
    assert (judgement.signal, judgement.sentiment) == (signal, sentiment)
    assert judgement.signal_rule.endswith(f"-> {signal}") and judgement.sentiment_rule.endswith(f"-> {sentiment}")
    if not beats_naive:
        assert "did not beat naive" in judgement.signal_rule


def test_the_prompt_states_every_fact_and_the_verdict() -> None:
    facts = _facts(2.0, 0.6)
    prompt = prompt_for(facts, judge(facts, RULES))
    for fact in (
        "AAPL",
        "2026-11-10 20:00 UTC",
        "100.00",
        "+0.60%",
        "1.20%",
        "AutoETS",
        "up to 102.00",
        "+2.00%",
        "low near 95.00 and high near 105.00",
        "80% bounds 92.50 to 108.25",
        "Signal: buy",
        "Sentiment: bullish",
    ):
        assert fact in prompt, fact
    assert prompt.endswith("Analyst comment:")
    chat = chat_prompt_for(facts, judge(facts, RULES))
    assert "low and high are forecast near 95.00 and 105.00" in chat  # the calibrated range, in the model's words


# --- the language model -------------------------------------------------------------------------------------


def test_the_test_model_loads_through_from_pretrained_decodes_greedily_and_says_it_is_untrained(
    tiny_model: Path,
) -> None:
    settings = load_settings().recommend.model_copy(update={"model": str(tiny_model), "max_new_tokens": 12})
    check_model(settings)
    lm = TextGenerator(settings)
    assert lm.is_untrained_test_model and "UNTRAINED TEST MODEL" in lm.note and lm.name == str(tiny_model)
    prompts = ["Market report for AAPL at 2026-11-10 20:00 UTC.", "Signal: buy."]
    together = lm.generate(prompts)
    again = lm.generate(prompts)
    assert [g.text for g in together] == [g.text for g in again]  # greedy: the same prompts, the same text
    assert all(g.batch_size == 2 and 1 <= g.new_tokens <= 12 for g in together)


def test_a_model_that_cannot_be_had_fails_fast_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recommend = load_settings().recommend
    with pytest.raises(ModelUnavailable, match="no such folder"):
        check_model(recommend.model_copy(update={"model": str(tmp_path / "missing")}))
    with pytest.raises(ModelUnavailable, match=r"without config\.json"):
        check_model(recommend.model_copy(update={"model": str(tmp_path)}))
    from huggingface_hub import constants

    (dead_port,) = free_ports(1)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{dead_port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    began = time.monotonic()
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        check_model(recommend.model_copy(update={"model": "someone/not-cached-model"}))
    assert time.monotonic() - began < 10


def test_replica_settings_keep_room_for_the_target_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_APP_SERVE__RECOMMENDER__MAX_ONGOING_REQUESTS", "4")
    with pytest.raises(ConfigError, match="max_ongoing_requests must be >= target_ongoing_requests"):
        load_settings()


def test_every_endpoint_documents_its_answer_with_a_schema() -> None:
    """/docs shows what each route answers: a named model (or a list of one), never an untyped object."""
    from serve_deployments.app import api

    paths = api.openapi()["paths"]
    assert len(paths) == 16
    for path, methods in paths.items():
        for method, operation in methods.items():
            schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            assert ref and ref.startswith("#/components/schemas/"), f"{method.upper()} {path}: {schema}"
    components = api.openapi()["components"]["schemas"]
    assert {"close", "close_lo_80", "close_hi_95", "close_model"} <= set(components["ForecastRow"]["properties"])
    assert {"actual_close", "actual_range"} <= set(components["VsRealizedRow"]["properties"])
    assert {"highest_price_lo_80", "lowest_price_hi_95", "highest_volume_at_probability"} <= set(
        components["Summary"]["properties"]
    )
    assert {"text", "text_source", "text_checks", "text_rejected"} <= set(components["Recommendation"]["properties"])
    assert {"rows", "cumulative"} <= set(components["TrackRecord"]["properties"])


def test_the_forecast_deployment_answers_through_one_method_per_question() -> None:
    """Typed handle methods (handle.summary.remote(symbol)), not a string-dispatching `call`."""
    from serve_deployments.app import Forecast
    from serve_deployments.forecast_reader import ForecastReader

    cls = Forecast.func_or_class
    questions = {"health", "symbols", "forecast", "summary", "backtest", "accuracy", "vs_realized", "facts"}
    assert questions <= set(vars(cls)) and "call" not in vars(cls)
    assert questions <= set(vars(ForecastReader))


def test_the_forecast_row_declares_a_column_for_every_target_model_and_default_level(monkeypatch) -> None:
    from typing import get_args

    from ray_app.config.forecast import ForecastTarget
    from serve_deployments.responses import ForecastRow, VsRealizedRow

    for key in [k for k in os.environ if k.startswith("RAY_APP_")]:
        monkeypatch.delenv(key)
    levels = load_settings().forecast.levels
    for target in get_args(ForecastTarget):
        wanted = {target, f"{target}_model"} | {f"{target}_{side}_{level}" for side in ("lo", "hi") for level in levels}
        assert wanted <= set(ForecastRow.model_fields), target
        assert f"actual_{target}" in VsRealizedRow.model_fields
