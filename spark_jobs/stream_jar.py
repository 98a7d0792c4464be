"""The streaming job's own JVM code (``spark_jobs/jvm``: the record rules and the Elasticsearch sink), compiled
against pyspark's jars into a jar in the cache, once per source version."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

from ray_app.config import Settings
from ray_app.jvm_artifacts import COMPLETE, ArtifactError, find_java

STREAM_SOURCES = Path(__file__).resolve().parent / "jvm" / "src" / "main" / "java"
STREAM_JAR = "ray-app-stream.jar"


def _stream_sources() -> list[Path]:
    return sorted(STREAM_SOURCES.rglob("*.java"))


def _spark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def stream_jar_dir(settings: Settings) -> Path:
    digest = hashlib.sha256()
    for source in _stream_sources():
        digest.update(source.relative_to(STREAM_SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    return settings.cache_dir / "jvm" / f"stream-{digest.hexdigest()[:10]}"


def ensure_stream_jar(settings: Settings) -> tuple[Path, bool]:
    """Compile the streaming job's JVM code (spark_jobs/jvm: the record rules and the Elasticsearch sink) against
    pyspark's own jars into a jar, once per source version. Returns (jar, built_now). Needs a JDK (javac)."""
    target = stream_jar_dir(settings)
    jar = target / STREAM_JAR
    if (target / COMPLETE).is_file():
        return jar, False
    java = find_java(settings)
    javac = java.home / "bin" / "javac"
    if not javac.is_file():
        raise ArtifactError(
            f"javac not found in {java.home}: the streaming job's JVM code is compiled once with a JDK; "
            "install one (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME to a JDK"
        )
    staging = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    classes = staging / "classes"
    classes.mkdir(parents=True)
    log_file = settings.logs_dir / "javac.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(javac),
        "--release",
        "17",
        "-encoding",
        "UTF-8",
        "-nowarn",
        "-cp",
        f"{_spark_jars()}/*",
        "-d",
        str(classes),
        *(str(source) for source in _stream_sources()),
    ]
    with log_file.open("a") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(argv)}\n")
        log.flush()
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        lines = log_file.read_text(errors="replace").splitlines()
        first = next((line for line in reversed(lines) if ": error:" in line), "see the log")
        raise ArtifactError(f"compiling the streaming job's JVM code failed: {first.strip()[:300]}", log_file)
    with zipfile.ZipFile(staging / STREAM_JAR, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: ray-app\n\n")
        for path in sorted(classes.rglob("*.class")):
            archive.write(path, path.relative_to(classes).as_posix())
    shutil.rmtree(classes)
    (staging / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
    try:
        staging.rename(target)
    except OSError:  # another process built the same sources meanwhile
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / COMPLETE).is_file():
            raise
    return jar, True
