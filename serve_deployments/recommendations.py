"""A recommendation (facts + rule-based signal and sentiment + generated text) and its `recommendations` documents.

Document id ``<symbol>|<last_bar_at>|<run_id>|<model>``: the same facts (same last bar, same forecast run) and
the same model give the same text (greedy decoding), so recording again overwrites instead of adding copies.
The trading dashboard shows the newest document per symbol.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk

from ray_app.config import Settings
from ray_app.documents import Judgement, MarketFacts, Recommendation, RecommendationDocument
from ray_app.es_indices import MAPPINGS, ensure_index
from ray_app.times import now_iso
from serve_deployments.checked_text import CheckedText


def recommendation_of(
    facts: MarketFacts, judgement: Judgement, written: CheckedText, model: str, trained: bool, note: str
) -> Recommendation:
    """The answer from its parts: the facts, the rules' verdict and the checked text (with its last generation)."""
    generation = written.generation
    return Recommendation(
        **facts.model_dump(),
        **judgement.model_dump(),
        **written.fields(),
        prompt=written.prompt,
        model=model,
        model_is_trained=trained,
        model_note=note,
        new_tokens=generation.new_tokens if generation else 0,
        batch_size=generation.batch_size if generation else 0,
        generation_s=round(generation.seconds, 4) if generation else 0.0,
        generated_at=now_iso(),
    )


def write_recommendations(es: Elasticsearch, settings: Settings, answers: list[dict[str, Any]]) -> int:
    """Index the answers (idempotent ids); returns how many were written."""
    index = settings.elasticsearch.indices.recommendations
    ensure_index(settings, es, index, MAPPINGS["recommendations"])
    actions = []
    for answer in answers:
        recommendation = Recommendation.model_validate(answer)
        document = RecommendationDocument(**recommendation.model_dump(), timestamp=recommendation.last_bar_at)
        actions.append({"_index": index, "_id": recommendation.doc_id(), "_source": document.model_dump()})
    written, _ = bulk(es, actions, refresh="wait_for")
    return written


def latest_recommendations(es: Elasticsearch, settings: Settings) -> list[dict[str, Any]]:
    """The newest recommendation per symbol (by last bar, then generation time)."""
    index = settings.elasticsearch.indices.recommendations
    if not es.indices.exists(index=index):
        return []
    page = es.search(
        index=index,
        size=0,
        aggs={
            "per_symbol": {
                "terms": {"field": "symbol", "size": 1000},
                "aggs": {
                    "newest": {"top_hits": {"size": 1, "sort": [{"timestamp": "desc"}, {"generated_at": "desc"}]}}
                },
            }
        },
    )
    buckets = page["aggregations"]["per_symbol"]["buckets"]
    return sorted((b["newest"]["hits"]["hits"][0]["_source"] for b in buckets), key=lambda doc: doc["symbol"])
