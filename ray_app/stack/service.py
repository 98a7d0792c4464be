"""What every service of the local stack provides, so the manager can start, check and stop them alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ray_app.config import Settings
from ray_app.jvm_artifacts import Java


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path | None = None


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    purpose: str


class Service(ABC):
    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def config_dir(self) -> Path:
        return self.settings.state_dir / "config" / self.name

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach the service."""

    @abstractmethod
    def listeners(self) -> list[Listener]:
        """Every port the service binds, checked before anything starts."""

    @abstractmethod
    def launch(self, java: Java) -> Launch:
        """Write config files, prepare data folders, and return how to start the process."""

    @abstractmethod
    def healthy(self) -> bool:
        """A cheap probe: True when the service answers requests."""

    def after_start(self) -> list[str]:
        """Idempotent set-up once healthy (topics, index templates); returns what it did, for the report."""
        return []
