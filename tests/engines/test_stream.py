"""The streaming job on the real engines: Kafka -> Spark on Ray (RayDP) -> Elasticsearch, with failures.

Modelled on Spark's StreamTest (stop, start, check): one story in order, each step asserting the whole
state of Elasticsearch against what was produced:

1. N trades (with ties in time) and one of every kind of bad record; the driver is killed with SIGKILL
   mid-way; a new driver (now as a Ray job, via `ray-app stream`) finishes: exactly the N trades, every bar
   equal to a direct computation from the produced trades, every bad record a dead letter with its reason.
2. Poison: good trades interleaved with every kind of record that could stop a stream (tests/support/poison.py:
   oversize ids and fields, messages near Kafka's size limit, every wrong type, binary, nested junk, on all four
   topics, cancels and corrections of trades never seen, and a valid trade Elasticsearch refuses because its index
   mapping changed under the job): every good trade indexed once, every bad record a dead letter with its reason,
   bars exact, no query restarted.
3. The Kafka broker is restarted mid-stream: nothing lost, nothing doubled.
4. A trade hours late is indexed and counted in its (old) minute and hour bars.
5. Elasticsearch is away for ~20 s: the query fails (its status says why, in Elasticsearch's words), restarts
   from its checkpoint, nothing lost.
6. `ray-app stream status` and `stream stop`; the job's RayDP actors are gone.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Producer

from ray_app.config import Settings, load_settings
from ray_app.es_indices import es_client
from ray_app.kafka_clients import producer_config
from ray_app.schemas import Source, Trade
from ray_app.stack import manager
from ray_app.stack.processes import stop_process
from ray_app.testing.settings import own_overrides, settings_env
from ray_app.testing.stack import REPO, alive, environment, run_cli
from tests.support.expected import assert_bars_equal, es_docs, expected_bars, trade_doc_id

SYMBOLS = ["AAPL", "MSFT", "BTC/USD"]
MINUTE_NS = 60 * 1_000_000_000
STREAM_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def stream_env(stack: Settings, stack_dir: Path) -> Iterator[dict[str, str]]:
    """Topics, indices, checkpoints and a Spark app of this module's own, as RAY_APP_* variables."""
    overrides = {
        "stream": {
            "trigger_interval_s": 0.5,
            "max_offsets_per_trigger": 3000,  # several batches, so a kill lands mid-stream
            "restart_backoff_min_s": 1,
            "restart_backoff_max_s": 4,
            "es_retry_count": 1,
            "es_retry_wait_s": 1,  # so an Elasticsearch outage fails the query (and it restarts)
            "spark_log_level": "WARN",
        },
    }
    env = settings_env(own_overrides(stack, "st", overrides))
    with environment(env):
        yield env
    run_cli("stream", "stop", timeout=120)


@pytest.fixture(scope="module")
def settings(stream_env: dict[str, str]) -> Settings:
    from ray_app.es_indices import MAPPINGS, ensure_index
    from ray_app.kafka_topics import ensure_topics

    settings = load_settings()
    ensure_topics(settings)
    # the trades index as an operator changed it under the job: `taker_side` mapped as a number, so a valid trade
    # with a taker side is refused by Elasticsearch itself (the job's put_mapping cannot change it back); a field the
    # bars do not read (they read `tape`: a sale condition's meaning depends on it)
    ensure_index(
        settings,
        es_client(settings),
        settings.elasticsearch.indices.trades,
        MAPPINGS["trades"] | {"taker_side": {"type": "long"}},
    )
    return settings


class Produced:
    """Everything this module produced, to compute the expected documents from."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.late: list[Trade] = []
        self.refused: list[Trade] = []  # valid trades Elasticsearch refused: dead letters, in no bar
        self.bad: list[tuple[str, bytes, str]] = []  # (topic, raw, expected reason)
        self.quote_seconds: set[tuple[str, int]] = set()  # (symbol, second) of the valid quotes


@pytest.fixture(scope="module")
def produced() -> Produced:
    return Produced()


def _trades(start_ns: int, minutes: int, per_minute: int, tag: str) -> list[Trade]:
    """Trades for every symbol, in time order overall; every 7th trade shares the time of the one before it."""
    trades = []
    for minute in range(minutes):
        for k in range(per_minute):
            for s_index, symbol in enumerate(SYMBOLS):
                n = (minute * per_minute + k) * len(SYMBOLS) + s_index
                offset = (k * 60_000_000_000 // per_minute) + 1_234 * s_index
                if k % 7 == 6:
                    offset = ((k - 1) * 60_000_000_000 // per_minute) + 1_234 * s_index  # a tie in time
                price = 100 + 10 * s_index + math.sin(n / 17) * 3 + (n % 5) * 0.01
                trades.append(
                    Trade(
                        symbol=symbol,
                        timestamp_ns=start_ns + minute * MINUTE_NS + offset,
                        price=round(price, 4),
                        size=float(1 + n % 9) if symbol != "BTC/USD" else round(0.001 * (1 + n % 13), 6),
                        trade_id=f"{tag}-{n}",
                        exchange=None if symbol == "BTC/USD" else "V",
                        source=Source.SIMULATOR,
                    )
                )
    trades.sort(key=lambda t: t.timestamp_ns)
    return trades


def _produce(settings: Settings, records: list[tuple[str, bytes, bytes | None]]) -> None:
    failed: list[str] = []

    def delivered(error, message) -> None:
        if error is not None:
            failed.append(str(error))

    producer = Producer(producer_config(settings))
    for topic, value, key in records:
        producer.produce(topic, value=value, key=key, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not failed, failed[:3]


def _produce_trades(settings: Settings, trades: list[Trade]) -> None:
    topic = settings.kafka.topics.trades.name
    _produce(settings, [(topic, trade.to_json(), trade.symbol.encode()) for trade in trades])


def _bad_records(settings: Settings, now_ns: int) -> list[tuple[str, bytes, str]]:
    trades = settings.kafka.topics.trades.name
    bars = settings.kafka.topics.bars.name

    def trade(**fields: object) -> bytes:
        base: dict[str, object] = {
            "schema_version": 1,
            "kind": "trade",
            "symbol": "AAPL",
            "timestamp_ns": now_ns - 3600 * 10**9,
            "source": "simulator",
            "price": 10.0,
            "size": 1.0,
            "trade_id": "bad",
        }
        base.update(fields)
        return json.dumps({k: v for k, v in base.items() if v is not None}).encode()

    return [
        (trades, b"this is not json", "unparseable"),
        (trades, b"\xff\xfe\x00binary", "unparseable"),
        (trades, b"[1, 2, 3]", "unparseable"),
        (trades, trade(price=None), "missing_field"),
        (trades, trade(trade_id=None), "missing_field"),
        (trades, trade(timestamp_ns=None), "missing_field"),
        (trades, trade(price="abc"), "invalid_value"),
        (trades, trade(size=-5), "invalid_value"),
        (trades, trade(price=0), "invalid_value"),
        (trades, trade(timestamp_ns=now_ns + 86_400 * 10**9), "invalid_value"),
        (trades, trade(conditions="@"), "invalid_value"),
        (trades, trade(kind="quote"), "unknown_type"),
        (
            bars,
            json.dumps(
                {
                    "kind": "bar",
                    "symbol": "AAPL",
                    "timeframe": "1Hour",
                    "timestamp_ns": now_ns,
                    "open": 5,
                    "high": 6,
                    "low": 5.5,
                    "close": 5.8,
                    "volume": 10,
                }
            ).encode(),
            "invalid_value",
        ),  # low > open
        (
            bars,
            json.dumps(
                {
                    "kind": "bar",
                    "symbol": "AAPL",
                    "timeframe": "1Day",
                    "timestamp_ns": now_ns,
                    "open": 5,
                    "high": 6,
                    "low": 4,
                    "close": 5.8,
                    "volume": 10,
                }
            ).encode(),
            "invalid_value",
        ),
    ]


def _assert_state(settings: Settings, produced: Produced) -> None:
    """Elasticsearch holds exactly what was produced: trades once each, bars as computed, every dead letter."""
    indices = settings.elasticsearch.indices
    trades = es_docs(settings, indices.trades)
    everything = produced.trades + produced.late
    want_ids = {trade_doc_id(t) for t in everything}
    assert len(everything) == len(want_ids)
    assert len(trades) == len(want_ids), f"{len(trades)} trade documents for {len(want_ids)} produced trades"
    assert set(trades) == want_ids
    sample = next(t for t in produced.trades if t.exchange)
    doc = trades[trade_doc_id(sample)]
    assert (doc["price"], doc["size"], doc["timestamp"], doc["timestamp_ns"]) == (
        sample.price,
        sample.size,
        sample.timestamp,
        sample.timestamp_ns,
    )
    counted = sorted(produced.trades + produced.late, key=lambda t: t.timestamp_ns)  # as Elasticsearch holds them
    assert_bars_equal(es_docs(settings, indices.bars_1m), expected_bars(counted, 60))
    assert_bars_equal(es_docs(settings, indices.bars_1h), expected_bars(counted, 3600))
    dead = es_docs(settings, indices.dead_letters)
    assert sorted(d["reason"] for d in dead.values()) == sorted(reason for _, _, reason in produced.bad)
    for letter in dead.values():
        assert letter["stage"] and letter["detail"] and letter["raw"] is not None and letter["raw_sha256"]
        assert len(letter["raw"]) <= 32 * 1024 and len(letter["stage"]) <= 256
    binary = next(d for d in dead.values() if d["raw_encoding"] == "base64")
    assert binary["reason"] == "unparseable"
    quotes = es_docs(settings, indices.quotes)
    assert {(q["symbol"], q["timestamp"]) for q in quotes.values()} == {
        (symbol, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))) for symbol, second in produced.quote_seconds
    }


def _wait_caught_up(settings: Settings, timeout_s: float = STREAM_TIMEOUT_S) -> None:
    from spark_jobs.control import lags

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = lags(settings)
        if all(lag.messages == 0 for lag in current):
            return
        time.sleep(1)
    pytest.fail(f"the stream did not catch up in {timeout_s} s: {lags(settings)}\n{_job_log_tail(settings)}")


def _job_log_tail(settings: Settings) -> str:
    from ray_app.ray_cluster import job_client
    from spark_jobs.control import stream_jobs

    jobs = job_client(settings)
    found = stream_jobs(jobs)
    if not found:
        return "(no streaming job)"
    return "\n".join(jobs.get_job_logs(found[-1].submission_id).splitlines()[-40:])


def _es_count(settings: Settings, index: str) -> int:
    """Documents in the index; 0 while it does not exist yet or its shard is still starting (HTTP 503)."""
    from elasticsearch import ApiError

    es = es_client(settings)
    try:
        return es.count(index=index)["count"] if es.indices.exists(index=index) else 0
    except ApiError as exc:
        if exc.status_code == 503:
            return 0
        raise


def test_kill9_mid_stream_then_restart_as_ray_job_loses_and_doubles_nothing(
    settings: Settings, produced: Produced, stream_env: dict[str, str], stack_dir: Path
) -> None:
    now_ns = time.time_ns()
    start_ns = (now_ns - 3 * 3600 * 10**9) // MINUTE_NS * MINUTE_NS
    produced.trades += _trades(start_ns, minutes=90, per_minute=60, tag="a")  # 16,200 trades, 90 minutes
    produced.bad += _bad_records(settings, now_ns)
    upstream = {
        "schema_version": 1,
        "stage": "ingest",
        "reason": "unknown_symbol",
        "detail": "symbol 'ZZZZ'",
        "raw": "{}",
        "source": "alpaca-stream",
        "received_at": "2026-11-28T06:00:00.000000001Z",
    }
    produced.bad.append((settings.kafka.topics.dead_letters.name, json.dumps(upstream).encode(), "unknown_symbol"))
    _produce_trades(settings, produced.trades)
    _produce(settings, [(topic, raw, b"AAPL") for topic, raw, _ in produced.bad])

    log = (stack_dir / "stream-driver-1.log").open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "ray_app", "stream", "driver"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, **stream_env},
    )
    try:
        deadline = time.monotonic() + STREAM_TIMEOUT_S
        indexed = 0
        while time.monotonic() < deadline and driver.poll() is None:
            indexed = _es_count(settings, settings.elasticsearch.indices.trades)
            if indexed >= 3000:
                break
            time.sleep(0.5)
        driver_log = (stack_dir / "stream-driver-1.log").read_text()[-5000:]
        assert driver.poll() is None, driver_log
        assert 0 < indexed < len(produced.trades), f"the kill must land mid-stream:\n{driver_log}"
        family = [driver.pid, *(child.pid for child in psutil.Process(driver.pid).children(recursive=True))]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in family if alive(pid)], "the Spark driver JVM outlived its killed Python driver"
    killed_at = _es_count(settings, settings.elasticsearch.indices.trades)
    assert killed_at < len(produced.trades)

    result = run_cli("stream", "--timeout", str(STREAM_TIMEOUT_S), timeout=STREAM_TIMEOUT_S + 60)
    assert result.returncode == 0, result.stdout + result.stderr + _job_log_tail(settings)
    assert "submitted" in result.stdout and "caught up with Kafka" in result.stdout
    _assert_state(settings, produced)


def test_job_shows_in_ray_with_its_raydp_actors(settings: Settings) -> None:
    from ray.util.state import list_actors

    from ray_app.ray_cluster import job_client
    from spark_jobs.control import running_job

    job = running_job(job_client(settings))
    assert job is not None and job.status.value == "RUNNING"
    actors = list_actors(address=settings.ray.dashboard_url, filters=[("state", "=", "ALIVE")], limit=1000)
    # the app master belongs to the job; the executors are created by the app master's Java worker
    assert any(a.class_name == "RayDPSparkMaster" and a.job_id == job.job_id for a in actors), actors
    assert any("RayDPExecutor" in a.class_name for a in actors), {a.class_name for a in actors}


def test_poison_records_become_dead_letters_and_stop_nothing(settings: Settings, produced: Produced) -> None:
    from ray_app.kafka_clients import producer_config
    from spark_jobs.status import read_status
    from tests.support.poison import cases

    before = read_status(settings)
    restarts = {name: query.restarts for name, query in before.queries.items()}
    now_ns = time.time_ns()
    good = _trades((now_ns - 3600 * 10**9) // MINUTE_NS * MINUTE_NS - 10 * MINUTE_NS, minutes=2, per_minute=60, tag="p")
    # Kafka 4 itself refuses a producer's timestamp more than an hour ahead (log.message.timestamp.after.max.ms,
    # for the whole record batch); the rules' tests cover such a record without a broker
    corpus = [case for case in cases(now_ns, "poison") if (case.kafka_ms or 0) < now_ns // 10**6 + 3_600_000]
    refused = Trade(
        symbol="AAPL",
        timestamp_ns=now_ns - 3600 * 10**9 + 999,
        price=123.0,
        size=2.0,
        trade_id="refused-by-es",
        exchange="V",
        taker_side="B",
        source=Source.SIMULATOR,
    )
    topics = settings.kafka.topics
    failed: list[str] = []
    producer = Producer(producer_config(settings))
    assert len(good) > len(corpus)
    for trade, case in itertools.zip_longest(good, corpus):  # good trades interleaved with the corpus
        producer.produce(topics.trades.name, value=trade.to_json(), key=trade.symbol.encode())
        if case is not None:
            extra = {"timestamp": case.kafka_ms} if case.kafka_ms is not None else {}
            producer.produce(
                getattr(topics, case.topic).name,
                value=case.value,
                key=b"AAPL",
                on_delivery=lambda error, _: failed.append(str(error)) if error else None,
                **extra,
            )
        producer.poll(0)
    producer.produce(topics.trades.name, value=refused.to_json(), key=b"AAPL")
    assert producer.flush(60) == 0 and not failed, failed[:3]
    produced.trades += good + [case.trade for case in corpus if case.trade is not None]
    produced.quote_seconds |= {
        (case.quote["symbol"], case.quote["timestamp_ns"] // 10**9) for case in corpus if case.quote is not None
    }
    produced.bad += [
        (getattr(topics, case.topic).name, case.value or b"", case.reason) for case in corpus if case.reason is not None
    ]
    produced.bad.append((topics.trades.name, refused.to_json(), "rejected"))
    produced.refused.append(refused)
    _wait_caught_up(settings)
    _assert_state(settings, produced)
    after = read_status(settings)
    assert {name: query.restarts for name, query in after.queries.items()} == restarts, "a poison record failed a batch"
    assert all(query.state == "running" for query in after.queries.values())
    assert after.queries["records"].rejected >= 1
    letter = next(
        d for d in es_docs(settings, settings.elasticsearch.indices.dead_letters).values() if d["reason"] == "rejected"
    )
    assert "document_parsing_exception" in letter["detail"] and json.loads(letter["raw"])["trade_id"] == "refused-by-es"


def test_kafka_broker_restart_mid_stream(settings: Settings, produced: Produced, stack: Settings) -> None:
    last = produced.trades[-1].timestamp_ns
    batch_b = _trades(last // MINUTE_NS * MINUTE_NS + MINUTE_NS, minutes=10, per_minute=60, tag="b")
    batch_c = _trades(batch_b[-1].timestamp_ns // MINUTE_NS * MINUTE_NS + MINUTE_NS, minutes=5, per_minute=60, tag="c")
    _produce_trades(settings, batch_b)
    produced.trades += batch_b
    kafka = manager.services(stack)[0]
    assert kafka.name.lower().startswith("kafka")
    assert stop_process(kafka.pid_file, stack.stack.stop_timeout_s)
    time.sleep(3)
    manager.up(stack)
    _produce_trades(settings, batch_c)
    produced.trades += batch_c
    _wait_caught_up(settings)
    _assert_state(settings, produced)


def test_a_trade_hours_late_is_indexed_and_counted_in_its_bars(settings: Settings, produced: Produced) -> None:
    """No watermark: a trade however late changes its minute and hour bars (recomputed from the trades index)."""
    late = Trade(
        symbol="AAPL",
        timestamp_ns=produced.trades[0].timestamp_ns + 5,
        price=999.0,
        size=1.0,
        trade_id="late-1",
        exchange="V",
        source=Source.SIMULATOR,
    )
    assert time.time_ns() - late.timestamp_ns > 3600 * 10**9
    _produce_trades(settings, [late])
    produced.late.append(late)
    _wait_caught_up(settings)
    _assert_state(settings, produced)  # its bar's high is now 999


def test_elasticsearch_away_for_20_s_loses_nothing(settings: Settings, produced: Produced, stack: Settings) -> None:
    from spark_jobs.status import read_status

    restarts_before = read_status(settings).queries["records"].restarts
    last = produced.trades[-1].timestamp_ns
    batch_d = _trades(last // MINUTE_NS * MINUTE_NS + MINUTE_NS, minutes=5, per_minute=60, tag="d")
    elasticsearch = manager.services(stack)[1]
    assert stop_process(elasticsearch.pid_file, stack.stack.stop_timeout_s)
    causes = []
    try:
        _produce_trades(settings, batch_d)
        produced.trades += batch_d
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = read_status(settings)
            causes += [q.last_error for q in status.queries.values() if q.last_error] if status else []
            time.sleep(0.5)
    finally:
        manager.up(stack)
    _wait_caught_up(settings)
    _assert_state(settings, produced)
    status = read_status(settings)
    assert status.queries["records"].restarts > restarts_before, "the outage should have failed a batch"
    assert all(query.state == "running" for query in status.queries.values())
    # the status lives in Elasticsearch: what it said during the outage is read once it is back, as the last failure
    causes += [q.last_failure for q in status.queries.values() if q.last_failure]
    # the status says what happened in plain words, not Py4J's wrapper text
    assert causes and any(f"Elasticsearch at {stack.elasticsearch.url}" in cause for cause in causes), causes
    assert not [cause for cause in causes if "Python Proxy" in cause or "Py4J" in cause], causes


def test_every_trading_dashboard_es_panel_reads_what_the_stream_wrote(settings: Settings, produced: Produced) -> None:
    """Each Elasticsearch panel's search, as Grafana sends it, over the stream's documents: the panel's fields."""
    import pandas as pd

    from ray_app.dashboards.build import GRAFANA_DIR, es_sources
    from ray_app.dashboards.es_query import es_panels, search_for, variable_search

    es = es_client(settings)
    sources = es_sources(settings)
    symbol = produced.trades[0].symbol
    times = [t.timestamp_ns for t in produced.trades]
    start = pd.Timestamp(min(times), unit="ns", tz="UTC") - pd.Timedelta(hours=1)
    for _, raw, _ in produced.bad:  # an upstream dead letter keeps the time ingest received it (when it is one)
        if b'"received_at"' in raw:
            received = pd.to_datetime(json.loads(raw)["received_at"], errors="coerce", utc=True)
            if not pd.isna(received):
                start = min(start, received - pd.Timedelta(hours=1))
    # the stream's own dead letters are timed when it received them: now
    end = max(pd.Timestamp(max(times), unit="ns", tz="UTC"), pd.Timestamp.now(tz="UTC")) + pd.Timedelta(hours=1)
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "trading.json").read_text())
    variable = dashboard["templating"]["list"][0]
    found = es.search(
        index=sources[variable["datasource"]["uid"]]["index"],
        body=variable_search(variable["query"], "timestamp", start, end),
    )
    assert symbol in [bucket["key"] for bucket in found["aggregations"]["1"]["buckets"]]
    for panel in es_panels(dashboard):
        source = sources[panel["datasource"]["uid"]]
        if source["index"] in {
            settings.elasticsearch.indices.recommendations,
            settings.elasticsearch.indices.recommendation_outcomes,
            settings.elasticsearch.indices.indicators_1m,
        }:
            continue  # the Serve app and the indicators job write these (tests/engines/test_serve.py, test_live.py)
        for target in panel["targets"]:
            search = search_for(target, source["timeField"], start, end, {"symbol": symbol})
            result = es.search(index=source["index"], body=search.body)
            if search.raw:
                hits = [hit["_source"] for hit in result["hits"]["hits"]]
                assert hits, panel["title"]
                wanted = set(panel["options"].get("fields", {}).values()) | {"timestamp"}
                assert wanted <= set(hits[0]), (panel["title"], wanted - set(hits[0]))
                continue
            outer = result["aggregations"][target["bucketAggs"][0]["id"]]["buckets"]
            assert outer, panel["title"]
            for metric in search.reads:
                assert any(bucket[metric]["value"] is not None for bucket in outer), (panel["title"], metric)
            if target["bucketAggs"][0]["type"] == "terms":
                keys = {bucket["key"] for bucket in outer}
                expected = (
                    {reason for _, _, reason in produced.bad}
                    if "dead" in source["index"]
                    else {t.symbol for t in produced.trades}
                )
                assert keys == expected, panel["title"]


def test_the_trading_panels_render_as_png_from_the_same_queries(
    settings: Settings, produced: Produced, tmp_path: Path
) -> None:
    import pandas as pd

    from ray_app.dashboards.render import render_trading

    symbol = produced.trades[0].symbol
    last = pd.Timestamp(max(t.timestamp_ns for t in produced.trades), unit="ns", tz="UTC")
    chart = render_trading(es_client(settings), settings, symbol, last + pd.Timedelta(minutes=1), tmp_path / "t.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_status_then_stop_leaves_no_actors(settings: Settings) -> None:
    from ray.util.state import list_actors

    from ray_app.ray_cluster import job_client
    from spark_jobs.control import running_job

    shown = run_cli("stream", "status")
    assert shown.returncode == 0, shown.stderr
    for name in (
        "records",
        "bars",
        settings.elasticsearch.indices.bars_1h,
        settings.elasticsearch.indices.trades,
        "latency",
        "rows/s",
        "where a batch's time goes",
    ):
        assert name in shown.stdout, name
    job = running_job(job_client(settings))
    assert job is not None
    stopped = run_cli("stream", "stop", timeout=180)
    assert stopped.returncode == 0 and job.submission_id in stopped.stdout, stopped.stdout + stopped.stderr
    assert job_client(settings).get_job_status(job.submission_id).value == "STOPPED"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        actors = list_actors(address=settings.ray.dashboard_url, filters=[("state", "=", "ALIVE")], limit=1000)
        left = [a for a in actors if a.job_id == job.job_id or a.class_name.startswith(("RayDP", "org.apache.spark"))]
        if not left:
            break
        time.sleep(1)
    else:
        pytest.fail(f"actors of the stopped job still alive: {left}")
