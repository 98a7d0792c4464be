"""ray-cluster.yaml passes Ray's own cluster-config validation, and every node ends up able to run every stage."""

from __future__ import annotations

import os

import pytest
import yaml

from ray_app.config import load_settings
from ray_app.testing.stack import REPO

CLUSTER = yaml.safe_load((REPO / "ray-cluster.yaml").read_text())


def test_ray_validates_the_cluster_config() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(CLUSTER)
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]
    assert {"cpu_worker", "gpu_worker"} <= set(prepared["available_node_types"])


def test_every_node_gets_java_the_project_and_the_spark_jars_and_reads_the_cluster_settings() -> None:
    setup = " ".join(CLUSTER["setup_commands"])
    assert "openjdk-17" in setup and "maven" in setup and "scripts/bootstrap.sh" in setup
    assert "ray-app stack fetch spark" in setup
    assert CLUSTER["file_mounts"] == {"~/ray-app": "."}
    for start in (CLUSTER["head_start_ray_commands"], CLUSTER["worker_start_ray_commands"]):
        assert "RAY_APP_CONFIG=$HOME/ray-app/configs/cluster.yaml" in start[-1] and ".venv/bin/ray start" in start[-1]


def test_the_dashboard_and_jobs_api_are_never_open_beyond_the_head_without_auth() -> None:
    """Parsed by Ray's own `ray start` command line, as the head runs it: the dashboard (and its jobs API, which
    runs any code) binds the loopback, or Ray's token authentication is on."""
    import shlex

    from ray.scripts.scripts import start

    command = " ".join(CLUSTER["head_start_ray_commands"][-1].split(";")[-1].split())
    words = shlex.split(command)
    env = dict(word.split("=", 1) for word in words[: words.index(next(w for w in words if w.endswith("/ray")))])
    params = start.make_context("start", words[words.index("start") + 1 :]).params
    assert params["head"]
    loopback = params["dashboard_host"] in {"127.0.0.1", "localhost", "::1"}
    assert loopback or env.get("RAY_AUTH_MODE") == "token", params["dashboard_host"]
    # the tunnel the file's own header points users to reaches exactly that address
    assert "ray dashboard ray-cluster.yaml" in (REPO / "ray-cluster.yaml").read_text()


def test_the_cluster_settings_are_valid_and_put_the_recommender_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("RAY_APP_")]:
        monkeypatch.delenv(key)
    settings = load_settings(REPO / "configs" / "cluster.yaml")
    assert settings.serve.http_host == "0.0.0.0" and settings.serve.recommender.num_gpus == 1
    assert settings.ray.auth_mode == "token"
