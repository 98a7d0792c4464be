"""History for forecasting: Alpaca's bars for the last N days through alpaca-py's historical clients.

Requests go one symbol and one time chunk at a time (``alpaca.backfill_chunk_days``), so memory stays small
and a failure loses one chunk's work, not the run's. alpaca-py follows ``next_page_token`` within a chunk and
retries HTTP 429 itself; when it gives up, or a request cannot connect or times out (every request has
``alpaca.rest_timeout_s``), this module backs off exponentially and retries the chunk. Each chunk is fetched on a
worker thread while this one watches the stop flag, so Ctrl-C ends a run at once even during a stalled request.
Crypto needs no keys; stocks do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from ray_app.config import Settings
from ray_app.ingest import parse
from ray_app.ingest.producer import IngestItem
from ray_app.lifecycle import StopFlag
from ray_app.schemas import Source, is_crypto

TIMEFRAMES = {
    "1Min": TimeFrame(1, TimeFrameUnit.Minute),
    "1Hour": TimeFrame(1, TimeFrameUnit.Hour),
}


class BackfillError(RuntimeError):
    pass


def _clients(settings: Settings) -> tuple[StockHistoricalDataClient | None, CryptoHistoricalDataClient]:
    alpaca = settings.alpaca
    key = alpaca.api_key.get_secret_value() if alpaca.api_key else None
    secret = alpaca.secret_key.get_secret_value() if alpaca.secret_key else None
    stocks = (
        StockHistoricalDataClient(key, secret, raw_data=True, url_override=alpaca.data_url) if key and secret else None
    )
    crypto = CryptoHistoricalDataClient(key, secret, raw_data=True, url_override=alpaca.data_url)
    for client in (stocks, crypto):
        if client is not None:
            # alpaca-py's own retry of 429/504 within a request; our backoff below wraps the whole chunk
            client._retry = alpaca.rest_retry_attempts
            client._retry_wait = alpaca.rest_retry_wait_s  # type: ignore[assignment]  # alpaca-py hints int; float works
            # alpaca-py sets no timeout: a stalled server would hold a request forever
            timed = functools.partial(_with_timeout, client._session.request, alpaca.rest_timeout_s)
            client._session.request = timed  # type: ignore[method-assign]
    return stocks, crypto


def _with_timeout(request: Callable, timeout_s: float, method: str, url: str, **options: object):
    options.setdefault("timeout", (min(timeout_s, 10.0), timeout_s))
    return request(method, url, **options)


def _chunks(start: datetime, end: datetime, days: float) -> Iterator[tuple[datetime, datetime]]:
    step = timedelta(days=days)
    while start < end:
        yield start, min(start + step, end)
        start += step


def backfill(
    settings: Settings,
    days: float,
    timeframe: str,
    stop: StopFlag,
    symbols: list[str] | None = None,
    end: datetime | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> Iterator[IngestItem]:
    """Bars (and dead letters for malformed ones) for every symbol, oldest first per symbol."""
    symbols = symbols or settings.symbols
    stocks, crypto = _clients(settings)
    if stocks is None and any(not is_crypto(s) for s in symbols):
        raise BackfillError(
            "stock bars need Alpaca API keys: set ALPACA_API_KEY and ALPACA_SECRET_KEY (crypto works without them)"
        )
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    alpaca = settings.alpaca
    for symbol in symbols:
        for chunk_start, chunk_end in _chunks(start, end, alpaca.backfill_chunk_days):
            if stop.is_set():
                return
            request: CryptoBarsRequest | StockBarsRequest
            fetch: Callable[..., Any]
            if is_crypto(symbol):
                request = CryptoBarsRequest(
                    symbol_or_symbols=symbol, timeframe=TIMEFRAMES[timeframe], start=chunk_start, end=chunk_end
                )
                fetch = crypto.get_crypto_bars
            else:
                request = StockBarsRequest(
                    symbol_or_symbols=symbol,
                    timeframe=TIMEFRAMES[timeframe],
                    start=chunk_start,
                    end=chunk_end,
                    feed=DataFeed(alpaca.feed),
                )
                assert stocks is not None  # refused above: stock symbols need keys
                fetch = stocks.get_stock_bars
            raw = _with_backoff(fetch, request, settings, stop, f"{symbol} {chunk_start:%Y-%m-%d}", on_retry)
            for bar in (raw or {}).get(symbol, []):
                yield parse.rest_bar(bar, symbol, timeframe, Source.ALPACA_REST, settings.symbols)


def _interruptible(fetch, request, stop: StopFlag):
    """``fetch(request)`` on a worker thread; None as soon as the stop flag is set (the thread is left to its
    timeout)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="backfill")
    try:
        future = pool.submit(fetch, request)
        while not stop.is_set():
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                continue
        return None
    finally:
        pool.shutdown(wait=False)


def _with_backoff(fetch, request, settings: Settings, stop: StopFlag, what: str, on_retry) -> dict:
    attempts = settings.alpaca.backfill_attempts
    for attempt in range(1, attempts + 1):
        try:
            return _interruptible(fetch, request, stop) or {}
        except APIError as exc:
            status = exc.status_code
            if status not in (429, 500, 502, 503, 504) or attempt == attempts:
                raise BackfillError(f"Alpaca answered HTTP {status} for {what}: {exc}") from exc
            problem = f"HTTP {status}"
        except (requests.ConnectionError, requests.Timeout) as exc:
            kind = "timed out" if isinstance(exc, requests.Timeout) else "could not connect"
            if attempt == attempts:
                raise BackfillError(f"the request for {what} {kind} {attempts} times: {exc}") from exc
            problem = f"the request {kind}"
        delay = min(settings.alpaca.rest_retry_wait_s * 2**attempt, 60.0)
        if on_retry:
            on_retry(f"{problem} for {what}; retrying in {delay:.1f} s (attempt {attempt}/{attempts})")
        if stop.wait(delay):
            return {}
    return {}
