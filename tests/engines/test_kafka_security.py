"""Kafka over SASL_SSL on the real engines: a broker of the test's own with SCRAM-SHA-512 inside TLS (certificates
made for it by the local stack), and every client from the same settings.

1. A trade goes from ingest (producer, admin, the simulator's progress consumer) through the streaming job (the Spark
   Kafka source) to Elasticsearch, and a consumer reads the topic back, all over SASL_SSL.
2. A wrong password, a missing certificate authority, or PLAINTEXT against the SASL_SSL listener fail within seconds
   with a message that names the setting to fix, from the CLI, the streaming driver and the stack's health check,
   and never show the password.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from ray_app.config import Settings
from ray_app.kafka_clients import KafkaUnavailable, probe
from ray_app.stack.kafka import KafkaService
from ray_app.stack.processes import StackError
from ray_app.testing.settings import module_env, settings_env
from ray_app.testing.stack import REPO, run_cli
from tests.support.kafka import read_topic
from tests.support.own_kafka import OwnKafka, own_kafka

# every character the layers in between could mangle: the storage tool's list syntax (, = ]), JAAS and .properties
# quoting (" \), and non-ASCII (the broker reads its properties file as ISO-8859-1)
PASSWORD = 'tr,ade=s]"\\ä-€-' + "x" * 20
WRONG = "not-the-password-" + "y" * 12
FAST_S = 15  # "within seconds": a refusal is known after one round trip; this leaves room for a loaded 2-core box


@pytest.fixture(scope="module")
def broker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnKafka]:
    state = tmp_path_factory.mktemp("sasl-ssl")
    with own_kafka(
        stack,
        state,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="ray-app",
        sasl_password=SecretStr(PASSWORD),
        ssl_ca_location=state / "tls" / "kafka-ca.pem",
    ) as own:
        yield own


def _env(settings: Settings, **kafka: str) -> dict[str, str]:
    """RAY_APP_* variables that point a subprocess at the SASL_SSL broker (``kafka``: what to change)."""
    return settings_env(
        {
            "kafka": {
                "bootstrap_servers": settings.kafka.bootstrap_servers,
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "ray-app",
                "sasl_password": PASSWORD,
                "ssl_ca_location": settings.kafka.ssl_ca_location,
                **kafka,
            }
        }
    )


def _with(settings: Settings, **kafka: object) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=kafka)})


def test_the_broker_listens_only_with_tls_and_scram(broker: OwnKafka) -> None:
    properties = (broker.service.config_dir / "server.properties").read_text()
    assert "listeners=SASL_SSL://127.0.0.1:" in properties and "PLAINTEXT://" not in properties
    assert "CONTROLLER:SSL" in properties and "listener.name.controller.ssl.client.auth=required" in properties
    assert (broker.service.config_dir / "server.properties").stat().st_mode & 0o077 == 0  # it holds the password
    assert broker.settings.kafka.ssl_ca_location.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_a_trade_goes_from_ingest_to_elasticsearch_over_sasl_ssl(
    broker: OwnKafka, stack: Settings, tmp_path: Path
) -> None:
    from ray_app.es_indices import es_client

    env = {
        **_env(broker.settings),
        **module_env(
            stack,
            "sec",
            {
                "stream": {
                    "checkpoint_dir": tmp_path / "checkpoints",
                    "trigger_interval_s": 0.5,
                    "spark_log_level": "WARN",
                }
            },
            topics=(),
        ),
    }
    ingest = run_cli(
        "ingest",
        "--source",
        "simulate",
        "--symbols",
        "AAPL,BTC/USD",
        "--history-days",
        "0.02",
        "--trades-per-minute",
        "3",
        "--no-progress",
        env=env,
        timeout=180,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert PASSWORD not in ingest.stdout + ingest.stderr
    settings = broker.settings
    # a consumer over SASL_SSL; the trades topic holds the trades' cancels and corrections too
    produced = [
        m for m in read_topic(settings, settings.kafka.topics.trades.name) if json.loads(m.value())["kind"] == "trade"
    ]
    assert len(produced) > 20

    log_path = tmp_path / "driver.log"
    with log_path.open("w") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "ray_app", "stream", "driver"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **env},
        )
        try:
            index = {**os.environ, **env}["RAY_APP_ELASTICSEARCH__INDICES__TRADES"]
            es = es_client(stack)
            deadline = time.monotonic() + 300
            indexed = 0
            while time.monotonic() < deadline and driver.poll() is None:
                if es.indices.exists(index=index):
                    es.indices.refresh(index=index)
                    indexed = es.count(index=index)["count"]
                    if indexed >= len(produced):
                        break
                time.sleep(1)
            assert indexed == len(produced), log_path.read_text()[-4000:]
        finally:
            driver.terminate()
            driver.wait(120)
    assert PASSWORD not in log_path.read_text()
    sample = es.search(index=index, size=1)["hits"]["hits"][0]["_source"]
    assert sample["symbol"] in {"AAPL", "BTC/USD"}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"sasl_password": WRONG}, "refused the credentials of user 'ray-app'"),
        ({"ssl_ca_location": "/etc/ssl/certs/ca-certificates.crt"}, "kafka.ssl_ca_location"),
        ({"security_protocol": "PLAINTEXT"}, "kafka.security_protocol"),
    ],
    ids=["wrong-password", "untrusted-certificate", "plaintext-client"],
)
def test_settings_the_broker_refuses_fail_fast_naming_the_setting(
    broker: OwnKafka, change: dict[str, str], says: str
) -> None:
    env = _env(broker.settings, **change)
    began = time.monotonic()
    ingest = run_cli(
        "ingest",
        "--source",
        "simulate",
        "--symbols",
        "AAPL",
        "--history-days",
        "0.01",
        "--no-progress",
        env=env,
        timeout=120,
    )
    ingest_s = time.monotonic() - began
    output = ingest.stdout + ingest.stderr
    assert ingest.returncode == 1 and says in output, output
    assert WRONG not in output and PASSWORD not in output
    if change.get("security_protocol") != "PLAINTEXT":  # a mismatch is told apart only after the probe's timeout
        assert ingest_s < FAST_S, f"took {ingest_s:.1f} s"

        began = time.monotonic()
        driver = subprocess.run(
            [sys.executable, "-m", "ray_app", "stream", "driver"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, **env},
            timeout=120,
        )
        assert driver.returncode == 1 and says in driver.stderr, driver.stdout[-2000:] + driver.stderr[-2000:]
        assert time.monotonic() - began < FAST_S + 10  # the interpreter's imports, then one probe; no Spark started
        assert "starting Spark" not in driver.stdout


def test_a_wrong_password_is_refused_by_every_client_within_seconds(broker: OwnKafka) -> None:
    from ray_app.kafka_topics import ensure_topics

    wrong = _with(broker.settings, sasl_password=SecretStr(WRONG))
    for name, attempt in (
        ("probe", lambda: probe(wrong, timeout_s=60)),
        ("admin (topics)", lambda: ensure_topics(wrong, timeout_s=60)),
    ):
        began = time.monotonic()
        with pytest.raises(KafkaUnavailable) as refused:
            attempt()
        assert refused.value.refused and "kafka.sasl_password" in str(refused.value), name
        assert time.monotonic() - began < FAST_S, name
        assert WRONG not in str(refused.value)
    with pytest.raises(StackError, match="refused the credentials"):
        KafkaService(wrong).healthy()  # `stack up` says so at once instead of waiting for its start-up timeout


def test_a_node_formatted_for_another_user_refuses_to_start_and_says_what_to_do(broker: OwnKafka) -> None:
    from ray_app.jvm_artifacts import find_java

    other = _with(broker.settings, sasl_username="someone-else")
    with pytest.raises(StackError, match="formatted for SASL user 'ray-app'") as refused:
        KafkaService(other).launch(find_java(other))
    assert "delete" in str(refused.value)
