"""A local Spark session with the streaming job's own configuration (jars, Java 17 options, UTC, the record rules
registered), without Ray, Kafka or Elasticsearch: for list-in/list-out tests of the job's Spark code."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ray_app.config import Settings
from ray_app.jvm_artifacts import find_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@contextmanager
def local_spark(settings: Settings) -> Iterator[SparkSession]:
    """``local[1]``: the job's Spark settings (``spark_jobs.session.spark_configs``) less RayDP's, one shuffle
    partition; stopped when the block ends."""
    from pyspark.sql import SparkSession

    from spark_jobs.record_rules import register_rules
    from spark_jobs.session import spark_configs

    os.environ.setdefault("JAVA_HOME", str(find_java(settings).home))
    builder = SparkSession.builder.master("local[1]").appName("ray-app-local-test")
    for key, value in spark_configs(settings).items():
        if not key.startswith("spark.ray."):
            builder = builder.config(key, value)
    spark = (
        builder.config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.memory", "1g")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    register_rules(spark, settings)
    try:
        yield spark
    finally:
        spark.stop()
