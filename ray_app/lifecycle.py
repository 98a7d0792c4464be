"""Running a stage until it is stopped: the contract every stage keeps (``run(settings, stop) -> Report``) and the
flag that Ctrl-C and SIGTERM set, checked between units of work."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ray_app.config import Settings


class StopFlag:
    """Set by SIGINT/SIGTERM (and by tests); sources check it between records."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)

    @contextmanager
    def on_signals(self) -> Iterator[StopFlag]:
        """Ctrl-C and SIGTERM stop the run cleanly (the caller flushes) instead of killing it mid-batch."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def on_signal(*_: object) -> None:
            if self.is_set():
                raise KeyboardInterrupt  # a second Ctrl-C: stop waiting now (the caller still flushes briefly)
            self.set()

        for sig in previous:
            signal.signal(sig, on_signal)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Report(Protocol):
    """What every stage's run ends with: whether it did its part, and that in one line for people."""

    @property
    def ok(self) -> bool: ...

    def line(self) -> str: ...


class Stage(Protocol):
    """The one contract of every stage that runs until stopped: ``run(settings, stop) -> Report``. The live
    platform's parts are stages (``ray_app.live.parts``); the CLI runs one in a process (`ray-app live run NAME`)."""

    def __call__(self, settings: Settings, stop: StopFlag, /) -> Report: ...


@dataclass
class LoopReport:
    """The report of a stage that works in rounds (indicators, forecaster, recommender, monitor): how many rounds
    ran and how many failed (a failed round is retried; the stage ends only when stopped)."""

    name: str
    rounds: int = 0
    failures: int = 0

    @property
    def ok(self) -> bool:
        return True

    def line(self) -> str:
        return f"{self.name}: stopped after {self.rounds:,} rounds ({self.failures:,} failed and retried)"
