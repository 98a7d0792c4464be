"""Find Java and Maven, and resolve the JVM artifacts (Kafka, Elasticsearch, Spark's connectors) from Maven Central
into the cache, once. Platform layer: the local stack and the production streaming job (on every cluster node) both
use it; the streaming job's own JVM code is compiled by ``spark_jobs.stream_jar``.

Bundles are the profiles of ``configs/jvm/pom.xml``. Each lands in ``<cache_dir>/jvm/<bundle>-<pom hash>/`` with
a ``.complete`` marker, so a second `stack up` downloads nothing and a changed pom resolves afresh.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ray_app.config import PROJECT_ROOT, Settings
from ray_app.errors import ActionableError

POM_FILE = PROJECT_ROOT / "configs" / "jvm" / "pom.xml"
MIN_JAVA_MAJOR = 17
Bundle = Literal["kafka", "elasticsearch", "spark"]
BUNDLES: tuple[Bundle, ...] = ("kafka", "elasticsearch", "spark")
COMPLETE = ".complete"


class ArtifactError(ActionableError):
    """Java, Maven or an artifact is missing or broken."""


@dataclass(frozen=True)
class Java:
    home: Path
    major: int

    @property
    def executable(self) -> Path:
        return self.home / "bin" / "java"


def find_java(settings: Settings) -> Java:
    """Java 17+ from stack.java_home, $JAVA_HOME or PATH; ArtifactError with what to install otherwise."""
    candidates: list[tuple[str, Path]] = []
    if settings.stack.java_home:
        candidates.append(("stack.java_home", settings.stack.java_home))
    elif os.environ.get("JAVA_HOME"):
        candidates.append(("JAVA_HOME", Path(os.environ["JAVA_HOME"])))
    else:
        on_path = shutil.which("java")
        if on_path:
            candidates.append(("PATH", Path(os.path.realpath(on_path)).parent.parent))
    hint = "install Java 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    if not candidates:
        raise ArtifactError(f"Java not found: Kafka and Elasticsearch need it; {hint}")
    where, home = candidates[0]
    java = home / "bin" / "java"
    if not java.is_file():
        raise ArtifactError(f"Java not found at {java} (from {where}); {hint}")
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArtifactError(f"cannot run {java} -version: {exc}; {hint}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise ArtifactError(f"cannot read the Java version from `{java} -version`: {out.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA_MAJOR:
        raise ArtifactError(
            f"Java {major} found at {home} (from {where}), but Java {MIN_JAVA_MAJOR}+ is needed; {hint}"
        )
    return Java(home=home, major=major)


def _pom_digest() -> str:
    return hashlib.sha256(POM_FILE.read_bytes()).hexdigest()[:10]


def bundle_dir(settings: Settings, bundle: Bundle) -> Path:
    return settings.cache_dir / "jvm" / f"{bundle}-{_pom_digest()}"


def ready_bundle(settings: Settings, bundle: Bundle) -> Path | None:
    """The bundle's folder if it was resolved completely before, else None (nothing is downloaded)."""
    path = bundle_dir(settings, bundle)
    return path if (path / COMPLETE).is_file() else None


def ensure_bundle(settings: Settings, bundle: Bundle) -> tuple[Path, bool]:
    """Resolve a bundle if needed. Returns (folder, downloaded_now)."""
    ready = ready_bundle(settings, bundle)
    if ready:
        return ready, False
    mvn = shutil.which("mvn")
    if not mvn:
        raise ArtifactError(
            f"Maven (mvn) not found: it downloads the {bundle} artifacts once into {settings.cache_dir}; "
            "install it (Debian/Ubuntu: apt-get install maven)"
        )
    target = bundle_dir(settings, bundle)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    log_file = settings.logs_dir / "maven.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        mvn,
        "-B",
        "-f",
        str(POM_FILE),
        "-P",
        bundle,
        f"-Dmaven.repo.local={settings.cache_dir / 'm2'}",
        *(["-o"] if settings.stack.maven_offline else []),
        *settings.stack.maven_extra_args,
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging / 'lib'}",
    ]
    with log_file.open("a") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} resolving {bundle}: {' '.join(argv)}\n")
        log.flush()
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    if code != 0:
        raise ArtifactError(
            f"downloading the {bundle} artifacts with Maven failed: {_first_maven_error(log_file)}", log_file
        )
    if bundle == "elasticsearch":
        _unpack_elasticsearch(staging)
    (staging / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target, True


def _first_maven_error(log_file: Path) -> str:
    lines = log_file.read_text(errors="replace").splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("=====")), default=0)
    for line in lines[start:]:
        if line.startswith("[ERROR]") and len(line) > 10:
            return line.removeprefix("[ERROR]").strip()[:400]
    return "see the log"


def _unpack_elasticsearch(staging: Path) -> None:
    zips = sorted((staging / "lib").glob("elasticsearch-*.zip"))
    if not zips:
        raise ArtifactError(f"the Elasticsearch zip is missing from {staging / 'lib'}")
    with zipfile.ZipFile(zips[0]) as archive:
        for info in archive.infolist():
            extracted = Path(archive.extract(info, staging / "dist"))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                extracted.chmod(mode)
    zips[0].unlink()


def elasticsearch_home(bundle_path: Path) -> Path:
    homes = sorted((bundle_path / "dist").glob("elasticsearch-*"))
    if not homes:
        raise ArtifactError(f"no Elasticsearch distribution under {bundle_path / 'dist'}")
    return homes[0]


def jars(bundle_path: Path) -> list[Path]:
    return sorted((bundle_path / "lib").glob("*.jar"))
