"""`ray-app config`: the effective settings (defaults, the YAML file and the environment merged; secrets masked)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
import yaml

from ray_app.cli.common import console, settings_of

config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective settings.")


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
) -> None:
    """Print the effective settings (defaults, file and environment merged; secrets masked)."""
    data = settings_of(ctx).masked()
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(yaml.safe_dump(data, sort_keys=False), end="", highlight=False, soft_wrap=True)
