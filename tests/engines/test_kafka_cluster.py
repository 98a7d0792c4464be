"""Three Kafka brokers (KRaft, replication factor 3, min.insync.replicas 2), and one of them dies.

The session's Elasticsearch and Ray, a three-broker cluster of this module's own. The live simulator ingests and the
streaming job (a Ray job, as `ray-app stream` submits it) reads while one broker is killed with SIGKILL and later
started again, then another: the ingest loses and doubles nothing (what it reports delivered is exactly what the
topic holds, each trade once), and Elasticsearch ends with every trade exactly once and every minute and hour bar
equal to a direct computation from the trades. The settings that make this so are checked against the brokers
themselves: every topic on three brokers with min.insync.replicas 2, acks=all with idempotence, failOnDataLoss.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ray_app.config import Settings, load_settings
from ray_app.kafka_clients import admin_config, producer_config
from ray_app.schemas import Trade
from ray_app.testing.settings import module_env
from ray_app.testing.stack import REPO, environment, run_cli
from tests.support.expected import assert_trades_and_bars
from tests.support.kafka import read_topic
from tests.support.own_kafka import OwnKafkaCluster, own_kafka_cluster

SYMBOLS = "BTC/USD,ETH/USD"  # crypto trades around the clock, so the live simulator produces whenever the test runs
INGEST_S = 50


@pytest.fixture(scope="module")
def cluster(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnKafkaCluster]:
    with own_kafka_cluster(stack, tmp_path_factory.mktemp("kafka-3")) as own:
        yield own


@pytest.fixture(scope="module")
def cluster_env(cluster: OwnKafkaCluster, stack: Settings, stack_dir: Path) -> Iterator[dict[str, str]]:
    kafka = cluster.settings.kafka
    env = module_env(
        stack,
        "k3",
        {
            "kafka": {
                "bootstrap_servers": kafka.bootstrap_servers,
                "replication_factor": 3,
                "min_insync_replicas": 2,
            },
            "stream": {
                "app_name": "test-stream-3-brokers",
                "checkpoint_dir": stack_dir / "kafka-3-checkpoints",
                "trigger_interval_s": 0.5,
                "restart_backoff_min_s": 1,
                "restart_backoff_max_s": 4,
                "spark_log_level": "WARN",
            },
            "state_dir": stack_dir / "kafka-3-cli",
        },
        topics=(),
    )
    with environment(env):
        yield env
    run_cli("stream", "stop", env=env, timeout=120)


@pytest.fixture(scope="module")
def settings(cluster_env: dict[str, str]) -> Settings:
    return load_settings()


def test_every_topic_lives_on_three_brokers_and_a_write_needs_two(cluster: OwnKafkaCluster, settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(admin_config(settings))
    metadata = admin.list_topics(timeout=30)
    assert sorted(metadata.brokers) == [1, 2, 3]
    for topic in [*settings.kafka.topics.all(), settings.kafka.topics.simulator_progress]:
        partitions = metadata.topics[topic.name].partitions.values()
        assert len(partitions) == topic.partitions
        assert all(sorted(p.replicas) == [1, 2, 3] and len(p.isrs) == 3 for p in partitions), topic.name
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic.name)
        config = admin.describe_configs([resource])[resource].result(timeout=30)
        assert config["min.insync.replicas"].value == "2"
        assert config["unclean.leader.election.enable"].value == "false"
    # Kafka's own offsets topic is created on first use by a consumer group: replicated as the data is
    assert "replication.factor=3" in (cluster.nodes[0].service.config_dir / "server.properties").read_text().replace(
        "offsets.topic.", ""
    )


def test_the_clients_wait_for_every_in_sync_copy_and_never_skip_data() -> None:
    """What makes a broker's death harmless on the client side: the producer waits for all in-sync replicas and
    retries idempotently (a retry never doubles, order is kept), and the stream fails rather than skip offsets."""
    from spark_jobs.kafka_source import kafka_options

    settings = load_settings()
    producer = producer_config(settings)
    assert producer["acks"] == "all" and producer["enable.idempotence"] is True
    assert "retries" not in producer and "message.send.max.retries" not in producer  # librdkafka's: retry for ever
    assert kafka_options(settings)["failOnDataLoss"] == "true"


def _kill_and_restart(
    cluster: OwnKafkaCluster, node: int, down_s: float, log: list[str], ingest: subprocess.Popen[str]
) -> None:
    assert ingest.poll() is None, "the ingest ended before the broker died: the kill would prove nothing"
    cluster.nodes[node - 1].kill()
    log.append(f"{time.strftime('%H:%M:%S')} killed kafka-{node} (SIGKILL)")
    time.sleep(down_s)
    cluster.start()
    log.append(f"{time.strftime('%H:%M:%S')} kafka-{node} is back")


def test_a_broker_killed_mid_ingest_and_mid_stream_loses_and_doubles_nothing(
    cluster: OwnKafkaCluster, settings: Settings, cluster_env: dict[str, str]
) -> None:
    started = run_cli("stream", "--timeout", "240", env=cluster_env, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr

    ingest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ray_app",
            "ingest",
            "--source",
            "simulate",
            "--symbols",
            SYMBOLS,
            "--history-days",
            "0",
            "--live",
            "--trades-per-minute",
            "1200",
            "--duration",
            str(INGEST_S),
            "--seed",
            "31",
            "--no-progress",
        ],
        cwd=REPO,
        env={**os.environ, **cluster_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events: list[str] = []
    time.sleep(8)
    _kill_and_restart(cluster, 1, 8, events, ingest)  # a controller voter and leader of a third of the partitions
    time.sleep(4)
    _kill_and_restart(cluster, 2, 8, events, ingest)
    out, err = ingest.communicate(timeout=INGEST_S + 180)
    assert ingest.returncode == 0, out + err
    # the console wraps the line where it likes
    report = re.search(r"([\d,]+)\s+trades,.*?([\d,]+)\s+quotes,.*failed\s+(\d+),\s+undelivered\s+(\d+)", out, re.S)
    assert report and report.group(3) == "0" and report.group(4) == "0", out
    delivered, quotes = (int(report.group(n).replace(",", "")) for n in (1, 2))

    messages = read_topic(settings, settings.kafka.topics.trades.name)
    trades = [
        Trade.model_validate({k: v for k, v in json.loads(m.value()).items() if k != "timestamp"}) for m in messages
    ]
    assert len(trades) == delivered > 500, (len(trades), delivered, events)  # crypto: no cancels or corrections
    assert len(read_topic(settings, settings.kafka.topics.quotes.name)) == quotes
    assert len({(t.symbol, t.trade_id) for t in trades}) == len(trades), "a retry doubled a trade in Kafka"

    from spark_jobs.control import lags

    deadline = time.monotonic() + 240
    while any(lag.messages for lag in lags(settings)):
        assert time.monotonic() < deadline, f"the stream did not catch up: {lags(settings)}; {events}"
        time.sleep(1)
    # the Kafka order of trades at the same nanosecond decides open and close: read back in partition order,
    # and a symbol lives in one partition, so this is the order the stream saw
    assert_trades_and_bars(settings, trades)
