"""Stop all of it, in order (what `ray-app down` does): the live parts' jobs (sources first, the stream last), the
Serve app, then the local stack. Data, checkpoints and the simulator's progress are kept."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ray_app.config import Settings
from ray_app.ray_cluster import dashboard_headers


def shut_down(settings: Settings, on_step: Callable[[str, bool], None]) -> None:
    """Stop everything; ``on_step(text, ok)`` hears each step as it is done (``ok`` False: a step that could not be
    done, said why; the next ones are still tried)."""
    from ray_app.live.jobs import stop_parts
    from ray_app.ray_cluster import JobApiError
    from ray_app.stack import manager

    ray_up = any(state.name == "ray" and state.healthy for state in manager.status(settings))
    if ray_up:
        try:
            for submission_id in stop_parts(settings):
                on_step(f"stopped job {submission_id}", True)
        except JobApiError as exc:
            on_step(f"could not list the jobs: {exc}", False)
        try:
            status = delete_serve_apps(settings)
            on_step(f"Serve shut down (HTTP {status})", status < 300)
        except httpx.HTTPError as exc:
            on_step(f"Serve did not answer: {exc}", False)
    for name, was_running in manager.down(settings, progress=lambda text: None):
        on_step(f"{name} {'stopped' if was_running else 'was not running'}", True)


def delete_serve_apps(settings: Settings) -> int:
    """Delete every Serve application through the Ray dashboard's REST API (with the cluster's token); its status."""
    answer = httpx.delete(
        f"{settings.ray.dashboard_url}/api/serve/applications/", timeout=120, headers=dashboard_headers(settings)
    )
    return answer.status_code
