"""`ray-app dashboards`: the Grafana dashboards and provisioning, generated from code into grafana/."""

from __future__ import annotations

import typer

from ray_app.cli.common import console

dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana dashboards as code (grafana-foundation-sdk).")


@dashboards_app.command("build")
def build() -> None:
    """Write grafana/dashboards/*.json and grafana/provisioning/ from the default settings (what is committed)."""
    from ray_app.config import load_settings
    from ray_app.dashboards.build import write_files

    for path in write_files(load_settings()):
        console.print(str(path), highlight=False)
