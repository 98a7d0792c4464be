"""Our minute bars against the vendor's: for every minute both exist, are open, high, low, close, volume, trade
count and VWAP the same?

The bars the stream builds from trades (``bars-1m``) and Alpaca's own (``vendor-bars-1m``: its live ``b``, the
``updatedBars`` revision after a late print, a REST backfill) are kept apart; this reads both over a window and
compares them minute by minute:

- **compared**: minutes with both bars and no trade taken back or corrected; each field counts as equal within a
  float's rounding (prices and volume to 1e-9 relative; VWAP also to 5e-7 absolute, as Alpaca rounds it to six
  decimals); the trade count exactly;
- **adjusted**: minutes where a cancel or a correction changed a trade: our bar takes it back at once, Alpaca's live
  bars never do (it sends no bar after a cancel), so they are counted, not compared;
- **only ours**, **only vendor**: minutes with one bar and not the other (a minute of only odd lots has neither).

``ray-app bars parity`` prints it per symbol and field; the monitor job exports it as ``ray_app_bar_parity_ratio``
(per symbol and field) and ``ray_app_bar_parity_minutes`` (per symbol and kind) for the Pipeline-health panel.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

from ray_app.config import Settings
from ray_app.times import format_seconds, parse_seconds

FIELDS = ("open", "high", "low", "close", "volume", "trade_count", "vwap")
RELATIVE = 1e-9
VWAP_ABSOLUTE = 5e-7
EXAMPLES = 5


def equal(name: str, ours: Any, vendor: Any) -> bool:
    """Whether two bars agree on one field (see the module's tolerances)."""
    if ours is None or vendor is None:
        return ours is None and vendor is None
    if name == "trade_count":
        return int(ours) == int(vendor)
    absolute = VWAP_ABSOLUTE if name == "vwap" else 0.0
    return math.isclose(float(ours), float(vendor), rel_tol=RELATIVE, abs_tol=absolute)


@dataclass
class SymbolParity:
    symbol: str
    ours: int = 0
    vendor: int = 0
    compared: int = 0
    adjusted: int = 0
    only_ours: int = 0
    only_vendor: int = 0
    equal: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    differences: list[dict[str, Any]] = field(default_factory=list)  # the first few, for a person to look at

    def share(self, name: str) -> float | None:
        """The share of compared minutes where ``name`` is equal (None when none was compared)."""
        return self.equal[name] / self.compared if self.compared else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "ours": self.ours,
            "vendor": self.vendor,
            "compared": self.compared,
            "adjusted": self.adjusted,
            "only_ours": self.only_ours,
            "only_vendor": self.only_vendor,
            "equal": self.equal,
            "share": {name: self.share(name) for name in FIELDS},
            "differences": self.differences,
        }


def minute_bars(es: Elasticsearch, index: str, symbols: list[str], start: int, end: int) -> dict[str, dict[str, Any]]:
    query = {
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"symbol": symbols}},
                    {"range": {"timestamp": {"gte": format_seconds(start), "lt": format_seconds(end)}}},
                ]
            }
        },
        "_source": ["symbol", "timestamp", *FIELDS],
    }
    if not es.indices.exists(index=index):
        return {}
    return {
        f"{hit['_source']['symbol']}|{hit['_source']['timestamp']}": hit["_source"]
        for hit in scan(es, index=index, query=query, size=5000)
    }


def adjusted_minutes(es: Elasticsearch, index: str, symbols: list[str], start: int, end: int) -> set[str]:
    """The minutes (``symbol|timestamp``) holding a trade that was cancelled or corrected."""
    query = {
        "bool": {
            "filter": [
                {"terms": {"symbol": symbols}},
                {"range": {"timestamp_ns": {"gte": start * 10**9, "lt": end * 10**9}}},
                {
                    "bool": {
                        "should": [{"term": {"cancelled": True}}, {"term": {"corrected": True}}],
                        "minimum_should_match": 1,
                    }
                },
            ]
        }
    }
    sources = [
        {"symbol": {"terms": {"field": "symbol"}}},
        {"minute": {"date_histogram": {"field": "timestamp", "fixed_interval": "1m"}}},
    ]
    found: set[str] = set()
    after = None
    while True:
        composite: dict[str, Any] = {"size": 1000, "sources": sources, **({"after": after} if after else {})}
        answer = es.search(
            index=index, size=0, query=query, aggs={"m": {"composite": composite}}, ignore_unavailable=True
        )
        result = answer.get("aggregations", {}).get("m", {"buckets": []})
        found |= {f"{b['key']['symbol']}|{format_seconds(b['key']['minute'] // 1000)}" for b in result["buckets"]}
        after = result.get("after_key")
        if not after or not result["buckets"]:
            return found


def compare(
    ours: dict[str, dict[str, Any]], vendor: dict[str, dict[str, Any]], adjusted: set[str], symbols: Iterable[str]
) -> dict[str, SymbolParity]:
    """Parity per symbol of two sets of minute bars by id (``symbol|timestamp``)."""
    result = {symbol: SymbolParity(symbol) for symbol in symbols}
    for key in sorted(set(ours) | set(vendor)):
        mine, theirs = ours.get(key), vendor.get(key)
        symbol = (mine or theirs or {})["symbol"]
        parity = result.setdefault(symbol, SymbolParity(symbol))
        parity.ours += mine is not None
        parity.vendor += theirs is not None
        if key in adjusted:
            parity.adjusted += 1
        elif theirs is None:
            parity.only_ours += 1
        elif mine is None:
            parity.only_vendor += 1
        else:
            parity.compared += 1
            for name in FIELDS:
                if equal(name, mine.get(name), theirs.get(name)):
                    parity.equal[name] += 1
                elif len(parity.differences) < EXAMPLES:
                    parity.differences.append(
                        {"minute": mine["timestamp"], "field": name, "ours": mine.get(name), "vendor": theirs.get(name)}
                    )
    return result


def parity(es: Elasticsearch, settings: Settings, symbols: list[str], start: int, end: int) -> dict[str, SymbolParity]:
    """Our minute bars against the vendor's for ``symbols`` over [start, end) (epoch seconds)."""
    indices = settings.elasticsearch.indices
    ours = minute_bars(es, indices.bars_1m, symbols, start, end)
    vendor = minute_bars(es, indices.vendor_bars_1m, symbols, start, end)
    return compare(ours, vendor, adjusted_minutes(es, indices.trades, symbols, start, end), symbols)


def window(hours: float | None, since: str | None, until: str | None, now: int) -> tuple[int, int]:
    """[start, end) in epoch seconds from the last ``hours`` or explicit RFC 3339 bounds (whole seconds)."""
    end = parse_seconds(until) if until else now
    start = parse_seconds(since) if since else end - int((hours or 24) * 3600)
    return start, end
