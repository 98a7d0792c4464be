"""Checking that a directory is shared storage: every Ray node that may use it sees the same files at the same path.

The streaming job's checkpoints are written by the driver (offsets, commits) and by the executors (the bar state
store), which may run on other nodes; a checkpoint on one node's local disk would be silently split across disks
and lost with that node. So the driver checks before it starts: it writes a marker file with a random token into
the directory and asks one Ray task on every node that may run executors (those offering the executors' custom
resources) to read it back. A node that does not see the token fails the start, naming the setting and the nodes.
On one machine every node shares the disk, and the check passes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 60.0


class NotSharedStorage(RuntimeError):
    """A directory that must be shared is not seen the same by every node that uses it."""


@dataclass(frozen=True)
class Node:
    node_id: str
    address: str
    resources: Mapping[str, float]


# reads the marker on one node: its text, or None when that node has no such file
Probe = Callable[[Node, Path], str | None]


def eligible_nodes(nodes: list[Node], needs: Mapping[str, float]) -> list[Node]:
    """The nodes where a task or actor needing these custom resources can run at all."""
    return [node for node in nodes if all(node.resources.get(name, 0) >= amount for name, amount in needs.items())]


def check_shared(directory: Path, key: str, nodes: list[Node], probe: Probe) -> None:
    """Raise ``NotSharedStorage`` unless every one of ``nodes`` reads back the token written here."""
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    marker = directory / f".shared-check-{token[:12]}"
    marker.write_text(token)
    try:
        blind = [node for node in nodes if probe(node, marker) != token]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        names = ", ".join(f"{node.address} (node {node.node_id[:12]})" for node in blind)
        raise NotSharedStorage(
            f"{key}: {directory} is not shared storage: Ray node(s) {names} do not see the files this node writes "
            "there. The driver and the executors both write the checkpoints: put them on storage every node mounts "
            "at the same path (NFS, a cluster file system), or keep the executors on this node "
            "(stream.executor_resources)"
        )


def check_same_file(path: Path, key: str, nodes: list[Node], probe: Probe) -> None:
    """Raise ``NotSharedStorage`` unless every one of ``nodes`` reads ``path`` with the content it has here: a file the
    executors open at the path the settings give (a CA bundle) must be on their nodes too."""
    try:
        mine = path.read_text()
    except OSError as exc:
        raise NotSharedStorage(f"{key}: {path} cannot be read on the driver's node ({exc})") from None
    differ = [node for node in nodes if probe(node, path) != mine]
    if differ:
        names = ", ".join(f"{node.address} (node {node.node_id[:12]})" for node in differ)
        raise NotSharedStorage(
            f"{key}: {path} is not the same file on Ray node(s) {names}: the stream's executors open it there for "
            "every Kafka consumer and Elasticsearch bulk request. Put the same file at the same path on every node "
            "(or on shared storage), or keep the executors on this node (stream.executor_resources)"
        )


def ray_nodes() -> list[Node]:
    """The cluster's live nodes, from Ray."""
    import ray

    return [
        Node(n["NodeID"], n.get("NodeManagerAddress", "?"), dict(n.get("Resources", {})))
        for n in ray.nodes()
        if n.get("Alive")
    ]


def ray_probe(node: Node, marker: Path) -> str | None:
    """Read the marker in a zero-CPU task pinned to ``node`` (a node that cannot be reached reads as blind)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    reader = ray.remote(num_cpus=0, max_retries=0)(read_marker)
    strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
    try:
        return ray.get(reader.options(scheduling_strategy=strategy).remote(str(marker)), timeout=PROBE_TIMEOUT_S)
    except (ray.exceptions.RayError, TimeoutError):
        return None


def read_marker(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None
