"""Shared fixtures: one real local stack (Kafka, Elasticsearch, Ray head) per test session.

The stack runs on free ports in a scratch state directory, configured the way users configure it (RAY_APP_*
environment variables), so it never touches a stack the user has running. It is stopped at the end by pid
file, and the session fails if any of its processes is left behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from ray_app.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


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


def stack_env(state_dir: Path, cache_dir: Path | None = None) -> dict[str, str]:
    """RAY_APP_* variables for a stack of its own: scratch state dir, free ports."""
    kafka, controller, es_http, es_transport, gcs, dashboard, client, agent = free_ports(8)
    env = {
        "RAY_APP_STATE_DIR": str(state_dir),
        "RAY_APP_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "RAY_APP_STACK__KAFKA_CONTROLLER_PORT": str(controller),
        "RAY_APP_ELASTICSEARCH__URL": f"http://127.0.0.1:{es_http}",
        "RAY_APP_STACK__ELASTICSEARCH_TRANSPORT_PORT": str(es_transport),
        "RAY_APP_RAY__ADDRESS": f"127.0.0.1:{gcs}",
        "RAY_APP_RAY__GCS_PORT": str(gcs),
        "RAY_APP_RAY__DASHBOARD_URL": f"http://127.0.0.1:{dashboard}",
        "RAY_APP_RAY__DASHBOARD_PORT": str(dashboard),
        "RAY_APP_RAY__CLIENT_SERVER_PORT": str(client),
        "RAY_APP_RAY__DASHBOARD_AGENT_PORT": str(agent),
        "RAY_APP_RAY__TEMP_DIR": str(state_dir / "ray"),
        "RAY_APP_RAY__OBJECT_STORE_MEMORY_MB": "512",
    }
    if cache_dir is not None:
        env["RAY_APP_CACHE_DIR"] = str(cache_dir)
    return env


def own_indices_env(settings: Settings, prefix: str) -> dict[str, str]:
    """RAY_APP_* variables giving a test module indices of its own (<prefix>-trades, <prefix>-bars-1h, ...)."""
    return {f"RAY_APP_ELASTICSEARCH__INDICES__{key.upper()}": f"{prefix}-{index}"
            for key, index in settings.elasticsearch.indices.by_key().items()}  # fmt: skip


@contextmanager
def environment(env: dict[str, str]) -> Iterator[pytest.MonkeyPatch]:
    """`env` set for the block (and for the subprocesses it starts), restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield patch


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


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    # short path: Ray's unix sockets live under its temp dir and must stay under 107 characters
    path = Path(tempfile.mkdtemp(prefix="rayapp-", dir="/tmp"))
    yield path
    if not os.environ.get("RAY_APP_KEEP_TEST_STATE"):  # set it to read the engines' logs after a failure
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny GPT-2 and its tokenizer in a folder: what from_pretrained(folder) loads in the tests."""
    from serve_deployments.test_model import build_test_model

    return build_test_model(tmp_path_factory.mktemp("tiny-gpt2"), "tiny")


@pytest.fixture(scope="session")
def stack(stack_dir: Path) -> Iterator[Settings]:
    """The running local stack's settings; the environment carries them to every `ray-app` subprocess."""
    from ray_app.stack import manager

    with environment(stack_env(stack_dir)):
        settings = load_settings()
        pids: list[int] = []
        try:
            # inside the try: a stack that fails half-way up is stopped too
            manager.up(settings)
            pids = _stack_pids(settings)
            yield settings
        finally:
            pids += _stack_pids(settings)
            manager.down(settings)
            left = [pid for pid in set(pids) if alive(pid)]
            assert not left, f"stack processes left running after `stack down`: {left}"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stack_pids(settings: Settings) -> list[int]:
    from ray_app.stack import manager
    from ray_app.stack.processes import running_process

    pids = []
    for service in manager.services(settings):
        proc = running_process(service.pid_file)
        if proc:
            pids += [proc.pid, *(child.pid for child in proc.children(recursive=True))]
    return pids


def with_own_topics(settings: Settings, tag: str) -> Settings:
    """The same settings with topics of the test's own (trades-<tag>, ...), so tests never see each other's data."""
    topics = settings.kafka.topics
    renamed = topics.model_copy(
        update={
            name: getattr(topics, name).model_copy(update={"name": f"{getattr(topics, name).name}-{tag}"})
            for name in ("trades", "bars", "dead_letters")
        }
    )
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topics": renamed})})


def read_topic(settings: Settings, topic: str, timeout_s: float = 30) -> list:
    """Every message of a topic, from the start to its current end, in partition order."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from ray_app.kafka_io import consumer_config

    consumer = Consumer(consumer_config(settings, f"read-{uuid.uuid4().hex}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list = []
        import time

        deadline = time.monotonic() + timeout_s
        want = sum(ends.values())
        while len(messages) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                messages.append(msg)
        return messages
    finally:
        consumer.close()
