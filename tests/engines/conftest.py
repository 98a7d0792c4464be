"""The engine tests' fixtures: one real local stack (Kafka, Elasticsearch, Ray head) per test session.

The stack runs on free ports in a scratch state directory, configured the way users configure it (RAY_APP_*
environment variables, from typed overrides: ``ray_app.testing.stack``), so it never touches a stack the user has
running. It is stopped at the end by pid file, and the session fails if any of its processes is left behind. The
helpers themselves live in ``ray_app.testing``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ray_app.config import Settings, load_settings
from ray_app.testing.stack import alive, environment, stack_env, stack_pids


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    # short path: Ray's unix sockets live under its temp dir and must stay under 107 characters
    path = Path(tempfile.mkdtemp(prefix="rayapp-", dir="/tmp"))
    yield path
    if not os.environ.get("RAY_APP_KEEP_TEST_STATE"):  # set it to read the engines' logs after a failure
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(stack_dir: Path) -> Iterator[Settings]:
    """The running local stack's settings; the environment carries them to every `ray-app` subprocess."""
    from ray_app.stack import manager

    with environment(stack_env(stack_dir)):
        settings = load_settings()
        pids: list[int] = []
        try:
            # inside the try: a stack that fails half-way up is stopped too
            manager.up(settings)
            pids = stack_pids(settings)
            yield settings
        finally:
            pids += stack_pids(settings)
            manager.down(settings)
            left = [pid for pid in set(pids) if alive(pid)]
            assert not left, f"stack processes left running after `stack down`: {left}"
