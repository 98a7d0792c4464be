"""A local Ray head node with its dashboard, so `ray job submit --address <dashboard>` works.

It runs as `ray start --head --block`: that process owns the Ray daemons and shuts them down when it gets
SIGTERM, so stopping it (and, by force, its descendants) stops exactly this cluster and never another one
on the machine, unlike `ray stop`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ray_app.jvm_artifacts import Java
from ray_app.ray_cluster import dashboard_headers
from ray_app.stack.service import Launch, Listener, Service

MIN_LIVE_CPUS = 4


def head_cpus(configured: int | None) -> int:
    """The head's logical CPUs: the configured number, else the machine's cores but at least MIN_LIVE_CPUS.

    Ray's CPUs are scheduling slots, not cores. The live pipeline holds two of them all the time (the stream's
    executor and the Serve replicas) and the hourly forecast asks for one more; on a two-core machine it would queue
    behind the always-on parts forever, so the local head advertises a little more than the cores it has."""
    return configured or max(os.cpu_count() or 1, MIN_LIVE_CPUS)


class RayHeadService(Service):
    name = "ray"

    @property
    def address(self) -> str:
        return f"{self.settings.ray.address} (dashboard {self.settings.ray.dashboard_url})"

    @property
    def data_dir(self) -> Path:
        return self.settings.ray.temp_dir or Path("/tmp/ray")

    def _dashboard_host(self) -> str:
        return urlsplit(self.settings.ray.dashboard_url).hostname or "127.0.0.1"

    def listeners(self) -> list[Listener]:
        gcs_host = self.settings.ray.address.rsplit(":", 1)[0]
        return [
            Listener(gcs_host, self.settings.ray.gcs_port, "Ray GCS"),
            Listener(self._dashboard_host(), self.settings.ray.dashboard_port, "Ray dashboard"),
            Listener("0.0.0.0", self.settings.ray.client_server_port, "Ray Client server"),
            Listener("0.0.0.0", self.settings.ray.dashboard_agent_port, "Ray dashboard agent"),
        ]

    def launch(self, java: Java) -> Launch:
        ray = self.settings.ray
        ray_cli = Path(sys.executable).with_name("ray")
        command = [str(ray_cli)] if ray_cli.exists() else [sys.executable, "-m", "ray.scripts.scripts"]
        argv = [
            *command,
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            f"--node-ip-address={ray.address.rsplit(':', 1)[0]}",
            f"--port={ray.gcs_port}",
            "--include-dashboard=true",
            f"--dashboard-host={self._dashboard_host()}",
            f"--dashboard-port={ray.dashboard_port}",
            f"--ray-client-server-port={ray.client_server_port}",
            f"--dashboard-agent-listen-port={ray.dashboard_agent_port}",
        ]
        argv.append(f"--num-cpus={head_cpus(ray.num_cpus)}")
        if ray.object_store_memory_mb:
            argv.append(f"--object-store-memory={ray.object_store_memory_mb * 1024 * 1024}")
        if ray.temp_dir:
            argv.append(f"--temp-dir={ray.temp_dir}")
        # Java for RayDP's Spark executors later; the jobs inherit the head's environment.
        # `python` in a job's entrypoint must be this environment's interpreter, which has the project installed.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = dict(
            os.environ,
            PATH=path,
            RAY_USAGE_STATS_ENABLED="0",
            JAVA_HOME=str(java.home),
            RAY_AUTH_MODE=ray.auth_mode,
            # the dashboard's metrics view reads the stack's Prometheus
            RAY_PROMETHEUS_HOST=self.settings.prometheus.url,
        )
        return Launch(argv=argv, env=env)

    def _auth_headers(self) -> dict[str, str]:
        return dashboard_headers(self.settings)

    def healthy(self) -> bool:
        try:
            response = httpx.get(
                f"{self.settings.ray.dashboard_url}/api/version", timeout=2, headers=self._auth_headers()
            )
            return response.status_code == 200 and "ray_version" in response.json()
        except (httpx.HTTPError, ValueError):
            return False
