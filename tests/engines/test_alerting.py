"""Alerts end to end on the real stack: a platform gauge recorded the way the monitor records it (ray.util.metrics in
a Ray worker) -> Prometheus scrapes it and evaluates the pipeline's rules (ray_app/alerts.py) -> Alertmanager groups
and delivers -> a webhook receiver on the loopback gets the alert, then its resolution."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from ray_app.config import Settings
from tests.support.alerting import Receiver, webhook

PROBE = "e2e-probe"  # a part name no real part has


@pytest.fixture(scope="module")
def receiver(stack: Settings) -> Iterator[Receiver]:
    with webhook(stack) as listening:
        yield listening


def test_the_stack_runs_alertmanager_and_prometheus_loaded_the_rules(stack: Settings) -> None:
    from ray_app.alerts import ALERTS, market_alerts

    assert httpx.get(f"{stack.alertmanager.url}/-/ready", timeout=10).status_code == 200
    groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == {alert.name for alert in (*ALERTS, *market_alerts(stack))}
    managers = httpx.get(f"{stack.prometheus.url}/api/v1/alertmanagers", timeout=10).json()["data"]
    assert [m["url"] for m in managers["activeAlertmanagers"]] == [f"{stack.alertmanager.url}/api/v2/alerts"]


def test_a_part_down_reaches_the_webhook_and_so_does_its_resolution(stack: Settings, receiver: Receiver) -> None:
    import ray

    from ray_app.ray_cluster import connect

    connect(stack)

    @ray.remote(num_cpus=0)
    class Monitor:
        """Records live_part_up as the monitor does (and keeps it, as the metrics keeper does)."""

        def set(self, value: float) -> None:
            from ray_app import metrics

            metrics.set_gauge("live_part_up", value, part=PROBE)

    monitor = Monitor.remote()  # type: ignore[attr-defined]
    try:
        ray.get(monitor.set.remote(1))
        time.sleep(10)
        began = time.monotonic()
        ray.get(monitor.set.remote(0))  # the part stopped
        arrived, firing = receiver.wait_for("firing", 300, part=PROBE)
        fired_after_s = arrived - began
        assert firing["labels"]["alertname"] == "LivePartDown" and firing["labels"]["severity"] == "page"
        assert PROBE in firing["annotations"]["summary"] and "ray-app live start" in firing["annotations"]["runbook"]
        assert 120 <= fired_after_s < 300  # `for: 120s`, then a scrape, an evaluation and the group wait
        ray.get(monitor.set.remote(1))  # running again
        _, resolved = receiver.wait_for("resolved", 180, part=PROBE)
        assert resolved["labels"]["alertname"] == "LivePartDown"
        firings = receiver.alerts("firing", part=PROBE)
        assert len({alert["startsAt"] for _, alert in firings}) == 1  # one alert, however many deliveries repeat it
    finally:
        ray.kill(monitor)
        ray.shutdown()  # later modules restart the stack's Ray head: this process must not hang on to it


def test_kafka_stopped_leaves_its_gauges_absent_and_the_unreachable_alert_fires_then_resolves(
    stack: Settings, receiver: Receiver
) -> None:
    """The monitor as a live part, Kafka's process stopped: the lag gauges vanish from Prometheus (never their last
    values), source_up{kafka} goes 0, KafkaUnreachable reaches the webhook; Kafka back: the alert resolves."""
    from ray_app.alerts import metric
    from ray_app.live.jobs import start_parts, stop_parts
    from ray_app.stack import manager
    from ray_app.stack.kafka import KafkaService
    from ray_app.stack.processes import stop_process
    from ray_app.testing.settings import module_settings
    from tests.support.prometheus import prometheus_value

    def wait(what: str, check, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(1)

    with module_settings(stack, "al", {"live": {"monitor_every_s": 1}}) as settings:
        lag = f'{metric("kafka_lag_messages")}{{topic="{settings.kafka.topics.trades.name}"}}'
        kafka_up = f'max({metric("source_up")}{{source="kafka"}})'
        try:
            start_parts(settings, None, ["monitor"])
            wait("the monitor's lag reading", lambda: prometheus_value(stack, lag) == 0)
            assert prometheus_value(stack, kafka_up) == 1
            assert receiver.stack is not None
            kafkas = [KafkaService(stack, node) for node in range(1, len(stack.kafka.bootstrap_servers.split(",")) + 1)]
            try:
                for kafka in kafkas:
                    stop_process(kafka.pid_file, stack.stack.stop_timeout_s)
                began = time.monotonic()
                wait("the lag gauge absent", lambda: prometheus_value(stack, lag) is None)
                assert prometheus_value(stack, kafka_up) == 0
                arrived, firing = receiver.wait_for("firing", 300, alertname="KafkaUnreachable")
                assert firing["labels"]["severity"] == "page" and 60 <= arrived - began < 300  # `for: 60s`
            finally:
                manager.up(receiver.stack)  # Kafka again (the settings that keep the receiver's Alertmanager route)
            _, resolved = receiver.wait_for("resolved", 240, alertname="KafkaUnreachable")
            assert resolved["labels"]["source"] == "kafka"
            wait("the lag reading back", lambda: prometheus_value(stack, lag) == 0)
        finally:
            stop_parts(settings, ["monitor"])
