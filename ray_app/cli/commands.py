"""The `ray-app` command line (also `python -m ray_app`): one Typer app per stage, mounted here.

Each stage's commands live in their own module of this package; library code raises domain errors, and only these
modules turn them into messages and exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ray_app.cli.bars import bars_app
from ray_app.cli.config import config_app
from ray_app.cli.dashboards import dashboards_app
from ray_app.cli.demo import demo, smoke
from ray_app.cli.forecast import forecast_app
from ray_app.cli.ingest import ingest
from ray_app.cli.live import down, live_app, status
from ray_app.cli.serve import recommend, serve_app
from ray_app.cli.stack import stack_app
from ray_app.cli.stream import stream_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])
app.add_typer(config_app, name="config")
app.add_typer(stack_app, name="stack")
app.command()(ingest)
app.add_typer(stream_app, name="stream")
app.add_typer(bars_app, name="bars")
app.add_typer(forecast_app, name="forecast")
app.add_typer(serve_app, name="serve")
app.add_typer(dashboards_app, name="dashboards")
app.command()(recommend)
app.command()(smoke)
app.command()(demo)
app.add_typer(live_app, name="live")
app.command()(status)
app.command()(down)


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML file merged over configs/default.yaml (or set RAY_APP_CONFIG)."),
    ] = None,
) -> None:
    ctx.obj = config
