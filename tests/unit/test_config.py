"""Settings: defaults, file and env precedence, masking, and fail-fast errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ray_app.config import ConfigError, load_settings
from ray_app.testing.stack import run_cli


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("RAY_APP_"):
            monkeypatch.delenv(key)


def test_defaults_hold_the_documented_topics_and_indices() -> None:
    settings = load_settings()
    assert [t.name for t in settings.kafka.topics.all()] == ["trades", "bars", "dead-letters", "quotes"]
    assert settings.elasticsearch.indices.by_key() == {
        "trades": "trades",
        "bars_1m": "bars-1m",
        "bars_1h": "bars-1h",
        "forecasts": "forecasts",
        "forecast_runs": "forecast-runs",
        "forecast_evaluations": "forecast-evaluations",
        "recommendations": "recommendations",
        "recommendation_outcomes": "recommendation-outcomes",
        "dead_letters": "dead-letters",
        "indicators_1m": "indicators-1m",
        "quotes": "quotes",
        "stream_status": "stream-status",
        "vendor_bars_1m": "vendor-bars-1m",
        "vendor_bars_1h": "vendor-bars-1h",
        "trade_aliases": "trade-aliases",
    }
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.elasticsearch.url == "http://127.0.0.1:9200"
    assert settings.ray.dashboard_url == "http://127.0.0.1:8265"


def test_file_is_deep_merged_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("kafka:\n  topics:\n    trades: {name: ticks, partitions: 12}\nsymbols: [AAPL]\n")
    settings = load_settings(config)
    assert settings.kafka.topics.trades.name == "ticks"
    assert settings.kafka.topics.trades.partitions == 12
    assert settings.kafka.topics.bars.name == "bars"  # untouched siblings keep their defaults
    assert settings.symbols == ["AAPL"]

    monkeypatch.setenv("RAY_APP_KAFKA__TOPICS__TRADES__PARTITIONS", "3")
    monkeypatch.setenv("RAY_APP_SYMBOLS", '["BTC/USD", "MSFT"]')
    settings = load_settings(config)
    assert settings.kafka.topics.trades.partitions == 3
    assert settings.kafka.topics.trades.name == "ticks"
    assert settings.symbols == ["BTC/USD", "MSFT"]


def test_config_file_from_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("elasticsearch:\n  url: http://es.internal:9201\n")
    monkeypatch.setenv("RAY_APP_CONFIG", str(config))
    assert load_settings().elasticsearch.url == "http://es.internal:9201"


@pytest.mark.parametrize(
    ("env", "key", "allowed"),
    [
        (
            {"RAY_APP_KAFKA__TOPICS__TRADES__PARTITIONS": "0"},
            "kafka.topics.trades.partitions",
            "greater than or equal to 1",
        ),
        ({"RAY_APP_ELASTICSEARCH__URL": "localhost"}, "elasticsearch.url", "http(s) URL"),
        ({"RAY_APP_KAFKA__BOOTSTRAP_SERVERS": "broker"}, "kafka.bootstrap_servers", "host:port"),
        ({"RAY_APP_STACK__KAFKA_HEAP": "lots"}, "stack.kafka_heap", "512m or 1g"),
        ({"RAY_APP_SYMBOLS": '["aapl"]'}, "symbols", "not ticker symbols"),
        ({"RAY_APP_KAFKA__SECURITY_PROTOCOL": "TLS"}, "kafka.security_protocol", "'PLAINTEXT', 'SSL'"),
        ({"RAY_APP_ELASTICSEARCH__INDICES__TRADES": "Trades"}, "elasticsearch.indices.trades", "lowercase"),
        ({"RAY_APP_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"}, "kafka", "needs sasl_mechanism"),
    ],
)
def test_bad_value_fails_naming_key_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], key: str, allowed: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"  {key}:" in message
    assert allowed in message


def test_unknown_key_in_file_is_a_typo_not_ignored(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("kafka:\n  bootstrap_server: 10.0.0.1:9092\n")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_server: is not a known setting"):
        load_settings(config)


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken)


def test_config_show_masks_secrets() -> None:
    result = run_cli(
        "config",
        "show",
        env={
            "RAY_APP_ELASTICSEARCH__USERNAME": "elastic",
            "RAY_APP_ELASTICSEARCH__PASSWORD": "hunter2-secret",
            "RAY_APP_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "RAY_APP_KAFKA__SASL_MECHANISM": "PLAIN",
            "RAY_APP_KAFKA__SASL_USERNAME": "svc",
            "RAY_APP_KAFKA__SASL_PASSWORD": "kafka-secret-value",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2-secret" not in result.stdout
    assert "kafka-secret-value" not in result.stdout
    assert result.stdout.count("'**********'") == 2
    assert "username: elastic" in result.stdout


def test_cli_bad_config_exits_2_with_the_key() -> None:
    result = run_cli("config", "show", env={"RAY_APP_KAFKA__TOPICS__BARS__PARTITIONS": "-4"})
    assert result.returncode == 2
    assert "kafka.topics.bars.partitions" in result.stderr
    assert "RAY_APP_KAFKA__TOPICS__BARS__PARTITIONS" in result.stderr
    assert "Traceback" not in result.stderr


def test_typed_test_overrides_become_the_variables_the_settings_read_back(monkeypatch, tmp_path) -> None:
    """ray_app.testing.settings: a nested override is the RAY_APP_* variable of that setting, lists as JSON."""
    from ray_app.testing.settings import settings_env

    env = settings_env(
        {
            "symbols": ["AAPL", "BTC/USD"],
            "state_dir": tmp_path,
            "stream": {"trigger_interval_s": 0.5, "checkpoint_dir": tmp_path / "cp"},
            "kafka": {"topics": {"trades": {"name": "trades-x"}}},
        }
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.symbols == ["AAPL", "BTC/USD"] and settings.stream.trigger_interval_s == 0.5
    assert settings.stream_checkpoint_dir == tmp_path / "cp" and settings.kafka.topics.trades.name == "trades-x"
    with pytest.raises(KeyError, match="chekpoint_dir"):
        settings_env({"stream": {"chekpoint_dir": tmp_path}})


def test_indicator_lengths_that_cannot_work_fail_naming_the_key(monkeypatch) -> None:
    monkeypatch.setenv("RAY_APP_INDICATORS__EMA_FAST", "40")
    with pytest.raises(ConfigError, match=r"indicators\.ema_slow: must be longer than indicators\.ema_fast \(40\)"):
        load_settings()


@pytest.mark.parametrize(
    ("yaml_text", "keys"),
    [
        ("alertmanager: {url: 'http://127.0.0.1:9093'}\n", ("stack.kafka_controller_ports.0", "alertmanager.url")),
        ("prometheus: {url: 'http://localhost:8265'}\n", ("ray.dashboard_port", "prometheus.url")),
        ("serve: {http_port: 9200}\n", ("serve.http_port", "elasticsearch.url")),
        (
            "stack: {elasticsearch_transport_port: 9092}\n",
            ("kafka.bootstrap_servers", "stack.elasticsearch_transport_port"),
        ),
    ],
)
def test_two_local_services_on_one_port_fail_at_start_naming_both_keys(
    tmp_path: Path, yaml_text: str, keys: tuple[str, str]
) -> None:
    config = tmp_path / "ports.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert all(key in str(caught.value) for key in keys) and "both use port" in str(caught.value)


def test_the_defaults_and_the_shipped_configs_use_each_port_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray_app.config import PROJECT_ROOT

    monkeypatch.setenv("RAY_APP_KAFKA__SASL_PASSWORD", "the-secret-comes-from-the-environment")
    for config in sorted((PROJECT_ROOT / "configs").glob("*.yaml")):
        if config.name != "serve.yaml":  # Ray Serve's own config file, not ours
            load_settings(config)
