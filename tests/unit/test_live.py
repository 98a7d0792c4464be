"""The live platform's logic without engines: the schedule's backoff and hours, the metrics table, the parts."""

from __future__ import annotations

import pandas as pd
import pytest

from ray_app.live.parts import PART_NAMES, PARTS, STOP_ORDER
from ray_app.live.schedule import SETTLE_S, next_round_in_s, retry_delay_s
from ray_app.metrics import METRICS, Metric, _tags


def test_a_failed_round_backs_off_doubling_but_never_past_the_schedule() -> None:
    assert [retry_delay_s(n, 3600) for n in range(1, 6)] == [15, 30, 60, 120, 240]
    assert retry_delay_s(20, 3600) == 3600 and retry_delay_s(3, 20) == 20


def test_every_part_stops_once_and_the_sources_first() -> None:
    assert sorted(STOP_ORDER) == sorted(PART_NAMES) and len(set(PART_NAMES)) == len(PARTS) == 6
    assert STOP_ORDER[0] == "simulator" and STOP_ORDER[-1] == "stream"  # nothing new enters; the stream drains last
    assert all(part.command.startswith("python -m ray_app ") for part in PARTS)
    # every part runs a stage: a function of (settings, stop) that its import path names
    assert all(callable(part.stage()) for part in PARTS)


def test_metric_names_are_prometheus_names_and_tags_are_checked() -> None:
    import re

    for metric in METRICS.values():
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", metric.ray_name), metric.name
        assert metric.kind != "histogram" or list(metric.boundaries) == sorted(metric.boundaries)
    assert Metric("x", "counter", "").promql_name() == "ray_ray_app_x_total"
    assert Metric("x", "histogram", "").promql_name("_bucket") == "ray_ray_app_x_bucket"
    assert _tags("kafka_lag_messages", {"query": "records", "topic": "trades"}) == {
        "query": "records",
        "topic": "trades",
    }
    with pytest.raises(ValueError, match="takes the tags"):
        _tags("kafka_lag_messages", {"query": "records"})


def test_the_forecaster_waits_for_the_next_hour_and_its_last_bar() -> None:
    as_of = pd.Timestamp("2026-12-02T16:00Z")
    assert next_round_in_s(as_of, pd.Timestamp("2026-12-02T16:20Z"), 3600) == 40 * 60 + SETTLE_S
    assert next_round_in_s(as_of, pd.Timestamp("2026-12-02T18:05Z"), 3600) == 1.0  # a round that ran late: at once


def test_status_with_nothing_running_exits_1_naming_every_service_and_down_is_harmless(tmp_path) -> None:
    from ray_app.testing.stack import run_cli, stack_env

    env = stack_env(tmp_path / "state")  # free ports, nothing started there
    result = run_cli("status", env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    down = " ".join(result.stderr.split())
    for service in ("kafka", "elasticsearch", "ray", "prometheus"):
        assert f"stack: {service}" in down, down
    stopped = run_cli("down", env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for service in ("kafka", "elasticsearch", "ray", "prometheus"):
        assert f"down: {service} was not running" in stopped.stdout, stopped.stdout
