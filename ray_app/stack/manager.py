"""`ray-app stack up | down | status`: the local stack of real engines (Kafka, Elasticsearch, Ray head, Alertmanager,
Prometheus)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ray_app.config import Settings
from ray_app.jvm_artifacts import BUNDLES, ensure_bundle, find_java
from ray_app.stack.alertmanager import AlertmanagerService
from ray_app.stack.elasticsearch import ElasticsearchService
from ray_app.stack.kafka import KafkaService
from ray_app.stack.processes import (
    StackError,
    port_is_free,
    port_owner,
    running_process,
    start_process,
    stop_process,
    wait_until_healthy,
)
from ray_app.stack.prometheus import PrometheusService
from ray_app.stack.ray_head import RayHeadService
from ray_app.stack.service import Service
from spark_jobs.stream_jar import ensure_stream_jar

Progress = Callable[[str], None]


def services(settings: Settings) -> list[Service]:
    """The services in start order (stopped in reverse)."""
    kafka_nodes = len(settings.kafka.bootstrap_servers.split(","))
    return [
        *(KafkaService(settings, node) for node in range(1, kafka_nodes + 1)),
        ElasticsearchService(settings),
        RayHeadService(settings),
        AlertmanagerService(settings),
        PrometheusService(settings),
    ]


@dataclass
class ServiceState:
    name: str
    pid: int | None
    address: str
    healthy: bool
    data_dir: Path
    log_file: Path
    action: str = ""


@dataclass
class UpReport:
    services: list[ServiceState]
    downloaded: list[str]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _quiet(_: str) -> None:
    pass


def up(settings: Settings, progress: Progress = _quiet) -> UpReport:
    """Start whatever is not running yet and make topics and index templates exist. Safe to repeat."""
    began = time.monotonic()
    progress("checking Java")
    java = find_java(settings)
    downloaded: list[str] = []
    for bundle in BUNDLES:
        progress(f"resolving {bundle} artifacts (downloads once into {settings.cache_dir})")
        _, fresh = ensure_bundle(settings, bundle)
        if fresh:
            downloaded.append(bundle)
    progress("compiling the streaming job's JVM code (once per version)")
    ensure_stream_jar(settings)

    all_services = services(settings)
    actions: dict[str, str] = {}
    to_start: list[Service] = []
    for service in all_services:
        if running_process(service.pid_file):
            actions[service.name] = "already running"
            continue
        for listener in service.listeners():
            if not port_is_free(listener.host, listener.port):
                owner = port_owner(listener.host, listener.port)
                raise StackError(
                    f"{service.name}: port {listener.host}:{listener.port} ({listener.purpose}) is already in use"
                    + (f" by {owner}" if owner else "")
                    + "; stop that process or choose another port in the settings",
                    service.log_file,
                )
        to_start.append(service)

    started = {}
    for service in to_start:
        progress(f"starting {service.name}")
        launch = service.launch(java)
        started[service.name] = start_process(
            launch.argv, pid_file=service.pid_file, log_file=service.log_file, env=launch.env, cwd=launch.cwd
        )
        actions[service.name] = "started"

    notes: list[str] = []
    for service in all_services:
        proc = started.get(service.name) or running_process(service.pid_file)
        progress(f"waiting for {service.name} at {service.address}")
        if proc is None:  # it died between the check above and now
            raise StackError(f"{service.name} is not running any more", service.log_file)
        try:
            wait_until_healthy(
                service.name, service.healthy, proc, timeout_s=settings.stack.start_timeout_s, log_file=service.log_file
            )
        except StackError:
            if service.name in started:
                stop_process(service.pid_file, settings.stack.stop_timeout_s)
            raise
        progress(f"setting up {service.name}")
        try:
            notes.extend(service.after_start())
        except Exception as exc:
            raise StackError(f"{service.name}: set-up after start failed: {exc}", service.log_file) from exc

    states = status(settings)
    for state in states:
        state.action = actions.get(state.name, "")
    return UpReport(services=states, downloaded=downloaded, notes=notes, seconds=time.monotonic() - began)


def down(settings: Settings, progress: Progress = _quiet) -> list[tuple[str, bool]]:
    """Stop the services this stack started (by pid file), in reverse order. Returns (name, was_running)."""
    result = []
    for service in reversed(services(settings)):
        progress(f"stopping {service.name}")
        result.append((service.name, stop_process(service.pid_file, settings.stack.stop_timeout_s)))
    return list(reversed(result))


def status(settings: Settings) -> list[ServiceState]:
    states = []
    for service in services(settings):
        proc = running_process(service.pid_file)
        states.append(
            ServiceState(
                name=service.name,
                pid=proc.pid if proc else None,
                address=service.address,
                healthy=bool(proc) and service.healthy(),
                data_dir=service.data_dir,
                log_file=service.log_file,
            )
        )
    return states
