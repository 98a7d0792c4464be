"""The pipeline's alerts (ray_app/alerts.py) through Prometheus's own tools: `promtool check rules` on the rule file
the local stack loads, and `promtool test rules` on each alert's test: quiet while healthy, firing (with its
severity, labels, summary and runbook) once broken long enough, resolved once healthy again."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from ray_app.alerts import ALERTS, grafana_alert_rules, market_alerts, rule_tests, rules_file
from ray_app.config import ConfigError, Settings, load_settings
from ray_app.metrics import METRICS


@pytest.fixture(scope="module")
def promtool() -> Path:
    from ray_app.stack.prometheus import prometheus_binary

    tool = prometheus_binary(load_settings()).parent / "promtool"  # Debian's package ships both
    if not tool.is_file():
        pytest.skip(f"no promtool beside {tool.parent}")
    return tool


def test_every_alert_has_a_summary_a_runbook_a_severity_and_reads_real_metrics() -> None:
    names = [alert.name for alert in ALERTS]
    assert len(names) == len(set(names)) >= 10
    known = {metric.promql_name(series) for metric in METRICS.values() for series in ("", "_bucket")}
    for alert in ALERTS:
        assert alert.summary and alert.runbook and alert.severity in {"page", "warning", "info"}, alert.name
        for series in alert.series:
            name = series.selector.split("{")[0]
            assert name in known or name.startswith("ray_serve_"), (alert.name, name)


def test_the_rule_file_passes_promtool_check(tmp_path: Path, promtool: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rules_file(load_settings()), sort_keys=False))
    checked = subprocess.run([str(promtool), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    market = len(load_settings().alerts.rules)
    assert f"SUCCESS: {len(ALERTS) + market} rules found" in checked.stdout


def test_each_alert_fires_when_broken_and_resolves_when_healthy(tmp_path: Path, promtool: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rules_file(load_settings()), sort_keys=False))
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump(rule_tests(str(rules)), sort_keys=False))
    tested = subprocess.run([str(promtool), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout[-6000:] + tested.stderr[-3000:]
    assert "SUCCESS" in tested.stdout


def test_alertmanager_routes_every_alert_to_the_webhook_and_its_config_passes_amtool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray_app.stack.alertmanager import PACKAGE, alertmanager_config
    from ray_app.stack.prometheus import debian_binary

    monkeypatch.setenv("RAY_APP_ALERTMANAGER__WEBHOOK_URL", "http://127.0.0.1:9/hooks/t0ken")
    settings = load_settings()
    config = alertmanager_config(settings)
    (receiver,) = config["receivers"]
    assert receiver["webhook_configs"] == [{"url": "http://127.0.0.1:9/hooks/t0ken", "send_resolved": True}]
    assert "t0ken" not in repr(settings.alertmanager)  # a secret: never in a repr, a log or a job's environment
    amtool = debian_binary(settings, PACKAGE, "prometheus-alertmanager", None, "alertmanager.binary").parent / "amtool"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    checked = subprocess.run([str(amtool), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr


def test_prometheus_loads_the_rules_and_sends_to_alertmanager(tmp_path: Path, promtool: Path) -> None:
    from ray_app.stack.prometheus import PrometheusService

    settings = load_settings()
    service = PrometheusService(settings)
    config = service.config()
    assert config["rule_files"] == [str(service.rules_path)]
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": [settings.alertmanager.url.removeprefix("http://")]}]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rules_file(load_settings()), sort_keys=False))
    file = tmp_path / "prometheus.yml"
    file.write_text(yaml.safe_dump({**config, "rule_files": [str(rules)]}, sort_keys=False))
    checked = subprocess.run([str(promtool), "check", "config", str(file)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# every kind of market alert, in several shapes (a symbol named or all, for, keep firing, windows, falls and rises)
MARKET_RULES = [
    {"name": "BtcAbove", "when": "price_above", "symbols": ["BTC/USD"], "value": 65000},
    {"name": "AaplBelow", "when": "price_below", "symbols": ["AAPL", "MSFT"], "value": 0.05, "for_s": 90},
    {"name": "UpFast", "when": "move_pct", "value": 2, "window_s": 900},
    {"name": "DownHard", "when": "move_pct", "value": -5, "window_s": 3600, "for_s": 300, "keep_firing_s": 600},
    {"name": "Hot", "when": "rsi_above", "value": 80, "for_s": 60, "severity": "warning"},
    {"name": "Cold", "when": "rsi_below", "value": 20, "symbols": ["MSFT"]},
    {"name": "Band", "when": "bollinger_break", "for_s": 120},
    {"name": "Flip", "when": "signal_change", "window_s": 7200, "for_s": 600, "severity": "page"},
    {"name": "Off", "when": "outside_forecast_80", "keep_firing_s": 1800},
]


def _with_rules(rules: list[dict]) -> Settings:
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "alerts.yaml"
        config.write_text(yaml.safe_dump({"symbols": ["AAPL", "MSFT", "BTC/USD"], "alerts": {"rules": rules}}))
        return load_settings(config)


def test_each_market_alert_kind_fires_when_its_condition_holds_and_resolves_after(
    tmp_path: Path, promtool: Path
) -> None:
    settings = _with_rules(MARKET_RULES)
    market = market_alerts(settings)
    assert [alert.name for alert in market] == [rule["name"] for rule in MARKET_RULES]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rules_file(settings), sort_keys=False))
    checked = subprocess.run([str(promtool), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump(rule_tests(str(rules), market), sort_keys=False))
    tested = subprocess.run([str(promtool), "test", "rules", str(tests)], capture_output=True, text=True, timeout=300)
    assert tested.returncode == 0, tested.stdout[-6000:] + tested.stderr[-3000:]


def test_a_market_alert_reads_only_the_symbols_it_names() -> None:
    by_name = {alert.name: alert for alert in market_alerts(_with_rules(MARKET_RULES))}
    assert 'symbol=~"BTC/USD"' in by_name["BtcAbove"].expr and "> 65000" in by_name["BtcAbove"].expr
    assert 'symbol=~"AAPL|MSFT"' in by_name["AaplBelow"].expr
    assert "symbol=~" not in by_name["UpFast"].expr and "offset 15m" in by_name["UpFast"].expr
    assert by_name["DownHard"].rule()["keep_firing_for"] == "600s" and "<= -5" in by_name["DownHard"].expr
    assert all(alert.rule()["labels"]["kind"] == "market" for alert in by_name.values())


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"name": "x", "when": "price_above"}, "needs a value"),
        ({"name": "x", "when": "bollinger_break", "value": 3}, "takes no value"),
        ({"name": "x", "when": "rsi_above", "value": 120}, "between 0 and 100"),
        ({"name": "x", "when": "price_below", "value": -1}, "positive"),
        ({"name": "x", "when": "move_pct", "value": 0}, "not 0"),
        ({"name": "x", "when": "move_pct", "value": -150}, "above -100"),
        ({"name": "x", "when": "signal_change", "window_s": 600, "for_s": 600}, "shorter than window_s"),
        ({"name": "x", "when": "price_above", "value": 1, "symbols": ["TSLA"]}, "alerts.rules.0.symbols"),
        ({"name": "bad name", "when": "bollinger_break"}, "alerts.rules.0.name"),
        ({"name": "x", "when": "crosses", "value": 1}, "alerts.rules.0.when"),
        ({"name": "x", "when": "bollinger_break", "every": 5}, "alerts.rules.0.every"),
    ],
)
def test_a_bad_market_alert_fails_at_start_naming_the_key(rule: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        _with_rules([rule])


def test_two_market_alerts_of_one_name_are_refused() -> None:
    rule = {"name": "Twice", "when": "bollinger_break"}
    with pytest.raises(ConfigError, match="Twice"):
        _with_rules([rule, rule])


def test_grafana_alert_provisioning_is_the_same_alerts_and_the_committed_file_is_current(
    tmp_path: Path, promtool: Path
) -> None:
    from ray_app.dashboards.build import GRAFANA_DIR, alerting_provisioning

    settings = _with_rules(MARKET_RULES)
    provisioned = grafana_alert_rules(settings, "ray-app-prometheus")
    rules = [rule for group in provisioned["groups"] for rule in group["rules"]]
    expected = [*ALERTS, *market_alerts(settings)]
    assert [rule["title"] for rule in rules] == [alert.name for alert in expected]
    uids = [rule["uid"] for rule in rules]
    assert len(set(uids)) == len(uids) and all(len(uid) <= 40 for uid in uids)
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "ray-app.yaml").read_text())
    prometheus = next(source["uid"] for source in datasources["datasources"] if source["type"] == "prometheus")
    for rule, alert in zip(rules, expected, strict=True):
        query, threshold = rule["data"]
        assert query["datasourceUid"] == "ray-app-prometheus" == prometheus and rule["condition"] == threshold["refId"]
        assert alert.expr in query["model"]["expr"] and threshold["model"]["expression"] == query["refId"]
        assert rule["for"] == f"{alert.for_s}s" and rule["labels"]["severity"] == alert.severity
    # every query Grafana would run is valid PromQL, by Prometheus's own parser
    as_rules = {
        "groups": [{"name": "g", "rules": [{"record": "q", "expr": r["data"][0]["model"]["expr"]} for r in rules]}]
    }
    path = tmp_path / "grafana-queries.yml"
    path.write_text(yaml.safe_dump(as_rules, sort_keys=False))
    checked = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    committed = GRAFANA_DIR / "provisioning" / "alerting" / "ray-app.yaml"
    assert committed.read_text() == alerting_provisioning(load_settings()), "run `ray-app dashboards build`"


def test_the_market_values_export_takes_every_reading_the_rules_read() -> None:
    from ray_app.live.market import export_market

    readings = {"price", "rsi", "bb_upper", "bb_lower", "signal", "forecast_lo_80", "forecast_hi_80"}
    read = {
        match
        for alert in market_alerts(_with_rules(MARKET_RULES))
        for match in re.findall(r'reading="(\w+)"', alert.expr)
    }
    assert read == readings
    export_market({"AAPL": dict.fromkeys(readings, 1.0)})  # not in Ray: records nothing, refuses no tag
    export_market(None)
