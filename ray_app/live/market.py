"""The market values the market alerts read (``alerts:``, ``ray_app.alerts.market_alert``), one reading of
Elasticsearch per monitor round, exported as the gauge ``market_value{symbol, reading}``:

- ``price``: the close of the symbol's newest 1-minute bar, i.e. its last price-setting trade (Alpaca's conditions:
  an odd lot sets no price);
- ``rsi``, ``bb_upper``, ``bb_lower``: the newest indicator document's;
- ``signal``: the newest recommendation's signal (sell -1, hold 0, buy 1);
- ``forecast_lo_80``, ``forecast_hi_80``: the 80% interval of this hour's close in the newest forecast run that
  covers this hour.

Prometheus evaluates the rules on them and Alertmanager delivers (docs/live.md, "Market alerts": why gauges and
rules rather than a job of ours that alerts). A value that cannot be read this round is absent, never its last one.
"""

from __future__ import annotations

import time
from typing import Any

from elasticsearch import Elasticsearch

from ray_app import metrics
from ray_app.alerts import SIGNAL_VALUE
from ray_app.config import Settings

MarketReading = dict[str, dict[str, float]]  # symbol -> value name -> number


def _newest(es: Elasticsearch, index: str, symbols: list[str], sort: str, fields: list[str], **query: Any) -> dict:
    """The newest document of each symbol (by ``sort``), its ``fields``."""
    filters: list[dict[str, Any]] = [{"terms": {"symbol": symbols}}, *query.get("filters", [])]
    answer = es.search(
        index=index,
        size=0,
        ignore_unavailable=True,
        query={"bool": {"filter": filters}},
        aggs={
            "symbols": {
                "terms": {"field": "symbol", "size": len(symbols)},
                "aggs": {"newest": {"top_hits": {"size": 1, "sort": [{sort: "desc"}], "_source": fields}}},
            }
        },
    )
    found = {}
    for bucket in answer.get("aggregations", {}).get("symbols", {}).get("buckets", []):
        hits = bucket["newest"]["hits"]["hits"]
        if hits:
            found[bucket["key"]] = hits[0]["_source"]
    return found


def read_market(settings: Settings, es: Elasticsearch) -> MarketReading:
    indices = settings.elasticsearch.indices
    symbols = list(settings.symbols)
    reading: MarketReading = {symbol: {} for symbol in symbols}
    for symbol, bar in _newest(es, indices.bars_1m, symbols, "timestamp", ["close"]).items():
        reading[symbol]["price"] = float(bar["close"])
    indicators = _newest(es, indices.indicators_1m, symbols, "timestamp", ["rsi", "bb_upper", "bb_lower"])
    for symbol, doc in indicators.items():
        for name in ("rsi", "bb_upper", "bb_lower"):
            if doc.get(name) is not None:
                reading[symbol][name] = float(doc[name])
    for symbol, doc in _newest(es, indices.recommendations, symbols, "generated_at", ["signal"]).items():
        if doc.get("signal") in SIGNAL_VALUE:
            reading[symbol]["signal"] = float(SIGNAL_VALUE[doc["signal"]])
    hour_ms = int(time.time() // 3600 * 3600 * 1000)
    close_now = [{"term": {"target": "close"}}, {"term": {"timestamp": hour_ms}}]
    for symbol, doc in _newest(es, indices.forecasts, symbols, "as_of", ["lo_80", "hi_80"], filters=close_now).items():
        if doc.get("lo_80") is not None and doc.get("hi_80") is not None:
            reading[symbol]["forecast_lo_80"] = float(doc["lo_80"])
            reading[symbol]["forecast_hi_80"] = float(doc["hi_80"])
    return reading


def export_market(reading: MarketReading | None) -> None:
    """The reading as gauges; None (Elasticsearch could not be read): every market value absent."""
    metrics.forget_gauges("market_value")
    for symbol, values in (reading or {}).items():
        for name, number in values.items():
            metrics.set_gauge("market_value", number, symbol=symbol, reading=name)
