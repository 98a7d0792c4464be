"""Prometheus for the local stack: Debian's `prometheus` package, scraping Ray's metrics the way Ray documents it.

Ray writes the address of every node's metrics agent to ``<ray temp dir>/prom_metrics_service_discovery.json``;
Prometheus reads that file (``file_sd_configs``) and follows it as nodes come and go, so Ray's own metrics and the
platform's (``ray_app_*``, recorded with ``ray.util.metrics`` in the jobs) arrive through one scrape job. The Ray
dashboard's metrics view and Grafana's Prometheus datasource read this server.

The binary is ``prometheus.binary``, else ``prometheus`` on PATH, else Debian's package fetched once with
``apt-get download`` into the cache dir and unpacked there (no root needed, nothing installed system-wide).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml

from ray_app.alerts import rules_file
from ray_app.config import Settings
from ray_app.jvm_artifacts import Java
from ray_app.stack.processes import StackError
from ray_app.stack.service import Launch, Listener, Service

PACKAGE = "prometheus"
SCRAPE_JOB = "ray"


def ray_discovery_file(settings: Settings) -> Path:
    """Where the Ray head writes its metrics targets for Prometheus."""
    return (settings.ray.temp_dir or Path("/tmp/ray")) / "prom_metrics_service_discovery.json"


def prometheus_binary(settings: Settings) -> Path:
    """The Prometheus executable: the configured one, the one on PATH, or Debian's package in the cache dir."""
    return debian_binary(settings, PACKAGE, "prometheus", settings.prometheus.binary, "prometheus.binary")


def debian_binary(settings: Settings, package: str, executable: str, configured: Path | None, key: str) -> Path:
    """An executable of a Debian package: ``configured`` (the setting ``key``), else on PATH, else the package fetched
    once with ``apt-get download`` and unpacked in the cache dir (no root needed, nothing installed system-wide)."""
    if configured is not None:
        if not configured.is_file():
            raise StackError(f"{key} {configured} does not exist")
        return configured
    found = shutil.which(executable)
    if found:
        return Path(found)
    folder = settings.cache_dir / "debian" / package
    unpacked = folder / "root" / "usr" / "bin" / executable
    if unpacked.is_file():
        return unpacked
    apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if not apt_get or not dpkg_deb:
        raise StackError(
            f"{executable} is not installed and this is not a Debian-like system to fetch it from: "
            f"put `{executable}` on PATH, or set {key}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.deb"):
        old.unlink()
    download = subprocess.run([apt_get, "download", package], cwd=folder, capture_output=True, text=True, timeout=600)
    packages = sorted(folder.glob(f"{package}_*.deb"))
    if download.returncode != 0 or not packages:
        last = (download.stderr or download.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StackError(
            f"could not download Debian's {package} package with apt-get ({last[0]}); install it and put "
            f"`{executable}` on PATH, or set {key}"
        )
    subprocess.run([dpkg_deb, "-x", str(packages[-1]), str(folder / "root")], check=True, timeout=300)
    return unpacked


class PrometheusService(Service):
    name = "prometheus"

    @property
    def address(self) -> str:
        return self.settings.prometheus.url

    def listeners(self) -> list[Listener]:
        url = urlsplit(self.settings.prometheus.url)
        return [Listener(url.hostname or "127.0.0.1", url.port or 9090, "Prometheus HTTP")]

    @property
    def rules_path(self) -> Path:
        return self.config_dir / "rules.yml"

    def config(self) -> dict[str, object]:
        interval = f"{self.settings.prometheus.scrape_interval_s:g}s"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            # the pipeline's alerts (ray_app/alerts.py), written beside this file at every start, sent to Alertmanager
            "rule_files": [str(self.rules_path)],
            "alerting": {
                "alertmanagers": [
                    {
                        "scheme": urlsplit(self.settings.alertmanager.url).scheme,
                        "path_prefix": urlsplit(self.settings.alertmanager.url).path or "/",
                        "static_configs": [{"targets": [urlsplit(self.settings.alertmanager.url).netloc]}],
                    }
                ]
            },
            "scrape_configs": [
                # re-read on change and every 10 s: the file appears once the Ray head is up
                {
                    "job_name": SCRAPE_JOB,
                    "file_sd_configs": [{"files": [str(ray_discovery_file(self.settings))], "refresh_interval": "10s"}],
                },
                {"job_name": "prometheus", "static_configs": [{"targets": [urlsplit(self.address).netloc]}]},
            ],
        }

    def write_files(self) -> tuple[Path, bool]:
        """Its configuration and the rule file (the pipeline's alerts and the settings' market alerts), and whether
        either changed."""
        config_file = self.config_dir / "prometheus.yml"
        changed = False
        for path, content in (
            (config_file, yaml.safe_dump(self.config(), sort_keys=False)),
            (self.rules_path, yaml.safe_dump(rules_file(self.settings), sort_keys=False)),
        ):
            if not path.is_file() or path.read_text() != content:
                path.write_text(content)
                changed = True
        return config_file, changed

    def after_start(self) -> list[str]:
        """An edited ``alerts:`` (or scrape setting) reaches a running Prometheus: the files rewritten, a reload."""
        if not self.write_files()[1]:
            return []
        answer = httpx.post(f"{self.settings.prometheus.url}/-/reload", timeout=30)
        answer.raise_for_status()
        return ["prometheus: configuration and alert rules reloaded"]

    def launch(self, java: Java) -> Launch:
        binary = prometheus_binary(self.settings)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Prometheus watches the discovery file's folder, which must exist when it starts
        ray_discovery_file(self.settings).parent.mkdir(parents=True, exist_ok=True)
        config_file = self.write_files()[0]
        (listener,) = self.listeners()
        argv = [
            str(binary),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={self.settings.prometheus.retention}",
            f"--web.listen-address={listener.host}:{listener.port}",
            "--web.enable-lifecycle",
        ]
        return Launch(argv=argv, env={"PATH": "/usr/bin:/bin"}, cwd=self.data_dir)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.settings.prometheus.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
