"""The stream's checkpoints: one driver at a time (a lock the kernel releases when the driver dies), a reset that
refuses while a driver runs, and the check that every executor node sees the same directory."""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ray_app.config import Settings
from spark_jobs.shared_storage import (
    NotSharedStorage,
    check_same_file,
    check_shared,
    eligible_nodes,
    ray_nodes,
    ray_probe,
)


class CheckpointInUse(RuntimeError):
    """Another driver holds the checkpoint directory; two drivers on one checkpoint would corrupt it."""


@contextmanager
def checkpoint_lock(directory: Path) -> Any:
    """An exclusive lock on the checkpoint directory for the life of this driver (released by the kernel even
    when the driver is killed)."""
    directory.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = (directory / ".driver.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise CheckpointInUse(
            f"another streaming driver ({owner}) is using {directory}; stop it first (`ray-app stream stop`)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def reset_checkpoints(settings: Settings) -> bool:
    """Discard the checkpoints (the next start reads Kafka from the earliest offsets). Refuses while in use."""
    directory = settings.stream_checkpoint_dir
    if not directory.exists():
        return False
    with checkpoint_lock(directory):
        for child in directory.iterdir():
            if child.name != ".driver.lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    return True


def check_executors_share(settings: Settings) -> None:
    """Every node an executor may run on offers ``stream.executor_resources``, sees the checkpoint directory the
    driver writes (a Ray cluster without shared storage would lose the stream's state) and holds the CA files the
    executors open (``kafka.ssl_ca_location``, ``elasticsearch.ca_certs``) as the driver has them; raise naming the
    key."""
    executor_nodes = eligible_nodes(ray_nodes(), settings.stream.executor_resources)
    if not executor_nodes:
        raise NotSharedStorage(
            f"stream.executor_resources: no Ray node offers {settings.stream.executor_resources}"
            " (start one with `ray start --resources ...`)"
        )
    check_shared(settings.stream_checkpoint_dir, "stream.checkpoint_dir", executor_nodes, ray_probe)
    for key, path in ca_files(settings).items():
        check_same_file(path, key, executor_nodes, ray_probe)


def ca_files(settings: Settings) -> dict[str, Path]:
    """The CA files the executors open, by setting: a Kafka consumer's and the Elasticsearch sink's."""
    files = {
        "kafka.ssl_ca_location": settings.kafka.ssl_ca_location,
        "elasticsearch.ca_certs": settings.elasticsearch.ca_certs,
    }
    return {key: Path(path) for key, path in files.items() if path}
