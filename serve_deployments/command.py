"""`ray-app serve`: deploy the Serve application on the cluster, show its status, stop it, print its config file."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
import yaml

from ray_app.cli_common import console, fail, settings_of

serve_app = typer.Typer(
    invoke_without_command=True,
    help="The Ray Serve application: forecast endpoints over HTTP (see `serve_deployments/app.py`).",
)


@serve_app.callback()
def serve(
    ctx: typer.Context,
    timeout: Annotated[
        float, typer.Option(help="Give up waiting for the app to answer after this many seconds.")
    ] = 180,
) -> None:
    """Deploy (or update) the app on the Ray cluster and wait until it answers; it keeps running.

    Subcommands: `serve status`, `serve stop`, `serve config`."""
    if ctx.invoked_subcommand is not None:
        return
    from ray import serve as ray_serve

    from ray_app.ray_cluster import connect
    from serve_deployments.app import application

    settings = settings_of(ctx)
    began = time.perf_counter()
    try:
        connect(settings)
    except ConnectionError as exc:
        fail(f"cannot reach Ray at {settings.ray.address} ({exc}); is the stack up (`ray-app stack up`)?")
    ray_serve.start(http_options={"host": settings.serve.http_host, "port": settings.serve.http_port})
    ray_serve.run(application(settings), name=settings.serve.app_name, route_prefix=settings.serve.route_prefix)
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = httpx.get(f"{settings.serve.url}/healthz", timeout=5)
            if health.status_code in {200, 503}:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            fail(f"the app did not answer at {settings.serve.url}/healthz within {timeout:.0f} s")
        time.sleep(1)
    console.print(
        f"serve: app '{settings.serve.app_name}' running at {settings.serve.url} (OpenAPI: {settings.serve.url}/docs) "
        f"after {time.perf_counter() - began:.1f} s; health: {health.json()}",
        highlight=False,
    )


def _text(status) -> str:
    return str(getattr(status, "value", status))


@serve_app.command("status")
def status(ctx: typer.Context) -> None:
    """Applications and deployments with their replica states (also in the Ray dashboard's Serve view)."""
    from ray import serve as ray_serve

    from ray_app.ray_cluster import connect

    connect(settings_of(ctx))
    for name, app in ray_serve.status().applications.items():
        console.print(f"{name}: {_text(app.status)}", highlight=False)
        for deployment, info in app.deployments.items():
            replicas = {_text(state): count for state, count in info.replica_states.items()}
            console.print(f"  {deployment}: {_text(info.status)} {replicas}", highlight=False)


@serve_app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Delete the app (Serve itself keeps running for other apps)."""
    from ray import serve as ray_serve

    from ray_app.ray_cluster import connect

    settings = settings_of(ctx)
    connect(settings)
    ray_serve.delete(settings.serve.app_name)
    console.print(f"deleted app '{settings.serve.app_name}'")


@serve_app.command("config")
def config(ctx: typer.Context) -> None:
    """Print the Serve config file for `serve deploy` (what configs/serve.yaml holds for the defaults)."""
    from serve_deployments.config_file import HEADER, serve_config

    console.print(HEADER + yaml.safe_dump(serve_config(settings_of(ctx)), sort_keys=False), end="", highlight=False,
                  soft_wrap=True)  # fmt: skip
