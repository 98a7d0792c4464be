"""The Serve app's API key: who may write (always), and who may read when the app listens beyond the loopback.

The key is ``serve.api_key`` (``RAY_APP_SERVE__API_KEY``); when it is not set, one is made on first use and kept in
``state_dir/serve/api-key`` (mode 0600), where the CLI, the demo and Grafana's provisioning read it. Clients send it
in the ``X-API-Key`` header. It is never logged or printed.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ray_app.config import Settings

API_KEY_HEADER = "X-API-Key"
KEY_ENV = "RAY_APP_SERVE__API_KEY"  # what Grafana's provisioning reads


def key_file(settings: Settings) -> Path:
    return settings.state_dir / "serve" / "api-key"


def api_key(settings: Settings) -> str:
    """The configured key, or the one this state dir made for itself (made now if there is none yet)."""
    if settings.serve.api_key is not None:
        return settings.serve.api_key.get_secret_value()
    path = key_file(settings)
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key


def is_loopback(host: str) -> bool:
    """Whether ``host`` (what Serve binds) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


# The ingress replica's rule, set by its __init__. It lives here, in an importable module, on purpose: Serve ships
# the decorated ingress class by value, so a global of the app module would be a copy in the replica.
_ACCESS: dict[str, Any] = {}


def configure(key: SecretStr, reads_need_key: bool) -> None:
    _ACCESS.update(key=key, reads_too=reads_need_key)


def allowed(method: str, path: str, given: str | None, open_paths: tuple[str, ...]) -> bool:
    """Writes always need the key; reads when the app listens beyond the loopback (``open_paths`` excepted).
    Before ``configure`` nothing is allowed."""
    key: SecretStr | None = _ACCESS.get("key")
    reading = method in {"GET", "HEAD", "OPTIONS"}
    needed = not reading or (_ACCESS.get("reads_too", True) and not path.startswith(open_paths))
    return not needed or (key is not None and key_matches(given, key.get_secret_value()))
