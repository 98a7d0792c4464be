"""PySpark's worker daemon with the bulk writer's imports done once, before it forks workers.

Spark forks a Python worker per task slot from this daemon; each new worker otherwise re-imports
elasticsearch, pyarrow and this package (about a second per task on a small machine, measured in the
executor log as ArrowPythonRunner "init"). Set as ``spark.python.daemon.module``.
"""

import elasticsearch  # noqa: F401
import pyarrow  # noqa: F401
from pyspark import daemon

import spark_jobs.es_sink  # noqa: F401

if __name__ == "__main__":
    daemon.manager()
