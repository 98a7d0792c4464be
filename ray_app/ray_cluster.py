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
