"""Benchmark: Serve autoscaling observed. A bounded loopback load above ``target_ongoing_requests`` on the Forecast
and Recommender deployments, and their replica counts over time from Serve's own status, until they are back at
their minimum after the load.

The deployments keep the default settings' autoscaling (min 1, max 2, target 8 ongoing requests per replica) but
for the delays, shortened so a run takes minutes (--upscale-delay, --downscale-delay; Serve's own defaults are 30 s
and 600 s). Every read reaches the Forecast deployment (cache TTL 0); the Recommender runs the untrained tiny GPT-2
of the tests (what is measured is the autoscaler, not the model).

    .venv/bin/python bench/autoscale.py [--concurrency 32] [--load-seconds 60] [--json]

It starts the local stack if it is not running and writes its own indices (bench-as-*): synthetic hourly bars for
four symbols and one forecast run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import _env, prepare_run  # bench/serve.py

console = Console(width=150)
DEPLOYMENTS = ("Forecast", "Recommender", "Ingress")


def main(
    concurrency: Annotated[int, typer.Option(help="clients, each sending one request after another")] = 32,
    load_seconds: Annotated[float, typer.Option(help="how long the load lasts")] = 60,
    upscale_delay: Annotated[float, typer.Option(help="Serve's upscale_delay_s for both deployments")] = 5,
    downscale_delay: Annotated[float, typer.Option(help="Serve's downscale_delay_s for both deployments")] = 20,
    settle_seconds: Annotated[float, typer.Option(help="how long to watch for the way back after the load")] = 240,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object last")] = False,
) -> None:
    env = {key: value for key, value in _env("bench-as").items() if "MAX_REPLICAS" not in key}
    os.environ.update(env)
    from ray import serve

    from ray_app.config import load_settings
    from ray_app.ray_cluster import connect
    from ray_app.stack import manager
    from ray_app.testing.language_model import build_test_model
    from ray_app.testing.serve_load import load_and_watch, timeline_table
    from serve_deployments.deploy import deploy

    settings = load_settings()
    manager.up(settings)
    connect(settings)
    prepare_run(settings)
    model = build_test_model(Path(tempfile.mkdtemp(prefix="bench-as-model-")), "tiny")
    delays = {"upscale_delay_s": upscale_delay, "downscale_delay_s": downscale_delay}
    scaled = {name: getattr(settings.serve, name).model_copy(update=delays) for name in ("forecast", "recommender")}
    app = settings.model_copy(
        update={
            "serve": settings.serve.model_copy(
                update={"cache_ttl_s": 0, "app_name": "bench-autoscale", "route_prefix": "/as", **scaled}
            ),
            "recommend": settings.recommend.model_copy(update={"model": str(model)}),
        }
    )
    deploy(app, timeout=600)
    base = app.serve.url  # with the route prefix
    most = {"Forecast": app.serve.forecast.max_replicas, "Recommender": app.serve.recommender.max_replicas}
    target = app.serve.forecast.target_ongoing_requests
    console.print(
        f"load: {concurrency} clients on GET /forecast and GET /recommendation for {load_seconds:.0f} s "
        f"(target {target:g} ongoing per replica, max {most})"
    )
    try:
        timeline = load_and_watch(
            "bench-autoscale",
            [f"{base}/forecast/BTC-USD", f"{base}/recommendation/BTC-USD"],
            concurrency=concurrency,
            load_s=load_seconds,
            settle_s=settle_seconds,
            settle_until={"Forecast": 1, "Recommender": 1},
        )
    finally:
        serve.delete("bench-autoscale")
    table = Table(title="replicas over time (RUNNING, from Serve's status)", title_justify="left")
    for column in ("s", "load", "requests answered", *DEPLOYMENTS):
        table.add_column(column, justify="right")
    for row in timeline_table(timeline, DEPLOYMENTS):
        table.add_row(*row)
    console.print(table)
    summary: dict[str, Any] = {
        "statuses": {str(k): v for k, v in timeline.statuses.items()},
        "peak": {name: timeline.peak(name) for name in DEPLOYMENTS},
        "reached_max_at_s": {name: timeline.first_at(name, count) for name, count in most.items()},
        "back_to_min_at_s": next(
            (s.seconds for s in timeline.samples if not s.loaded and all(s.running.get(name, 0) <= 1 for name in most)),
            None,
        ),
        "timeline": [{"s": s.seconds, "load": s.loaded, "requests": s.requests, **s.running} for s in timeline.samples],
    }
    console.print(
        f"answers by HTTP status: {summary['statuses']}; reached the maximum at {summary['reached_max_at_s']}"
        f" s; back to one replica each at {summary['back_to_min_at_s']} s"
    )
    if as_json:
        print(json.dumps(summary))


if __name__ == "__main__":
    typer.run(main)
