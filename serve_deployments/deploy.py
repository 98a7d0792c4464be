"""Deploy (or update) the Serve application on the Ray cluster and wait until it answers: what `ray-app serve`,
`make run` and the benchmarks do. Raises :class:`DeployFailed` with the reason in plain words."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from ray_app.config import Settings


class DeployFailed(RuntimeError):
    """The app could not be deployed or does not answer; the message says why and what to do."""


@dataclass(frozen=True)
class Deployed:
    """The app runs and answers: after how long, with which recommendation model, its health answer, and a note
    when the configured model was not the one loaded."""

    seconds: float
    url: str
    model: str
    health: dict[str, Any]
    note: str | None
    redeployed: bool = True  # False: the same version was running and was left alone


def _text(status: object) -> str:
    return str(getattr(status, "value", status))


def _running_version(settings: Settings) -> str | None:
    """The version the running app answers in /healthz; None when none answers."""
    try:
        answer = httpx.get(f"{settings.serve.url}/healthz", timeout=5)
    except httpx.HTTPError:
        return None
    return answer.json().get("app_version") if answer.status_code == 200 else None


def deploy(settings: Settings, timeout: float, keep_unchanged: bool = False) -> Deployed:
    """Check the model, deploy (or update) the app and wait until /healthz answers. ``keep_unchanged``: when the
    running app answers the version this one would have (``app_version``), leave it as it is (a redeploy restarts
    every replica and reloads the language model)."""
    from ray import serve as ray_serve

    from ray_app.ray_cluster import connect
    from serve_deployments.app import application
    from serve_deployments.app_version import app_version
    from serve_deployments.language_model import ModelUnavailable, available_model

    began = time.perf_counter()
    try:
        recommend, note = available_model(settings.recommend)
    except ModelUnavailable as exc:
        raise DeployFailed(f"the Recommender cannot load its model: {exc}") from None
    if note:
        settings = settings.model_copy(update={"recommend": recommend})
    if keep_unchanged and _running_version(settings) == app_version(settings):
        health = httpx.get(f"{settings.serve.url}/healthz", timeout=30).json()
        return Deployed(time.perf_counter() - began, settings.serve.url, settings.recommend.model, health, note, False)
    try:
        connect(settings)
    except ConnectionError as exc:
        raise DeployFailed(
            f"cannot reach Ray at {settings.ray.address} ({exc}); is the stack up (`ray-app stack up`)?"
        ) from None
    ray_serve.start(
        proxy_location=settings.serve.proxy_location,
        http_options={"host": settings.serve.http_host, "port": settings.serve.http_port},
    )
    name = settings.serve.app_name
    # not waiting inside Serve: a replica short of CPUs never starts, and the loop below gives up with the reason
    target = ray_serve.RunTarget(application(settings), name=name, route_prefix=settings.serve.route_prefix)
    ray_serve.run_many([target], wait_for_applications_running=False)
    deadline = time.monotonic() + timeout
    while (app := ray_serve.status().applications.get(name)) is None or _text(app.status) != "RUNNING":
        if app is not None and _text(app.status) == "DEPLOY_FAILED":
            raise DeployFailed(f"the app failed to deploy: {app.message}")
        if time.monotonic() > deadline:
            why = (
                "; ".join(f"{d}: {_text(info.status)} {info.message}" for d, info in app.deployments.items())
                if app
                else ""
            )
            raise DeployFailed(f"the app is not running after {timeout:.0f} s ({why}); see `ray-app serve status`")
        time.sleep(1)
    try:
        health = httpx.get(f"{settings.serve.url}/healthz", timeout=30)
    except httpx.HTTPError as exc:
        raise DeployFailed(f"the app runs but {settings.serve.url}/healthz does not answer: {exc}") from None
    return Deployed(time.perf_counter() - began, settings.serve.url, settings.recommend.model, health.json(), note)
