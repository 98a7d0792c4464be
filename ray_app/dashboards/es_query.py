"""An Elasticsearch panel's query as the search Grafana's Elasticsearch datasource sends, and what the panel reads.

Grafana's backend turns a panel target (lucene query, metrics, bucket aggregations) into a search with the
dashboard's time range as a ``range`` filter on the time field and the lucene text as a ``query_string`` filter;
raw data is the newest ``size`` documents, a date histogram buckets by an interval derived from the range. This
module builds the same body (the subset our dashboards use), so the tests and the PNG report run exactly the
queries the dashboards run, on the real Elasticsearch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

AUTO_INTERVALS = ["1s", "10s", "1m", "5m", "10m", "30m", "1h", "3h", "12h", "1d", "7d"]
MAX_DATA_POINTS = 1000
_LUCENE_SPECIAL = re.compile(r'([+\-=&|><!(){}\[\]^"~*?:\\/])')


def lucene_escape(value: str) -> str:
    """How Grafana formats a variable's value inside a lucene query (its `lucene` format)."""
    return _LUCENE_SPECIAL.sub(r"\\\1", value)


def interpolate(text: str, variables: dict[str, str], lucene: bool) -> str:
    def value(match: re.Match[str]) -> str:
        name, fmt = match.group(1) or match.group(3), match.group(2)
        raw = variables[name]
        return lucene_escape(raw) if lucene and fmt != "raw" else raw

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", value, text)


def auto_interval(start: pd.Timestamp, end: pd.Timestamp) -> str:
    wanted = (end - start) / MAX_DATA_POINTS
    for interval in AUTO_INTERVALS:
        if pd.Timedelta(interval) >= wanted:
            return interval
    return AUTO_INTERVALS[-1]


@dataclass(frozen=True)
class PanelSearch:
    body: dict[str, Any]
    reads: list[str]  # document fields (raw data) or aggregation ids (metrics) the panel shows
    raw: bool


def search_for(
    target: dict[str, Any], time_field: str, start: pd.Timestamp, end: pd.Timestamp, variables: dict[str, str]
) -> PanelSearch:
    """The search body for one panel target, over [start, end], with the dashboard's variables filled in."""
    field = target.get("timeField") or time_field
    lucene = interpolate(target.get("query") or "*", variables, lucene=True)
    query = {
        "bool": {
            "filter": [
                {
                    "range": {
                        field: {
                            "gte": int(start.timestamp() * 1000),
                            "lte": int(end.timestamp() * 1000),
                            "format": "epoch_millis",
                        }
                    }
                },
                {"query_string": {"analyze_wildcard": True, "query": lucene}},
            ]
        }
    }
    metrics = target["metrics"]
    if metrics and metrics[0]["type"] == "raw_data":
        size = int(metrics[0].get("settings", {}).get("size", 500))
        return PanelSearch(
            body={
                "size": size,
                "query": query,
                "sort": [{field: {"order": "desc", "unmapped_type": "boolean"}}, {"_doc": {"order": "desc"}}],
            },
            reads=[],
            raw=True,
        )
    leaf: dict[str, Any] = {}
    for metric in metrics:
        if metric["type"] != "count":
            leaf[metric["id"]] = {metric["type"]: {"field": metric["field"]}}
    aggs: dict[str, Any] = leaf
    for bucket in reversed(target.get("bucketAggs") or []):
        settings = bucket.get("settings", {})
        if bucket["type"] == "date_histogram":
            interval = settings.get("interval", "auto")
            bounds = {"min": int(start.timestamp() * 1000), "max": int(end.timestamp() * 1000)}
            definition: dict[str, Any] = {
                "date_histogram": {
                    "field": bucket["field"],
                    "min_doc_count": 0,
                    "format": "epoch_millis",
                    "extended_bounds": bounds,
                    "fixed_interval": auto_interval(start, end) if interval == "auto" else interval,
                }
            }
        elif bucket["type"] == "terms":
            definition = {
                "terms": {
                    "field": bucket["field"],
                    "size": int(settings.get("size", "10")),
                    "order": {"_count": "desc"},
                    "min_doc_count": 1,
                }
            }
        else:
            raise ValueError(f"bucket aggregation {bucket['type']!r} is not one the dashboards use")
        if aggs:
            definition["aggs"] = aggs
        aggs = {bucket["id"]: definition}
    return PanelSearch(body={"size": 0, "query": query, "aggs": aggs}, reads=list(leaf), raw=False)


def variable_search(query: str, time_field: str, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """A `{"find": "terms", "field": ...}` variable query as Grafana runs it."""
    import json

    find = json.loads(query)
    return {
        "size": 0,
        "query": {
            "bool": {
                "filter": [
                    {
                        "range": {
                            time_field: {
                                "gte": int(start.timestamp() * 1000),
                                "lte": int(end.timestamp() * 1000),
                                "format": "epoch_millis",
                            }
                        }
                    }
                ]
            }
        },
        "aggs": {"1": {"terms": {"field": find["field"], "size": 500, "order": {"_key": "asc"}}}},
    }


def es_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if (panel.get("datasource") or {}).get("type") == "elasticsearch"]


def infinity_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        panel
        for panel in dashboard["panels"]
        if (panel.get("datasource") or {}).get("type", "").endswith("infinity-datasource")
    ]
