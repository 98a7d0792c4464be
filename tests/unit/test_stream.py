"""Streaming pieces that need no engine: its settings, the job's environment, offsets from progress reports,
the checkpoint lock, the Spark configuration handed to RayDP, 1-hour bars from 1-minute bars, where a batch's
time goes, failures in plain words, and the sink's configuration."""

from __future__ import annotations

import json
import os
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
    assert settings.stream.trigger_interval_s == 0.5
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


def test_job_environment_carries_the_parsed_settings_and_no_secret_in_any_spelling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Secrets given every way the settings accept them; none of their values may show anywhere in the job's
    environment (checked by value, not by the code's own rule), and the job's settings equal the caller's."""
    from ray_app.ray_cluster import job_environment

    secrets = {name: f"s3cr3t-{name}-{i}" for i, name in enumerate(["es", "kafka", "alpaca", "url", "apca"])}
    monkeypatch.setenv("RAY_APP_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH", json.dumps({"api_key": secrets["es"]}))  # a whole section as JSON
    monkeypatch.setenv("ray_app_kafka__sasl_password", secrets["kafka"])  # lower case: the settings still read it
    monkeypatch.setenv("RAY_APP_ALPACA__API_KEY", secrets["alpaca"])
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__URL", f"http://elastic:{secrets['url']}@127.0.0.1:9200")
    monkeypatch.setenv("ALPACA_SECRET_KEY", secrets["apca"])
    monkeypatch.setenv("RAY_APP_KAFKA__SASL_USERNAME", "alice")
    settings = load_settings()
    # every spelling did take effect
    assert settings.kafka.sasl_password.get_secret_value() == secrets["kafka"]
    assert settings.elasticsearch.api_key.get_secret_value() == secrets["es"]
    env = job_environment(settings, str(tmp_path / "mine.yaml"))
    shown = json.dumps(env)
    assert not [name for name, value in secrets.items() if value in shown], shown
    assert env["RAY_APP_CONFIG"] == str(tmp_path / "mine.yaml")

    # in the job: only its own environment, and it reads the same settings (URL credentials and secrets aside)
    for key in [k for k in os.environ if k.upper().startswith("RAY_APP_") or k.startswith("ALPACA_")]:
        monkeypatch.delenv(key)
    (tmp_path / "mine.yaml").write_text("{}\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    in_job = load_settings()
    assert in_job.kafka.bootstrap_servers == "broker:9092"
    assert in_job.elasticsearch.url == "http://127.0.0.1:9200"
    assert in_job.elasticsearch.api_key is None and in_job.kafka.sasl_password is None
    assert in_job.kafka.sasl_username == "alice"
    assert in_job.alpaca.api_key is None and in_job.alpaca.secret_key is None
    mine = json.loads(settings.model_dump_json())
    theirs = json.loads(in_job.model_dump_json())
    for section in ("elasticsearch", "kafka", "alpaca"):
        for part in (mine[section], theirs[section]):
            for key in ("password", "api_key", "secret_key", "sasl_password", "url"):
                part.pop(key, None)
    assert theirs == mine


def test_end_offsets_of_a_progress_report_merge_topics() -> None:
    from spark_jobs.supervisor import end_offsets

    progress = {
        "sources": [
            {"endOffset": json.dumps({"trades": {"0": 10, "1": 4}, "bars": {"0": 2}})},
            {"endOffset": {"dead-letters": {"0": 1}}},
            {"endOffset": None},
        ]
    }
    assert end_offsets(progress) == {"trades": {"0": 10, "1": 4}, "bars": {"0": 2}, "dead-letters": {"0": 1}}


def test_a_second_driver_on_the_same_checkpoints_is_refused(tmp_path: Path) -> None:
    from spark_jobs.checkpoints import CheckpointInUse, checkpoint_lock

    with checkpoint_lock(tmp_path), pytest.raises(CheckpointInUse, match="another streaming driver"):  # noqa: SIM117
        with checkpoint_lock(tmp_path):  # the second driver
            pass
    with checkpoint_lock(tmp_path):  # released when the first one ended
        pass


def test_reset_discards_checkpoints_but_refuses_while_a_driver_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from spark_jobs.checkpoints import CheckpointInUse, checkpoint_lock, reset_checkpoints

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
    monkeypatch.setattr(session, "ensure_stream_jar", lambda settings: (Path("/cache/ray-app-stream.jar"), False))
    monkeypatch.setattr(session, "jars", lambda path: [path / "spark-sql-kafka.jar", path / "es.jar"])
    configs = session.spark_configs(load_settings())
    for key in (
        "spark.driver.extraJavaOptions",
        "spark.executor.extraJavaOptions",
        "spark.ray.raydp_app_master.extraJavaOptions",
    ):
        assert "--add-opens=java.base/java.nio=ALL-UNNAMED" in configs[key]
        assert "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED" in configs[key]
    assert configs["spark.jars"] == "/jars/spark-sql-kafka.jar,/jars/es.jar,/cache/ray-app-stream.jar"
    assert not any("stateStore" in key for key in configs)  # no streaming state: the bars are the trades index's
    assert "-XX:TieredStopAtLevel=1" in configs["spark.executor.extraJavaOptions"]
    assert configs["spark.sql.session.timeZone"] == "UTC"
    assert configs["spark.ray.raydp_spark_executor.actor.resource.cpu"] == "1.0"


def _minute_bars(trades: list[tuple[str, int, float, float]]) -> list[dict]:
    """Minute bars as the stream writes them, from (symbol, ts_ns, price, size) in arrival order."""
    from collections import defaultdict

    from ray_app.times import format_seconds

    groups: dict[tuple[str, int], list] = defaultdict(list)
    for symbol, ts_ns, price, size in trades:
        groups[(symbol, ts_ns // 10**9 // 60 * 60)].append((ts_ns, price, size))
    bars = []
    for (symbol, start), items in groups.items():
        items.sort(key=lambda item: item[0])
        volume = sum(size for _, _, size in items)
        bars.append(
            {
                "symbol": symbol,
                "timestamp": format_seconds(start),
                "open": items[0][1],
                "close": items[-1][1],
                "high": max(p for _, p, _ in items),
                "low": min(p for _, p, _ in items),
                "volume": volume,
                "trade_count": len(items),
                "vwap": sum(p * s for _, p, s in items) / volume,
            }
        )
    return bars


def test_an_hour_bar_from_its_minute_bars_equals_one_computed_from_the_trades() -> None:
    import math
    import random

    from spark_jobs.bar_recompute import hour_bar

    rng = random.Random(3)
    start = 1_795_000_000 // 3600 * 3600
    trades = sorted(
        (
            (
                (
                    "AAPL",
                    (start + rng.randrange(3600)) * 10**9 + rng.randrange(10**9),
                    round(rng.uniform(90, 110), 2),
                    float(rng.randint(1, 500)),
                )
            )
            for _ in range(2000)
        ),
        key=lambda t: t[1],
    )
    minutes = _minute_bars(trades)
    rng.shuffle(minutes)  # the multi-get answers in any order
    prices = [p for _, _, p, _ in trades]
    volume = sum(s for _, _, _, s in trades)
    # the prices come from the minute bars, the volume from the hour's trades (one sum aggregation)
    sums = {"volume": volume, "notional": sum(p * s for _, _, p, s in trades), "trade_count": len(trades)}
    bar = hour_bar("AAPL", start, minutes, sums, "2026-12-01T00:00:00Z")
    assert (bar["open"], bar["close"], bar["high"], bar["low"]) == (
        trades[0][2],
        trades[-1][2],
        max(prices),
        min(prices),
    )
    assert bar["trade_count"] == len(trades) and math.isclose(bar["volume"], volume, rel_tol=1e-12)
    assert math.isclose(bar["vwap"], sum(p * s for _, _, p, s in trades) / volume, rel_tol=1e-12)
    assert bar["range"] == max(prices) - min(prices) and bar["log_return"] == math.log(trades[-1][2] / trades[0][2])
    assert (bar["timeframe"], bar["timestamp"], bar["source"]) == ("1Hour", "2026-11-18T11:00:00Z", "trades")


def test_minutes_name_the_hours_they_touch() -> None:
    from spark_jobs.bar_recompute import minute_ids, touched_hours

    minutes = [("BTC/USD", 1_796_047_500), ("BTC/USD", 1_796_050_740), ("AAPL", 1_796_050_800)]
    hours = touched_hours(minutes)
    assert hours == {("BTC/USD", 1_796_047_200), ("AAPL", 1_796_050_800)}
    every = minute_ids("BTC/USD", 1_796_047_200)
    assert len(every) == 60 and every[0] == "BTC/USD|2026-11-30T14:00:00Z" and every[-1].endswith("14:59:00Z")


def test_a_batch_s_time_adds_up_to_its_trigger() -> None:
    from spark_jobs.supervisor import batch_phases

    progress = {
        "durationMs": {
            "latestOffset": 20,
            "queryPlanning": 30,
            "walCommit": 40,
            "commitOffsets": 50,
            "addBatch": 700,
            "triggerExecution": 900,
        }
    }
    phases = batch_phases(progress, {"write": 0.4, "bulk": 0.2, "bars": 0.1, "hours": 0.1, "refresh": 0.05})
    assert phases["offsets"] == 0.02 and phases["checkpoint"] == 0.09 and phases["bars"] == 0.1
    inside = phases["write"] + phases["bars"] + phases["hours"] + phases["refresh"]
    assert abs(phases["offsets"] + phases["planning"] + phases["checkpoint"] + inside + phases["other"] - 0.9) < 1e-9


class _Throwable:
    """Enough of a Java exception through Py4J: class name, message, cause."""

    def __init__(self, name: str, message: str, cause: _Throwable | None = None) -> None:
        self.name, self.message, self.cause = name, message, cause

    def getClass(self):
        outer = self

        class Class:
            def getName(self) -> str:
                return outer.name

            def getSimpleName(self) -> str:
                return outer.name.rsplit(".", 1)[-1]

        return Class()

    def getMessage(self) -> str:
        return self.message

    def getCause(self) -> _Throwable | None:
        return self.cause


def test_a_failure_reads_as_its_cause_not_as_the_wrappers() -> None:
    from spark_jobs.failures import failure_text, java_failure_text

    sink = _Throwable(
        "io.github.raytrading.stream.BulkWriteFailed",
        "Elasticsearch at http://127.0.0.1:9200 did not take a bulk request after 7 tries: ConnectException",
    )
    job = _Throwable("org.apache.spark.SparkException", "Job aborted due to stage failure: ...", sink)
    query = _Throwable(
        "org.apache.spark.sql.streaming.StreamingQueryException",
        "An exception was raised by the Python Proxy. Return Message: Traceback ...",
        job,
    )
    assert java_failure_text(query) == (
        "Elasticsearch: Elasticsearch at http://127.0.0.1:9200 did not take a bulk "
        "request after 7 tries: ConnectException"
    )
    kafka = _Throwable(
        "org.apache.spark.SparkException",
        "Job aborted",
        _Throwable("org.apache.kafka.common.errors.TimeoutException", "Timeout of 60000ms expired"),
    )
    assert java_failure_text(kafka) == "TimeoutException: Timeout of 60000ms expired"

    class FromPy4J(Exception):
        java_exception = job

    assert failure_text(FromPy4J("An error occurred while calling z:...")).startswith("Elasticsearch: ")
    assert failure_text(ValueError("plain\n  words")) == "ValueError: plain words"


def test_the_sink_gets_the_platform_s_elasticsearch_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from spark_jobs.es_sink import sink_config

    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__USERNAME", "elastic")
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__PASSWORD", "s3cret")
    config = json.loads(sink_config(load_settings()))
    assert config["authorization"] == "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert config["dead_letters_index"] == "dead-letters" and config["limits"]["es_id_max_bytes"] == 512
    monkeypatch.delenv("RAY_APP_ELASTICSEARCH__USERNAME")
    monkeypatch.delenv("RAY_APP_ELASTICSEARCH__PASSWORD")
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__API_KEY", "abc==")
    assert json.loads(sink_config(load_settings()))["authorization"] == "ApiKey abc=="


def test_write_reports_add_up() -> None:
    from spark_jobs.es_sink import WriteReport

    total = WriteReport.from_json(
        json.dumps(
            {
                "indexed": {"trades": 3},
                "rejected": 1,
                "documents": 4,
                "newest_produced_ms": 10,
                "samples": [{"doc_id": "a"}],
            }
        )
    )
    total.add(WriteReport(indexed={"trades": 2, "dead-letters": 1}, documents=2, newest_produced_ms=7, rejected=2))
    assert total.indexed == {"trades": 5, "dead-letters": 1} and total.documents == 6 and total.rejected == 3
    assert total.newest_produced_ms == 10


def test_a_wait_counts_only_the_status_its_own_driver_wrote() -> None:
    """`ray-app stream` waits on the driver it started: a previous driver's status (caught up, as it was
    when that driver stopped) must not make a new job look caught up."""
    from ray.job_submission import JobDetails, JobStatus, JobType

    from spark_jobs.control import written_by
    from spark_jobs.status import StreamStatus

    def status(submission_id: str | None, started_at: str) -> StreamStatus:
        return StreamStatus(
            pid=1, submission_id=submission_id, started_at=started_at, updated_at=started_at, checkpoint_dir="/tmp/cp"
        )

    started_ms = 1_795_793_400_000  # 2026-11-27T15:30:00Z
    job = JobDetails(
        type=JobType.SUBMISSION,
        entrypoint="python -m ray_app stream driver",
        submission_id="new",
        status=JobStatus.RUNNING,
        start_time=started_ms,
    )
    assert written_by(status("new", "2026-11-27T15:30:05Z"), job)
    assert not written_by(status("old", "2026-11-27T15:30:05Z"), job)  # a previous job's driver, even if later
    # a driver submitted by hand carries no id: its start time decides
    assert written_by(status(None, "2026-11-27T15:30:01Z"), job)
    assert not written_by(status(None, "2026-11-27T15:29:00Z"), job)


def test_settings_of_the_two_query_stream_are_read_and_dropped_with_a_warning(monkeypatch, caplog) -> None:
    """An older config file still loads: the bar query's settings are gone, not typos."""
    for key, value in (("SHUFFLE_PARTITIONS", "2"), ("BAR_LATENESS_S", "600"), ("STATE_STORE", "rocksdb")):
        monkeypatch.setenv(f"RAY_APP_STREAM__{key}", value)
    with caplog.at_level("WARNING"):
        settings = load_settings()
    assert not hasattr(settings.stream, "bar_lateness_s")
    assert "no longer used" in caplog.text and "bar_lateness_s" in caplog.text
