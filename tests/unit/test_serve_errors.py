"""Serve's error answers without a cluster: a timed-out Elasticsearch is 503 like a refused one, and every detail
is the sentence the error was raised with, never Python or Ray class paths."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from ray_app.config import load_settings
from serve_deployments.app import _not_found, _unavailable, plain_error
from serve_deployments.forecast_reader import BackendUnavailable, ForecastReader, UnknownSymbol


@pytest.mark.parametrize(
    "wrapped",
    [
        "LookupError: serve_deployments.forecast_reader.UnknownSymbol: unknown symbol 'NOPE': the run has AAPL",
        'Traceback (most recent call last):\n  File "x.py", line 1\nray.exceptions.RayTaskError(UnknownSymbol): '
        "serve_deployments.forecast_reader.UnknownSymbol: unknown symbol 'NOPE': the run has AAPL",
        "serve_deployments.forecast_reader.UnknownSymbol: unknown symbol 'NOPE': the run has AAPL",
        "unknown symbol 'NOPE': the run has AAPL",
    ],
)
def test_a_replica_error_reads_as_its_sentence(wrapped: str) -> None:
    assert plain_error(LookupError(wrapped)) == "unknown symbol 'NOPE': the run has AAPL"
    body = json.loads(asyncio.run(_not_found(None, LookupError(plain_error(LookupError(wrapped))))).body)
    assert body == {"detail": "unknown symbol 'NOPE': the run has AAPL"}


def test_a_sentence_with_colons_keeps_them() -> None:
    assert plain_error(BackendUnavailable("Elasticsearch: refused the query: too many clauses")) == (
        "Elasticsearch: refused the query: too many clauses"
    )
    assert plain_error(UnknownSymbol("")) == "UnknownSymbol"


def test_an_elasticsearch_that_never_answers_is_503_like_one_that_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real socket that accepts connections and never answers: the client times out."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        port = blackhole.getsockname()[1]
        monkeypatch.setenv("RAY_APP_ELASTICSEARCH__URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("RAY_APP_ELASTICSEARCH__REQUEST_TIMEOUT_S", "1")
        reader = ForecastReader(load_settings())
        began = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            reader.symbols()
        assert time.monotonic() - began < 15
    response = asyncio.run(_unavailable(None, caught.value))
    assert response.status_code == 503 and "unreachable" in json.loads(response.body)["detail"]


def test_the_forecast_cache_is_bounded_in_age_and_size() -> None:
    from serve_deployments.forecast_reader import CACHE_MAX_ENTRIES

    now = [0.0]
    reader = ForecastReader(load_settings(), es=object(), clock=lambda: now[0])
    loads = []
    for i in range(CACHE_MAX_ENTRIES * 3):
        reader._cached(("q", i), lambda i=i: loads.append(i) or i)
    assert len(reader._cache) == CACHE_MAX_ENTRIES and len(loads) == CACHE_MAX_ENTRIES * 3
    assert reader._cached(("q", CACHE_MAX_ENTRIES * 3 - 1), lambda: "reloaded") == CACHE_MAX_ENTRIES * 3 - 1  # cached
    assert reader._cached(("q", 0), lambda: "reloaded") == "reloaded"  # the oldest went first
    now[0] += reader.settings.serve.cache_ttl_s + 1
    assert reader._cached(("q", 1), lambda: "fresh") == "fresh"
    assert len(reader._cache) == 1  # every answer older than the TTL is gone
