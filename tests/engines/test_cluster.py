"""The platform on a Ray cluster of two nodes on this machine: the session's head and a worker node joined with
`ray start --address ... --resources '{"ray_app_worker": 100}'`, with a disk of its own (a private tmpfs, where the
kernel allows a mount namespace). The stream's executors and the forecast tasks are placed on the worker by that
resource; the CLI runs with a state directory of its own, as on a third machine, and reaches the cluster only through
its addresses (the Ray dashboard, Kafka, Elasticsearch).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from ray_app.config import Settings, load_settings
from ray_app.es_indices import es_client
from ray_app.kafka_clients import producer_config
from ray_app.schemas import Source, Trade
from ray_app.testing.cluster import WorkerNode, worker_node
from ray_app.testing.settings import module_env, settings_env
from ray_app.testing.stack import environment, run_cli

WORKER = "ray_app_worker"
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def worker(stack: Settings, stack_dir: Path) -> Iterator[WorkerNode]:
    with worker_node(
        stack,
        resources={WORKER: 100},
        num_cpus=2,
        private=stack_dir / "worker-private",
        log_file=stack_dir / "logs" / "worker-node.log",
    ) as node:
        yield node


@pytest.fixture(scope="module")
def cli_env(stack: Settings, stack_dir: Path, worker: WorkerNode) -> Iterator[dict[str, str]]:
    """The CLI's machine: a state directory no node has, the cluster's addresses, placement on the worker."""
    overrides = {
        "state_dir": stack_dir / "cli-machine",
        "kafka": {
            "topics": {
                key: {"name": f"{name}-cl"}
                for key, name in (
                    ("trades", "trades"),
                    ("bars", "bars"),
                    ("dead_letters", "dead-letters"),
                    ("quotes", "quotes"),
                )
            }
        },
        "stream": {
            "app_name": "cluster-stream",
            "checkpoint_dir": stack_dir / "cluster-checkpoints",
            "trigger_interval_s": 0.5,
            "executor_resources": {WORKER: 1},
            "spark_log_level": "WARN",
        },
        "forecast": {"task_resources": {WORKER: 1}},
    }
    env = module_env(stack, "cl", overrides)
    with environment(env):
        yield env
    run_cli("stream", "stop", env=env, timeout=120)


@pytest.fixture(scope="module")
def settings(cli_env: dict[str, str]) -> Settings:
    return load_settings()


def _count(settings: Settings, index: str) -> int:
    es = es_client(settings)
    if not es.indices.exists(index=index):
        return 0
    es.indices.refresh(index=index)
    return int(es.count(index=index)["count"])


def _wait(what: str, check, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_the_worker_has_a_disk_of_its_own(settings: Settings, worker: WorkerNode) -> None:
    """What the head writes in the worker's private directory, a task on the worker does not see (skipped where
    the kernel allows no mount namespace: then both nodes share every path, as they would over NFS)."""
    from ray_app.ray_cluster import connect
    from spark_jobs.shared_storage import Node, ray_probe

    if worker.private is None:
        pytest.skip("no mount namespace here: the worker shares this machine's disk")
    connect(settings)
    marker = worker.private / "written-by-the-head"
    marker.write_text("head")
    assert ray_probe(Node(worker.node_id, "worker", {}), marker) is None
    assert ray_probe(Node(worker.node_id, "worker", {}), Path(__file__)) == Path(__file__).read_text()


def test_checkpoints_the_worker_cannot_see_fail_the_start_naming_the_key(
    settings: Settings, worker: WorkerNode, cli_env: dict[str, str]
) -> None:
    if worker.private is None:
        pytest.skip("no mount namespace here: every path is shared")
    env = {**cli_env, "RAY_APP_STREAM__CHECKPOINT_DIR": str(worker.private / "checkpoints")}
    result = run_cli("stream", "--timeout", "120", env=env, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "stream.checkpoint_dir" in output and "is not shared storage" in output, output
    assert worker.node_id[:12] in output, output


def _trades(count: int) -> list[Trade]:
    start = (time.time_ns() // 60_000_000_000 - 30) * 60_000_000_000
    return [
        Trade(
            symbol=("AAPL", "MSFT")[n % 2],
            timestamp_ns=start + n * 997_000_000,
            price=100 + n % 13 * 0.25,
            size=float(1 + n % 5),
            trade_id=f"cl-{n}",
            exchange="V",
            source=Source.SIMULATOR,
        )
        for n in range(count)
    ]


def test_the_stream_runs_its_executors_on_the_worker_and_any_machine_reads_its_status(
    settings: Settings, worker: WorkerNode, cli_env: dict[str, str]
) -> None:
    from ray.util.state import list_actors

    trades = _trades(600)
    producer = Producer(producer_config(settings))
    for trade in trades:
        producer.produce(settings.kafka.topics.trades.name, value=trade.to_json(), key=trade.symbol.encode())
    assert producer.flush(60) == 0
    started = run_cli("stream", "--timeout", str(TIMEOUT_S), env=cli_env, timeout=TIMEOUT_S + 60)
    assert started.returncode == 0, started.stdout + started.stderr
    assert _count(settings, settings.elasticsearch.indices.trades) == len(trades)

    executors = [
        actor
        for actor in list_actors(address=settings.ray.dashboard_url, filters=[("state", "=", "ALIVE")])
        if "Executor" in (actor.class_name or "")
    ]
    assert executors and {actor.node_id for actor in executors} == {worker.node_id}, executors

    # the CLI's machine has no status file and no checkpoint: what it shows comes from Elasticsearch
    assert not (Path(cli_env["RAY_APP_STATE_DIR"]) / "run").exists()
    shown = run_cli("stream", "status", env=cli_env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "RUNNING" in shown.stdout and "running" in shown.stdout, shown.stdout
    assert f"{len(trades):,}" in shown.stdout and str(settings.stream_checkpoint_dir) in shown.stdout, shown.stdout
    from spark_jobs.status import read_status

    status = read_status(settings)
    assert status is not None and status.queries["records"].rows == len(trades)
    assert status.queries["records"].committed_offsets


def test_forecast_tasks_run_on_the_worker(settings: Settings, worker: WorkerNode, cli_env: dict[str, str]) -> None:
    """Two symbols without a day of bars: each task runs (and is skipped for its short history) where placed."""
    result = run_cli("forecast", "--symbol", "AAPL", "--symbol", "MSFT", env=cli_env, timeout=300)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    es = es_client(settings)
    index = settings.elasticsearch.indices.forecast_runs
    es.indices.refresh(index=index)
    hits = es.search(index=index, query={"term": {"record": "symbol"}}, size=10)["hits"]["hits"]
    nodes = {hit["_source"]["symbol"]: hit["_source"].get("node_id") for hit in hits}
    assert nodes == {"AAPL": worker.node_id, "MSFT": worker.node_id}, [hit["_source"] for hit in hits]


def test_a_forecast_replica_runs_on_the_worker_and_answers_through_the_head(
    settings: Settings, worker: WorkerNode, cli_env: dict[str, str], tiny_model: Path
) -> None:
    """`ray-app serve` from the CLI's machine: the Forecast deployment asks for the worker's resource, so its
    replica lives there; requests enter through the proxy on the head (HeadOnly: two nodes on one machine cannot both
    bind the HTTP port) and reach it across nodes."""
    import httpx
    from ray.util.state import list_actors

    from ray_app.testing.stack import free_ports

    (port,) = free_ports(1)
    env = {
        **cli_env,
        **settings_env(
            {
                "serve": {
                    "app_name": "cluster-api",
                    "http_port": port,
                    "proxy_location": "HeadOnly",
                    "forecast": {"resources": {WORKER: 1}, "num_cpus": 0.1},
                    "recommender": {"num_cpus": 0.1},
                    "ingress": {"num_cpus": 0.1},
                },
                "recommend": {"model": tiny_model},
            }
        ),
    }
    deployed = run_cli("serve", "--timeout", "240", env=env, timeout=300)
    try:
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        alive = list_actors(address=settings.ray.dashboard_url, filters=[("state", "=", "ALIVE")])
        replicas = [
            actor
            for actor in alive
            if "cluster-api" in (actor.class_name or "") and "Forecast" in (actor.class_name or "")
        ]
        assert replicas and {actor.node_id for actor in replicas} == {worker.node_id}, replicas
        answer = httpx.get(f"http://127.0.0.1:{port}/symbols", timeout=30)
        assert answer.status_code == 200, answer.text
        # the forecast run above, read by the replica on the worker
        assert {row["symbol"] for row in answer.json()} == {"AAPL", "MSFT"}
    finally:
        from ray import serve

        from ray_app.ray_cluster import connect

        connect(settings)
        serve.shutdown()  # Serve's proxy keeps its port: later modules start Serve with their own
