"""Settings overrides for tests, typed and checked: a nested mapping shaped like ``Settings`` becomes the RAY_APP_*
variables that carry it to every process a test starts (the `ray-app` CLI, Ray jobs, Serve replicas).

    settings_env({"stream": {"checkpoint_dir": path, "trigger_interval_s": 1}})
    -> {"RAY_APP_STREAM__CHECKPOINT_DIR": "/tmp/...", "RAY_APP_STREAM__TRIGGER_INTERVAL_S": "1"}

A key that is not a setting fails at once, naming it (a misspelt variable would otherwise be ignored silently).

The one settings factory of the engine tests is :func:`module_settings`: a test module's own topics, indices, Spark
app and checkpoints, and its overrides, in the environment for the block (every process the module starts reads
them), topics and indices created.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ray_app.config import ENV_PREFIX, Settings

Overrides = Mapping[str, Any]


def _text(value: Any) -> str:
    if isinstance(value, str | Path):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def settings_env(overrides: Overrides, model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> dict[str, str]:
    """RAY_APP_* variables for ``overrides`` (nested like the settings; lists and maps as JSON)."""
    env: dict[str, str] = {}
    for key, value in overrides.items():
        field = model.model_fields.get(key)
        if field is None:
            raise KeyError(f"{prefix}{key}: {model.__name__} has no setting {key!r}")
        section = field.annotation if isinstance(field.annotation, type) else None
        name = f"{prefix}{key.upper()}"
        if isinstance(value, Mapping) and section is not None and issubclass(section, BaseModel):
            env |= settings_env(value, section, f"{name}__")
        else:
            env[name] = _text(value)
    return env


def own_indices(settings: Settings, prefix: str) -> dict[str, Any]:
    """Overrides giving a test module indices of its own (<prefix>-trades, <prefix>-bars-1h, ...)."""
    indices = settings.elasticsearch.indices.by_key()
    return {"elasticsearch": {"indices": {key: f"{prefix}-{index}" for key, index in indices.items()}}}


STREAM_TOPICS = ("trades", "bars", "dead_letters", "quotes")


def _merge(into: dict[str, Any], other: Overrides) -> dict[str, Any]:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def own_overrides(
    stack: Settings, tag: str, overrides: Overrides | None = None, topics: tuple[str, ...] = STREAM_TOPICS
) -> dict[str, Any]:
    """Overrides giving a test module a world of its own, deep-merged with ``overrides``: topics ``<name>-<tag>``
    (``topics``: which ones), indices ``<tag>-<index>``, the stream's Spark app ``test-stream-<tag>`` and its
    checkpoints in ``<state_dir>/<tag>-checkpoints``."""
    names = stack.kafka.topics
    own: dict[str, Any] = {
        "kafka": {"topics": {key: {"name": f"{getattr(names, key).name}-{tag}"} for key in topics}},
        "stream": {"app_name": f"test-stream-{tag}", "checkpoint_dir": stack.state_dir / f"{tag}-checkpoints"},
        **own_indices(stack, tag),
    }
    return _merge(own, overrides or {})


def module_env(
    stack: Settings, tag: str, overrides: Overrides | None = None, topics: tuple[str, ...] = STREAM_TOPICS
) -> dict[str, str]:
    """:func:`own_overrides` as RAY_APP_* variables, for a module whose processes get them explicitly."""
    return settings_env(own_overrides(stack, tag, overrides, topics))


@contextmanager
def module_settings(
    stack: Settings,
    tag: str,
    overrides: Overrides | None = None,
    create: bool = True,
    topics: tuple[str, ...] = STREAM_TOPICS,
) -> Iterator[Settings]:
    """The settings of a test module's own (:func:`own_overrides`), set in the environment for the block; with
    ``create``, its topics and indices exist."""
    from ray_app.config import load_settings
    from ray_app.testing.stack import environment

    with environment(module_env(stack, tag, overrides, topics)):
        settings = load_settings()
        if create:
            from ray_app.es_indices import ensure_indices
            from ray_app.kafka_topics import ensure_topics

            if topics:
                ensure_topics(settings)
            ensure_indices(settings)
        yield settings


@contextmanager
def own_indices_created(stack: Settings, prefix: str) -> Iterator[Settings]:
    """:func:`module_settings` with indices of the module's own only (``<prefix>-<index>``, created with their
    templates), deleted after the block."""
    from ray_app.es_indices import es_client

    with module_settings(stack, prefix, topics=()) as own:
        try:
            yield own
        finally:
            names = ",".join(own.elasticsearch.indices.by_key().values())
            es_client(own).indices.delete(index=names, ignore_unavailable=True)
