"""A webhook receiver on the loopback for Alertmanager's deliveries, and the session Alertmanager pointed at it (the
setting written, then a reload, as `ray-app stack up` does for an operator who changed it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import SecretStr

from ray_app.config import Settings


class Receiver:
    """Alertmanager's webhook deliveries, as they arrive (with the monotonic time each arrived)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[float, dict[str, Any]]] = []
        self.stack: Settings | None = None  # the stack's settings that deliver here (what `stack up` must be given)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.deliveries.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def alerts(self, status: str | None = None, **labels: str) -> list[tuple[float, dict[str, Any]]]:
        """Every delivered alert with these labels (and status), with when it arrived."""
        return [
            (at, alert)
            for at, delivery in list(self.deliveries)
            for alert in delivery.get("alerts", [])
            if (status is None or alert.get("status") == status)
            and all(alert.get("labels", {}).get(key) == value for key, value in labels.items())
        ]

    def wait_for(self, status: str, timeout_s: float, **labels: str) -> tuple[float, dict[str, Any]]:
        """The first delivered alert with this status and these labels: when it arrived, and the alert."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.alerts(status, **labels)
            if found:
                return found[0]
            time.sleep(0.5)
        raise AssertionError(f"no {status} alert {labels} within {timeout_s:.0f} s: {self.deliveries}")


@contextmanager
def webhook(stack: Settings) -> Iterator[Receiver]:
    """The session's Alertmanager delivering to a new receiver, with short group timings, for the block."""
    from ray_app.stack.alertmanager import AlertmanagerService

    listening = Receiver()
    am = stack.alertmanager.model_copy(
        update={"webhook_url": SecretStr(listening.url), "group_wait_s": 1, "group_interval_s": 5}
    )
    listening.stack = stack.model_copy(update={"alertmanager": am})
    try:
        AlertmanagerService(listening.stack).after_start()
        yield listening
    finally:
        AlertmanagerService(stack).after_start()
        listening.server.shutdown()


@contextmanager
def market_rules(stack: Settings, rules: list[dict[str, Any]]) -> Iterator[None]:
    """The session's Prometheus evaluating these market alerts (an edited ``alerts:`` and `ray-app stack up`)."""
    from ray_app.config.alerts import MarketAlertSettings
    from ray_app.stack.prometheus import PrometheusService

    edited = stack.model_copy(update={"alerts": MarketAlertSettings.model_validate({"rules": rules})})
    try:
        assert PrometheusService(edited).after_start()  # reloaded
        yield
    finally:
        PrometheusService(stack).after_start()
