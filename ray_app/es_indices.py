"""Elasticsearch index templates and indices of the project, applied idempotently. Nothing here deletes an index.

The mappings come from the document models (``ray_app.documents``): prices and sizes are ``double`` (the original
project's 32-bit floats lost BTC's cents), trade times are ``date_nanos`` (Alpaca sends nanoseconds), symbols are
``keyword``. Fields a model lets a document add are mapped by the dynamic templates, strings as ``keyword`` and
numbers as ``double``, so no field silently becomes ``text`` or ``long``.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from ray_app.config import Settings
from ray_app.documents import DOCUMENTS, mapping

LOG = logging.getLogger(__name__)
TEMPLATE_PREFIX = "ray-app-"
TEMPLATE_PRIORITY = 500

_DYNAMIC_TEMPLATES = [
    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}},
    {"numbers_as_doubles": {"match_mapping_type": "long", "mapping": {"type": "double"}}},
    {"floats_as_doubles": {"match_mapping_type": "double", "mapping": {"type": "double"}}},
]

# Mappings by settings key (ElasticsearchIndices field name), derived from the document models.
MAPPINGS: dict[str, dict[str, Any]] = {key: mapping(*models) for key, models in DOCUMENTS.items()}


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``elasticsearch.Elasticsearch`` from the ``elasticsearch:`` section."""
    es = settings.elasticsearch
    kwargs: dict[str, Any] = {
        "hosts": [es.url],
        "request_timeout": es.request_timeout_s,
        "verify_certs": es.verify_certs,
    }
    if es.api_key:
        kwargs["api_key"] = es.api_key.get_secret_value()
    if es.username and es.password:
        kwargs["basic_auth"] = (es.username, es.password.get_secret_value())
    if es.ca_certs:
        kwargs["ca_certs"] = str(es.ca_certs)
    return kwargs


def es_client(settings: Settings) -> Elasticsearch:
    """The Elasticsearch client every stage uses."""
    return Elasticsearch(**client_kwargs(settings))


def document_counts(settings: Settings) -> dict[str, int]:
    """Documents per project index (0 for one that does not exist yet)."""
    es = es_client(settings)
    return {
        index: es.count(index=index)["count"] if es.indices.exists(index=index) else 0
        for index in settings.elasticsearch.indices.by_key().values()
    }


def template_body(settings: Settings, index: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "index_patterns": [index],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": {
                "number_of_shards": settings.elasticsearch.number_of_shards,
                "number_of_replicas": settings.elasticsearch.number_of_replicas,
            },
            "mappings": {"dynamic_templates": _DYNAMIC_TEMPLATES, "properties": properties},
        },
        "_meta": {"managed_by": "ray-app"},
    }


def ensure_index(settings: Settings, es: Elasticsearch, index: str, properties: dict[str, Any]) -> bool:
    """Put the index's template (the same body again is a no-op) and create the index if missing.

    Returns True when the index was created now.
    """
    es.indices.put_index_template(name=f"{TEMPLATE_PREFIX}{index}", **template_body(settings, index, properties))
    if es.indices.exists(index=index):
        # fields added in a later version reach an existing index too; a field whose type changed cannot, and
        # is reported (documents keep being written; reindex to adopt the new type)
        try:
            es.indices.put_mapping(index=index, properties=properties)
        except ApiError as exc:
            LOG.warning("index %s keeps its older mapping: %s", index, exc.message)
        return False
    try:
        es.indices.create(index=index)
    except ApiError as exc:
        if exc.error != "resource_already_exists_exception":
            raise
        return False
    # a new index answers searches with 503 until its primary shard has started: be usable before returning
    wait_s = int(settings.elasticsearch.request_timeout_s)
    es.cluster.health(index=index, wait_for_status="yellow", timeout=f"{wait_s}s")
    return True


def ensure_indices(settings: Settings, es: Elasticsearch | None = None) -> list[str]:
    """Every project index with its template; returns what was created, for the report."""
    es = es or es_client(settings)
    return [
        f"created index {index}"
        for key, index in settings.elasticsearch.indices.by_key().items()
        if ensure_index(settings, es, index, MAPPINGS[key])
    ]
