"""Answers about the latest forecast run, read from Elasticsearch and kept for ``serve.cache_ttl_s`` seconds.

Also the facts a recommendation is built from (newest hourly bars + the latest run). Used by the Forecast
deployment, and in-process by the benchmark (the same function, without Serve). Every
answer is flat JSON with ISO-8601 UTC times, the shape Grafana's Infinity datasource reads directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from ray_app.config import Settings
from ray_app.config.redaction import redact
from ray_app.documents import ForecastSummary
from ray_app.es_indices import es_client
from ray_app.forecast import store
from ray_app.forecast.evaluation import EXTREMES
from ray_app.forecast.volatility import range_pct
from ray_app.times import iso
from serve_deployments.market_facts import build_facts
from serve_deployments.track_record import track_record
from serve_deployments.ttl_cache import TtlCache

SUMMARY_FIELDS = tuple(ForecastSummary.model_fields)


CACHE_MAX_ENTRIES = 512  # answers kept per replica: a few per symbol and question, far more than a platform has
RECENT_BARS = 64  # 24 h back takes 25 crypto bars, or stock bars over a weekend or holiday


class UnknownSymbol(LookupError):
    """The symbol is not in the latest forecast run (HTTP 404)."""


class NoForecastYet(LookupError):
    """No finished forecast run exists yet (HTTP 404)."""


class NoQuoteYet(LookupError):
    """The symbol has no quote in the quotes index yet (HTTP 404)."""


class BackendUnavailable(RuntimeError):
    """Elasticsearch cannot be reached or refused the query (HTTP 503)."""


def slug(symbol: str) -> str:
    """How a symbol is written in a URL: BTC/USD -> BTC-USD."""
    return symbol.replace("/", "-")


class ForecastReader:
    def __init__(
        self, settings: Settings, es: Elasticsearch | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.settings = settings
        self.es = es or es_client(settings)
        self._cache = TtlCache(settings.serve.cache_ttl_s, CACHE_MAX_ENTRIES, clock)

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        found, hit = self._cache.get(key)
        if found:
            return hit
        try:
            value = load()
        except TransportError as exc:  # refused, reset or timed out: the same to a caller, 503
            raise BackendUnavailable(
                redact(f"Elasticsearch at {self.settings.elasticsearch.url} is unreachable: {exc}")
            ) from exc
        except ApiError as exc:
            raise BackendUnavailable(redact(f"Elasticsearch refused the query: {exc}")) from exc
        self._cache.put(key, value)
        return value

    def _symbol_docs(self) -> dict[str, dict[str, Any]]:
        """Per symbol, its current record (``store.current_symbols``): the newest complete forecast of it, from
        whichever run; a subset run, a re-run or a run that died never hides one."""
        docs = self._cached(("symbols",), lambda: store.current_symbols(self.es, self.settings))
        if not docs:
            raise NoForecastYet("no finished forecast run yet: run `ray-app forecast`")
        return docs

    def resolve(self, symbol_or_slug: str) -> str:
        """BTC-USD, BTC/USD or btc-usd -> BTC/USD, if a run has it."""
        docs = self._symbol_docs()
        wanted = symbol_or_slug.upper().replace("-", "/")
        for symbol in docs:
            if symbol == wanted or slug(symbol) == symbol_or_slug.upper():
                return symbol
        known = ", ".join(slug(s) for s in sorted(docs))
        raise UnknownSymbol(f"unknown symbol {symbol_or_slug!r}: the forecasts have {known}")

    def symbols(self) -> list[dict[str, Any]]:
        return [
            {
                "symbol": symbol,
                "slug": slug(symbol),
                "market": doc.get("market"),
                "status": doc.get("status"),
                "reason": doc.get("reason"),
                "run_id": doc["run_id"],
                "as_of": doc["as_of"],
            }
            for symbol, doc in sorted(self._symbol_docs().items())
        ]

    def forecast(self, symbol_or_slug: str) -> list[dict[str, Any]]:
        """One row per forecast hour: each target's value and interval bounds as columns (close, close_lo_80 ...)."""
        symbol = self.resolve(symbol_or_slug)
        run_id = self._symbol_docs()[symbol]["run_id"]

        return self._cached(("forecast", run_id, symbol), lambda: self._forecast_rows(run_id, symbol))

    def _forecast_rows(self, run_id: str, symbol: str) -> list[dict[str, Any]]:
        frame = store.run_forecasts(self.es, self.settings, run_id, symbol)
        rows: dict[str, dict[str, Any]] = {}
        for doc in frame.to_dict("records") if not frame.empty else []:
            hour = iso(doc["timestamp"])
            row = rows.setdefault(hour, {"timestamp": hour, "symbol": symbol, "run_id": run_id})
            target = doc["target"]
            row[target] = doc["value"]
            row[f"{target}_model"] = doc["model"]
            for key, value in doc.items():
                # a target without intervals (range) reads NaN from the frame: JSON has no NaN, the column is left out
                if key.startswith(("lo_", "hi_")) and value is not None and value == value:
                    row[f"{target}_{key}"] = value
        return [rows[hour] for hour in sorted(rows)]

    def summary(self, symbol_or_slug: str) -> dict[str, Any]:
        symbol = self.resolve(symbol_or_slug)
        doc = self._symbol_docs()[symbol]
        if doc.get("status") != "ok":
            raise UnknownSymbol(f"{symbol} was not forecast in run {doc['run_id']}: {doc.get('reason')}")
        return {
            "symbol": symbol,
            "run_id": doc["run_id"],
            "as_of": doc["as_of"],
            **{field: doc.get(field) for field in SUMMARY_FIELDS},
        }

    def _target_docs(self, run_id: str) -> list[dict[str, Any]]:
        return self._cached(("targets", run_id), lambda: store.run_records(self.es, self.settings, run_id, "target"))

    def backtest(self, symbol_or_slug: str) -> list[dict[str, Any]]:
        """Per target: the chosen model's cross-validation MASE/sMAPE/coverage beside naive's (the latest run)."""
        summary = self.summary(symbol_or_slug)
        symbol, run_id = summary["symbol"], summary["run_id"]
        rows = []
        for doc in self._target_docs(run_id):
            if doc["symbol"] != symbol:
                continue
            mase, naive = doc.get("mase"), doc.get("naive_mase")
            rows.append(
                {
                    "symbol": symbol,
                    "run_id": run_id,
                    "target": doc["target"],
                    "model": doc.get("chosen_model"),
                    "mase": mase,
                    "naive_mase": naive,
                    "smape": doc.get("smape"),
                    "naive_smape": doc.get("naive_smape"),
                    "beats_naive": doc.get("beats_naive"),
                    "mase_vs_naive_pct": None if not mase or not naive else round((mase / naive - 1) * 100, 2),
                    **{key: value for key, value in doc.items() if key.startswith("coverage_")},
                }
            )
        return rows

    def accuracy(self, symbol_or_slug: str) -> list[dict[str, Any]]:
        """Past runs scored against what happened (forecast-evaluations): per run and target, newest run first."""
        symbol = self.resolve(symbol_or_slug)

        def load() -> list[dict[str, Any]]:
            from ray_app.forecast.evaluation import symbol_evaluations

            return symbol_evaluations(self.es, self.settings, symbol)

        rows = self._cached(("accuracy", symbol), load)
        if not rows:
            raise NoForecastYet(
                f"no forecast of {symbol} has been scored yet: its horizon has not begun, or run "
                "`ray-app forecast evaluate`"
            )
        return rows

    def _scored_extremes(self, symbol_or_slug: str) -> list[dict[str, Any]]:
        rows = [row for row in self.accuracy(symbol_or_slug) if row["target"] in EXTREMES]
        if not rows:
            raise NoForecastYet(
                f"no 7-day extremes of {self.resolve(symbol_or_slug)} have been scored yet: a run's whole horizon "
                "must pass first"
            )
        return rows

    def extremes(self, symbol_or_slug: str) -> list[dict[str, Any]]:
        """Per scored run, oldest first: each extreme's forecast median and bounds beside the realized extreme."""
        runs: dict[str, dict[str, Any]] = {}
        for row in self._scored_extremes(symbol_or_slug):
            run = runs.setdefault(
                row["run_id"], {"as_of": row["as_of"], "run_id": row["run_id"], "symbol": row["symbol"]}
            )
            for key in ("median", "lo_80", "hi_80", "lo_95", "hi_95", "realized"):
                run[f"{row['target']}_{key}"] = row.get(key)
        return sorted(runs.values(), key=lambda run: run["as_of"])

    def extremes_calibration(self, symbol_or_slug: str) -> list[dict[str, Any]]:
        """Per extreme, over the symbol's scored runs: above-median share, interval coverage, pinball losses."""
        rows = self._scored_extremes(symbol_or_slug)

        def mean(values: list[Any]) -> float | None:
            found = [float(v) for v in values if v is not None]
            return sum(found) / len(found) if found else None

        answer = []
        for extreme in EXTREMES:
            scored = [row for row in rows if row["target"] == extreme]
            if scored:
                answer.append(
                    {
                        "symbol": scored[0]["symbol"],
                        "extreme": extreme,
                        "runs": len(scored),
                        "above_median_share": mean([row.get("above_median") for row in scored]),
                        "coverage_80": mean([row.get("inside_80") for row in scored]),
                        "coverage_95": mean([row.get("inside_95") for row in scored]),
                        "pinball": mean([row.get("pinball") for row in scored]),
                        "naive_pinball": mean([row.get("naive_pinball") for row in scored]),
                    }
                )
        return answer

    def vs_realized(self, symbol_or_slug: str) -> list[dict[str, Any]]:
        """The newest scored run's forecast rows (as ``forecast``), each with the realized bar of its hour
        (``actual_close``, ``actual_high``, ``actual_low``, ``actual_volume``) once that hour has one."""
        newest = self.accuracy(symbol_or_slug)[0]
        symbol, run_id, as_of = newest["symbol"], newest["run_id"], newest["as_of"]

        def load() -> list[dict[str, Any]]:
            import pandas as pd

            rows = self._forecast_rows(run_id, symbol)
            if not rows:
                return rows
            end = pd.Timestamp(rows[-1]["timestamp"]) + pd.Timedelta(hours=1)
            bars = store.load_bars(self.es, self.settings, [symbol], pd.Timestamp(as_of), end)[symbol]
            realized = {iso(pd.Timestamp(bar["timestamp"])): bar for bar in bars}
            for row in rows:
                bar = realized.get(row["timestamp"], {})
                for target in ("close", "high", "low", "volume"):
                    row[f"actual_{target}"] = bar.get(target)
                if bar.get("high") and bar.get("low"):
                    row["actual_range"] = float(range_pct(np.array([bar["high"]]), np.array([bar["low"]]))[0])
            return rows

        return self._cached(("vs_realized", run_id, symbol), load)

    def recent_bars(self, symbol: str) -> list[dict[str, Any]]:
        """The symbol's newest hourly bars, newest first: enough for 24 h back from the last bar (and some); ours and
        Alpaca's backfilled ones, one per hour (``store.more_complete``)."""

        def newest(index: str) -> list[dict[str, Any]]:
            page = self.es.search(
                index=index,
                query={"bool": {"filter": [{"term": {"symbol": symbol}}]}},
                sort=[{"timestamp": "desc"}],
                size=RECENT_BARS,
                source_includes=["timestamp", "close", "volume", "trade_count"],
                ignore_unavailable=True,
            )
            return [hit["_source"] for hit in page["hits"]["hits"]]

        def load() -> list[dict[str, Any]]:
            indices = self.settings.elasticsearch.indices
            by_hour = {bar["timestamp"]: bar for bar in newest(indices.vendor_bars_1h)}
            for bar in newest(indices.bars_1h):
                by_hour[bar["timestamp"]] = store.more_complete(bar, by_hour.get(bar["timestamp"]))
            return [by_hour[hour] for hour in sorted(by_hour, reverse=True)][:RECENT_BARS]

        return self._cached(("bars", symbol), load)

    def _traded(self, symbol_or_slug: str) -> str:
        """The configured symbol a path names (``BTC/USD`` or ``BTC-USD``); 404 for one the platform does not trade."""
        wanted = symbol_or_slug.upper().replace("-", "/")
        symbol = next((s for s in self.settings.symbols if s == wanted), None)
        if symbol is None:
            known = ", ".join(slug(s) for s in self.settings.symbols)
            raise UnknownSymbol(f"unknown symbol {symbol_or_slug!r}: the platform trades {known}")
        return symbol

    def quote(self, symbol_or_slug: str) -> dict[str, Any]:
        """The symbol's newest top of the book (404 for a symbol the platform does not trade, or with no quote)."""
        symbol = self._traded(symbol_or_slug)

        def load() -> dict[str, Any]:
            found = self.es.search(
                index=self.settings.elasticsearch.indices.quotes,
                query={"bool": {"filter": [{"term": {"symbol": symbol}}]}},
                sort=[{"quoted_ns": "desc"}],
                size=1,
                track_total_hits=False,
            )
            hits = found["hits"]["hits"]
            if not hits:
                raise NoQuoteYet(f"no quote for {symbol} yet: the quotes index has none")
            return hits[0]["_source"]

        return self._cached(("quote", symbol), load)

    def indicators(self, symbol_or_slug: str, minutes: int) -> list[dict[str, Any]]:
        """The symbol's indicator documents of its last ``minutes`` 1-minute bars, oldest first (404 for a symbol
        the platform does not trade)."""
        symbol = self._traded(symbol_or_slug)

        def load() -> list[dict[str, Any]]:
            page = self.es.search(
                index=self.settings.elasticsearch.indices.indicators_1m,
                query={"bool": {"filter": [{"term": {"symbol": symbol}}]}},
                sort=[{"timestamp": "desc"}],
                size=minutes,
                track_total_hits=False,
            )
            return [hit["_source"] for hit in reversed(page["hits"]["hits"])]

        return self._cached(("indicators", symbol, minutes), load)

    def facts(self, symbol_or_slug: str) -> dict[str, Any]:
        """The recommendation's facts (serve_deployments/market_facts.py) as flat JSON."""
        summary = self.summary(symbol_or_slug)  # 404 for a symbol the run did not forecast
        symbol = summary["symbol"]
        rows = [row for row in self.forecast(symbol) if row.get("close") is not None]
        if not rows:
            raise NoForecastYet(f"run {summary['run_id']} has no close forecast for {symbol} (forecast.targets)")
        targets = self._target_docs(summary["run_id"])
        beats = any(doc["symbol"] == symbol and doc["target"] == "close" and doc.get("beats_naive") for doc in targets)
        facts = build_facts(
            symbol,
            self.recent_bars(symbol),
            rows,
            self._symbol_docs()[symbol],
            beats,
            summary,
            self.settings.recommend.rules,
        )
        return facts.model_dump()

    def track_record(self, symbol_or_slug: str) -> dict[str, Any]:
        """The symbol's scored recommendations (serve_deployments/track_record.py); 404 for one not traded."""
        symbol = self._traded(symbol_or_slug)
        return self._cached(("track_record", symbol), lambda: track_record(self.es, self.settings, symbol))

    def health(self) -> dict[str, Any]:
        try:
            info = self.es.cluster.health(timeout="2s")
        except (TransportError, ApiError) as exc:
            raise BackendUnavailable(redact(f"Elasticsearch at {self.settings.elasticsearch.url}: {exc}")) from exc
        return {"status": "ok", "elasticsearch": info["status"]}
