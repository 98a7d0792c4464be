"""The Serve config file (`serve deploy` / `serve run`) generated from the settings, so the two never drift.

``configs/serve.yaml`` is this function's output for the default settings (a test keeps it so); regenerate it
with ``ray-app serve config > configs/serve.yaml`` after changing ``serve.*`` defaults.
"""

from __future__ import annotations

from typing import Any

from ray_app.config import Settings

HEADER = """\
# Ray Serve config for `serve deploy configs/serve.yaml` (to a running cluster) or `serve run configs/serve.yaml`.
# Generated from the `serve` settings by `ray-app serve config`; edit configs/default.yaml, then regenerate.
# The application reads its other settings (Elasticsearch, indices, recommend.model) from RAY_APP_* / RAY_APP_CONFIG
# on the cluster (or set them under the application's runtime_env: env_vars).
"""


def serve_config(settings: Settings) -> dict[str, Any]:
    serve = settings.serve

    def deployment(name: str, replicas) -> dict[str, Any]:
        return {"name": name, **replicas.deployment_options()}

    return {
        "proxy_location": serve.proxy_location,
        "http_options": {"host": serve.http_host, "port": serve.http_port},
        "applications": [
            {
                "name": serve.app_name,
                "route_prefix": serve.route_prefix,
                "import_path": "serve_deployments.app:build_app",
                "args": {},
                "deployments": [
                    deployment("Forecast", serve.forecast),
                    deployment("Recommender", serve.recommender),
                    deployment("Ingress", serve.ingress),
                ],
            }
        ],
    }
