"""A two-node Elasticsearch cluster of the stack's own distribution, for the tests that need a shard to go away:
``master`` (master and data) and ``data`` (data only), on free loopback ports. Killing ``data`` with SIGKILL leaves
the shards it held unassigned (there are no replicas), as a node lost in production does; starting it again brings
them back from its disk.

    with TwoNodeElasticsearch(settings) as cluster:
        cluster.url                  # http://127.0.0.1:<port> of the master node
        cluster.kill_data_node()     # SIGKILL: its shards are away
        cluster.start_data_node()    # back, with its data
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from types import TracebackType

import httpx
import psutil

from ray_app.config import Settings
from ray_app.jvm_artifacts import Java, find_java
from ray_app.stack.elasticsearch import ElasticsearchService
from ray_app.stack.processes import read_pid_file, start_process, stop_process
from ray_app.stack.service import Launch, Listener
from ray_app.testing.stack import free_ports

CLUSTER = "ray-app-two-nodes"


class _Node(ElasticsearchService):
    def __init__(
        self, settings: Settings, node: str, http_port: int, transport_port: int, seeds: list[int], roles: list[str]
    ) -> None:
        super().__init__(settings)
        self.name = f"elasticsearch-{node}"
        self.node = node
        self.http_port, self.transport_port, self.seeds, self.roles = http_port, transport_port, seeds, roles

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def listeners(self) -> list[Listener]:
        return [Listener("127.0.0.1", self.http_port, "HTTP"), Listener("127.0.0.1", self.transport_port, "transport")]

    def _elasticsearch_yml(self) -> str:
        logs = self.settings.logs_dir / self.name
        logs.mkdir(parents=True, exist_ok=True)
        return "\n".join(
            [
                f"cluster.name: {CLUSTER}",
                f"node.name: {self.node}",
                f"node.roles: [{', '.join(self.roles)}]",
                f"discovery.seed_hosts: [{', '.join(f'127.0.0.1:{port}' for port in self.seeds)}]",
                *(["cluster.initial_master_nodes: [master]"] if "master" in self.roles else []),
                "network.host: 127.0.0.1",
                f"http.port: {self.http_port}",
                f"transport.port: {self.transport_port}",
                f"path.data: {self.data_dir}",
                f"path.logs: {logs}",
                "xpack.security.enabled: false",
                "cluster.routing.allocation.disk.threshold_enabled: false",
                "",
            ]
        )

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.address}/_nodes/_local", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, java: Java) -> None:
        launch: Launch = self.launch(java)
        start_process(launch.argv, pid_file=self.pid_file, log_file=self.log_file, env=launch.env, cwd=launch.cwd)

    def kill(self) -> None:
        """SIGKILL the node and every process under it: no shutdown, as a lost machine."""
        record = read_pid_file(self.pid_file)
        process = record.process() if record else None
        if process is None:
            return
        family = [process, *process.children(recursive=True)]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=30)
        self.pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        stop_process(self.pid_file, 30)


class TwoNodeElasticsearch:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.java = find_java(settings)
        http_master, http_data, transport_master, transport_data = free_ports(4)
        seeds = [transport_master, transport_data]
        self.master = _Node(settings, "master", http_master, transport_master, seeds, ["master", "data"])
        self.data = _Node(settings, "data", http_data, transport_data, seeds, ["data"])

    @property
    def url(self) -> str:
        return self.master.address

    def pids(self) -> list[int]:
        found = []
        for node in (self.master, self.data):
            record = read_pid_file(node.pid_file)
            process = record.process() if record else None
            if process is not None:
                found += [process.pid, *(child.pid for child in process.children(recursive=True))]
        return found

    def wait_nodes(self, count: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                health = httpx.get(
                    f"{self.url}/_cluster/health", params={"wait_for_nodes": str(count), "timeout": "5s"}, timeout=10
                )
                if health.status_code == 200 and health.json().get("number_of_nodes") == count:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(
            f"the two-node cluster did not reach {count} nodes in {timeout_s:.0f} s "
            f"(logs: {self.master.log_file}, {self.data.log_file})"
        )

    def __enter__(self) -> TwoNodeElasticsearch:
        try:
            self.master.start(self.java)
            self.data.start(self.java)
            self.wait_nodes(2)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def kill_data_node(self) -> None:
        self.data.kill()

    def start_data_node(self) -> None:
        self.data.start(self.java)
        self.wait_nodes(2)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for node in (self.data, self.master):
            node.stop()

    @property
    def logs(self) -> list[Path]:
        return [self.master.log_file, self.data.log_file]
