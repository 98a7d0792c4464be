"""ray-cluster.yaml started, not only validated: Ray's fake_multinode provider brings up the file's node types on this
machine from the file's own setup and start commands (tests/support/cluster_launcher.py says what it changes).

The autoscaler in the head starts the file's `min_workers` (one cpu_worker, with the custom resource the stages'
placement settings ask for); a job submitted through the dashboard, as users submit every stage, runs where its
resources say; a GPU demand makes the autoscaler add the gpu_worker (min 0) and the task runs there; idle, it goes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ray_app.config import Settings
from tests.support.cluster_launcher import CLUSTER_FILE, LocalCluster, local_cluster, local_config

# what the cloud provider reads off each node type's instance type, here given (scheduling slots, not cores)
DETECTED = {"ray.head.default": {"CPU": 1}, "cpu_worker": {"CPU": 2}, "gpu_worker": {"CPU": 1, "GPU": 1}}


def test_the_local_config_changes_only_what_a_cloud_decides() -> None:
    cluster = yaml.safe_load(CLUSTER_FILE.read_text())
    local = local_config(cluster, gcs_address="127.0.0.1:1", detected=DETECTED, idle_timeout_minutes=0.2)
    assert local["provider"]["type"] == "fake_multinode"
    for key in (
        "setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
        "head_node_type",
        "max_workers",
        "file_mounts",
    ):
        assert local[key] == cluster[key], key
    for name, node_type in cluster["available_node_types"].items():
        mine = local["available_node_types"][name]
        assert (mine["min_workers"], mine["max_workers"]) == (
            node_type.get("min_workers", 0),
            node_type.get("max_workers", mine["max_workers"]),
        )
        assert mine["resources"] == {**node_type["resources"], **DETECTED[name]}


@pytest.fixture(scope="module")
def cluster(stack: Settings, stack_dir: Path) -> Iterator[LocalCluster]:
    """After the session's stack: its jar cache is what the setup command `ray-app stack fetch spark` finds. In the
    session's short folder: Ray's unix sockets live under the cluster's temp dir (107 characters at most)."""
    work = stack_dir / "launcher"
    with local_cluster(
        work, detected=DETECTED, idle_timeout_minutes=0.2, env={"RAY_APP_CACHE_DIR": str(stack.cache_dir)}
    ) as launched:
        yield launched


def _alive_nodes(cluster: LocalCluster) -> list:
    from ray.util.state import list_nodes

    return [n for n in list_nodes(address=cluster.dashboard_url, detail=True) if n.state == "ALIVE"]


def _wait_for(what: str, check, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)
    return found


def _submit(cluster: LocalCluster, script: str) -> dict:
    """A Ray job through the dashboard, as users submit the stages; it prints one JSON line last."""
    ray_cli = Path(sys.executable).with_name("ray")
    done = subprocess.run(
        [str(ray_cli), "job", "submit", "--address", cluster.dashboard_url, "--", "python", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def test_the_file_s_node_types_come_up_scale_out_on_demand_and_back(cluster: LocalCluster) -> None:
    bashrc = (cluster.home / ".bashrc").read_text()
    assert "RAY_APP_CONFIG=$HOME/ray-app/configs/cluster.yaml" in bashrc  # the setup commands ran

    workers = _wait_for(
        "the cpu_worker the file asks for (min_workers 1)",
        lambda: [n for n in _alive_nodes(cluster) if "ray_app_worker" in n.resources_total],
    )
    assert len(workers) == 1 and workers[0].resources_total["CPU"] == 2

    placed = _submit(
        cluster,
        (
            "import json, os, ray; ray.init()\n"
            "node = lambda: ray.get_runtime_context().get_node_id()\n"
            "where = ray.remote(num_cpus=1, resources={'ray_app_worker': 1})(node)\n"
            "print(json.dumps({'node': ray.get(where.remote()), 'config': os.environ.get('RAY_APP_CONFIG')}))"
        ),
    )
    assert placed["node"] == workers[0].node_id
    assert placed["config"].endswith("ray-app/configs/cluster.yaml")  # the file's start command set it

    gpu = _submit(
        cluster,
        (
            "import json, ray; ray.init()\n"
            "where = ray.remote(num_gpus=1)(lambda: ray.get_runtime_context().get_node_id())\n"
            "print(json.dumps({'node': ray.get(where.remote())}))"
        ),
    )
    gpu_nodes = [n for n in _alive_nodes(cluster) if n.resources_total.get("GPU")]
    assert [n.node_id for n in gpu_nodes] == [gpu["node"]]
    assert "ray_app_gpu_worker" in gpu_nodes[0].resources_total  # the file's gpu_worker type

    _wait_for(
        "the idle gpu_worker to be removed",
        lambda: not any(n.resources_total.get("GPU") for n in _alive_nodes(cluster)),
        timeout_s=120,
    )
    assert [n.node_id for n in _alive_nodes(cluster) if "ray_app_worker" in n.resources_total] == [workers[0].node_id]
