"""Alerts end to end on the real stack: a platform gauge recorded the way the monitor records it (ray.util.metrics in
a Ray worker) -> Prometheus scrapes it and evaluates the pipeline's rules (ray_app/alerts.py) -> Alertmanager groups
and delivers -> a webhook receiver on the loopback gets the alert, then its resolution."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from ray_app.config import Settings

PROBE = "e2e-probe"  # a part name no real part has


class Receiver:
    """Alertmanager's webhook deliveries, as they arrive."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.deliveries.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def wait_for(self, status: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for delivery in self.deliveries:
                for alert in delivery.get("alerts", []):
                    labels = alert.get("labels", {})
                    if labels.get("part") == PROBE and alert.get("status") == status:
                        return alert
            time.sleep(1)
        raise AssertionError(f"no {status} LivePartDown for {PROBE} within {timeout_s:.0f} s: {self.deliveries}")


@pytest.fixture(scope="module")
def receiver(stack: Settings) -> Iterator[Receiver]:
    """The session's Alertmanager pointed at a receiver of this module (the setting written, then a reload, as an
    operator changes it), with short group timings."""
    from ray_app.stack.alertmanager import AlertmanagerService, alertmanager_config

    listening = Receiver()
    am = stack.alertmanager.model_copy(
        update={"webhook_url": SecretStr(listening.url), "group_wait_s": 1, "group_interval_s": 5}
    )
    service = AlertmanagerService(stack.model_copy(update={"alertmanager": am}))
    path = service.config_dir / "alertmanager.yml"
    original = path.read_text()
    path.write_text(yaml.safe_dump(alertmanager_config(service.settings), sort_keys=False))
    assert httpx.post(f"{stack.alertmanager.url}/-/reload", timeout=30).status_code == 200
    try:
        yield listening
    finally:
        path.write_text(original)
        httpx.post(f"{stack.alertmanager.url}/-/reload", timeout=30)
        listening.server.shutdown()


def test_the_stack_runs_alertmanager_and_prometheus_loaded_the_rules(stack: Settings) -> None:
    from ray_app.alerts import ALERTS

    assert httpx.get(f"{stack.alertmanager.url}/-/ready", timeout=10).status_code == 200
    groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {rule["name"] for group in groups for rule in group["rules"]} == {alert.name for alert in ALERTS}
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
        firing = receiver.wait_for("firing", timeout_s=300)
        fired_after_s = time.monotonic() - began
        assert firing["labels"]["alertname"] == "LivePartDown" and firing["labels"]["severity"] == "page"
        assert PROBE in firing["annotations"]["summary"] and "ray-app live start" in firing["annotations"]["runbook"]
        assert 120 <= fired_after_s < 300  # `for: 120s`, then a scrape, an evaluation and the group wait
        ray.get(monitor.set.remote(1))  # running again
        resolved = receiver.wait_for("resolved", timeout_s=180)
        assert resolved["labels"]["alertname"] == "LivePartDown"
        firings = [
            alert
            for delivery in receiver.deliveries
            for alert in delivery["alerts"]
            if alert["labels"].get("part") == PROBE and alert["status"] == "firing"
        ]
        assert len({alert["startsAt"] for alert in firings}) == 1  # one alert, however many deliveries repeat it
    finally:
        ray.kill(monitor)
        ray.shutdown()  # later modules restart the stack's Ray head: this process must not hang on to it
