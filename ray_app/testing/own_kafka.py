"""A Kafka broker of a test's own (KRaft, the same artifacts as the session's stack), to stop and start at will
without disturbing the shared stack: what the tests of "Kafka is away" need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        proc = start_process(launch.argv, pid_file=self.service.pid_file, log_file=self.service.log_file,
                             env=launch.env, cwd=launch.cwd)  # fmt: skip
        wait_until_healthy("kafka", self.service.healthy, proc, timeout_s=120, log_file=self.service.log_file)

    def stop(self) -> None:
        stop_process(self.service.pid_file, 30)

    @property
    def running(self) -> bool:
        return running_process(self.service.pid_file) is not None


@contextmanager
def own_kafka(stack: Settings, state_dir: Path, **kafka: Any) -> Iterator[OwnKafka]:
    """A broker of its own on free ports; ``kafka``: more of its settings (``security_protocol``, ...)."""
    broker_port, controller_port = free_ports(2)
    settings = stack.model_copy(update={
        "state_dir": state_dir,
        "kafka": stack.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{broker_port}", **kafka}),
        "stack": stack.stack.model_copy(update={"kafka_controller_port": controller_port}),
    })  # fmt: skip
    broker = OwnKafka(settings, KafkaService(settings))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
