"""The live platform on the real engines: every part a Ray job, as `make run` leaves it, then its numbers.

One story in order: the six parts are submitted (simulator, stream, indicators, forecaster, recommender, monitor)
and a second start submits nothing; `ray-app status` shows them and exits 1 naming exactly what is down (no Serve
app here, and one day of history is too short for a forecast); the simulator is stopped and its count of messages is
in Prometheus exactly; the indicators job's values equal TA-Lib's on the bars the stream wrote; the stream's, the
monitor's and the forecaster's metrics in Prometheus equal what the stream's status, Elasticsearch, forecast-runs say;
every Pipeline-health panel's PromQL returns data (Serve's: tests/engines/test_serve.py); a price crossing a level
reaches a webhook as one market alert and resolves; every Grafana alert query runs; the stream stopped reaches the
webhook as LivePartDown and its restart resolves it; the parts stop sources first.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from confluent_kafka import Producer

from ray_app.config import Settings
from ray_app.es_indices import es_client
from ray_app.kafka_clients import producer_config
from ray_app.live.jobs import Started, part_jobs, start_parts, stop_parts
from ray_app.live.parts import PART_NAMES
from ray_app.metrics import METRICS
from ray_app.ray_cluster import job_client as jobs_client
from ray_app.testing.settings import module_settings
from ray_app.testing.stack import free_ports, run_cli
from tests.support.alerting import market_rules, webhook
from tests.support.prometheus import prometheus_range, prometheus_value, wait_for_value

SYMBOL = "BTC/USD"
TIMEOUT_S = 240


def metric(name: str, series: str = "") -> str:
    return METRICS[name].promql_name(series)


def worker_of(settings: Settings, submission_id: str) -> str:
    """The WorkerId label of a job driver's series, from the line it logs at start (ray_app.metrics.series_note)."""
    logs = jobs_client(settings).get_job_logs(submission_id)
    found = re.search(r"series in Prometheus carry WorkerId=(\w+)", logs)
    assert found, logs[-2000:]
    return found.group(1)


def part_id(started: list[Started], part: str) -> str:
    return next(item.submission_id for item in started if item.part == part)


@pytest.fixture(scope="module")
def settings(stack: Settings, stack_dir: Path) -> Iterator[Settings]:
    (serve_port,) = free_ports(1)
    overrides = {
        "symbols": [SYMBOL],
        "stream": {"trigger_interval_s": 0.5},
        "simulator": {"history_days": 1, "trades_per_minute": 20},
        "indicators": {"interval_s": 1},
        "live": {"monitor_every_s": 1, "recommend_every_s": 10, "parity_every_s": 10},
        "serve": {"http_port": serve_port},  # nothing listens: the recommender's rounds fail and back off
    }
    topics = ("trades", "bars", "dead_letters", "quotes", "simulator_progress")
    with module_settings(stack, "lv", overrides, create=False, topics=topics) as settings:
        try:
            yield settings
        finally:
            stop_parts(settings)


def _count(settings: Settings, index: str) -> int:
    es = es_client(settings)
    es.indices.refresh(index=index, ignore_unavailable=True)
    return es.count(index=index)["count"] if es.indices.exists(index=index) else 0


def _wait(what: str, check, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


@pytest.fixture(scope="module")
def started(settings: Settings) -> list[Started]:
    result = start_parts(settings, None)
    jobs = jobs_client(settings)
    indices = settings.elasticsearch.indices

    def all_running() -> bool:
        current = part_jobs(jobs)
        return all(listed and listed[0].status.value == "RUNNING" for listed in current.values())

    _wait("every part running", all_running)
    _wait("the stream's trades in Elasticsearch", lambda: _count(settings, indices.trades) > 1000)
    _wait("the indicators job's documents", lambda: _count(settings, indices.indicators_1m) > 100)
    return result


def test_every_part_runs_as_a_ray_job_and_starting_again_doubles_nothing(
    settings: Settings, started: list[Started]
) -> None:
    assert [item.part for item in started] == PART_NAMES and all(item.submitted for item in started)
    again = start_parts(settings, None)
    assert not any(item.submitted for item in again)
    assert [item.submission_id for item in again] == [item.submission_id for item in started]
    current = part_jobs(jobs_client(settings))
    # one running job per part, the one started here (jobs that ended before, e.g. other modules' streams, aside)
    running = {
        name: [job.submission_id for job in listed if job.status.value in {"PENDING", "RUNNING"}]
        for name, listed in current.items()
    }
    assert running == {item.part: [item.submission_id] for item in started}
    assert all((job.metadata or {}).get("ray_app") == name for name, listed in current.items() for job in listed)


def test_status_shows_every_part_and_exits_1_naming_exactly_what_is_down(
    settings: Settings, started: list[Started]
) -> None:
    result = run_cli("status", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    for item in started:
        assert re.search(rf"{item.part}\s+.*{item.submission_id}.*RUNNING", result.stdout), item.part
    assert "behind Kafka" in result.stdout and "newest trade searchable" in result.stdout
    down = result.stderr.replace("\n", " ")
    assert "serve: NOT DEPLOYED" in down and "forecast: no complete run" in down, down
    assert "job:" not in down and "stack:" not in down and "flow:" not in down, down


def test_the_simulators_count_reaches_prometheus_exactly(settings: Settings, started: list[Started]) -> None:
    jobs = jobs_client(settings)
    (simulator,) = [item.submission_id for item in started if item.part == "simulator"]
    assert stop_parts(settings, ["simulator"]) == [simulator]
    assert jobs.get_job_status(simulator).value == "STOPPED"
    line = next(line for line in jobs.get_job_logs(simulator).splitlines() if line.startswith("ingest simulate:"))
    delivered = int(re.search(r"([\d,]+) delivered", line).group(1).replace(",", ""))
    assert delivered > 1000, line
    worker = worker_of(settings, simulator)
    # the job has ended: its series' last values (a process gone from the scrape is stale, not zero); a series per
    # topic (trades with their cancels and corrections, quotes), together what the job delivered
    expr = f'sum(max_over_time({metric("ingest_messages")}{{WorkerId="{worker}"}}[10m]))'
    assert wait_for_value(settings, expr, delivered) == delivered, line
    trades = int(re.search(r"([\d,]+)\s+trades", line).group(1).replace(",", ""))
    topic = f'topic="{settings.kafka.topics.quotes.name}", WorkerId="{worker}"'
    quotes = prometheus_value(settings, f"sum(max_over_time({metric('ingest_messages')}{{{topic}}}[10m]))")
    assert quotes is not None and 0 < trades <= quotes  # the simulator's quotes: 1.5 a trade on average


def _stream_idle(settings: Settings) -> None:
    """Wait until the stream has every message and the indicators job every bar (nothing new arrives)."""
    from spark_jobs.control import topic_lags

    _wait("the stream caught up", lambda: all(lag.messages == 0 for lag in topic_lags(settings)))
    indices = settings.elasticsearch.indices
    _wait(
        "an indicator document per bar",
        lambda: _count(settings, indices.indicators_1m) == _count(settings, indices.bars_1m),
    )


def test_indicators_equal_talib_on_the_bars_the_stream_wrote(settings: Settings, started: list[Started]) -> None:
    import talib

    _stream_idle(settings)
    time.sleep(3)  # a cycle after the last bar: nothing left to rewrite
    es = es_client(settings)
    indices = settings.elasticsearch.indices

    def every(index: str) -> list[dict]:
        hits = es.search(index=index, query={"term": {"symbol": SYMBOL}}, sort=[{"timestamp": "asc"}], size=10_000)
        return [hit["_source"] for hit in hits["hits"]["hits"]]

    bars, docs = every(indices.bars_1m), every(indices.indicators_1m)
    assert len(bars) > 100 and [d["timestamp"] for d in docs] == [b["timestamp"] for b in bars]
    closes = np.array([bar["close"] for bar in bars])
    assert [d["close"] for d in docs] == list(closes) and [d["high"] for d in docs] == [b["high"] for b in bars]
    macd, signal, histogram = talib.MACD(closes, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(closes, 20, 2, 2)
    reference = {
        "rsi": talib.RSI(closes, 14),
        "ema_fast": talib.EMA(closes, 12),
        "ema_slow": talib.EMA(closes, 26),
        "macd": macd,
        "macd_signal": signal,
        "macd_histogram": histogram,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
    }
    for column, values in reference.items():
        ours = np.array([doc.get(column, np.nan) for doc in docs], dtype=float)
        assert np.array_equal(np.isnan(ours), np.isnan(values)), column
        np.testing.assert_allclose(ours, values, rtol=1e-9, atol=1e-6, err_msg=column)


def test_the_trading_dashboards_indicator_panels_read_what_the_job_wrote(
    settings: Settings, started: list[Started]
) -> None:
    """Bollinger and EMAs over the candles, RSI, MACD: each panel's search, as Grafana sends it, has its fields."""
    import pandas as pd

    from ray_app.dashboards.build import GRAFANA_DIR, es_sources
    from ray_app.dashboards.es_query import es_panels, search_for

    es = es_client(settings)
    sources = es_sources(settings)
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "trading.json").read_text())
    end = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5)
    index = settings.elasticsearch.indices.indicators_1m
    panels = [p for p in es_panels(dashboard) if sources[p["datasource"]["uid"]]["index"] == index]
    assert {p["title"].split(" ")[0] for p in panels} == {"Bollinger", "RSI", "MACD"}
    for panel in panels:
        for target in panel["targets"]:
            search = search_for(target, "timestamp", end - pd.Timedelta(hours=3), end, {"symbol": SYMBOL})
            result = es.search(index=index, body=search.body)
            if search.raw:
                hits = [hit["_source"] for hit in result["hits"]["hits"]]
                shown = set(panel["transformations"][0]["options"]["include"]["names"])
                assert hits and shown <= set(hits[0]), (panel["title"], shown - set(hits[0]))
                assert set(panel["options"]["fields"].values()) <= shown
                continue
            buckets = result["aggregations"][target["bucketAggs"][0]["id"]]["buckets"]
            for metric_id in search.reads:
                assert any(bucket[metric_id]["value"] is not None for bucket in buckets), (panel["title"], metric_id)


def test_the_streams_metrics_are_its_status(settings: Settings, started: list[Started]) -> None:
    from spark_jobs.status import read_status

    _stream_idle(settings)
    status = read_status(settings)
    assert status is not None and status.submission_id == part_id(started, "stream")
    job = f'{{WorkerId="{worker_of(settings, status.submission_id)}", query="records"}}'
    records = status.queries["records"]
    assert wait_for_value(settings, f"sum({metric('stream_rows')}{job})", records.rows) == records.rows
    # the last batch's numbers are the newest ones the driver wrote; an idle trigger writes no batch
    assert (
        wait_for_value(settings, f"max({metric('stream_batch_rows')}{job})", records.last_batch_rows)
        == records.last_batch_rows
    )
    assert wait_for_value(
        settings, f"max({metric('stream_batch_duration_seconds')}{job})", records.last_batch_seconds
    ) == pytest.approx(records.last_batch_seconds)
    batches = prometheus_value(settings, f"sum({metric('stream_indexed_latency_seconds', '_count')}{job})")
    assert batches is not None and 0 < batches <= records.batches


def test_the_monitors_gauges_are_what_status_reads(settings: Settings, started: list[Started]) -> None:
    from ray_app.live.monitor import read_health

    bad = Producer(producer_config(settings))
    for raw in (b"not json", b'{"symbol": "BTC/USD"}', b"[1, 2"):
        bad.produce(settings.kafka.topics.trades.name, value=raw, key=SYMBOL.encode())
    assert bad.flush(30) == 0
    _stream_idle(settings)
    es = es_client(settings)
    _wait("the dead letters indexed", lambda: sum(read_health(settings, es).dead_letters.values()) >= 3)
    health = read_health(settings, es_client(settings))
    worker = worker_of(settings, part_id(started, "monitor"))
    from ray_app.live.monitor import ALL_REASONS

    for reason, count in {**health.dead_letters, ALL_REASONS: sum(health.dead_letters.values())}.items():
        expr = f'max({metric("dead_letters_recent")}{{reason="{reason}", WorkerId="{worker}"}})'
        assert wait_for_value(settings, expr, count) == count, reason
    for lag in health.lags:
        where = f'query="{lag.query}", topic="{lag.topic}", WorkerId="{worker}"'
        expr = f"max({metric('kafka_lag_messages')}{{{where}}})"
        assert lag.messages == 0 and wait_for_value(settings, expr, 0) == 0, lag
    where = f'symbol="{SYMBOL}", WorkerId="{worker}"'
    age = prometheus_value(settings, f"max({metric('newest_trade_age_seconds')}{{{where}}})")
    now_age = read_health(settings, es_client(settings)).trade_age_s[SYMBOL]
    assert age is not None and now_age is not None and 0 <= now_age - age <= 30  # the gauge lags by one export


def test_the_forecasters_metrics_are_its_run(settings: Settings, started: list[Started]) -> None:
    from ray_app.forecast import store
    from ray_app.forecast.runner import cut_off

    es = es_client(settings)
    run_id = store.run_id_for(settings, cut_off(), list(settings.symbols))
    index = settings.elasticsearch.indices.forecast_runs

    def finished() -> bool:
        found = es.options(ignore_status=404).get(index=index, id=run_id)
        return bool(found.get("found")) and "finished_at" in found["_source"]

    _wait("the forecaster's run", finished)
    run = es.get(index=index, id=run_id)["_source"]
    worker = worker_of(settings, part_id(started, "forecaster"))
    expr = f'max({metric("forecast_run_duration_seconds")}{{status="{run["status"]}", WorkerId="{worker}"}})'
    assert wait_for_value(settings, expr, run["duration_s"]) == pytest.approx(run["duration_s"])
    symbol = es.get(index=index, id=f"{run_id}|{SYMBOL}")["_source"]
    expr = f'max({metric("forecast_symbol_duration_seconds")}{{symbol="{SYMBOL}", WorkerId="{worker}"}})'
    assert wait_for_value(settings, expr, symbol["duration_s"]) == pytest.approx(symbol["duration_s"])
    runs = prometheus_value(settings, f'sum({metric("forecast_runs")}{{WorkerId="{worker}"}})')
    assert runs == 1  # one round: the run of this hour


def _vendor_bars_like_ours(settings: Settings, count: int = 20) -> None:
    """Alpaca's minute bars for some of the minutes the stream has built (the simulator sends none), on the bars
    topic as the live ingest sends them: the monitor then has minutes to compare for the parity panels."""
    from confluent_kafka import Producer

    from ray_app.kafka_clients import producer_config
    from ray_app.schemas import Bar, Source
    from ray_app.times import parse_seconds

    es = es_client(settings)
    index = settings.elasticsearch.indices.bars_1m
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=count, sort=[{"timestamp": "desc"}])["hits"]["hits"]
    producer = Producer(producer_config(settings))
    for hit in hits:
        bar = hit["_source"]
        record = Bar(
            symbol=bar["symbol"],
            timestamp_ns=parse_seconds(bar["timestamp"]) * 10**9,
            timeframe="1Min",
            open=bar["open"],
            high=bar["high"],
            low=bar["low"],
            close=bar["close"],
            volume=bar["volume"],
            trade_count=bar["trade_count"],
            vwap=bar["vwap"],
            source=Source.ALPACA_STREAM,
        )
        producer.produce(settings.kafka.topics.bars.name, key=record.symbol.encode(), value=record.to_json())
    assert producer.flush(30) == 0 and hits


def test_every_pipeline_health_panel_but_serves_returns_data(settings: Settings, started: list[Started]) -> None:
    from ray_app.dashboards.build import GRAFANA_DIR, prometheus_panels

    _vendor_bars_like_ours(settings)
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "pipeline-health.json").read_text())
    for panel in prometheus_panels(dashboard):
        if panel["title"].startswith("Serve:"):
            continue  # tests/engines/test_serve.py, where a Serve app answers
        for target in panel["targets"]:
            deadline = time.monotonic() + 60
            while not (series := prometheus_range(settings, target["expr"], minutes=30)):
                assert time.monotonic() < deadline, (panel["title"], target["expr"])
                time.sleep(3)
            assert any(value != "NaN" for item in series for _, value in item["values"]), panel["title"]


def _print(settings: Settings, price: float) -> None:
    """One trade of SYMBOL at ``price``, now, on the trades topic as the ingest sends it."""
    from ray_app.schemas import Source, Trade

    now = time.time_ns()
    trade = Trade(
        symbol=SYMBOL,
        timestamp_ns=now,
        source=Source.SIMULATOR,
        price=price,
        size=0.5,
        trade_id=f"alert-{now}",
        exchange="CBSE",
        taker_side="B",
    )
    producer = Producer(producer_config(settings))
    producer.produce(settings.kafka.topics.trades.name, key=SYMBOL.encode(), value=trade.to_json())
    assert producer.flush(30) == 0


def test_a_price_crossing_a_level_reaches_the_webhook_once_and_resolves(
    stack: Settings, settings: Settings, started: list[Started]
) -> None:
    """A market alert (price_above) on the real path: trade -> Kafka -> the stream's bar -> the monitor's price gauge
    -> Prometheus's rule -> Alertmanager -> the webhook. The simulator is stopped (above) and its random walk cannot be
    made to cross on time, so the price is moved by prints sent the way the ingest sends them."""
    name = "E2eAboveLevel"
    price = f'max({metric("market_value")}{{symbol="{SYMBOL}", reading="price"}})'
    _wait("the monitor's price", lambda: prometheus_value(settings, price) is not None)
    last = prometheus_value(settings, price)
    assert last is not None
    level = round(last * 1.1, 2)
    rule = {"name": name, "when": "price_above", "symbols": [SYMBOL], "value": level}
    with webhook(stack) as receiver, market_rules(stack, [rule]):
        time.sleep(15)  # evaluated, below the level
        assert not receiver.alerts(alertname=name)
        began = time.monotonic()
        _print(settings, level * 1.02)
        arrived, firing = receiver.wait_for("firing", 120, alertname=name, symbol=SYMBOL)
        assert firing["labels"]["kind"] == "market" and f"above {level:.12g}" in firing["annotations"]["summary"]
        crossed_back = time.monotonic()
        _print(settings, level * 0.98)
        resolved_at, _ = receiver.wait_for("resolved", 120, alertname=name, symbol=SYMBOL)
        assert len({alert["startsAt"] for _, alert in receiver.alerts("firing", alertname=name)}) == 1
        print(
            f"market alert: delivered {arrived - began:.1f} s after the print above {level:g}, "
            f"resolved {resolved_at - crossed_back:.1f} s after the print below"
        )


def test_every_grafana_alert_query_runs_on_prometheus(settings: Settings, started: list[Started]) -> None:
    from ray_app.alerts import grafana_alert_rules

    for group in grafana_alert_rules(settings, "ray-app-prometheus")["groups"]:
        for rule in group["rules"]:
            query = rule["data"][0]["model"]["expr"]
            answer = httpx.get(f"{settings.prometheus.url}/api/v1/query", params={"query": query}, timeout=30)
            assert answer.status_code == 200 and answer.json()["status"] == "success", (rule["title"], answer.text)


def test_stopping_the_stream_reaches_the_webhook_and_its_restart_resolves_it(
    stack: Settings, settings: Settings, started: list[Started]
) -> None:
    with webhook(stack) as receiver:
        stream = part_id(started, "stream")
        assert stop_parts(settings, ["stream"]) == [stream]
        began = time.monotonic()
        arrived, firing = receiver.wait_for("firing", 360, alertname="LivePartDown", part="stream")
        assert (
            firing["labels"]["severity"] == "page"
            and "ray-app live start --part stream" in firing["annotations"]["runbook"]
        )
        assert 120 <= arrived - began < 360  # `for: 120s`, a monitor round, a scrape, an evaluation, the group wait
        (restarted,) = start_parts(settings, None, ["stream"])
        assert restarted.submitted
        started[[item.part for item in started].index("stream")] = restarted  # the platform's stop below stops it
        back = time.monotonic()
        resolved_at, _ = receiver.wait_for("resolved", 300, alertname="LivePartDown", part="stream")
        print(f"stream stopped -> webhook {arrived - began:.1f} s; restarted -> resolved {resolved_at - back:.1f} s")


def test_stopping_the_platform_stops_every_part_sources_first(settings: Settings, started: list[Started]) -> None:
    stopped = stop_parts(settings)
    ids = {item.part: item.submission_id for item in started}
    assert stopped == [ids[name] for name in ("recommender", "forecaster", "indicators", "monitor", "stream")]
    jobs = jobs_client(settings)
    ends = {name: jobs.get_job_info(ids[name]).end_time for name in PART_NAMES}
    assert all(jobs.get_job_status(ids[name]).value == "STOPPED" for name in PART_NAMES)
    assert ends["simulator"] <= ends["recommender"] <= ends["stream"] and ends["monitor"] <= ends["stream"]
    assert stop_parts(settings) == []
