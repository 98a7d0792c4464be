"""The recommendations' track record: every stored signal scored against what the price did next.

Each stored recommendation (``recommendations``) is scored at 1 h, 24 h and 7 days after its last bar, once the
hourly bars reach that far (``score_recommendations``, run by the live forecaster after each forecast round and by
`make run`), into ``recommendation-outcomes`` (one document per recommendation and horizon; scoring again
overwrites):

- ``return_pct``: the close of the newest hourly bar starting at or before ``last_bar_at + horizon`` against the
  recommendation's ``last_price`` (both the close of an hour; a market closed in between has not moved);
- ``hit``: ``buy`` when the price rose, ``sell`` when it fell, ``hold`` when it stayed inside the hold band:
  +-``rules.move_threshold_pct`` x sqrt(horizon / 7 days) (the rule's own 7-day band, scaled as a random walk's
  spread: 1 h 0.08%, 24 h 0.38%, 7 d 1% with the default threshold of 1%);
- ``follow_return_pct``: what following the signal earned over the horizon (long on buy, short on sell, out of the
  market on hold) beside ``return_pct`` (holding, whatever the signal).

``track_record`` reads them back per symbol: hit rate, mean returns per signal and horizon, and the cumulative
return of following the 1 h signals in time order against holding over the same hours.

``backdate_recommendations`` writes recommendations at every hour since a forecast run's cut-off from that run and
the bars as they were then (the template text: no model wrote them; ``model`` says ``back-dated``): `make run`'s
track record, before the live recommender has a day of its own.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import pandas as pd
from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk, scan

from ray_app.config import Settings
from ray_app.documents import Recommendation, RecommendationOutcomeDocument
from ray_app.es_indices import MAPPINGS, ensure_index
from ray_app.forecast import store
from ray_app.times import iso, now_iso

HORIZONS: dict[str, pd.Timedelta] = {
    "1h": pd.Timedelta(hours=1),
    "24h": pd.Timedelta(hours=24),
    "7d": pd.Timedelta(days=7),
}
BACKDATED_MODEL = "back-dated"
BACKDATED_NOTE = (
    "back-dated by make run from a past forecast run and the bars as they were then; the text is the template "
    "sentence from the facts (no model wrote it)"
)


def hold_band_pct(move_threshold_pct: float, horizon: pd.Timedelta) -> float:
    """The band a ``hold`` must stay inside to be a hit: the rule's 7-day threshold scaled by sqrt(time)."""
    return move_threshold_pct * math.sqrt(horizon / HORIZONS["7d"])


def outcome(signal: str, price: float, later: float, band_pct: float) -> tuple[float, bool, float] | None:
    """(return %, hit, return % of following the signal) over one horizon; None where a return has no meaning (a
    price at or below zero)."""
    if price <= 0 or later <= 0:
        return None
    change = (later / price - 1.0) * 100.0
    if signal == "buy":
        return change, change > 0, change
    if signal == "sell":
        return change, change < 0, -change
    return change, abs(change) <= band_pct, 0.0


def _price_at(times: list[pd.Timestamp], closes: list[float], when: pd.Timestamp) -> float | None:
    """The close of the newest bar starting at or before ``when``, once a bar at or after it exists (the horizon
    has passed in the data); None before."""
    if not times or times[-1] < when:
        return None
    at = bisect.bisect_right(times, when) - 1
    return closes[at] if at >= 0 else None


def _recommendations(
    es: Elasticsearch, settings: Settings, symbol: str | None = None, since: pd.Timestamp | None = None
) -> list[dict[str, Any]]:
    index = settings.elasticsearch.indices.recommendations
    if not es.indices.exists(index=index):
        return []
    filters: list[dict[str, Any]] = [{"term": {"symbol": symbol}}] if symbol else []
    if since is not None:
        filters.append({"range": {"last_bar_at": {"gte": iso(since)}}})
    query = {"bool": {"filter": filters}}
    return [{**hit["_source"], "_id": hit["_id"]} for hit in scan(es, index=index, query={"query": query})]


RESCORE_DAYS = 8  # a recommendation older than its longest horizon and a day has every outcome it will have


def score_recommendations(es: Elasticsearch, settings: Settings, everything: bool = False) -> int:
    """Score the stored recommendations of the last :data:`RESCORE_DAYS` days (``everything``: all of them) at each
    horizon the bars have passed (again: the same ids); returns the outcomes written."""
    since = None if everything else pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=RESCORE_DAYS)
    recommendations = _recommendations(es, settings, since=since)
    if not recommendations:
        return 0
    rules = settings.recommend.rules
    actions = []
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for doc in recommendations:
        by_symbol.setdefault(doc["symbol"], []).append(doc)
    for symbol, docs in by_symbol.items():
        start = min(pd.Timestamp(doc["last_bar_at"]) for doc in docs)
        bars = store.load_bars(es, settings, [symbol], start, pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1))
        times = [pd.Timestamp(bar["timestamp"]) for bar in bars[symbol]]
        closes = [float(bar["close"]) for bar in bars[symbol]]
        for doc in docs:
            last_bar_at = pd.Timestamp(doc["last_bar_at"])
            for name, horizon in HORIZONS.items():
                later = _price_at(times, closes, last_bar_at + horizon)
                band = hold_band_pct(rules.move_threshold_pct, horizon)
                if later is None or (scored := outcome(doc["signal"], float(doc["last_price"]), later, band)) is None:
                    continue
                change, hit, follow = scored
                document = RecommendationOutcomeDocument(
                    symbol=symbol,
                    recommendation_id=doc["_id"],
                    timestamp=doc["last_bar_at"],
                    horizon=name,
                    horizon_end=iso(last_bar_at + horizon),
                    signal=doc["signal"],
                    sentiment=doc["sentiment"],
                    text_source=doc.get("text_source", "model"),
                    model=doc["model"],
                    price=float(doc["last_price"]),
                    price_at_horizon=later,
                    return_pct=change,
                    hit=hit,
                    hold_band_pct=band,
                    follow_return_pct=follow,
                    scored_at=now_iso(),
                )
                actions.append(
                    {
                        "_index": settings.elasticsearch.indices.recommendation_outcomes,
                        "_id": f"{doc['_id']}|{name}",
                        "_source": document.model_dump(),
                    }
                )
    index = settings.elasticsearch.indices.recommendation_outcomes
    ensure_index(settings, es, index, MAPPINGS["recommendation_outcomes"])
    written, _ = bulk(es, actions, refresh="wait_for") if actions else (0, [])
    return written


def track_record(es: Elasticsearch, settings: Settings, symbol: str) -> dict[str, Any]:
    """A symbol's scored signals: per signal and horizon the hit rate and mean returns, and the cumulative return of
    following the 1 h signals (in time order) against holding over the same hours."""
    index = settings.elasticsearch.indices.recommendation_outcomes
    outcomes = (
        [hit["_source"] for hit in scan(es, index=index, query={"query": {"term": {"symbol": symbol}}})]
        if es.indices.exists(index=index)
        else []
    )
    stored = len(_recommendations(es, settings, symbol))
    rows = []
    for name in HORIZONS:
        for signal in ("buy", "sell", "hold"):
            chosen = [o for o in outcomes if o["horizon"] == name and o["signal"] == signal]
            if not chosen:
                continue
            hits = sum(1 for o in chosen if o["hit"])
            rows.append(
                {
                    "signal": signal,
                    "horizon": name,
                    "scored": len(chosen),
                    "hits": hits,
                    "hit_rate": hits / len(chosen),
                    "hold_band_pct": chosen[0]["hold_band_pct"],
                    "mean_return_pct": sum(o["return_pct"] for o in chosen) / len(chosen),
                    "mean_follow_return_pct": sum(o["follow_return_pct"] for o in chosen) / len(chosen),
                }
            )
    hourly = sorted((o for o in outcomes if o["horizon"] == "1h"), key=lambda o: (o["timestamp"], o["model"]))
    seen: set[str] = set()
    follow, hold = 1.0, 1.0
    cumulative = []
    for o in hourly:
        if o["timestamp"] in seen:  # one position per hour, whichever model's recommendation came first
            continue
        seen.add(o["timestamp"])
        follow *= 1 + o["follow_return_pct"] / 100
        hold *= 1 + o["return_pct"] / 100
        cumulative.append(
            {
                "timestamp": o["timestamp"],
                "signal": o["signal"],
                "follow_return_pct": (follow - 1) * 100,
                "hold_return_pct": (hold - 1) * 100,
            }
        )
    return {
        "symbol": symbol,
        "recommendations": stored,
        "outcomes": len(outcomes),
        "rows": rows,
        "cumulative": cumulative,
        "rules": (
            "buy hits when the price rose, sell when it fell, hold when it stayed within the hold band "
            "(recommend.rules.move_threshold_pct x sqrt(horizon / 7 days)); following: long on buy, short on sell, "
            "out on hold; cumulative: the 1 h outcomes in time order, one per hour"
        ),
    }


def overall(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of several symbols' track records combined per horizon and signal (weighted by what was scored)."""
    combined: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        for row in record["rows"]:
            key = (row["horizon"], row["signal"])
            into = combined.setdefault(
                key, {**row, "scored": 0, "hits": 0, "mean_return_pct": 0.0, "mean_follow_return_pct": 0.0}
            )
            into["scored"] += row["scored"]
            into["hits"] += row["hits"]
            into["mean_return_pct"] += row["mean_return_pct"] * row["scored"]
            into["mean_follow_return_pct"] += row["mean_follow_return_pct"] * row["scored"]
    rows = []
    for name in HORIZONS:
        for signal in ("buy", "sell", "hold"):
            if (row := combined.get((name, signal))) is None:
                continue
            scored = row["scored"]
            rows.append(
                {
                    **row,
                    "hit_rate": row["hits"] / scored,
                    "mean_return_pct": row["mean_return_pct"] / scored,
                    "mean_follow_return_pct": row["mean_follow_return_pct"] / scored,
                }
            )
    return rows


def backdate_recommendations(es: Elasticsearch, settings: Settings, run_id: str) -> int:
    """Recommendations at every hour from a run's cut-off to now, from that run's forecast and the bars as they were
    at each hour, with the template text; returns how many were written."""
    from serve_deployments.checked_text import template_text
    from serve_deployments.claims import check_text
    from serve_deployments.market_facts import build_facts, judge
    from serve_deployments.recommendations import write_recommendations

    rules = settings.recommend.rules
    symbol_docs = {doc["symbol"]: doc for doc in store.run_records(es, settings, run_id, "symbol")}
    targets = store.run_records(es, settings, run_id, "target")
    answers: list[dict[str, Any]] = []
    for symbol, symbol_doc in sorted(symbol_docs.items()):
        if symbol_doc.get("status") != "ok":
            continue
        as_of = pd.Timestamp(symbol_doc["as_of"])
        frame = store.run_forecasts(es, settings, run_id, symbol)
        closes = frame[frame["target"] == "close"] if not frame.empty else frame
        if closes.empty:
            continue
        close_rows = [
            {"timestamp": iso(row.timestamp), "close": row.value, "close_model": row.model}
            for row in closes.itertuples()
        ]
        beats = any(t["symbol"] == symbol and t["target"] == "close" and t.get("beats_naive") for t in targets)
        bars = store.load_bars(es, settings, [symbol], as_of - pd.Timedelta(days=2), pd.Timestamp.now(tz="UTC"))[symbol]
        run = {"run_id": run_id, "as_of": symbol_doc["as_of"]}
        for at, bar in enumerate(bars):
            if pd.Timestamp(bar["timestamp"]) < as_of - pd.Timedelta(hours=1):
                continue
            seen = bars[max(0, at - 48) : at + 1][::-1]  # newest first, as the reader gives them
            facts = build_facts(symbol, seen, close_rows, symbol_doc, beats, run, rules)
            judgement = judge(facts, rules)
            text = template_text(facts, judgement)
            checked = check_text(text, facts)
            answers.append(
                Recommendation(
                    **facts.model_dump(),
                    **judgement.model_dump(),
                    text=text,
                    text_source="template",
                    text_attempt=None,
                    text_checks=list(checked.checked) if checked.passed else [],
                    text_claims=len(checked.claims),
                    text_rejected=[],
                    text_s=0.0,
                    prompt="",
                    model=BACKDATED_MODEL,
                    model_is_trained=False,
                    model_note=BACKDATED_NOTE,
                    new_tokens=0,
                    batch_size=0,
                    generation_s=0.0,
                    generated_at=now_iso(),
                ).model_dump()
            )
    return write_recommendations(es, settings, answers) if answers else 0
