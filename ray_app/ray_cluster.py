"""Joining the Ray cluster from a driver (the CLI, the streaming job, forecast runs, `ray-app serve`)."""

from __future__ import annotations

import logging
import os

from ray_app.config import Settings


def connect(settings: Settings) -> None:
    """Join the cluster once: inside a Ray job its own (RAY_ADDRESS), else ``ray.address``; auth mode explicit."""
    import ray

    if not ray.is_initialized():
        settings.ray.use_auth_mode()
        address = os.environ.get("RAY_ADDRESS") or settings.ray.address
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)


def current_node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
