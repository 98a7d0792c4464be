"""Alertmanager for the local stack: Debian's `prometheus-alertmanager` package, on the loopback, data in the state
dir. Prometheus sends it the pipeline's alerts (ray_app/alerts.py); it groups them, drops duplicates, sends the
resolution when a condition ends, and delivers to ``alertmanager.webhook_url`` (Alertmanager's webhook JSON), or to
nobody when none is set (the alerts are still on its page, http://127.0.0.1:9193). Email, Slack and the rest are
Alertmanager's own receivers: point ``alertmanager.url`` at an Alertmanager configured for them (on a cluster, the
settings name an existing one and the stack starts none).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml

from ray_app.config import Settings
from ray_app.jvm_artifacts import Java
from ray_app.stack.processes import StackError
from ray_app.stack.prometheus import debian_binary
from ray_app.stack.service import Launch, Listener, Service

PACKAGE = "prometheus-alertmanager"
RECEIVER = "ray-app"
# Debian builds the binary with its asset directory (the default notification template, the web UI) fixed at this
# absolute path, which exists only where the package is installed system-wide.
DEBIAN_ASSETS = b"/usr/share/prometheus/alertmanager"
# the same number of bytes, relative to the working directory: a Go string's length is stored apart from its bytes,
# so a same-length path is a safe substitution
RELOCATED_ASSETS = b"./" * ((len(DEBIAN_ASSETS) - len(b"assets")) // 2) + b"assets"


def runnable_binary(binary: Path, run_dir: Path) -> Path:
    """``binary`` itself where its asset directory exists; for the package unpacked in the cache dir, a copy whose
    asset directory is ``run_dir/assets`` (a link to the unpacked one), so no root and no system install is needed."""
    if Path(DEBIAN_ASSETS.decode()).is_dir() or DEBIAN_ASSETS not in binary.read_bytes():
        return binary
    unpacked_assets = binary.parent.parent / "share" / "prometheus" / "alertmanager"
    if not (unpacked_assets / "default.tmpl").is_file():
        raise StackError(
            f"{binary} needs {DEBIAN_ASSETS.decode()}/default.tmpl and it is neither there nor at {unpacked_assets}: "
            "install Debian's prometheus-alertmanager package, or set alertmanager.binary"
        )
    relocated = binary.with_name(binary.name + ".relocated")
    if not relocated.is_file() or relocated.stat().st_mtime < binary.stat().st_mtime:
        partial = relocated.with_suffix(".partial")
        partial.write_bytes(binary.read_bytes().replace(DEBIAN_ASSETS, RELOCATED_ASSETS))
        partial.chmod(0o755)
        partial.replace(relocated)
    link = run_dir / "assets"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(unpacked_assets, target_is_directory=True)
    return relocated


def alertmanager_config(settings: Settings) -> dict[str, object]:
    """Alertmanager's configuration: one route (by alert name and what it is about) to one receiver."""
    am = settings.alertmanager
    receiver: dict[str, object] = {"name": RECEIVER}
    if am.webhook_url is not None:
        receiver["webhook_configs"] = [{"url": am.webhook_url.get_secret_value(), "send_resolved": True}]
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname", "part", "source", "symbol", "topic"],
            "group_wait": f"{am.group_wait_s:g}s",
            "group_interval": f"{am.group_interval_s:g}s",
            "repeat_interval": f"{am.repeat_interval_s:g}s",
        },
        "receivers": [receiver],
    }


class AlertmanagerService(Service):
    name = "alertmanager"

    @property
    def address(self) -> str:
        return self.settings.alertmanager.url

    def listeners(self) -> list[Listener]:
        url = urlsplit(self.settings.alertmanager.url)
        return [Listener(url.hostname or "127.0.0.1", url.port or 9193, "Alertmanager HTTP")]

    def write_config(self) -> tuple[Path, bool]:
        """Its configuration, and whether it changed."""
        config_file = self.config_dir / "alertmanager.yml"
        content = yaml.safe_dump(alertmanager_config(self.settings), sort_keys=False)
        # it may hold a webhook URL with a token in it: readable by this user only
        config_file.touch(mode=0o600, exist_ok=True)
        os.chmod(config_file, 0o600)
        if config_file.read_text() == content:
            return config_file, False
        config_file.write_text(content)
        return config_file, True

    def after_start(self) -> list[str]:
        """A changed receiver or timing reaches a running Alertmanager: the file rewritten, a reload."""
        if not self.write_config()[1]:
            return []
        answer = httpx.post(f"{self.settings.alertmanager.url}/-/reload", timeout=30)
        answer.raise_for_status()
        return ["alertmanager: configuration reloaded"]

    def launch(self, java: Java) -> Launch:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = runnable_binary(
            debian_binary(
                self.settings,
                PACKAGE,
                "prometheus-alertmanager",
                self.settings.alertmanager.binary,
                "alertmanager.binary",
            ),
            self.data_dir,
        )
        config_file = self.write_config()[0]
        (listener,) = self.listeners()
        argv = [
            str(binary),
            f"--config.file={config_file}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={listener.host}:{listener.port}",
            "--cluster.listen-address=",  # one instance: no gossip port
        ]
        return Launch(argv=argv, env={"PATH": "/usr/bin:/bin"}, cwd=self.data_dir)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.settings.alertmanager.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
