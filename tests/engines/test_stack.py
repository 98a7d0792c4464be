"""The local stack on real engines: Kafka (KRaft), Elasticsearch, a Ray head; `ray-app stack` and `smoke`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ray_app.config import Settings, TopicSettings, load_settings
from ray_app.es_indices import es_client
from ray_app.jvm_artifacts import find_java
from ray_app.kafka_clients import client_config, consumer_config, producer_config
from ray_app.kafka_topics import ensure_topics
from ray_app.ray_cluster import use_auth_mode
from ray_app.stack import manager
from ray_app.stack.processes import read_pid_file
from ray_app.testing.settings import settings_env
from ray_app.testing.stack import REPO, alive, run_cli, stack_env
from tests.support.kafka import read_topic
from tests.support.kafka_partitioner import java_partition, murmur2


def test_murmur2_matches_kafkas_java_test_vectors() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def _produce(settings: Settings, topic: str, records: list[tuple[str, dict]]) -> list[tuple[str, int, int]]:
    """Produce (key, value) records; returns (key, partition, offset) per delivered record, in delivery order."""
    delivered: list[tuple[str, int, int]] = []
    errors: list[str] = []
    producer = Producer(producer_config(settings))
    for key, value in records:
        producer.produce(
            topic,
            key=key,
            value=json.dumps(value),
            on_delivery=lambda err, msg: (
                errors.append(str(err))
                if err
                else delivered.append((msg.key().decode(), msg.partition(), msg.offset()))
            ),
        )
    assert producer.flush(30) == 0
    assert not errors
    return delivered


def _consume(consumer: Consumer, count: int, timeout_s: float = 30) -> list:
    messages = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            messages.append(msg)
    return messages


def test_status_shows_every_service_healthy(stack: Settings) -> None:
    result = run_cli("stack", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("kafka", "elasticsearch", "ray", "prometheus"):
        line = next(line for line in result.stdout.splitlines() if line.strip("│ ").startswith(name))
        assert re.search(r"│\s+\d+\s+│", line), line  # a pid
        assert "yes" in line
    assert stack.kafka.bootstrap_servers in result.stdout
    assert stack.elasticsearch.url in result.stdout
    assert stack.prometheus.url in result.stdout


def test_prometheus_scrapes_every_ray_node_through_rays_discovery_file(stack: Settings) -> None:
    """The Ray head's metrics agents, found through the file Ray writes, are scraped and up; the dashboard reads
    this Prometheus (RAY_PROMETHEUS_HOST)."""
    import httpx

    from ray_app.stack.prometheus import ray_discovery_file

    listed = json.loads(ray_discovery_file(stack).read_text())
    wanted = {target for group in listed for target in group["targets"]}
    assert wanted
    deadline = time.monotonic() + 60
    while True:
        targets = httpx.get(f"{stack.prometheus.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        ray = {t["labels"]["instance"]: t["health"] for t in targets if t["labels"]["job"] == "ray"}
        if (set(ray) == wanted and all(health == "up" for health in ray.values())) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert set(ray) == wanted and all(health == "up" for health in ray.values()), ray
    answer = httpx.get(f"{stack.prometheus.url}/api/v1/query", params={"query": "ray_node_cpu_count"}, timeout=10)
    assert answer.json()["data"]["result"], "Ray's own metrics are in Prometheus"
    health = httpx.get(f"{stack.ray.dashboard_url}/api/prometheus_health", timeout=10)
    assert health.status_code == 200 and health.json().get("result") is True, health.text


def test_up_twice_is_harmless(stack: Settings) -> None:
    before = {s.name: s.pid for s in manager.status(stack)}
    result = run_cli("stack", "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("already running") == 5  # Kafka, Elasticsearch, Ray, Alertmanager, Prometheus
    assert "downloaded" not in result.stdout  # a second up downloads nothing
    assert {s.name: s.pid for s in manager.status(stack)} == before


def test_project_topics_exist_with_configured_partitions(stack: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    topics = AdminClient(client_config(stack)).list_topics(timeout=10).topics
    for topic in stack.kafka.topics.all():
        assert len(topics[topic.name].partitions) == topic.partitions
    assert ensure_topics(stack) == []  # idempotent: nothing to create the second time


def test_keyed_messages_land_in_java_partitions_and_keep_per_key_order(stack: Settings) -> None:
    topic = TopicSettings(name=f"test-keys-{uuid.uuid4().hex[:6]}", partitions=6)
    ensure_topics(stack, [topic])
    keys = ["AAPL", "MSFT", "BTC/USD", "ETH/USD", "GOOG", "IBM", "BRK.B"]
    records = [(keys[i % len(keys)], {"seq": i}) for i in range(700)]
    delivered = _produce(stack, topic.name, records)
    assert len(delivered) == 700
    for key, partition, _ in delivered:
        # the same partition Kafka's Java clients (and Spark) pick for the key
        assert partition == java_partition(key.encode(), topic.partitions), key
    messages = read_topic(stack, topic.name)
    assert len(messages) == 700
    per_key: dict[str, list[int]] = {}
    for msg in messages:
        per_key.setdefault(msg.key().decode(), []).append(json.loads(msg.value())["seq"])
    assert set(per_key) == set(keys)
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"order broken for {key}"
        assert len(seqs) == 100


def test_consumer_group_commits_and_a_second_consumer_resumes(stack: Settings) -> None:
    topic = TopicSettings(name=f"test-resume-{uuid.uuid4().hex[:6]}", partitions=1)
    ensure_topics(stack, [topic])
    _produce(stack, topic.name, [("AAPL", {"seq": i}) for i in range(20)])
    group = f"g-{uuid.uuid4().hex}"

    first = Consumer(consumer_config(stack, group))
    first.subscribe([topic.name])
    got = _consume(first, 8)
    assert [json.loads(m.value())["seq"] for m in got] == list(range(8))
    first.commit(message=got[-1], asynchronous=False)
    first.close()

    second = Consumer(consumer_config(stack, group))
    committed = second.committed([TopicPartition(topic.name, 0)], timeout=10)
    assert committed[0].offset == 8
    second.subscribe([topic.name])
    rest = _consume(second, 12)
    second.close()
    assert [json.loads(m.value())["seq"] for m in rest] == list(range(8, 20))


def test_index_template_is_applied_and_a_price_round_trips_exactly(stack: Settings) -> None:
    es = es_client(stack)
    index = stack.elasticsearch.indices.trades
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["price"]["type"] == "double"
    assert mapping["size"]["type"] == "double"
    assert mapping["timestamp"]["type"] == "date_nanos"
    assert mapping["symbol"]["type"] == "keyword"
    for key in ("bars_1m", "bars_1h"):
        bars = stack.elasticsearch.indices.by_key()[key]
        props = es.indices.get_mapping(index=bars)[bars]["mappings"]["properties"]
        assert {props[f]["type"] for f in ("open", "high", "low", "close", "volume", "vwap")} == {"double"}
    assert es.indices.get_index_template(name=f"ray-app-{index}")["index_templates"]

    trade = {"symbol": "BTC/USD", "price": 101234.56, "size": 0.0001, "timestamp": "2026-11-28T10:00:00.123456789Z"}
    es.index(index=index, id="test-BTC/USD-1", refresh="wait_for", document=trade)
    found = es.search(index=index, query={"term": {"symbol": "BTC/USD"}}, aggs={"top": {"max": {"field": "price"}}})
    assert found["hits"]["hits"][0]["_source"]["price"] == 101234.56
    # a 32-bit float (the original project's mapping) would aggregate as 101234.5625
    assert found["aggregations"]["top"]["value"] == 101234.56
    nanos = es.search(index=index, query={"term": {"symbol": "BTC/USD"}}, docvalue_fields=["timestamp"])
    assert nanos["hits"]["hits"][0]["fields"]["timestamp"] == ["2026-11-28T10:00:00.123456789Z"]


def test_ray_job_submit_from_the_command_line(stack: Settings) -> None:
    ray_cli = Path(sys.executable).with_name("ray")
    result = subprocess.run(
        [str(ray_cli), "job", "submit", "--address", stack.ray.dashboard_url, "--", "python", "-c", "print(6 * 7)"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "42" in result.stdout
    assert "succeeded" in result.stdout.lower()
    # and the dashboard (what a person opens) lists it
    jobs = httpx.get(f"{stack.ray.dashboard_url}/api/jobs/", timeout=10).json()
    assert any("print(6 * 7)" in job["entrypoint"] and job["status"] == "SUCCEEDED" for job in jobs), jobs


def test_smoke_round_trip_reports_every_engine_ok(stack: Settings) -> None:
    result = run_cli("smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    for engine in ("Kafka", "Elasticsearch", "Ray"):
        assert re.search(rf"│ {engine}\s+│ ok", result.stdout), result.stdout


def test_down_then_up_keeps_kafka_messages_and_es_documents(stack: Settings) -> None:
    topic = TopicSettings(name=f"test-durable-{uuid.uuid4().hex[:6]}", partitions=2)
    ensure_topics(stack, [topic])
    marker = uuid.uuid4().hex
    _produce(stack, topic.name, [("MSFT", {"marker": marker, "seq": i}) for i in range(50)])
    index = stack.elasticsearch.indices.bars_1m
    es_client(stack).index(
        index=index, id=f"durable-{marker}", document={"symbol": "MSFT", "close": 412.37}, refresh="wait_for"
    )
    pids = [read_pid_file(s.pid_file).pid for s in manager.services(stack)]

    down = run_cli("stack", "down")
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if alive(pid)]
    kafka_port = int(stack.kafka.bootstrap_servers.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", kafka_port)) != 0  # really stopped
    assert run_cli("stack", "status").returncode == 1

    up = run_cli("stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.count("(started)") == 5
    messages = read_topic(stack, topic.name)
    assert sorted(json.loads(m.value())["seq"] for m in messages) == list(range(50))
    assert es_client(stack).get(index=index, id=f"durable-{marker}")["_source"]["close"] == 412.37


def test_port_in_use_is_a_one_line_error_and_nothing_starts(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "state")
    busy_port = int(env["RAY_APP_STACK__ELASTICSEARCH_TRANSPORT_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", busy_port))
        squatter.listen()
        result = run_cli("stack", "up", env=env)
    assert result.returncode == 1
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert f"port 127.0.0.1:{busy_port} (Elasticsearch transport) is already in use" in error
    assert "log: " in error and "elasticsearch.log" in error
    assert not list((tmp_path / "state").glob("run/*.pid"))  # checked before anything was started


def test_missing_java_is_a_clear_error(tmp_path: Path) -> None:
    env = {**stack_env(tmp_path / "state"), "JAVA_HOME": str(tmp_path / "no-jdk-here")}
    result = run_cli("stack", "up", env=env)
    assert result.returncode == 1
    assert "Java not found at" in result.stderr and "JAVA_HOME" in result.stderr


def test_missing_maven_with_an_empty_cache_is_a_clear_error(tmp_path: Path) -> None:
    python_only = tmp_path / "bin"
    python_only.mkdir()
    (python_only / "python").symlink_to(sys.executable)
    env = {**stack_env(tmp_path / "state", cache_dir=tmp_path / "cache"), "PATH": str(python_only)}
    env["JAVA_HOME"] = str(find_java(load_settings()).home)
    result = run_cli("stack", "up", env=env)
    assert result.returncode == 1
    assert "Maven (mvn) not found" in result.stderr


def test_failed_download_names_the_maven_log(tmp_path: Path) -> None:
    offline = settings_env({"stack": {"maven_offline": True}})
    env = {**stack_env(tmp_path / "state", cache_dir=tmp_path / "cache"), **offline}
    result = run_cli("stack", "up", env=env)
    assert result.returncode == 1
    error = result.stderr.strip()
    assert "downloading the kafka artifacts with Maven failed" in error
    assert f"log: {tmp_path / 'state' / 'logs' / 'maven.log'}" in error.replace("\n", "")
    assert not list((tmp_path / "state").glob("run/*.pid"))


def test_readme_opens_with_exactly_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```", 2)[1].strip().splitlines()
    commands = [line for line in first_block[1:] if line.strip() and not line.startswith("#")]
    assert commands == ["make run", "make test"]


def test_ray_head_and_clients_set_the_auth_mode_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray 2.60 turns token authentication on by itself when ~/.ray/auth_token exists (any local ray.init()
    # writes one); the dashboard then answered 401 to the stack's health probe and the head "never came up".
    from ray_app.stack.ray_head import RayHeadService

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # recorded, so the change below is undone after the test
    settings = load_settings()
    assert RayHeadService(settings).launch(find_java(settings)).env["RAY_AUTH_MODE"] == "disabled"
    monkeypatch.setenv("RAY_APP_RAY__AUTH_MODE", "token")
    token = load_settings()
    assert RayHeadService(token).launch(find_java(token)).env["RAY_AUTH_MODE"] == "token"
    use_auth_mode(token)
    assert os.environ["RAY_AUTH_MODE"] == "token"


def test_every_relative_link_of_the_readme_and_the_docs_leads_to_a_file() -> None:
    import re

    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^(https?:|mailto:|#)", target):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert len(pages) > 5 and broken == []
