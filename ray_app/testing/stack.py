"""A local stack of one's own for a test session: free ports, a scratch state dir, the CLI in a subprocess, and
process checks (every process a test starts is stopped by pid)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from ray_app.config import PROJECT_ROOT, Settings
from ray_app.testing.settings import settings_env

REPO = PROJECT_ROOT


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def stack_overrides(state_dir: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """Settings for a stack of its own: scratch state dir, free ports, a small object store."""
    kafka, controller, es_http, es_transport, gcs, dashboard, client, agent, prometheus, alerts = free_ports(10)
    overrides: dict[str, Any] = {
        "state_dir": state_dir,
        "kafka": {"bootstrap_servers": f"127.0.0.1:{kafka}"},
        "stack": {"kafka_controller_ports": [controller], "elasticsearch_transport_port": es_transport},
        "elasticsearch": {"url": f"http://127.0.0.1:{es_http}"},
        "ray": {
            "address": f"127.0.0.1:{gcs}",
            "gcs_port": gcs,
            "dashboard_url": f"http://127.0.0.1:{dashboard}",
            "dashboard_port": dashboard,
            "client_server_port": client,
            "dashboard_agent_port": agent,
            "temp_dir": state_dir / "ray",
            "object_store_memory_mb": 512,
        },
        "prometheus": {"url": f"http://127.0.0.1:{prometheus}", "scrape_interval_s": 2},
        "alertmanager": {"url": f"http://127.0.0.1:{alerts}"},
    }
    if cache_dir is not None:
        overrides["cache_dir"] = cache_dir
    return overrides


def stack_env(state_dir: Path, cache_dir: Path | None = None) -> dict[str, str]:
    """``stack_overrides`` as RAY_APP_* variables, for the processes a test starts."""
    return settings_env(stack_overrides(state_dir, cache_dir))


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` set for the block (and for the subprocesses it starts), restored afterwards."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`ray-app ARGS` in a subprocess, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "ray_app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stack_pids(settings: Settings) -> list[int]:
    """Every process of the local stack (by pid file) and their children."""
    from ray_app.stack import manager
    from ray_app.stack.processes import running_process

    pids = []
    for service in manager.services(settings):
        proc = running_process(service.pid_file)
        if proc:
            pids += [proc.pid, *(child.pid for child in proc.children(recursive=True))]
    return pids
