"""The failure a person at the terminal can act on: one line, with the log file to read. The local stack's and the
JVM artifacts' errors are of this kind; the CLI prints ``one_line()`` and exits."""

from __future__ import annotations

from pathlib import Path


class ActionableError(RuntimeError):
    def __init__(self, message: str, log_file: Path | None = None) -> None:
        self.message = message
        self.log_file = log_file
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} (log: {self.log_file})" if self.log_file else self.message
