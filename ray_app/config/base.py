"""What every settings section shares: the section base (unknown keys fail), the error type, checked value types."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)

_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
# Elasticsearch index names: lowercase, no spaces or \/*?"<>|,#: and not starting with -_+
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{0,254}$")


_HEAP = re.compile(r"^\d+[mMgG]$")


class ConfigError(ValueError):
    """Raised when the settings cannot be loaded; its message is meant for the person at the terminal."""


def _check_heap(value: str) -> str:
    if not _HEAP.match(value):
        raise ValueError("must be a JVM heap size such as 512m or 1g")
    return value


JvmHeap = Annotated[str, AfterValidator(_check_heap)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _check_resources(value: dict[str, float]) -> dict[str, float]:
    for name, amount in value.items():
        if name in {"CPU", "GPU", "memory", "object_store_memory"} or not re.fullmatch(r"[A-Za-z_][\w.:-]{0,63}", name):
            raise ValueError(f"{name!r} is not a custom Ray resource name (CPUs and GPUs have settings of their own)")
        if not amount > 0:
            raise ValueError(f"{name}: a resource amount is a positive number (got {amount})")
    return value


# custom Ray resources a task or actor needs, e.g. {"worker": 1}: what a node started with `--resources` offers
Resources = Annotated[dict[str, float], AfterValidator(_check_resources)]


class _Section(BaseModel):
    # Unknown keys are typos: fail instead of ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str, example: str, with_port: bool = False) -> str:
    """An http(s) URL with a host (and a port when the local stack binds it), without a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or (with_port and not parts.port):
        raise ValueError(f"must be an http(s) URL{' with a port' if with_port else ''}, e.g. {example}")
    return value.rstrip("/")
