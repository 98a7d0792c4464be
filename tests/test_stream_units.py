"""Streaming pieces that need no engine: its settings, the job's environment, offsets from progress reports,
the checkpoint lock, and the Spark configuration handed to RayDP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ray_app.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("RAY_APP_"):
            monkeypatch.delenv(key)


def test_stream_settings_default_and_checkpoint_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAY_APP_STATE_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.stream_checkpoint_dir == tmp_path / "checkpoints" / "stream"
    assert settings.stream.trigger_interval_s == 1 and settings.stream.bar_lateness_s == 600
    monkeypatch.setenv("RAY_APP_STREAM__CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().stream_checkpoint_dir == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("RAY_APP_STREAM__RESTART_BACKOFF_MAX_S", "0.5", "restart_backoff_max_s must be >= restart_backoff_min_s"),
        ("RAY_APP_STREAM__ES_BATCH_BYTES", "5 megabytes", "stream.es_batch_bytes"),
        ("RAY_APP_STREAM__EXECUTOR_MEMORY", "lots", "must be a JVM heap size"),
        ("RAY_APP_STREAM__MAX_OFFSETS_PER_TRIGGER", "0", "stream.max_offsets_per_trigger"),
        ("RAY_APP_STREAM__SPARK_LOG_LEVEL", "LOUD", "stream.spark_log_level"),
    ],
)
def test_bad_stream_settings_fail_fast_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_settings()


def test_job_environment_carries_settings_but_not_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ray_app.stream_control import job_environment

    monkeypatch.setenv("RAY_APP_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__PASSWORD", "hunter2")
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__API_KEY", "abc")
    monkeypatch.setenv("RAY_APP_KAFKA__SASL_PASSWORD", "pw")
    env = job_environment(str(tmp_path / "mine.yaml"))
    assert env["RAY_APP_KAFKA__BOOTSTRAP_SERVERS"] == "broker:9092"
    assert env["RAY_APP_CONFIG"] == str(tmp_path / "mine.yaml")
    assert not [key for key in env if "PASSWORD" in key or "API_KEY" in key]


def test_end_offsets_of_a_progress_report_merge_topics() -> None:
    from spark_jobs.stream_trades import _end_offsets

    progress = {"sources": [
        {"endOffset": json.dumps({"trades": {"0": 10, "1": 4}, "bars": {"0": 2}})},
        {"endOffset": {"dead-letters": {"0": 1}}},
        {"endOffset": None},
    ]}  # fmt: skip
    assert _end_offsets(progress) == {"trades": {"0": 10, "1": 4}, "bars": {"0": 2}, "dead-letters": {"0": 1}}


def test_a_second_driver_on_the_same_checkpoints_is_refused(tmp_path: Path) -> None:
    from spark_jobs.stream_trades import CheckpointInUse, checkpoint_lock

    with checkpoint_lock(tmp_path), pytest.raises(CheckpointInUse, match="another streaming driver"):  # noqa: SIM117
        with checkpoint_lock(tmp_path):  # the second driver
            pass
    with checkpoint_lock(tmp_path):  # released when the first one ended
        pass


def test_reset_discards_checkpoints_but_refuses_while_a_driver_runs(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    from spark_jobs.stream_trades import CheckpointInUse, checkpoint_lock, reset_checkpoints

    monkeypatch.setenv("RAY_APP_STATE_DIR", str(tmp_path))
    settings = load_settings()
    offsets = settings.stream_checkpoint_dir / "records" / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text("v1")
    with checkpoint_lock(settings.stream_checkpoint_dir), pytest.raises(CheckpointInUse):
        reset_checkpoints(settings)
    assert (offsets / "0").exists()
    assert reset_checkpoints(settings)
    assert not (settings.stream_checkpoint_dir / "records").exists()


def test_spark_configuration_for_raydp_on_java_17(monkeypatch: pytest.MonkeyPatch) -> None:
    from spark_jobs import session

    monkeypatch.setattr(session, "ensure_bundle", lambda settings, bundle: (Path("/jars"), False))
    monkeypatch.setattr(session, "jars", lambda path: [path / "spark-sql-kafka.jar", path / "es.jar"])
    configs = session.spark_configs(load_settings())
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions",
                "spark.ray.raydp_app_master.extraJavaOptions"):  # fmt: skip
        assert "--add-opens=java.base/java.nio=ALL-UNNAMED" in configs[key]
        assert "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED" in configs[key]
    assert configs["spark.jars"] == "/jars/spark-sql-kafka.jar,/jars/es.jar"
    assert configs["spark.sql.session.timeZone"] == "UTC"
    assert configs["spark.ray.raydp_spark_executor.actor.resource.cpu"] == "1.0"
