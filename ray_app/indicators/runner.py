"""Keep ``indicators-1m`` current: every ``indicators.interval_s``, each symbol's 1-minute bars -> indicators.

Why a scheduled Ray step and not a stateful step in the stream: EMA and RSI carry state from a symbol's first bar,
and the stream revises a bar whenever a late trade, a cancel or a correction reaches it, at any age. Here each
cycle re-reads only the bars from the oldest one the stream rewrote since the last read (by the bar's
``updated_at``; all of them when Elasticsearch holds a different number of older bars than the series: a bar
added or deleted further back), recomputes the whole series
(``core``: milliseconds for a month of minutes), and writes the bars whose values changed; the stream's
micro-batches (the p50 <= 2 s path) pay nothing. The cost is at most one interval of delay behind a bar (5 s by
default, beside a bar of 60 s).

Values are deterministic: a symbol's series always starts at its first 1-minute bar in Elasticsearch, so a
restarted job writes the same numbers (documents keep the bar's id, symbol|start). A bar the stream deleted (every
trade of its minute cancelled, or left with only trades that set no price) takes its indicator document with it:
each cycle deletes the documents of bars gone since the last read, and the first cycle those of bars gone before
the job started, so no candle is drawn from a bar that is not there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch
from elasticsearch.helpers import streaming_bulk

from ray_app import metrics
from ray_app.config import Settings
from ray_app.documents import IndicatorDocument, checked
from ray_app.es_indices import es_client
from ray_app.indicators.core import COLUMNS, indicators
from ray_app.lifecycle import LoopReport, StopFlag
from ray_app.schemas import ID_SEPARATOR
from ray_app.times import format_seconds, now_iso, parse_seconds

LOG = logging.getLogger(__name__)
PAGE_SIZE = 10_000
UPDATED_MARGIN_S = 120  # bars rewritten this long before the last read count as new: a write becomes searchable
# only at its batch's refresh, and updated_at has whole seconds


BAR_FIELDS = ("open", "high", "low", "close", "volume")  # copied into each document: candles and bands in one


@dataclass
class Series:
    """One symbol's bars as last read (starts in epoch seconds; one row of BAR_FIELDS per bar), oldest first."""

    starts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    bars: np.ndarray = field(default_factory=lambda: np.empty((0, len(BAR_FIELDS))))
    loaded: bool = False

    @property
    def closes(self) -> np.ndarray:
        return self.bars[:, BAR_FIELDS.index("close")]


@dataclass(frozen=True)
class CycleReport:
    seconds: float
    written: dict[str, int]  # symbol -> documents written this cycle
    bars: dict[str, int]  # symbol -> bars in its series


def _read_bars(es: Elasticsearch, index: str, symbol: str, since: int | None) -> tuple[np.ndarray, np.ndarray]:
    filters: list[dict[str, Any]] = [{"term": {"symbol": symbol}}]
    if since is not None:
        filters.append({"range": {"timestamp": {"gte": format_seconds(since)}}})
    starts: list[int] = []
    rows: list[list[float]] = []
    after = None
    while True:
        page = es.search(
            index=index,
            query={"bool": {"filter": filters}},
            sort=[{"timestamp": "asc"}],
            source_includes=["timestamp", *BAR_FIELDS],
            size=PAGE_SIZE,
            search_after=after,
            track_total_hits=False,
        )
        hits = page["hits"]["hits"]
        for hit in hits:
            starts.append(parse_seconds(hit["_source"]["timestamp"]))
            rows.append([float(hit["_source"][name]) for name in BAR_FIELDS])
        if len(hits) < PAGE_SIZE:
            return (
                np.asarray(starts, dtype=np.int64),
                np.asarray(rows, dtype=np.float64).reshape(len(rows), len(BAR_FIELDS)),
            )
        after = hits[-1]["sort"]


def first_change(old: Series, new: Series) -> int:
    """The first position where the new series differs from the old one (the old length when it only grew)."""
    overlap = min(len(old.starts), len(new.starts))
    differs = (old.starts[:overlap] != new.starts[:overlap]) | (old.bars[:overlap] != new.bars[:overlap]).any(axis=1)
    found = np.flatnonzero(differs)
    return int(found[0]) if len(found) else overlap


def documents(
    symbol: str, series: Series, values: dict[str, np.ndarray], begin: int, updated_at: str
) -> list[dict[str, Any]]:
    """The indicator documents of positions ``begin`` onwards (a NaN value is left out)."""
    docs = []
    for i in range(begin, len(series.starts)):
        fields: dict[str, Any] = {
            "symbol": symbol,
            "timestamp": format_seconds(int(series.starts[i])),
            "bars": i + 1,
            "updated_at": updated_at,
        }
        fields.update(zip(BAR_FIELDS, map(float, series.bars[i]), strict=True))
        for column in COLUMNS:
            value = float(values[column][i])
            if not np.isnan(value):
                fields[column] = value
        docs.append(checked(IndicatorDocument, fields))
    return docs


class IndicatorStep:
    """The per-symbol series kept between cycles, and one cycle: read the changed tail, recompute, write, and delete
    the documents of bars that are gone."""

    def __init__(self, settings: Settings, es: Elasticsearch | None = None) -> None:
        self.settings = settings
        self.es = es or es_client(settings)
        self.series: dict[str, Series] = {symbol: Series() for symbol in settings.symbols}
        self.read_at: dict[str, float] = {}  # when each symbol's bars were last read (the clock, seconds)

    def _refresh(self, symbol: str) -> tuple[Series, int]:
        """The symbol's current bars and where they first differ from the previous cycle's."""
        index = self.settings.elasticsearch.indices.bars_1m
        old = self.series[symbol]
        reading = time.time()
        since = self._oldest_rewritten(symbol, self.read_at.get(symbol, 0.0) - UPDATED_MARGIN_S)
        self.read_at[symbol] = reading
        if old.loaded and since is None and self._count_before(symbol, None) == len(old.starts):
            return old, len(old.starts)  # nothing rewritten, added or deleted since the last read
        since = since if since is not None else 0
        keep = old.starts < since
        if not old.loaded or not len(old.starts) or self._count_before(symbol, since) != int(keep.sum()):
            # first cycle, or bars added or deleted before the rewritten ones
            starts, bars = _read_bars(self.es, index, symbol, None)
        else:
            tail_starts, tail_bars = _read_bars(self.es, index, symbol, since)
            starts = np.concatenate([old.starts[keep], tail_starts])
            bars = np.concatenate([old.bars[keep], tail_bars])
        new = Series(starts, bars, loaded=True)
        return new, first_change(old, new) if old.loaded else 0

    def _oldest_rewritten(self, symbol: str, after: float) -> int | None:
        """The start of the oldest 1-minute bar of ``symbol`` the stream wrote at ``after`` or later, if any."""
        rewritten = {"range": {"updated_at": {"gte": format_seconds(int(max(after, 0)))}}}
        query = {"bool": {"filter": [{"term": {"symbol": symbol}}, rewritten]}}
        hits = self.es.search(
            index=self.settings.elasticsearch.indices.bars_1m,
            query=query,
            size=1,
            sort=[{"timestamp": "asc"}],
            source_includes=["timestamp"],
        )["hits"]["hits"]
        return parse_seconds(hits[0]["_source"]["timestamp"]) if hits else None

    def _count_before(self, symbol: str, until: int | None) -> int:
        """The symbol's 1-minute bars that start before ``until`` (all of them for None)."""
        filters: list[dict[str, Any]] = [{"term": {"symbol": symbol}}]
        if until is not None:
            filters.append({"range": {"timestamp": {"lt": format_seconds(until)}}})
        query = {"bool": {"filter": filters}}
        return int(self.es.count(index=self.settings.elasticsearch.indices.bars_1m, query=query)["count"])

    def cycle(self) -> CycleReport:
        began = time.monotonic()
        options = self.settings.indicators
        oldest_written = int(time.time() - options.written_days * 86400)
        updated_at = now_iso()
        written: dict[str, int] = {}
        for symbol in self.settings.symbols:
            old = self.series[symbol]
            series, begin = self._refresh(symbol)
            gone = self._indicator_starts(symbol) if not old.loaded else old.starts
            self._delete(symbol, np.setdiff1d(gone, series.starts))
            begin = max(begin, int(np.searchsorted(series.starts, oldest_written)))
            written[symbol] = 0
            if begin < len(series.starts):
                values = indicators(
                    series.closes,
                    options.rsi_period,
                    options.ema_fast,
                    options.ema_slow,
                    options.macd_signal,
                    options.bollinger_period,
                    options.bollinger_sigmas,
                )
                docs = documents(symbol, series, values, begin, updated_at)
                written[symbol] = self._write(docs)
            self.series[symbol] = series  # only once written: a failed write is redone by the next cycle
        bars = {symbol: len(series.starts) for symbol, series in self.series.items()}
        return CycleReport(round(time.monotonic() - began, 3), written, bars)

    def _indicator_starts(self, symbol: str) -> np.ndarray:
        """The bar starts of the symbol's indicator documents (the first cycle: what an earlier job left)."""
        starts: list[int] = []
        after = None
        index = self.settings.elasticsearch.indices.indicators_1m
        while True:
            page = self.es.search(
                index=index,
                query={"bool": {"filter": [{"term": {"symbol": symbol}}]}},
                sort=[{"timestamp": "asc"}],
                source_includes=["timestamp"],
                size=PAGE_SIZE,
                search_after=after,
                track_total_hits=False,
                ignore_unavailable=True,
            )
            hits = page["hits"]["hits"]
            starts += [parse_seconds(hit["_source"]["timestamp"]) for hit in hits]
            if len(hits) < PAGE_SIZE:
                return np.asarray(starts, dtype=np.int64)
            after = hits[-1]["sort"]

    def _delete(self, symbol: str, starts: np.ndarray) -> None:
        """Delete the indicator documents of bars that are gone."""
        if not len(starts):
            return
        index = self.settings.elasticsearch.indices.indicators_1m
        actions = (
            {"_op_type": "delete", "_index": index, "_id": f"{symbol}{ID_SEPARATOR}{format_seconds(int(t))}"}
            for t in starts
        )
        for ok, item in streaming_bulk(self.es, actions, chunk_size=2000, max_retries=5, raise_on_error=False):
            if not ok and item.get("delete", {}).get("status") != 404:
                LOG.warning("indicators: the document of a deleted bar stays: %s", item)

    def _write(self, docs: list[dict[str, Any]]) -> int:
        index = self.settings.elasticsearch.indices.indicators_1m
        actions = (
            {"_index": index, "_id": f"{doc['symbol']}{ID_SEPARATOR}{doc['timestamp']}", "_source": doc} for doc in docs
        )
        ok = sum(done for done, _ in streaming_bulk(self.es, actions, chunk_size=2000, max_retries=5))
        return ok


def run(settings: Settings, stop: StopFlag) -> LoopReport:
    """The indicators part: a cycle every ``indicators.interval_s`` until stopped, each logged when it wrote."""

    def cycle(report: CycleReport) -> None:
        if written := sum(report.written.values()):
            LOG.info("indicators: %d documents in %.2f s", written, report.seconds)

    return run_indicators(settings, stop, on_cycle=cycle)


def run_indicators(
    settings: Settings, stop: StopFlag, once: bool = False, on_cycle: Callable[[CycleReport], None] | None = None
) -> LoopReport:
    """Cycle every ``indicators.interval_s`` until stopped (or once). A failed cycle (Elasticsearch away) is logged
    and the next one tries again from the same series."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    step = IndicatorStep(settings)
    loop = LoopReport("indicators")
    while True:
        loop.rounds += 1
        try:
            report = step.cycle()
            metrics.set_gauge("indicator_cycle_duration_seconds", report.seconds)
            for symbol, count in report.written.items():
                metrics.inc("indicator_documents", count, symbol=symbol)
            if on_cycle:
                on_cycle(report)
        except (TransportError, ApiError) as exc:
            if once:
                raise
            loop.failures += 1
            LOG.warning("indicators: this cycle failed, the next one retries: %s", exc)
        if once or stop.wait(settings.indicators.interval_s):
            return loop
