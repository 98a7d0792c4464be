"""The pipeline's alerts (ray_app/alerts.py) through Prometheus's own tools: `promtool check rules` on the rule file
the local stack loads, and `promtool test rules` on each alert's test: quiet while healthy, firing (with its
severity, labels, summary and runbook) once broken long enough, resolved once healthy again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ray_app.alerts import ALERTS, rule_tests, rules_file
from ray_app.config import load_settings
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
    rules.write_text(yaml.safe_dump(rules_file(), sort_keys=False))
    checked = subprocess.run([str(promtool), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_each_alert_fires_when_broken_and_resolves_when_healthy(tmp_path: Path, promtool: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rules_file(), sort_keys=False))
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

    service = PrometheusService(load_settings())
    config = service.config()
    assert config["rule_files"] == [str(service.rules_path)]
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["127.0.0.1:9093"]}]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rules_file(), sort_keys=False))
    file = tmp_path / "prometheus.yml"
    file.write_text(yaml.safe_dump({**config, "rule_files": [str(rules)]}, sort_keys=False))
    checked = subprocess.run([str(promtool), "check", "config", str(file)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
