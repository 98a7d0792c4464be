"""The local Kafka in KRaft mode: one node (broker and controller in one JVM), or a cluster of several on this
machine (one per address of ``kafka.bootstrap_servers``, every one a broker and a controller voter, formatted with
one cluster id), data in the state directory. Its own topics are replicated as the settings' data topics are
(``kafka.replication_factor``, ``kafka.min_insync_replicas``); unclean leader election stays off.

Its client listener speaks what ``kafka.security_protocol`` says: PLAINTEXT, or SASL_SSL / SASL_PLAINTEXT with a
SCRAM mechanism. For SASL the node is formatted with one SCRAM user, ``kafka.sasl_username`` with
``kafka.sasl_password`` (given to the storage tool as a salted password, never in a command line); for TLS it gets
a certificate from the state directory's own authority (``tls.py``), whose certificate is written where
``kafka.ssl_ca_location`` says, for every client to trust. The controller listener is then TLS with client
certificates required, on the loopback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from ray_app.config import Settings
from ray_app.jvm_artifacts import Java, ensure_bundle, jars
from ray_app.kafka_clients import KafkaUnavailable, jaas_config, probe
from ray_app.kafka_topics import ensure_topics
from ray_app.stack.processes import StackError, last_log_line
from ray_app.stack.service import Launch, Listener, Service
from ray_app.stack.tls import ServerCertificate, ensure_server_certificate

SCRAM_ITERATIONS = 4096  # Kafka's default, and SCRAM-SHA-512's minimum
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # nothing SCRAM or the storage tool's parser would need to escape

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
    """One node of the local Kafka cluster: the ``node``-th address of ``kafka.bootstrap_servers`` (from 1) and the
    ``node``-th of ``stack.kafka_controller_ports``. With one address it is the single node ``kafka``; with several,
    ``kafka-1``, ``kafka-2``, ... form one KRaft cluster (every node a broker and a controller voter)."""

    def __init__(self, settings: Settings, node: int = 1) -> None:
        super().__init__(settings)
        self.node = node
        self.nodes = len(settings.kafka.bootstrap_servers.split(","))
        self.name = "kafka" if self.nodes == 1 else f"kafka-{node}"

    @property
    def _listener(self) -> tuple[str, int]:
        host, port = self.settings.kafka.bootstrap_servers.split(",")[self.node - 1].rsplit(":", 1)
        return host, int(port)

    @property
    def _controller_ports(self) -> list[int]:
        ports = self.settings.stack.kafka_controller_ports
        if len(ports) != self.nodes:
            raise StackError(
                f"the local stack runs one Kafka node per address of kafka.bootstrap_servers ({self.nodes}); "
                f"stack.kafka_controller_ports must list as many controller ports (got {len(ports)})"
            )
        return ports

    @property
    def _voters(self) -> str:
        """The KRaft controller quorum: every node, by id and controller address."""
        return ",".join(f"{node}@127.0.0.1:{port}" for node, port in enumerate(self._controller_ports, start=1))

    @property
    def address(self) -> str:
        host, port = self._listener
        return f"{host}:{port}"

    @property
    def _node_settings(self) -> Settings:
        """The settings with only this node in ``bootstrap_servers``: a probe that asks this node and no other."""
        kafka = self.settings.kafka.model_copy(update={"bootstrap_servers": self.address})
        return self.settings.model_copy(update={"kafka": kafka})

    def listeners(self) -> list[Listener]:
        host, port = self._listener
        return [
            Listener(host, port, "Kafka broker"),
            Listener("127.0.0.1", self._controller_ports[self.node - 1], "Kafka KRaft controller"),
        ]

    def _security(self) -> dict[str, str]:
        """What the node's client listener speaks, checked: the part of the settings formatting depends on."""
        kafka = self.settings.kafka
        if kafka.replication_factor > self.nodes:
            raise StackError(
                f"kafka.replication_factor {kafka.replication_factor} needs as many brokers; the local "
                f"stack runs {self.nodes} (one per address of kafka.bootstrap_servers)"
            )
        protocol = kafka.security_protocol
        if protocol not in {"PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise StackError(
                f"the local stack runs Kafka with PLAINTEXT, SASL_PLAINTEXT or SASL_SSL (SCRAM); "
                f"kafka.security_protocol is {protocol}"
            )
        if protocol == "PLAINTEXT":
            return {"protocol": protocol}
        if not (kafka.sasl_mechanism or "").startswith("SCRAM-"):
            raise StackError(
                f"the local stack's Kafka authenticates with SCRAM: set kafka.sasl_mechanism to "
                f"SCRAM-SHA-512 or SCRAM-SHA-256 (got {kafka.sasl_mechanism})"
            )
        if not _USERNAME.match(kafka.sasl_username or ""):
            raise StackError(
                "kafka.sasl_username: the local stack's Kafka user is 1-64 letters, digits, '.', '_' or '-'"
            )
        if protocol == "SASL_SSL" and kafka.ssl_ca_location is None:
            raise StackError(
                "kafka.ssl_ca_location: set it to where the local stack should write the certificate of "
                "its own authority (clients trust it), e.g. ~/.ray-app/tls/kafka-ca.pem"
            )
        return {"protocol": protocol, "mechanism": kafka.sasl_mechanism or "", "username": kafka.sasl_username or ""}

    def _certificate(self) -> ServerCertificate:
        host, _ = self._listener
        # one certificate for every node (they share the host): config/kafka/tls, the single node's own folder
        files = ensure_server_certificate(self.settings.state_dir / "config" / "kafka" / "tls", host, "kafka")
        ca_location = self.settings.kafka.ssl_ca_location
        assert ca_location is not None  # _security() said so
        if not ca_location.is_file() or ca_location.read_bytes() != files.ca_cert.read_bytes():
            ca_location.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files.ca_cert, ca_location)
        return files

    def _server_properties(self, security: dict[str, str]) -> str:
        host, port = self._listener
        controller = self._controller_ports[self.node - 1]
        protocol = security["protocol"]
        lines = [
            "process.roles=broker,controller",
            f"node.id={self.node}",
            f"controller.quorum.voters={self._voters}",
            f"listeners={protocol}://{host}:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners={protocol}://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={protocol}",
        ]
        if protocol == "PLAINTEXT":
            lines.append("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
        else:
            mechanism = security["mechanism"]
            password = self.settings.kafka.sasl_password
            assert password is not None  # the settings refuse SASL without one
            jaas = jaas_config(mechanism, security["username"], password.get_secret_value())
            tls = protocol == "SASL_SSL"
            lines += [
                f"listener.security.protocol.map={protocol}:{protocol},CONTROLLER:{'SSL' if tls else 'PLAINTEXT'}",
                f"sasl.enabled.mechanisms={mechanism}",
                f"sasl.mechanism.inter.broker.protocol={mechanism}",
                f"listener.name.{protocol.lower()}.{mechanism.lower()}.sasl.jaas.config={_property_value(jaas)}",
            ]
            if tls:
                files = self._certificate()
                lines += [
                    "ssl.keystore.type=PEM",
                    f"ssl.keystore.location={_property_value(str(files.keystore))}",
                    "ssl.truststore.type=PEM",
                    f"ssl.truststore.location={_property_value(str(files.ca_cert))}",
                    "listener.name.controller.ssl.client.auth=required",
                ]
        replicas, min_isr = self.settings.kafka.replication_factor, self.settings.kafka.min_insync_replicas
        lines += [
            f"log.dirs={_property_value(str(self.data_dir))}",
            # topics are created explicitly with their partition counts; a typo must not create one
            "auto.create.topics.enable=false",
            # Kafka's own topics as durable as the data: the settings' copies and in-sync minimum
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            # a replica that missed writes never becomes leader: acknowledged records are never thrown away
            "unclean.leader.election.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "num.partitions=1",
            "",
        ]
        return "\n".join(lines)

    @property
    def _format_marker(self) -> Path:
        return self.data_dir / "ray-app-security.json"

    def launch(self, java: Java) -> Launch:
        bundle, _ = ensure_bundle(self.settings, "kafka")
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        security = self._security()
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted:
            self._check_formatted_for(security)
        properties = self.config_dir / "server.properties"
        descriptor = os.open(properties, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold the password
        with os.fdopen(descriptor, "w") as file:
            file.write(self._server_properties(security))
        os.chmod(properties, 0o600)
        log4j = self.config_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        classpath = os.pathsep.join(str(jar) for jar in jars(bundle))
        heap = self.settings.stack.kafka_heap
        jvm = [
            str(java.executable),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.settings.logs_dir}",
            "-cp",
            classpath,
        ]
        if not formatted:
            self._format_storage(jvm, properties, security)
        return Launch(argv=[*jvm, "kafka.Kafka", str(properties)], env=dict(os.environ))

    def _check_formatted_for(self, security: dict[str, str]) -> None:
        """A node formatted without a SCRAM user, or with another, cannot authenticate these settings' user: its
        SCRAM users live in its metadata, written when it was formatted."""
        formatted = (
            json.loads(self._format_marker.read_text()) if self._format_marker.is_file() else {"protocol": "PLAINTEXT"}
        )
        if formatted.get("voters", self._voters) != self._voters:
            raise StackError(
                f"the local Kafka in {self.data_dir} was formatted for the controller quorum {formatted['voters']}, "
                f"the settings ask for {self._voters} (kafka.bootstrap_servers, stack.kafka_controller_ports): set "
                f"them back, or start afresh: `ray-app stack down`, then delete {self.data_dir} (its topics are lost)"
            )
        user = {key: value for key, value in security.items() if key not in ("protocol", "voters")}
        if user and {key: value for key, value in formatted.items() if key not in ("protocol", "voters")} != user:
            was = formatted.get("username") and f"SASL user {formatted['username']!r} ({formatted['mechanism']})"
            now = security.get("username") and f"SASL user {security['username']!r} ({security['mechanism']})"
            raise StackError(
                f"the local Kafka in {self.data_dir} was formatted for {was or 'no authentication'}, the settings ask "
                f"for {now or 'none'} (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username): set them "
                f"back, or start afresh: `ray-app stack down`, then delete {self.data_dir} (its topics are lost)"
            )

    def _format_storage(self, jvm: list[str], properties: Path, security: dict[str, str]) -> None:
        """Format the KRaft metadata log once; a formatted node keeps its cluster id, data and SCRAM users forever."""

        argv = [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={self._cluster_id()}",
            "--config",
            str(properties),
        ]
        if "username" in security:
            argv += ["--add-scram", _scram_credential(self.settings, security)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a") as log:
            log.write(f"\n===== formatting KRaft storage in {self.data_dir}\n")
            log.flush()
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        if code != 0:
            raise StackError(
                f"formatting Kafka storage in {self.data_dir} failed: {last_log_line(self.log_file)}", self.log_file
            )
        self._format_marker.write_text(json.dumps({**security, "voters": self._voters}))

    def _cluster_id(self) -> str:
        """The cluster's id, made once and shared by every node (formatted apart, they must agree on it)."""
        path = self.settings.state_dir / "config" / "kafka-cluster-id"
        if not path.is_file():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # like Kafka's Uuid.randomUuid: a leading '-' reads as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(cluster_id)
        return path.read_text().strip()

    def healthy(self) -> bool:
        """Answers metadata requests with these settings; a broker that refuses them (credentials, certificate)
        is an error at once, not a wait until the start-up timeout."""
        host, port = self._listener
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return False
        try:
            probe(self._node_settings, timeout_s=3)
            return True
        except KafkaUnavailable as exc:
            if exc.refused:
                raise StackError(str(exc), self.log_file) from None
            return False

    def after_start(self) -> list[str]:
        """The topics, once every node answers (the manager waits on the nodes in order: the last one runs it)."""
        return ensure_topics(self.settings) if self.node == self.nodes else []


def _property_value(value: str) -> str:
    """``value`` as a Java .properties file reads it back (ISO-8859-1 with backslash escapes)."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "".join(c if 32 <= ord(c) < 127 else "".join(f"\\u{unit:04x}" for unit in _utf16(c)) for c in escaped)


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _scram_credential(settings: Settings, security: dict[str, str]) -> str:
    """The storage tool's ``--add-scram`` value with a salted password: the password itself is never an argument."""
    password = settings.kafka.sasl_password
    assert password is not None
    digest = {"SCRAM-SHA-512": "sha512", "SCRAM-SHA-256": "sha256"}[security["mechanism"]]
    salt = secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac(digest, password.get_secret_value().encode(), salt, SCRAM_ITERATIONS)
    encode = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return (
        f"{security['mechanism']}=[name={security['username']},iterations={SCRAM_ITERATIONS},"
        f"salt={encode(salt)},saltedpassword={encode(salted)}]"
    )
