"""What every `ray-app` command shares: the consoles, the one-line error exit, and loading the settings."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ray_app.config import ConfigError, Settings, load_settings

# Reports are read in terminals and in CI logs; a log gets a width that fits the tables on one line each.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings for this invocation (the root command's --config file, then the environment)."""
    try:
        settings = load_settings(ctx.find_root().obj)
    except ConfigError as exc:
        fail(str(exc), code=2)
    settings.ray.use_auth_mode()
    return settings
