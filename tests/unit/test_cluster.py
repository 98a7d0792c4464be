"""Engine-free tests of what running on several nodes needs: the shared-storage check, node-local settings that never
travel to a job, and placement by custom Ray resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from ray_app.config import ConfigError, load_settings
from spark_jobs.shared_storage import Node, NotSharedStorage, check_shared, eligible_nodes, read_marker

HEAD = Node("a" * 56, "10.0.0.1", {"CPU": 4})
WORKER = Node("b" * 56, "10.0.0.2", {"CPU": 8, "worker": 100})


def test_the_check_passes_when_every_node_reads_the_token_and_leaves_no_marker(tmp_path: Path) -> None:
    seen: list[str] = []

    def probe(node: Node, marker: Path) -> str | None:
        seen.append(node.address)
        return read_marker(str(marker))

    check_shared(tmp_path / "ckpt", "stream.checkpoint_dir", [HEAD, WORKER], probe)
    assert seen == ["10.0.0.1", "10.0.0.2"]
    assert list((tmp_path / "ckpt").iterdir()) == []


@pytest.mark.parametrize("answer", [None, "another token", ""])
def test_a_node_that_does_not_read_the_token_fails_the_check_naming_the_key_and_the_node(
    tmp_path: Path, answer: str | None
) -> None:
    def probe(node: Node, marker: Path) -> str | None:
        return read_marker(str(marker)) if node is HEAD else answer

    with pytest.raises(NotSharedStorage) as raised:
        check_shared(tmp_path, "stream.checkpoint_dir", [HEAD, WORKER], probe)
    message = str(raised.value)
    assert message.startswith("stream.checkpoint_dir: ") and "10.0.0.2" in message and "10.0.0.1" not in message
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shared-check")]


def test_only_nodes_offering_the_custom_resources_can_run_executors() -> None:
    assert eligible_nodes([HEAD, WORKER], {}) == [HEAD, WORKER]
    assert eligible_nodes([HEAD, WORKER], {"worker": 1}) == [WORKER]
    assert eligible_nodes([HEAD, WORKER], {"worker": 101}) == []
    assert eligible_nodes([HEAD, WORKER], {"gpu_node": 1}) == []


def test_node_local_settings_never_travel_to_a_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ray_app.ray_cluster import job_environment

    mine = tmp_path / "laptop-state"
    monkeypatch.setenv("RAY_APP_STATE_DIR", str(mine))
    monkeypatch.setenv("RAY_APP_CACHE_DIR", str(tmp_path / "laptop-cache"))
    monkeypatch.setenv("RAY_APP_STACK__JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("RAY_APP_STREAM__CHECKPOINT_DIR", "/shared/ckpt")
    env = job_environment(load_settings(), None)
    shown = "\n".join(f"{key}={value}" for key, value in env.items())
    assert str(tmp_path) not in shown, shown
    assert not [key for key in env if key.startswith(("RAY_APP_STATE_DIR", "RAY_APP_CACHE_DIR", "RAY_APP_STACK"))]
    # a shared location is a setting of the cluster, and goes
    assert env["RAY_APP_STREAM__CHECKPOINT_DIR"] == "/shared/ckpt"


def test_custom_resources_place_executors_tasks_and_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    from spark_jobs.session import spark_configs

    monkeypatch.setenv("RAY_APP_STREAM__EXECUTOR_RESOURCES", '{"worker": 1}')
    monkeypatch.setenv("RAY_APP_FORECAST__TASK_RESOURCES", '{"worker": 0.5}')
    monkeypatch.setenv("RAY_APP_SERVE__FORECAST__RESOURCES", '{"worker": 0.1}')
    monkeypatch.setenv("RAY_APP_SERVE__FORECAST__UPSCALE_DELAY_S", "2")
    settings = load_settings()
    monkeypatch.setattr("spark_jobs.session.ensure_bundle", lambda *_: (Path("/x"), False))
    monkeypatch.setattr("spark_jobs.session.ensure_stream_jar", lambda *_: (Path("/x/own.jar"), False))
    monkeypatch.setattr("spark_jobs.session.jars", lambda _: [])
    assert spark_configs(settings)["spark.ray.raydp_spark_executor.actor.resource.worker"] == "1.0"
    assert settings.forecast.task_resources == {"worker": 0.5}
    options = settings.serve.forecast.deployment_options()
    assert options["ray_actor_options"]["resources"] == {"worker": 0.1}
    assert options["autoscaling_config"]["upscale_delay_s"] == 2
    assert "downscale_delay_s" not in options["autoscaling_config"]  # Serve's own default
    assert "resources" not in settings.serve.recommender.deployment_options()["ray_actor_options"]


@pytest.mark.parametrize("value", ['{"CPU": 1}', '{"GPU": 1}', '{"worker": 0}', '{"worker": -1}', '{"bad name": 1}'])
def test_a_bad_custom_resource_fails_naming_the_key(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RAY_APP_STREAM__EXECUTOR_RESOURCES", value)
    with pytest.raises(ConfigError, match=r"stream\.executor_resources"):
        load_settings()


def test_a_ca_file_the_executors_open_must_be_the_same_on_their_nodes(tmp_path: Path) -> None:
    """Issue 33: the executors opened kafka.ssl_ca_location and elasticsearch.ca_certs at the CLI's paths on other
    nodes; a missing file failed every consumer or bulk request. Checked at the stream's start, naming the key."""
    from spark_jobs.shared_storage import check_same_file

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n")
    same = lambda node, path: read_marker(str(path))  # noqa: E731
    check_same_file(ca, "elasticsearch.ca_certs", [HEAD, WORKER], same)
    for answer in (None, "another bundle"):
        with pytest.raises(NotSharedStorage) as raised:
            check_same_file(
                ca, "kafka.ssl_ca_location", [HEAD, WORKER], lambda n, p, a=answer: same(n, p) if n is HEAD else a
            )
        message = str(raised.value)
        assert message.startswith("kafka.ssl_ca_location: ") and "10.0.0.2" in message and "10.0.0.1" not in message
    with pytest.raises(NotSharedStorage, match=r"elasticsearch\.ca_certs: .* cannot be read on the driver"):
        check_same_file(tmp_path / "missing.pem", "elasticsearch.ca_certs", [HEAD], same)


def test_the_stream_checks_every_ca_file_its_executors_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from spark_jobs.checkpoints import ca_files

    assert ca_files(load_settings()) == {}
    (tmp_path / "k.pem").write_text("k")
    (tmp_path / "e.pem").write_text("e")
    monkeypatch.setenv("RAY_APP_KAFKA__SSL_CA_LOCATION", str(tmp_path / "k.pem"))
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__CA_CERTS", str(tmp_path / "e.pem"))
    assert ca_files(load_settings()) == {
        "kafka.ssl_ca_location": tmp_path / "k.pem",
        "elasticsearch.ca_certs": tmp_path / "e.pem",
    }
