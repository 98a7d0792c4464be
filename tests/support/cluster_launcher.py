"""ray-cluster.yaml started on this machine: the same node types and setup commands, Ray's ``fake_multinode``
provider in place of the cloud's (what Ray's own autoscaler tests use: the autoscaler in the head starts each
worker node as local processes, with its node type's resources, and stops it when idle).

What changes, and why, is all in :func:`local_config`: the provider; each node type's ``node_config`` (instance
types) and the CPUs/GPUs the cloud provider would read off them, given here instead; the idle timeout (a test
cannot wait ten minutes). The setup commands run once on this machine, in a home folder of their own where
``~/ray-app`` is this checkout (a fake node has no updater and shares this machine's disk, as ``file_mounts``
would have made it). The head starts from the file's own ``ray start`` line with its ports moved to free ones, so
it runs beside any other Ray on the machine; the file's ``ray stop`` is not run (it would stop every Ray here).
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from ray_app.config import PROJECT_ROOT
from ray_app.testing.stack import free_ports

CLUSTER_FILE = PROJECT_ROOT / "ray-cluster.yaml"


def local_config(
    cluster: Mapping[str, Any],
    *,
    gcs_address: str,
    detected: Mapping[str, Mapping[str, float]],
    idle_timeout_minutes: float,
) -> dict[str, Any]:
    """``cluster`` with the fake_multinode provider; ``detected``: per node type, the CPUs and GPUs a cloud provider
    would have read off its instance type. Defaults are filled in first by Ray's own ``prepare_config``, with the
    file's provider, as `ray up` does before it writes the head's bootstrap config."""
    from ray.autoscaler._private.util import prepare_config

    config = copy.deepcopy(prepare_config(dict(cluster)))
    # node ids stand for IP addresses (every fake node has this machine's); no updaters: a fake node is set up already
    config["provider"] = {
        "type": "fake_multinode",
        "gcs_address": gcs_address,
        "use_node_id_as_ip": True,
        "disable_node_updaters": True,
        "disable_launch_config_check": True,
    }
    for name, node_type in config["available_node_types"].items():
        node_type["node_config"] = {}
        node_type["resources"] = {**node_type.get("resources", {}), **detected[name]}
    config["idle_timeout_minutes"] = idle_timeout_minutes
    return config


def _shell(command: str) -> list[str]:
    """A node's command as Ray's command runner runs it, in an interactive bash that reads ~/.bashrc (Ray's is a
    login shell too, whose ~/.profile reads ~/.bashrc on the images it targets; this home has no ~/.profile)."""
    return ["bash", "-i", "-c", command]


def run_setup_commands(cluster: Mapping[str, Any], home: Path, env: Mapping[str, str]) -> None:
    """The file's ``setup_commands`` in a shell, in order, with ``home`` as HOME and ``~/ray-app`` this checkout."""
    home.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        (home / "ray-app").symlink_to(PROJECT_ROOT)
    for command in cluster["setup_commands"]:
        done = subprocess.run(
            _shell(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**os.environ, **env, "HOME": str(home)},
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"setup command failed ({done.returncode}): {command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )


def _head_command(
    cluster: Mapping[str, Any], *, gcs_port: int, dashboard_port: int, temp_dir: Path, num_cpus: float
) -> str:
    """The file's last head start command with its ports moved, a temp dir of its own and the head's CPUs."""
    command = " ".join(cluster["head_start_ray_commands"][-1].split())
    command = re.sub(r"--port=\d+", f"--port={gcs_port}", command)
    command = re.sub(r"--dashboard-port=\d+", f"--dashboard-port={dashboard_port}", command)
    agent, metrics, client = free_ports(3)
    extra = [
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        f"--num-cpus={num_cpus:g}",
        "--disable-usage-stats",
        f"--dashboard-agent-listen-port={agent}",
        f"--metrics-export-port={metrics}",
        f"--ray-client-server-port={client}",
        "--object-store-memory=268435456",
    ]
    return f"{command} {' '.join(shlex.quote(arg) for arg in extra)}"


@dataclass(frozen=True)
class LocalCluster:
    gcs_address: str
    dashboard_url: str
    temp_dir: Path
    home: Path
    config: dict[str, Any]


def _processes_of(temp_dir: Path, gcs_port: int) -> list[psutil.Process]:
    """Every process of the cluster: those naming its temp dir (or a session dir in it) or its GCS port in their
    command line, and their descendants (the agents a raylet starts rename themselves)."""
    marks = (str(temp_dir), f":{gcs_port}")
    mine: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        with suppress(psutil.Error):
            if any(mark in arg for arg in proc.info["cmdline"] or [] for mark in marks):
                mine[proc.pid] = proc
                mine.update((child.pid, child) for child in proc.children(recursive=True))
    return list(mine.values())


@contextmanager
def local_cluster(
    workdir: Path, *, detected: Mapping[str, Mapping[str, float]], idle_timeout_minutes: float, env: Mapping[str, str]
) -> Iterator[LocalCluster]:
    """ray-cluster.yaml up on this machine; every process it started is stopped by pid at the end."""
    cluster = yaml.safe_load(CLUSTER_FILE.read_text())
    gcs_port, dashboard_port = free_ports(2)
    home, temp_dir = workdir / "home", workdir / "ray"
    gcs_address = f"127.0.0.1:{gcs_port}"
    config = local_config(
        cluster, gcs_address=gcs_address, detected=detected, idle_timeout_minutes=idle_timeout_minutes
    )
    run_setup_commands(cluster, home, env)
    (home / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump(config))  # where the launcher puts it
    head_cpus = detected[cluster["head_node_type"]].get("CPU", 1)
    command = _head_command(
        cluster, gcs_port=gcs_port, dashboard_port=dashboard_port, temp_dir=temp_dir, num_cpus=head_cpus
    )
    # the head as the fake provider knows it: its node id (what Ray's own AutoscalingCluster sets)
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    start_env = {
        **os.environ,
        **env,
        "HOME": str(home),
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID,
        "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
    }
    try:
        started = subprocess.run(
            _shell(command), stdin=subprocess.DEVNULL, env=start_env, capture_output=True, text=True, timeout=300
        )
        if started.returncode != 0:
            raise RuntimeError(f"the head did not start: {started.stdout[-2000:]}{started.stderr[-2000:]}")
        dashboard_url = f"http://127.0.0.1:{dashboard_port}"
        _wait_for_dashboard(dashboard_url)
        yield LocalCluster(gcs_address, dashboard_url, temp_dir, home, config)
    finally:
        _stop(temp_dir, gcs_port)


def _wait_for_dashboard(url: str, timeout_s: float = 120) -> None:
    """`ray start` returns before the dashboard's APIs answer (its modules start in processes of their own)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v0/nodes", timeout=5).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dashboard at {url} did not answer within {timeout_s:.0f} s")
        time.sleep(1)


def _stop(temp_dir: Path, gcs_port: int) -> None:
    procs = _processes_of(temp_dir, gcs_port)
    for proc in procs:
        with suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=15)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)
    time.sleep(0.5)
