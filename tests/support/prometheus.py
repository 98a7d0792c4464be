"""Reading the stack's Prometheus the way Grafana's panels do, for the tests of the metrics and dashboards."""

from __future__ import annotations

import time
from typing import Any

import httpx

from ray_app.config import Settings


def prometheus_range(settings: Settings, expr: str, minutes: float = 60) -> list[dict[str, Any]]:
    """``expr`` over the last ``minutes`` (step 15 s), as a time series panel asks for it: the series with points."""
    now = time.time()
    answer = httpx.get(
        f"{settings.prometheus.url}/api/v1/query_range",
        params={"query": expr, "start": now - minutes * 60, "end": now, "step": 15},
        timeout=30,
    )
    if answer.status_code != 200:
        raise AssertionError(f"Prometheus refused {expr!r}: {answer.text}")
    return [series for series in answer.json()["data"]["result"] if series["values"]]


def prometheus_value(settings: Settings, expr: str) -> float | None:
    """``expr`` now, as one number (None: no series)."""
    answer = httpx.get(f"{settings.prometheus.url}/api/v1/query", params={"query": expr}, timeout=30)
    if answer.status_code != 200:
        raise AssertionError(f"Prometheus refused {expr!r}: {answer.text}")
    result = answer.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_for_value(settings: Settings, expr: str, wanted: float, timeout_s: float = 60) -> float | None:
    """Poll until ``expr`` equals ``wanted`` (metrics reach Prometheus within an export and a scrape), then the
    last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = prometheus_value(settings, expr)
        if (value is not None and abs(value - wanted) <= 1e-6 * max(abs(wanted), 1)) or time.monotonic() > deadline:
            return value
        time.sleep(2)
