"""The live platform's logic without engines: the schedule's backoff and hours, the metrics table, the parts."""

from __future__ import annotations

import itertools

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
    started = as_of + pd.Timedelta(seconds=SETTLE_S)
    assert next_round_in_s(as_of, started, pd.Timestamp("2026-12-02T16:20Z"), 3600) == 40 * 60 + SETTLE_S
    late = pd.Timestamp("2026-12-02T18:05Z")
    assert next_round_in_s(as_of, started, late, 3600) == 1.0  # a round that ran late: at once


@pytest.mark.parametrize("every_s", [60, 61, 600, 1800, 3599, 3600, 3601, 5400, 7200, 86400])
def test_the_forecaster_never_spins_whatever_its_schedule(every_s: float) -> None:
    """Issue 33: below an hour, every round after the first found the hour's run complete, waited 1 s and scored
    every past run again. Over four simulated days of rounds that take 20 s each: at most one round per hourly
    cut-off, rounds no closer than ``every_s``, and as often as that allows."""
    now = pd.Timestamp("2026-12-02T16:01Z")
    starts = []
    while now < pd.Timestamp("2026-12-06T16:00Z"):
        starts.append(now)
        done = now + pd.Timedelta(seconds=20)
        now = done + pd.Timedelta(seconds=next_round_in_s(now.floor("h"), now, done, every_s))
    hours = [start.floor("h") for start in starts]
    assert len(hours) == len(set(hours))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= min(every_s, 3600) and min(gaps) >= 3600 - SETTLE_S
    assert max(gaps) <= max(every_s, 3600) + SETTLE_S + 20
    assert len(starts) >= 4 * 86400 / max(every_s, 3600) - 1


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


def test_status_and_down_carry_the_clusters_token_to_the_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 33: with `ray.auth_mode: token` (configs/cluster.yaml) `ray-app status` read Serve as unknown and `down`
    said "Serve shut down (HTTP 401)": their requests to the dashboard carried no token. A loopback server that
    answers 401 without the token, as Ray's dashboard does."""
    import http.server
    import json
    import threading

    from ray_app.config import load_settings
    from ray_app.operations.down import delete_serve_apps
    from ray_app.operations.status import serve_replicas

    token = "f" * 32
    seen: list[tuple[str, str | None]] = []

    class Dashboard(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append((self.command, self.headers.get("authorization")))
            ok = self.headers.get("authorization") == f"Bearer {token}"
            body = json.dumps({"applications": {}} if ok else {"error": "unauthorized"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dashboard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        monkeypatch.setenv("RAY_APP_RAY__AUTH_MODE", "token")
        monkeypatch.setenv("RAY_APP_RAY__DASHBOARD_URL", f"http://127.0.0.1:{server.server_port}")
        settings = load_settings()
        assert serve_replicas(settings) == ("NOT DEPLOYED", {})
        assert delete_serve_apps(settings) == 200
        assert seen == [("GET", f"Bearer {token}"), ("DELETE", f"Bearer {token}")]
    finally:
        server.shutdown()
        from ray._raylet import Config

        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        Config.initialize("")  # later tests in this process see the mode they set


@pytest.mark.parametrize("flush_timeout_s", [1, 30, 60, 120, 600])
def test_a_jobs_stop_grace_outlasts_the_ingest_flush_and_its_spill(
    monkeypatch: pytest.MonkeyPatch, flush_timeout_s: float
) -> None:
    """Issue 33: the producer's close flushed up to 60 s (ingest.flush_timeout_s) while the job's stop grace was 60 s:
    queued records could be killed before they reached the spill journal. The grace now covers the flush, the purge
    (5 s) and the journal's write, whatever the flush timeout."""
    from ray_app.config import load_settings
    from ray_app.ray_cluster import STOP_WAIT_ENV, stop_grace

    monkeypatch.setenv("RAY_APP_INGEST__FLUSH_TIMEOUT_S", str(flush_timeout_s))
    grace = float(stop_grace(load_settings())[STOP_WAIT_ENV])
    assert grace >= 60 and grace >= flush_timeout_s + 5 + 10


def test_a_source_that_cannot_be_read_leaves_its_gauges_absent_never_its_last_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 33: the monitor's gauges froze at their last healthy values when Kafka or Elasticsearch could not be read
    (read_health was all-or-nothing and the metrics keeper re-set every gauge's last value forever). Now a source
    that fails is named, its gauges stop being kept (absent in Prometheus), and source_up says 0."""
    from ray_app import metrics
    from ray_app.config import load_settings
    from ray_app.live import monitor

    sets: list[tuple[str, float, dict]] = []
    monkeypatch.setattr(metrics, "_metric", lambda name: type("M", (), {"set": lambda *a, **k: None})())
    monkeypatch.setattr(metrics, "_keep_gauges", lambda: None)
    real_set = metrics.set_gauge

    def recording(name: str, value: float, **tags: str) -> None:
        sets.append((name, value, tags))
        real_set(name, value, **tags)

    monkeypatch.setattr(metrics, "set_gauge", recording)
    metrics._gauges.clear()
    settings = load_settings()

    def healthy_kafka(_settings):
        return [monitor.TopicLag("records", "trades", 5)]

    class DeadElasticsearch:
        def search(self, **_):
            raise ConnectionError("connection refused")

    class Elasticsearch:
        def search(self, **_):
            return {"aggregations": {"symbols": {"buckets": [{"key": "AAPL", "newest": {"value": 1.0}}]}}}

    monkeypatch.setattr(monitor, "topic_lags", healthy_kafka)
    reasons: set[str] = set()
    good = monitor.read_health(settings, Elasticsearch())  # type: ignore[arg-type]
    assert good.unreadable == {}
    monitor.export(good, reasons)
    assert {key[0] for key in metrics._gauges} >= {"kafka_lag_messages", "newest_trade_age_seconds", "source_up"}

    bad = monitor.read_health(settings, DeadElasticsearch())  # type: ignore[arg-type]
    assert set(bad.unreadable) == {"elasticsearch"} and "connection refused" in bad.unreadable["elasticsearch"]
    assert bad.lags and bad.trade_age_s == {}  # Kafka still read; nothing from Elasticsearch, not its last values
    sets.clear()
    monitor.export(bad, reasons)
    kept = {key[0] for key in metrics._gauges}
    assert "newest_trade_age_seconds" not in kept and "dead_letters_recent" not in kept  # absent, not frozen
    assert "kafka_lag_messages" in kept
    assert ("source_up", 0, {"source": "elasticsearch"}) in sets and ("source_up", 1, {"source": "kafka"}) in sets

    def dead_kafka(_settings):
        raise RuntimeError("KafkaUnavailable: no broker answered")

    monkeypatch.setattr(monitor, "topic_lags", dead_kafka)
    both = monitor.read_health(settings, DeadElasticsearch())  # type: ignore[arg-type]
    monitor.export(both, reasons)
    assert set(both.unreadable) == {"kafka", "elasticsearch"}
    assert not {"kafka_lag_messages", "newest_trade_age_seconds"} & {key[0] for key in metrics._gauges}
    metrics._gauges.clear()
