"""One Apache Kafka node in KRaft mode (broker and controller in one JVM), data in the state directory."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from ray_app.kafka_io import admin_config
from ray_app.kafka_topics import ensure_topics
from ray_app.stack.artifacts import Java, ensure_bundle, jars
from ray_app.stack.processes import StackError, last_log_line
from ray_app.stack.service import Launch, Listener, Service

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaService(Service):
    name = "kafka"

    @property
    def _listener(self) -> tuple[str, int]:
        servers = self.settings.kafka.bootstrap_servers.split(",")
        if len(servers) != 1:
            raise StackError(
                "the local stack runs one Kafka node: kafka.bootstrap_servers must be a single host:port "
                f"(got {self.settings.kafka.bootstrap_servers})"
            )
        host, port = servers[0].rsplit(":", 1)
        return host, int(port)

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    def listeners(self) -> list[Listener]:
        host, port = self._listener
        return [
            Listener(host, port, "Kafka broker"),
            Listener("127.0.0.1", self.settings.stack.kafka_controller_port, "Kafka KRaft controller"),
        ]

    def _server_properties(self) -> str:
        host, port = self._listener
        controller = self.settings.stack.kafka_controller_port
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.data_dir}",
                # topics are created explicitly with their partition counts; a typo must not create one
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "num.partitions=1",
                "",
            ]
        )

    def launch(self, java: Java) -> Launch:
        bundle, _ = ensure_bundle(self.settings, "kafka")
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self.config_dir / "server.properties"
        properties.write_text(self._server_properties())
        log4j = self.config_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        classpath = os.pathsep.join(str(jar) for jar in jars(bundle))
        heap = self.settings.stack.kafka_heap
        jvm = [str(java.executable), f"-Xms{heap}", f"-Xmx{heap}", f"-Dlog4j2.configurationFile={log4j}",
               f"-Dkafka.logs.dir={self.settings.logs_dir}", "-cp", classpath]  # fmt: skip
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(jvm, properties)
        return Launch(argv=[*jvm, "kafka.Kafka", str(properties)], env=dict(os.environ))

    def _format_storage(self, jvm: list[str], properties: Path) -> None:
        """Format the KRaft metadata log once; a formatted node keeps its cluster id and data forever."""

        cluster_id = "-"
        while cluster_id.startswith("-"):  # like Kafka's Uuid.randomUuid: a leading '-' reads as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        argv = [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(properties)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a") as log:
            log.write(f"\n===== formatting KRaft storage in {self.data_dir}\n")
            log.flush()
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        if code != 0:
            raise StackError(
                f"formatting Kafka storage in {self.data_dir} failed: {last_log_line(self.log_file)}", self.log_file
            )

    def healthy(self) -> bool:
        host, port = self._listener
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return False
        try:
            admin = AdminClient(admin_config(self.settings, **{"socket.timeout.ms": 2000}))
            metadata = admin.list_topics(timeout=2)
            return bool(metadata.brokers)
        except Exception:
            return False

    def after_start(self) -> list[str]:
        return ensure_topics(self.settings)
