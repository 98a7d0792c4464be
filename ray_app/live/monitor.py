"""One reading of the pipeline's health: lag behind Kafka per query and topic, the newest trade's age per symbol,
dead letters of the last window by reason. `ray-app status` prints it; the monitor job (``run_monitor``) exports it
as gauges every ``live.monitor_every_s``, so Prometheus holds the same numbers the command shows; and every
``live.parity_every_s`` our minute bars against the vendor's over ``live.parity_window_s`` (``ray_app.bars.parity``,
what `ray-app bars parity` prints)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pandas as pd
from elasticsearch import Elasticsearch

from ray_app import metrics
from ray_app.config import Settings
from ray_app.lifecycle import LoopReport, StopFlag
from spark_jobs.control import TopicLag, topic_lags

LOG = logging.getLogger(__name__)
ALL_REASONS = "(all)"


# the sources a reading comes from, and the gauges each one feeds (absent while the source cannot be read)
SOURCE_GAUGES = {
    "kafka": ("kafka_lag_messages",),
    "elasticsearch": ("newest_trade_age_seconds", "dead_letters_recent"),
}


@dataclass(frozen=True)
class Health:
    lags: list[TopicLag]
    trade_age_s: dict[str, float | None]  # symbol -> seconds since its newest searchable trade (None: none yet)
    dead_letters: dict[str, int]  # reason -> dead letters indexed in the window
    window_s: float
    unreadable: dict[str, str] = field(default_factory=dict)  # source -> why it could not be read this time


def newest_trade_ages(settings: Settings, es: Elasticsearch) -> dict[str, float | None]:
    answer = es.search(
        index=settings.elasticsearch.indices.trades,
        size=0,
        ignore_unavailable=True,
        aggs={
            "symbols": {
                "terms": {"field": "symbol", "size": max(len(settings.symbols), 1) * 2},
                "aggs": {"newest": {"max": {"field": "timestamp"}}},
            },
        },
    )
    now = time.time()
    ages: dict[str, float | None] = dict.fromkeys(settings.symbols)
    for bucket in answer.get("aggregations", {}).get("symbols", {}).get("buckets", []):  # none: no index yet
        if bucket["key"] in ages and bucket["newest"]["value"] is not None:
            # a trade stamped a moment ahead of this clock counts as new, not as a negative age
            ages[bucket["key"]] = round(max(now - bucket["newest"]["value"] / 1000, 0.0), 1)
    return ages


def recent_dead_letters(settings: Settings, es: Elasticsearch, window_s: float) -> dict[str, int]:
    answer = es.search(
        index=settings.elasticsearch.indices.dead_letters,
        size=0,
        ignore_unavailable=True,
        query={"range": {"timestamp": {"gte": f"now-{int(window_s)}s"}}},
        aggs={"reasons": {"terms": {"field": "reason", "size": 100}}},
    )
    buckets = answer.get("aggregations", {}).get("reasons", {}).get("buckets", [])  # none: no index yet
    return {bucket["key"]: bucket["doc_count"] for bucket in buckets}


def read_health(settings: Settings, es: Elasticsearch) -> Health:
    """One reading, source by source: a source that cannot be read is named in ``unreadable`` (with why) and gives
    no values, never its last ones; the other sources are still read."""
    window = settings.live.dead_letter_window_s
    unreadable: dict[str, str] = {}
    lags: list[TopicLag] = []
    ages: dict[str, float | None] = {}
    dead: dict[str, int] = {}
    try:
        lags = topic_lags(settings)
    except Exception as exc:  # any failure of a reading is reported, whatever the client raised
        unreadable["kafka"] = f"{type(exc).__name__}: {exc}"
    try:
        ages = newest_trade_ages(settings, es)
        dead = recent_dead_letters(settings, es, window)
    except Exception as exc:
        unreadable["elasticsearch"] = f"{type(exc).__name__}: {exc}"
    return Health(lags, ages, dead, window, unreadable)


def export(health: Health, reasons_seen: set[str]) -> None:
    """The reading as gauges. A source that could not be read: its gauges are dropped (absent in Prometheus a few
    seconds later, so panels show the gap and alerts fire), ``source_up`` 0; read: ``source_up`` 1 and
    ``source_last_success_timestamp_seconds`` now. A reason seen before and absent now is set to 0 rather than left
    at its old value."""
    for source, gauges in SOURCE_GAUGES.items():
        if source in health.unreadable:
            for name in gauges:
                metrics.forget_gauges(name)
            metrics.set_gauge("source_up", 0, source=source)
        else:
            metrics.set_gauge("source_up", 1, source=source)
            metrics.set_gauge("source_last_success_timestamp_seconds", time.time(), source=source)
    for lag in health.lags:
        if lag.messages is not None:
            metrics.set_gauge("kafka_lag_messages", lag.messages, query=lag.query, topic=lag.topic)
    if "elasticsearch" in health.unreadable:
        return
    for symbol, age in health.trade_age_s.items():
        if age is not None:
            metrics.set_gauge("newest_trade_age_seconds", age, symbol=symbol)
    reasons_seen.update(health.dead_letters)
    for reason in reasons_seen:
        metrics.set_gauge("dead_letters_recent", health.dead_letters.get(reason, 0), reason=reason)
    # every reason together, so "none in the last hour" is a 0 on the panel rather than no data
    metrics.set_gauge("dead_letters_recent", sum(health.dead_letters.values()), reason=ALL_REASONS)


def export_parts_and_sessions(settings: Settings) -> None:
    """Whether each live part's job runs, and whether each symbol's market is in session, as gauges (what the
    pipeline alerts read: a part down; no fresh trade while its market is open)."""
    from ray_app.forecast.calendar import market_of
    from ray_app.live.jobs import is_running, job_states

    for part, job in job_states(settings).items():
        if job is not None:  # a part never submitted is not down: this deployment does not run it
            metrics.set_gauge("live_part_up", 1 if is_running(job) else 0, part=part)
    now = pd.DatetimeIndex([pd.Timestamp.now(tz="UTC").floor("h")])
    for symbol in settings.symbols:
        metrics.set_gauge("market_open", int(bool(market_of(symbol).in_session(now)[0])), symbol=symbol)


def export_parity(settings: Settings, es: Elasticsearch) -> None:
    """Our minute bars against the vendor's over the last ``live.parity_window_s``, as gauges."""
    from ray_app.bars.parity import FIELDS, parity

    end = int(time.time())
    for symbol, result in parity(es, settings, settings.symbols, end - int(settings.live.parity_window_s), end).items():
        for kind in ("compared", "adjusted", "only_ours", "only_vendor"):
            metrics.set_gauge("bar_parity_minutes", getattr(result, kind), symbol=symbol, kind=kind)
        for name in FIELDS:
            share = result.share(name)
            if share is not None:
                metrics.set_gauge("bar_parity_ratio", share, symbol=symbol, field=name)


def run_monitor(settings: Settings, stop: StopFlag) -> LoopReport:
    """Export a reading every ``live.monitor_every_s`` (and parity every ``live.parity_every_s``) until stopped; a
    failed reading is logged and retried."""
    from ray_app.es_indices import es_client
    from ray_app.live.market import export_market, read_market

    es = es_client(settings)
    reasons: set[str] = set()
    parity_due = 0.0
    report = LoopReport("monitor")
    while not stop.is_set():
        report.rounds += 1
        health = Health([], {}, {}, settings.live.dead_letter_window_s, {"elasticsearch": "not read"})
        try:
            health = read_health(settings, es)
            export(health, reasons)
            for source, why in health.unreadable.items():
                report.failures += 1
                LOG.warning("monitor: %s could not be read (its gauges are absent until it can): %s", source, why)
        except Exception as exc:  # the export itself: the next reading tries again
            report.failures += 1
            LOG.warning("monitor: this reading failed: %s", exc)
        try:  # the market alerts' values: absent while Elasticsearch cannot be read
            export_market(None if "elasticsearch" in health.unreadable else read_market(settings, es))
        except Exception as exc:
            report.failures += 1
            export_market(None)
            LOG.warning("monitor: the market values could not be read (their gauges are absent): %s", exc)
        try:
            export_parts_and_sessions(settings)
            metrics.set_gauge("source_up", 1, source="ray")
            metrics.set_gauge("source_last_success_timestamp_seconds", time.time(), source="ray")
        except Exception as exc:  # Ray's job API away: no reading of the parts, not their last one
            metrics.forget_gauges("live_part_up")
            metrics.set_gauge("source_up", 0, source="ray")
            LOG.warning("monitor: the live parts could not be read (Ray's job API): %s", exc)
        if time.monotonic() >= parity_due:
            parity_due = time.monotonic() + settings.live.parity_every_s
            try:
                export_parity(settings, es)
            except Exception as exc:
                LOG.warning("monitor: the parity reading failed: %s", exc)
        stop.wait(settings.live.monitor_every_s)
    return report
