"""A second Ray node on this machine for a test: `ray start --address <head> --resources ...`, stopped by pid.

The node can be given a disk of its own: ``private`` is a directory that, for the node's processes only, is an
empty tmpfs (a mount namespace, where the kernel allows one). What the head writes there the node does not see,
as on a second machine; its own state directory lives there too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from ray_app.config import Settings
from ray_app.jvm_artifacts import find_java
from ray_app.testing.stack import free_ports


@dataclass(frozen=True)
class WorkerNode:
    node_id: str
    pid: int
    state_dir: Path  # the node's own (RAY_APP_STATE_DIR of its processes)
    private: Path | None  # what only this node sees (None: the kernel allowed no mount namespace)


def private_mounts_work() -> bool:
    """Whether this process may give a child a mount namespace of its own (root, or the capability)."""
    try:
        return (
            subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, timeout=10
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _node_with(settings: Settings, resource: str) -> str | None:
    from ray.util.state import list_nodes

    # without raise_on_missing_output Ray counts the nodes a filter left out (dead ones) as lost and raises
    for node in list_nodes(
        address=settings.ray.dashboard_url, filters=[("state", "=", "ALIVE")], raise_on_missing_output=False
    ):
        if resource in (node.resources_total or {}):
            return node.node_id
    return None


@contextmanager
def worker_node(
    settings: Settings,
    *,
    resources: dict[str, float],
    num_cpus: int,
    private: Path | None,
    log_file: Path,
    timeout_s: float = 120,
) -> Iterator[WorkerNode]:
    """A worker node joined to the head at ``settings.ray.address``, offering ``resources`` (the first names it)."""
    ray_cli = Path(sys.executable).with_name("ray")
    agent, metrics = free_ports(2)
    argv = [
        str(ray_cli),
        "start",
        "--block",
        "--disable-usage-stats",
        f"--address={settings.ray.address}",
        f"--node-ip-address={settings.ray.address.rsplit(':', 1)[0]}",
        f"--num-cpus={num_cpus}",
        f"--resources={json.dumps(resources)}",
        "--object-store-memory=268435456",
        f"--dashboard-agent-listen-port={agent}",
        f"--metrics-export-port={metrics}",
    ]
    use_private = private is not None and private_mounts_work()
    if use_private:
        assert private is not None
        private.mkdir(parents=True, exist_ok=True)
        script = 'mount -t tmpfs ray-app-private "$0" && mkdir -p "$0/state" && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(private), *argv]
    state_dir = (private if use_private and private else log_file.parent) / "state"
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(
        os.environ,
        PATH=path,
        JAVA_HOME=str(find_java(settings).home),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE=settings.ray.auth_mode,
        RAY_APP_STATE_DIR=str(state_dir),
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as log:
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    name = next(iter(resources))
    try:
        deadline = time.monotonic() + timeout_s
        while (node_id := _node_with(settings, name)) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker node did not join: {log_file.read_text()[-2000:]}")
            time.sleep(1)
        yield WorkerNode(node_id, proc.pid, state_dir, private if use_private else None)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `ray start --block` (it stops its raylet and workers), then SIGKILL to whatever is left."""
    try:
        family = [proc.pid, *(child.pid for child in psutil.Process(proc.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        family = [proc.pid]
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(60)
    for pid in family:
        with suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    proc.wait(10)
