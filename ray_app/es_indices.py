"""Elasticsearch index templates and indices of the project, applied idempotently. Nothing here deletes an index.

Prices and sizes are ``double`` (the original project's 32-bit floats lost BTC's cents), trade times are
``date_nanos`` (Alpaca sends nanoseconds), symbols are ``keyword``. Strings that a stage adds later are mapped
as ``keyword`` and numbers as ``double`` by the dynamic templates, so no field silently becomes ``text`` or
``long``.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from ray_app.config import Settings

LOG = logging.getLogger(__name__)
TEMPLATE_PREFIX = "ray-app-"
TEMPLATE_PRIORITY = 500

_DOUBLE = {"type": "double"}
_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
_DATE_NANOS = {"type": "date_nanos"}
_LONG = {"type": "long"}

_DYNAMIC_TEMPLATES = [
    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}},
    {"numbers_as_doubles": {"match_mapping_type": "long", "mapping": _DOUBLE}},
    {"floats_as_doubles": {"match_mapping_type": "double", "mapping": _DOUBLE}},
]

_BAR_FIELDS: dict[str, Any] = {
    "symbol": _KEYWORD,
    "timeframe": _KEYWORD,
    "timestamp": _DATE,  # bar start, UTC
    "open": _DOUBLE,
    "high": _DOUBLE,
    "low": _DOUBLE,
    "close": _DOUBLE,
    "volume": _DOUBLE,
    "trade_count": _LONG,
    "vwap": _DOUBLE,
    "range": _DOUBLE,
    "notional": _DOUBLE,
    "log_return": _DOUBLE,
    "source": _KEYWORD,
    "updated_at": _DATE,
}

# Mappings by settings key (ElasticsearchIndices field name).
MAPPINGS: dict[str, dict[str, Any]] = {
    "trades": {
        "symbol": _KEYWORD,
        "timestamp": _DATE_NANOS,
        "price": _DOUBLE,
        "size": _DOUBLE,
        "timestamp_ns": _LONG,
        "trade_id": _KEYWORD,
        "exchange": _KEYWORD,
        "conditions": _KEYWORD,
        "tape": _KEYWORD,
        "taker_side": _KEYWORD,
        "source": _KEYWORD,
        "schema_version": {"type": "integer"},
        "ingested_at": _DATE_NANOS,  # when the record reached Kafka
        "kafka_partition": {"type": "integer"},
        "kafka_offset": _LONG,
    },
    "bars_1m": _BAR_FIELDS,
    "bars_1h": _BAR_FIELDS,
    "forecasts": {
        "run_id": _KEYWORD,
        "as_of": _DATE,  # the run's cut-off: bars before it were the training data
        "symbol": _KEYWORD,
        "market": _KEYWORD,
        "target": _KEYWORD,
        "timestamp": _DATE,  # the forecast hour (bar start)
        "step": {"type": "integer"},
        "value": _DOUBLE,
        "lo_80": _DOUBLE,
        "hi_80": _DOUBLE,
        "lo_95": _DOUBLE,
        "hi_95": _DOUBLE,
        "model": _KEYWORD,
        "created_at": _DATE,
    },
    "forecast_runs": {
        "record": _KEYWORD,  # run | symbol | target
        "run_id": _KEYWORD,
        "as_of": _DATE,
        "symbol": _KEYWORD,
        "market": _KEYWORD,
        "target": _KEYWORD,
        "status": _KEYWORD,  # run: running, complete, partial, failed; symbol: ok, skipped, failed
        "reason": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}},
        "chosen_model": _KEYWORD,
        "method": _KEYWORD,  # how the target is made from the modelled series (engine.PRICE_METHOD)
        "series_models": {"type": "object"},  # modelled series (log_close, log_high_close, ...) -> its model
        "mase": _DOUBLE,
        "smape": _DOUBLE,
        "naive_mase": _DOUBLE,
        "naive_smape": _DOUBLE,
        "beats_naive": {"type": "boolean"},
        "cv": {"type": "object"},  # model -> mase, smape, coverage_<level>, error
        "highest_volume": _DOUBLE,
        "highest_volume_at": _DATE,
        "highest_price": _DOUBLE,
        "highest_price_at": _DATE,
        "lowest_price": _DOUBLE,
        "lowest_price_at": _DATE,
        "first_bar": _DATE,
        "last_bar": _DATE,
        "forecast_start": _DATE,
        "forecast_end": _DATE,
        "started_at": _DATE,
        "finished_at": _DATE,
        "created_at": _DATE,
        "updated_at": _DATE,
    },
    "forecast_evaluations": {  # a past run scored against the bars that arrived after it (forecast/evaluation.py)
        "run_id": _KEYWORD,
        "as_of": _DATE,
        "symbol": _KEYWORD,
        "market": _KEYWORD,
        "target": _KEYWORD,
        "model": _KEYWORD,
        "horizon": {"type": "integer"},
        "elapsed_hours": {"type": "integer"},  # forecast hours that have a realized bar
        "complete": {"type": "boolean"},  # the whole horizon has passed
        "through": _DATE,  # the newest realized hour scored
        "mase": _DOUBLE,
        "naive_mase": _DOUBLE,
        "mae": _DOUBLE,
        "naive_mae": _DOUBLE,
        "beats_naive": {"type": "boolean"},
        "coverage_80": _DOUBLE,
        "coverage_95": _DOUBLE,
        "direction": _KEYWORD,  # close only: the run's forecast direction (up, down, flat)
        "direction_hit_rate": _DOUBLE,  # close only: share of elapsed hours whose realized direction agreed
        "evaluated_at": _DATE,
    },
    "recommendations": {
        "symbol": _KEYWORD,
        "timestamp": _DATE,  # = last_bar_at: the last hourly bar the facts come from
        "last_bar_at": _DATE,
        "generated_at": _DATE,
        "signal": _KEYWORD,
        "signal_rule": {"type": "text"},
        "sentiment": _KEYWORD,
        "sentiment_rule": {"type": "text"},
        "text": {"type": "text"},
        "prompt": {"type": "text"},
        "model": _KEYWORD,
        "model_is_trained": {"type": "boolean"},
        "model_note": {"type": "text"},
        "last_price": _DOUBLE,
        "change_24h_pct": _DOUBLE,
        "realized_volatility_24h_pct": _DOUBLE,
        "run_id": _KEYWORD,
        "forecast_as_of": _DATE,
        "forecast_end": _DATE,
        "forecast_close": _DOUBLE,
        "forecast_change_pct": _DOUBLE,
        "forecast_direction": _KEYWORD,
        "range_7d_low": _DOUBLE,
        "range_7d_high": _DOUBLE,
        "close_model": _KEYWORD,
        "close_beats_naive": {"type": "boolean"},
        "new_tokens": {"type": "integer"},
        "batch_size": {"type": "integer"},
    },
    "dead_letters": {
        "stage": _KEYWORD,
        "reason": _KEYWORD,
        "detail": {"type": "text"},
        "raw": {"type": "text"},
        "raw_encoding": _KEYWORD,
        "source": _KEYWORD,
        "intended_topic": _KEYWORD,
        "intended_index": _KEYWORD,
        "topic": _KEYWORD,
        "partition": {"type": "integer"},
        "offset": _LONG,
        "timestamp": _DATE,  # when the record reached Kafka
        "received_at": _DATE_NANOS,
    },
}


def client(settings: Settings) -> Elasticsearch:
    return Elasticsearch(**settings.elasticsearch.client_kwargs())


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
    es = es or client(settings)
    return [
        f"created index {index}"
        for key, index in settings.elasticsearch.indices.by_key().items()
        if ensure_index(settings, es, index, MAPPINGS[key])
    ]
