"""The platform's own metrics, recorded with ``ray.util.metrics``: one table of names, kinds and labels.

A process connected to Ray (every live job, the stream driver, a forecast run) records them; each Ray node's
metrics agent exports them beside Ray's own, Prometheus finds the agents through Ray's service-discovery file
(``ray_app.stack.prometheus``), and Grafana's "Pipeline health" dashboard reads them. Ray prefixes every name
with ``ray_`` and gives counters a ``_total`` suffix: ``ingest_messages`` is ``ray_ray_app_ingest_messages_total``
in PromQL (``promql_name``). A process that is not connected to Ray records nothing (a CLI run by hand).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["counter", "gauge", "histogram"]
PREFIX = "ray_app_"
LATENCY_BOUNDARIES_S = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60]


@dataclass(frozen=True)
class Metric:
    name: str  # without PREFIX
    kind: Kind
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    @property
    def ray_name(self) -> str:
        return PREFIX + self.name

    def promql_name(self, series: str = "") -> str:
        """The name Prometheus holds: Ray's ``ray_`` prefix, counters ``_total``, histograms ``_bucket`` etc."""
        suffix = "_total" if self.kind == "counter" else series
        return f"ray_{self.ray_name}{suffix}"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("ingest_messages", "counter", "records the ingest delivered to Kafka", ("source", "topic")),
        Metric(
            "ingest_failures",
            "counter",
            "records the ingest could not deliver or turned into dead letters",
            ("source", "reason"),
        ),
        Metric(
            "stream_batch_duration_seconds",
            "gauge",
            "the last micro-batch's whole trigger, offsets to commit",
            ("query",),
        ),
        Metric("stream_batch_rows", "gauge", "records in the last micro-batch", ("query",)),
        Metric("stream_rows", "counter", "records the streaming job has written", ("query",)),
        Metric(
            "stream_indexed_latency_seconds",
            "histogram",
            "a batch's newest record: produced to Kafka -> indexed and searchable",
            ("query",),
            tuple(LATENCY_BOUNDARIES_S),
        ),
        Metric(
            "stream_refused_documents",
            "counter",
            "documents Elasticsearch refused (each became a dead letter)",
            ("query",),
        ),
        Metric(
            "kafka_lag_messages",
            "gauge",
            "messages in Kafka the streaming job has not committed yet",
            ("query", "topic"),
        ),
        Metric("newest_trade_age_seconds", "gauge", "age of the newest trade searchable in Elasticsearch", ("symbol",)),
        Metric(
            "live_part_up",
            "gauge",
            "1 while the live part's Ray job runs, 0 otherwise (the monitor's reading)",
            ("part",),
        ),
        Metric(
            "market_open",
            "gauge",
            "1 while the symbol's market is in session (crypto always; US stocks 04:00-20:00 New York on weekdays)",
            ("symbol",),
        ),
        Metric(
            "market_value",
            "gauge",
            "what the market alerts read, per symbol (ray_app/live/market.py): price, rsi, bb_upper, bb_lower, "
            "signal (sell -1, hold 0, buy 1), forecast_lo_80, forecast_hi_80",
            ("symbol", "reading"),
        ),
        Metric("stream_query_restarts", "counter", "times the streaming query failed and was restarted"),
        Metric(
            "forecast_last_run_timestamp_seconds",
            "gauge",
            "when the last forecast run of each status finished (Unix time)",
            ("status",),
        ),
        Metric(
            "source_up",
            "gauge",
            "1 when the monitor's last reading of the source succeeded, 0 when it failed (its readings absent)",
            ("source",),
        ),
        Metric(
            "source_last_success_timestamp_seconds",
            "gauge",
            "when the monitor last read the source (Unix time): time() minus it is the age of every reading from it",
            ("source",),
        ),
        Metric(
            "dead_letters_recent",
            "gauge",
            "dead letters indexed in the last live.dead_letter_window_s, by reason",
            ("reason",),
        ),
        Metric("forecast_run_duration_seconds", "gauge", "the last forecast run, start to finish", ("status",)),
        Metric(
            "forecast_symbol_duration_seconds",
            "gauge",
            "the last forecast of each symbol (read, fit, write)",
            ("symbol", "status"),
        ),
        Metric("forecast_runs", "counter", "forecast runs finished, by status", ("status",)),
        Metric("indicator_cycle_duration_seconds", "gauge", "the last indicators cycle over every symbol"),
        Metric("indicator_documents", "counter", "indicator documents written", ("symbol",)),
        Metric(
            "bar_parity_ratio",
            "gauge",
            "share of minutes whose bar equals the vendor's, per field (live.parity_window_s)",
            ("symbol", "field"),
        ),
        Metric(
            "bar_parity_minutes",
            "gauge",
            "minutes of our bars against the vendor's: compared, adjusted (a cancel or "
            "correction), only_ours, only_vendor",
            ("symbol", "kind"),
        ),
    ]
}

_made: dict[str, Any] = {}
_lock = threading.Lock()
# Ray's metrics agent forgets a gauge two export intervals after its last set (a dead worker's values age out); a
# gauge set once an hour (a forecast run) or once per batch (an idle stream) must stay visible, so each one's last
# value is set again every export interval while its process lives
_gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
_keeper: threading.Thread | None = None


def recording() -> bool:
    """Whether this process records metrics (it is connected to Ray)."""
    import ray

    return ray.is_initialized()


def _metric(name: str) -> Any | None:
    """The ray.util.metrics object for ``name``, made on first use; None when this process is not in Ray."""
    import ray

    if not ray.is_initialized():
        return None
    with _lock:
        if name not in _made:
            from ray.util import metrics as ray_metrics

            spec = METRICS[name]
            if spec.kind == "counter":
                _made[name] = ray_metrics.Counter(spec.ray_name, spec.description, tag_keys=spec.tags)
            elif spec.kind == "gauge":
                _made[name] = ray_metrics.Gauge(spec.ray_name, spec.description, tag_keys=spec.tags)
            else:
                _made[name] = ray_metrics.Histogram(
                    spec.ray_name, spec.description, boundaries=list(spec.boundaries), tag_keys=spec.tags
                )
        return _made[name]


def _tags(name: str, tags: dict[str, str]) -> dict[str, str]:
    wanted = METRICS[name].tags
    if set(tags) != set(wanted):
        raise ValueError(f"metric {name} takes the tags {wanted}, got {sorted(tags)}")
    return {key: str(value) for key, value in tags.items()}


def inc(name: str, value: float = 1.0, **tags: str) -> None:
    metric = _metric(name)
    if metric is not None and value > 0:
        metric.inc(value, tags=_tags(name, tags))


def start_at_zero(name: str, **tags: str) -> None:
    """A counter's series at 0 before its first event, as Prometheus advises for known labels: "no failures yet"
    is then a reading (a panel shows 0) rather than a missing series. Ray's ``inc`` refuses 0, so this records the
    point through the metric's own ``_record``, which ``inc`` calls."""
    metric = _metric(name)
    if metric is not None and METRICS[name].kind == "counter":
        metric._record(0.0, tags=_tags(name, tags))


def set_gauge(name: str, value: float, **tags: str) -> None:
    metric = _metric(name)
    if metric is None:
        return
    checked = _tags(name, tags)
    metric.set(value, tags=checked)
    with _lock:
        _gauges[(name, tuple(sorted(checked.items())))] = value
    _keep_gauges()


def forget_gauges(name: str) -> None:
    """Stop keeping every series of gauge ``name``: Ray's metrics agent drops them two export intervals later, so a
    reading that could not be made is absent in Prometheus, never its last good value held forever."""
    with _lock:
        for key in [key for key in _gauges if key[0] == name]:
            del _gauges[key]


def _keep_gauges() -> None:
    global _keeper
    with _lock:
        if _keeper is not None:
            return
        _keeper = threading.Thread(target=_refresh_gauges, name="ray-app-gauges", daemon=True)
    _keeper.start()


def _refresh_gauges() -> None:
    import ray

    every_s = max(ray._config.metrics_report_interval_ms(), 1000) / 2000
    while True:
        time.sleep(every_s)
        with _lock:
            kept = list(_gauges.items())
        for (name, tags), value in kept:
            metric = _metric(name)
            if metric is not None:
                metric.set(value, tags=dict(tags))


def observe(name: str, value: float, **tags: str) -> None:
    metric = _metric(name)
    if metric is not None:
        metric.observe(value, tags=_tags(name, tags))


def export_wait_s() -> float:
    """How long a value takes to leave this process for the node's metrics agent (Ray exports every
    ``metrics_report_interval_ms``, at least each second): a process that records once more and exits waits this
    long first, or its last values never reach Prometheus."""
    import ray

    if not ray.is_initialized():
        return 0.0
    return 2 * max(ray._config.metrics_report_interval_ms(), 1000) / 1000


def series_note() -> str:
    """A log line naming this process's series in Prometheus (Ray labels them with the process's WorkerId)."""
    import ray

    if not ray.is_initialized():
        return "metrics: not connected to Ray, nothing is recorded"
    return f"metrics: this process's series in Prometheus carry WorkerId={ray.get_runtime_context().get_worker_id()}"
