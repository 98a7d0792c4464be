"""What every `ray-app` command shares: the consoles, the one-line error exit, and loading the settings."""

from __future__ import annotations

import io
import sys
from typing import IO, NoReturn, TextIO, cast

import typer
from rich.console import Console
from rich.markup import escape

from ray_app.config import ConfigError, Settings, load_settings
from ray_app.config.redaction import redact, redact_log_records
from ray_app.ray_cluster import use_auth_mode

redact_log_records()  # every command: no log record shows a password, whichever library writes it


class _RedactingStream(io.TextIOBase):
    """sys.stdout or sys.stderr as it is at each write, with the credentials of every URL masked: whatever a
    command prints (a table of addresses, an error quoting a URL) never shows a password."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _stream(self) -> TextIO:
        return getattr(sys, self._name)

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"


# Reports are read in terminals and in CI logs; a log gets a width that fits the tables on one line each.
# (cast: a TextIOBase is a text stream; typing.IO is a separate protocol-like class that it does not inherit)
console = Console(file=cast(IO[str], _RedactingStream("stdout")), width=None if sys.stdout.isatty() else 140)
err_console = Console(file=cast(IO[str], _RedactingStream("stderr")), width=None if sys.stderr.isatty() else 140)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings for this invocation (the root command's --config file, then the environment)."""
    try:
        settings = load_settings(ctx.find_root().obj)
    except ConfigError as exc:
        fail(str(exc), code=2)
    use_auth_mode(settings)
    return settings
