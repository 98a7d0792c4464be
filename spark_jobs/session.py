"""Start (and stop) the one Spark session of a job on the Ray cluster through RayDP.

Executors are Ray actors, sized from ``settings.stream``. The Kafka source comes from the stack's JVM cache
(resolved by Maven once) and the job's own JVM code (record rules, Elasticsearch sink) is compiled once from
``spark_jobs/jvm`` (see ``ray_app.jvm_artifacts``). Java 17 needs the module
options below in the driver, the executors and RayDP's app master, or handing data between the JVM and Ray
fails with ``InaccessibleObjectException``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from ray_app.config import Settings
from ray_app.jvm_artifacts import ensure_bundle, find_java, jars
from ray_app.ray_cluster import connect
from spark_jobs.stream_jar import ensure_stream_jar

# every micro-batch brings the JVMs new generated classes; with the JVM's default tiered compilation the
# optimizing compiler (C2) then used more than half of the driver's and the executors' CPU on two cores
JIT_OPTIONS = {"c1": ("-XX:TieredStopAtLevel=1",), "tiered": ()}

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The module options Spark itself passes on Java 17 (launcher JavaModuleOptions), which RayDP's tests use too.
JAVA17_OPTIONS = (
    "-XX:+IgnoreUnrecognizedVMOptions",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
    "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
    "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
    "-Djdk.reflect.useDirectMethodHandle=false",
    "-Dio.netty.tryReflectionSetAccessible=true",
    # event times are UTC everywhere; a JVM in another zone must not shift bar boundaries
    "-Duser.timezone=UTC",
)


def spark_configs(settings: Settings) -> dict[str, str]:
    """The Spark configuration of a job: connector jars, Java 17 options, executor sizing, UTC, scheduler pools,
    state store."""
    bundle, _ = ensure_bundle(settings, "spark")
    own, _ = ensure_stream_jar(settings)
    java_options = " ".join([*JAVA17_OPTIONS, *JIT_OPTIONS[settings.stream.jit]])
    stream = settings.stream
    placement = {
        f"spark.ray.raydp_spark_executor.actor.resource.{name}": str(amount)
        for name, amount in stream.executor_resources.items()
    }
    return placement | {
        # the driver serves these to every executor (Spark's file server): no node but the driver's needs the cache
        "spark.jars": ",".join(str(jar) for jar in [*jars(bundle), own]),
        "spark.driver.extraJavaOptions": java_options,
        "spark.executor.extraJavaOptions": java_options,
        "spark.ray.raydp_app_master.extraJavaOptions": java_options,
        "spark.driver.memory": stream.driver_memory,
        "spark.ray.raydp_spark_executor.actor.resource.cpu": str(stream.executor_ray_cpus),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.streaming.minBatchesToRetain": "20",
        # with several executors a task waits at most this long for the executor that holds its Kafka consumer
        # (Spark's default, 3 s, is longer than a whole micro-batch here)
        "spark.locality.wait": "100ms",
        "spark.ui.showConsoleProgress": "false",
        # nothing of the job runs Python in the executors (the sink is JVM code); if a user's code does, it
        # gets the interpreter that has the project installed
        "spark.pyspark.python": sys.executable,
        "spark.sql.adaptive.enabled": "false",
        # a batch with no data has nothing to write (the query holds no state that time would move)
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        # checkpoints on a local disk without Hadoop's .crc side files: every batch writes an offset file, a commit
        # file and state-store files, each of them twice with checksums (a sixth of a small batch's time here);
        # a checkpoint on HDFS or S3 (a multi-node cluster) is not affected
        "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.file.impl": "org.apache.hadoop.fs.local.RawLocalFs",
    }


def start_spark(settings: Settings, app_name: str | None = None) -> SparkSession:
    """Connect to the Ray cluster (``settings.ray.address``) and start Spark on it with RayDP."""
    import raydp

    if not os.environ.get("JAVA_HOME"):
        os.environ["JAVA_HOME"] = str(find_java(settings).home)
    connect(settings)
    stream = settings.stream
    spark = raydp.init_spark(
        app_name=app_name or stream.app_name,
        num_executors=stream.num_executors,
        executor_cores=stream.executor_cores,
        executor_memory=stream.executor_memory,
        configs=spark_configs(settings),
    )
    spark.sparkContext.setLogLevel(stream.spark_log_level)
    return spark


def stop_spark() -> None:
    """Stop Spark and its RayDP actors. A JVM already gone (SIGTERM reaches the whole process group of a Ray job,
    the JVM's own hooks stop Spark first) is not a failure: there is nothing left to stop."""
    import raydp

    try:
        raydp.stop_spark()
    except Exception as exc:  # Py4J's errors once the JVM has exited
        from spark_jobs.failures import failure_text

        logging.getLogger("ray_app.stream").info("Spark had stopped already: %s", failure_text(exc))
