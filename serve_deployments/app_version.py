"""The Serve app's version: a digest of everything that shapes what is deployed (the settings, the API key, the
code of ``ray_app`` and ``serve_deployments``, Ray's version). The app answers it in /healthz, so a bring-up that
finds the same version running leaves the app alone instead of restarting every replica (and reloading the
language model) for nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import ray
from pydantic import SecretStr

import ray_app
import serve_deployments
from ray_app.config import Settings
from serve_deployments.auth import api_key


def _code_digest() -> str:
    digest = hashlib.sha256()
    for package in (ray_app, serve_deployments):
        root = Path(str(package.__file__)).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _plain(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def app_version(settings: Settings) -> str:
    """16 hex digits; equal for two deployments only when settings, key, code and Ray are the same. A digest, so
    the key cannot be read back from it."""
    digest = hashlib.sha256()
    # secrets with their values (a changed password must redeploy), hashed, never shown
    digest.update(json.dumps(settings.model_dump(), sort_keys=True, default=_plain).encode())
    digest.update(api_key(settings).encode())
    digest.update(_code_digest().encode())
    digest.update(ray.__version__.encode())
    return digest.hexdigest()[:16]
