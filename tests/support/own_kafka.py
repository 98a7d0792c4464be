"""Kafka of a test's own (KRaft, the same artifacts and code as the session's stack), to stop, kill and start at will
without disturbing the shared stack: one broker for the tests of "Kafka is away", three for "a broker dies"."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ray_app.config import Settings
from ray_app.jvm_artifacts import find_java
from ray_app.stack.kafka import KafkaService
from ray_app.stack.processes import running_process, start_process, stop_process, wait_until_healthy
from ray_app.testing.stack import free_ports


@dataclass
class OwnKafka:
    settings: Settings
    service: KafkaService

    def start(self) -> None:
        launch = self.service.launch(find_java(self.settings))
        proc = start_process(
            launch.argv, pid_file=self.service.pid_file, log_file=self.service.log_file, env=launch.env, cwd=launch.cwd
        )
        wait_until_healthy(self.service.name, self.service.healthy, proc, timeout_s=120, log_file=self.service.log_file)

    def stop(self) -> None:
        stop_process(self.service.pid_file, 30)

    def kill(self) -> None:
        """SIGKILL, as a machine that loses power: no clean shutdown, no flush of the page cache's intent."""
        proc = running_process(self.service.pid_file)
        if proc is not None:
            with suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)

    @property
    def running(self) -> bool:
        return running_process(self.service.pid_file) is not None


@dataclass
class OwnKafkaCluster:
    """Several brokers forming one KRaft cluster (each a controller voter too); ``nodes[i]`` is node ``i + 1``."""

    settings: Settings
    nodes: list[OwnKafka]

    def start(self) -> None:
        """Every node not running (together: a quorum needs a majority before any node is healthy), then topics."""
        java = find_java(self.settings)
        started = {}
        for node in self.nodes:
            if not node.running:
                launch = node.service.launch(java)
                started[node.service.name] = start_process(
                    launch.argv, pid_file=node.service.pid_file, log_file=node.service.log_file, env=launch.env
                )
        for node in self.nodes:
            proc = started.get(node.service.name) or running_process(node.service.pid_file)
            assert proc is not None, f"{node.service.name} is not running"
            wait_until_healthy(
                node.service.name, node.service.healthy, proc, timeout_s=180, log_file=node.service.log_file
            )
        self.nodes[-1].service.after_start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _own_settings(stack: Settings, state_dir: Path, nodes: int, kafka: dict[str, Any], heap: str) -> Settings:
    ports = free_ports(2 * nodes)
    brokers, controllers = ports[:nodes], ports[nodes:]
    return stack.model_copy(
        update={
            "state_dir": state_dir,
            "kafka": stack.kafka.model_copy(
                update={"bootstrap_servers": ",".join(f"127.0.0.1:{port}" for port in brokers), **kafka}
            ),
            "stack": stack.stack.model_copy(update={"kafka_controller_ports": controllers, "kafka_heap": heap}),
        }
    )


@contextmanager
def own_kafka(stack: Settings, state_dir: Path, **kafka: Any) -> Iterator[OwnKafka]:
    """A broker of its own on free ports; ``kafka``: more of its settings (``security_protocol``, ...)."""
    settings = _own_settings(stack, state_dir, 1, kafka, stack.stack.kafka_heap)
    broker = OwnKafka(settings, KafkaService(settings))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextmanager
def own_kafka_cluster(
    stack: Settings, state_dir: Path, nodes: int = 3, heap: str = "384m", **kafka: Any
) -> Iterator[OwnKafkaCluster]:
    """``nodes`` brokers of its own on free ports, replicating every topic on all of them with a write needing
    all but one (``kafka`` overrides that)."""
    kafka = {"replication_factor": nodes, "min_insync_replicas": max(1, nodes - 1), **kafka}
    settings = _own_settings(stack, state_dir, nodes, kafka, heap)
    cluster = OwnKafkaCluster(settings, [OwnKafka(settings, KafkaService(settings, n)) for n in range(1, nodes + 1)])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
