"""A plain JVM with the streaming job's jar, driven through py4j: the record rules and the Elasticsearch sink
without Spark, for tests (a second or two to start, where a Spark session on Ray takes twenty)."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ray_app.config import Settings
from ray_app.jvm_artifacts import find_java
from spark_jobs.stream_jar import ensure_stream_jar

PACKAGE = "io.github.raytrading.stream"


@contextmanager
def stream_jvm(settings: Settings) -> Iterator[Any]:
    """The JVM's ``io.github.raytrading.stream`` package; the JVM stops when the block ends."""
    import pyspark
    from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

    jar, _ = ensure_stream_jar(settings)
    classpath = [*sorted(glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "*.jar"))), str(jar)]
    java = str(find_java(settings).executable)
    port, process = launch_gateway(
        classpath=os.pathsep.join(classpath),
        java_path=java,
        die_on_exit=True,
        return_proc=True,
        redirect_stdout=None,
        redirect_stderr=None,
    )
    gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_convert=True))
    try:
        package: Any = gateway.jvm
        for part in PACKAGE.split("."):
            package = getattr(package, part)
        yield package
    finally:
        gateway.shutdown()
        process.terminate()  # die_on_exit waits for stdin to close; a plain SIGTERM is quicker and certain
        try:
            process.wait(10)
        except Exception:
            process.kill()
            process.wait(10)


def action(
    package: Any,
    rules: str,
    topic: str,
    value: bytes | None,
    offset: int = 0,
    partition: int = 0,
    kafka_ms: int | None = None,
) -> dict[str, Any]:
    """The bulk action the record rules make of one Kafka record: index, doc_id, source (parsed), op, version,
    bar_key, alias_id and alias_source (a correction's); ``kafka_ms`` is the record's Kafka time (default: now, as
    for a record that just arrived)."""
    if kafka_ms is None:
        import time

        kafka_ms = time.time_ns() // 1_000_000
    index, doc_id, source, op, version, bar_key, alias_id, alias_source = json.loads(
        package.RecordUdfs.documentOf(rules, topic, partition, offset, kafka_ms, value)
    )
    return {
        "index": index,
        "doc_id": doc_id,
        "source": json.loads(source),
        "op": op,
        "version": version,
        "bar_key": bar_key,
        "alias_id": alias_id,
        "alias_source": json.loads(alias_source) if alias_source else None,
    }


def document(
    package: Any,
    rules: str,
    topic: str,
    value: bytes | None,
    offset: int = 0,
    partition: int = 0,
    kafka_ms: int | None = None,
) -> tuple[str, str, dict[str, Any]]:
    """(index, doc_id, document) the record rules make of one Kafka record (``action`` for how it is written)."""
    made = action(package, rules, topic, value, offset, partition, kafka_ms)
    return made["index"], made["doc_id"], made["source"]
