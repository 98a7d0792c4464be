"""The `ray-app` command line: `commands.app` mounts one Typer app per stage (config, stack, ingest, stream,
forecast, serve, demo). The only layer that prints and sets exit codes; every entry point (the console script,
`python -m ray_app`, the Ray jobs' `python -m ...` aliases) goes through `main`."""

from __future__ import annotations

from typing import Any


def main(args: list[str] | None = None, prog_name: str = "ray-app") -> Any:
    """Run the command line (``args`` default: sys.argv[1:])."""
    from ray_app.cli.commands import app

    return app(args=args, prog_name=prog_name)


def __getattr__(name: str) -> Any:  # `from ray_app.cli import app`, without importing every command up front
    if name == "app":
        from ray_app.cli.commands import app

        return app
    raise AttributeError(name)
