"""Stopping long-running work cleanly: a flag that Ctrl-C and SIGTERM set, checked between units of work."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


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
