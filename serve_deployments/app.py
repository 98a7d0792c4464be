"""The Ray Serve application: a FastAPI ingress in front of the Forecast and Recommender deployments.

    GET  /symbols                    the latest forecast run's symbols (slug: the URL form, BTC-USD)
    GET  /forecast/{symbol}          hourly rows: each target's value and 80/95% bounds
    GET  /forecast/{symbol}/summary  highest volume, highest price, lowest price: median, 80/95% bounds, likeliest hour
    GET  /forecast/{symbol}/backtest per target: the chosen model's cross-validation MASE beside naive's
    GET  /forecast/{symbol}/accuracy past runs scored against what happened: MASE beside naive's, coverage, direction
    GET  /forecast/{symbol}/vs-realized  the newest scored run's forecast rows with the realized bars beside them
    GET  /forecast/{symbol}/extremes per scored run: each 7-day extreme's median and bounds beside the realized one
    GET  /forecast/{symbol}/extremes/calibration  per extreme over scored runs: above-median share, coverage, pinball
    GET  /recommendation/{symbol}    facts, rule-based signal and sentiment, the language model's comment
    POST /recommendations            the same for every forecast symbol (or ?symbol=...), written to Elasticsearch
    GET  /recommendations/latest     the newest stored recommendation per symbol
    GET  /recommendation/{symbol}/track-record   each stored signal scored at 1 h, 24 h, 7 d: hit rates, returns
    GET  /model                      the Recommender's model: name, trained or not, size, device, threads, batching
    GET  /healthz                    Elasticsearch reachable
    GET  /docs                       OpenAPI

Forecast reads Elasticsearch (cached); Recommender holds the language model and batches requests with
`@serve.batch`; each scales on its own (settings `serve.forecast`, `serve.recommender`, `serve.ingress`).

Errors are JSON with an HTTP status that says what happened, never 200: unknown symbol or no run yet -> 404,
a bad parameter -> 422 naming it, Elasticsearch unreachable or a deployment's queue full -> 503, a deployment
too slow -> 504, no or a wrong API key -> 401. Writes (POST) always need the key (``X-API-Key``, see
``auth.py``); reads need it when the app listens beyond the loopback (``serve.http_host``).

Run it with `ray-app serve`, or `serve run serve_deployments.app:build_app` / `serve deploy configs/serve.yaml`
(the settings come from RAY_APP_* variables and RAY_APP_CONFIG, as everywhere).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import SecretStr
from ray import serve
from ray.serve.deployment import Deployment
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import Headers

from ray_app.config import Settings, load_settings
from ray_app.config.redaction import redact, redact_log_records
from ray_app.es_indices import es_client
from serve_deployments import auth
from serve_deployments.app_version import app_version
from serve_deployments.auth import API_KEY_HEADER, api_key, is_loopback
from serve_deployments.checked_text import CheckedWriter, Request
from serve_deployments.forecast_reader import CACHE_MAX_ENTRIES, BackendUnavailable, ForecastReader
from serve_deployments.language_model import Generation, TextGenerator
from serve_deployments.market_facts import MarketFacts, judge
from serve_deployments.recommendations import (
    Recommendation,
    latest_recommendations,
    recommendation_of,
    write_recommendations,
)
from serve_deployments.responses import (
    AccuracyRow,
    BacktestRow,
    ExtremeCalibrationRow,
    ExtremesScoredRow,
    ForecastRow,
    Health,
    IndicatorRow,
    LatestQuote,
    ModelDescription,
    Recorded,
    StoredRecommendation,
    Summary,
    SymbolStatus,
    TrackRecord,
    VsRealizedRow,
)
from serve_deployments.ttl_cache import TtlCache

redact_log_records()  # each replica imports this module: its log records (and Ray's) never show a password

# FastAPIOffline: /docs serves Swagger UI's files from the package, so the page works without a CDN (offline)
api = FastAPIOffline(
    title="ray-app",
    description="Forecasts (statsforecast on Ray, each next to naive) and rule-based recommendations with a language "
    "model's comment, for Grafana's Infinity datasource and people.",
)

SYMBOL_PATTERN = r"^[A-Za-z0-9.\-]{1,12}(/[A-Za-z]{2,6})?$"
SymbolsQuery = Query(None, description="Symbols, '/' written as '-'; default: every symbol the latest run forecast")
SymbolPath = Path(description="A symbol: AAPL, BTC/USD or BTC-USD", pattern=SYMBOL_PATTERN)
MAX_INDICATOR_MINUTES = 10_000  # one search page (index.max_result_window): about a week of minutes
MinutesQuery = Query(120, ge=1, le=MAX_INDICATOR_MINUTES, description="The last this many 1-minute bars")


class Busy(RuntimeError):
    """A deployment's queue is full (its ``max_queued_requests``): 503 with Retry-After, at once."""


class TimedOut(RuntimeError):
    """A deployment did not answer within its ``request_timeout_s``: 504."""


_DOCS = ("/docs", "/redoc", "/openapi.json", "/static-offline-docs")  # no data: open to read


class Authenticate:
    """Writes always need the API key; reads need it when the app listens beyond the loopback (``auth.py``).

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) runs every request through a
    task group and memory streams, which halved the cached read's requests/s (bench/serve.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path") or "")  # without the app's route prefix
        given = Headers(scope=scope).get(API_KEY_HEADER)
        if auth.allowed(scope["method"], path, given, _DOCS):
            return await self.app(scope, receive, send)
        why = "missing" if given is None else "wrong"
        refusal = JSONResponse(
            status_code=401,
            headers={"WWW-Authenticate": API_KEY_HEADER},
            content={
                "detail": f"the API key is {why}: send it in the {API_KEY_HEADER} header "
                "(serve.api_key, or the file state_dir/serve/api-key)"
            },
        )
        await refusal(scope, receive, send)


api.add_middleware(Authenticate)


@api.exception_handler(LookupError)
async def _not_found(_request, exc: LookupError) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": redact(str(exc))})


@api.exception_handler(BackendUnavailable)
async def _unavailable(_request, exc: BackendUnavailable) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": redact(str(exc))})


@api.exception_handler(Busy)
async def _busy(_request, exc: Busy) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "1"})


@api.exception_handler(TimedOut)
async def _timed_out(_request, exc: TimedOut) -> JSONResponse:
    return JSONResponse(status_code=504, content={"detail": str(exc)})


@serve.deployment
class Forecast:
    """Reads the latest forecast run from Elasticsearch (cached for serve.cache_ttl_s); one method per question,
    called through typed handle methods (``handle.summary.remote(symbol)``)."""

    def __init__(self, settings: Settings) -> None:
        self.reader = ForecastReader(settings)

    def health(self) -> dict[str, Any]:
        return self.reader.health()

    def symbols(self) -> list[dict[str, Any]]:
        return self.reader.symbols()

    def forecast(self, symbol: str) -> list[dict[str, Any]]:
        return self.reader.forecast(symbol)

    def summary(self, symbol: str) -> dict[str, Any]:
        return self.reader.summary(symbol)

    def backtest(self, symbol: str) -> list[dict[str, Any]]:
        return self.reader.backtest(symbol)

    def accuracy(self, symbol: str) -> list[dict[str, Any]]:
        return self.reader.accuracy(symbol)

    def vs_realized(self, symbol: str) -> list[dict[str, Any]]:
        return self.reader.vs_realized(symbol)

    def extremes(self, symbol: str) -> list[dict[str, Any]]:
        return self.reader.extremes(symbol)

    def extremes_calibration(self, symbol: str) -> list[dict[str, Any]]:
        return self.reader.extremes_calibration(symbol)

    def facts(self, symbol: str) -> dict[str, Any]:
        return self.reader.facts(symbol)

    def indicators(self, symbol: str, minutes: int) -> list[dict[str, Any]]:
        return self.reader.indicators(symbol, minutes)

    def track_record(self, symbol: str) -> dict[str, Any]:
        return self.reader.track_record(symbol)

    def quote(self, symbol: str) -> dict[str, Any]:
        return self.reader.quote(symbol)


@dataclass(frozen=True)
class Limit:
    """How long a caller waits for one deployment, and the name its errors give."""

    deployment: str
    timeout_s: float | None


async def _awaited(response: Any) -> Any:
    return await response


async def _answer(response: Any, limit: Limit | None = None) -> Any:
    """Await a deployment's answer within its limit; its 404/503 errors become this process's own types (clean
    one-line details), a full queue is ``Busy`` and a late answer ``TimedOut`` (the request is cancelled)."""
    try:
        if limit is None or limit.timeout_s is None:
            return await response
        return await asyncio.wait_for(_awaited(response), limit.timeout_s)
    except TimeoutError:
        response.cancel()
        assert limit is not None
        raise TimedOut(
            f"the {limit.deployment} deployment did not answer within {limit.timeout_s:g} s "
            f"(serve.{limit.deployment.lower()}.request_timeout_s)"
        ) from None
    except BackPressureError:
        what = limit.deployment if limit else "the"
        raise Busy(f"the {what} deployment is busy (its queue is full): try again in a moment") from None
    except LookupError as exc:  # Ray re-raises a replica's error as a subclass of its type, with a traceback
        raise LookupError(plain_error(exc)) from None
    except BackendUnavailable as exc:
        raise BackendUnavailable(plain_error(exc)) from None
    except Busy as exc:  # the Recommender's own call to the Forecast deployment
        raise Busy(plain_error(exc)) from None
    except TimedOut as exc:
        raise TimedOut(plain_error(exc)) from None


_CLASS_PREFIX = re.compile(  # "pkg.module.Class: ", "RayTaskError(UnknownSymbol): ", "LookupError: "
    r"^(?:(?:[A-Za-z_]\w*\.)+[A-Z]\w*|[A-Z]\w*(?:Error|Exception|Unavailable))(?:\([\w.]+\))?: "
)


def plain_error(exc: BaseException) -> str:
    """A replica's error as the sentence it was raised with: the last line of Ray's traceback, without the
    ``LookupError: serve_deployments.forecast_reader.UnknownSymbol: `` class paths in front."""
    line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    while (stripped := _CLASS_PREFIX.sub("", line, count=1)) != line:
        line = stripped
    return line


@serve.deployment
class Recommender:
    """The language model: a comment on each symbol's facts; concurrent requests are decoded in one batch."""

    def __init__(self, settings: Settings, forecast: DeploymentHandle) -> None:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self.settings = settings
        self.forecast = forecast
        self.forecast_limit = Limit("Forecast", settings.serve.forecast.request_timeout_s)
        self.lm = TextGenerator(settings.recommend)
        self.writer = CheckedWriter(self.lm, settings.recommend)
        self.es = es_client(settings)
        # the decorator's values are fixed at import; the settings' replace them (public setters, no getters:
        # `describe` reports the settings, which are what was set)
        batched: Any = self.generate  # @serve.batch's wrapper; its type hints show only the call
        batched.set_max_batch_size(settings.recommend.max_batch_size)
        batched.set_batch_wait_timeout_s(settings.recommend.batch_wait_timeout_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def generate(self, requests: list[Request]) -> list[Generation]:
        return await asyncio.to_thread(self.writer.decode, requests)  # the event loop keeps queueing the next batch

    async def recommend(self, symbol: str) -> dict[str, Any]:
        answer = await _answer(self.forecast.facts.remote(symbol), self.forecast_limit)
        facts = MarketFacts.model_validate(answer)
        judgement = judge(facts, self.settings.recommend.rules)
        written = await self.writer.write(facts, judgement, self.generate)
        return recommendation_of(
            facts, judgement, written, self.lm.name, not self.lm.is_untrained_test_model, self.lm.note
        ).model_dump()

    async def record(self, symbols: list[str]) -> dict[str, Any]:
        """Recommend for `symbols` (default: every symbol the latest run forecast) and index the answers."""
        skipped: list[dict[str, Any]] = []
        if not symbols:
            listed = await _answer(self.forecast.symbols.remote(), self.forecast_limit)
            symbols = [row["symbol"] for row in listed if row["status"] == "ok"]
            skipped = [{"symbol": row["symbol"], "reason": row["reason"]} for row in listed if row["status"] != "ok"]
        outcomes = await asyncio.gather(*(self.recommend(symbol) for symbol in symbols), return_exceptions=True)
        answers = []
        for symbol, outcome in zip(symbols, outcomes, strict=True):
            if isinstance(outcome, LookupError):  # unknown or skipped in the run: reported, the others go on
                skipped.append({"symbol": symbol, "reason": plain_error(outcome)})
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                answers.append(outcome)
        written = await asyncio.to_thread(write_recommendations, self.es, self.settings, answers)
        return {
            "index": self.settings.elasticsearch.indices.recommendations,
            "written": written,
            "skipped": skipped,
            "recommendations": answers,
        }

    def latest(self) -> list[dict[str, Any]]:
        return latest_recommendations(self.es, self.settings)

    def describe(self) -> dict[str, Any]:
        return {
            **self.lm.describe(),
            "max_batch_size": self.settings.recommend.max_batch_size,
            "batch_wait_timeout_s": self.settings.recommend.batch_wait_timeout_s,
        }


@serve.deployment
@serve.ingress(api)
class Ingress:
    def __init__(
        self,
        forecast: DeploymentHandle,
        recommender: DeploymentHandle,
        api_key: SecretStr,
        reads_need_key: bool,
        max_symbols: int = 32,
        forecast_timeout_s: float | None = None,
        recommender_timeout_s: float | None = None,
        cache_ttl_s: float = 0,
        version: str = "",
    ) -> None:
        auth.configure(api_key, reads_need_key)
        self.version = version
        # the Forecast deployment's answers, serialised, for cache_ttl_s: a cached read is one hop, not two
        self.answers = TtlCache(cache_ttl_s, CACHE_MAX_ENTRIES)
        self.forecasts = forecast  # not `self.forecast`: that is the route below
        self.recommender = recommender
        self.max_symbols = max_symbols
        self.forecast_limit = Limit("Forecast", forecast_timeout_s)
        self.recommender_limit = Limit("Recommender", recommender_timeout_s)

    async def _read(self, key: tuple[str, ...], ask: Callable[[], Any]) -> Response:
        """A Forecast deployment's answer (``ask()`` sends the request) as JSON bytes, from this replica's cache
        while it is fresh. Returned as a Response, so FastAPI does not validate it again against the route's
        response model: the Forecast deployment built it from the same shapes, and a cached read stays one copy."""
        found, body = self.answers.get(key)
        if not found:
            answer = await _answer(ask(), self.forecast_limit)
            body = json.dumps(answer, separators=(",", ":"), allow_nan=False).encode()
            self.answers.put(key, body)
        return Response(content=body, media_type="application/json")

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> dict[str, Any]:
        return {**await _answer(self.forecasts.health.remote(), self.forecast_limit), "app_version": self.version}

    @api.get("/symbols", response_model=list[SymbolStatus])
    async def symbols(self) -> Response:
        return await self._read(("symbols",), self.forecasts.symbols.remote)

    @api.get("/forecast/{symbol:path}/summary", response_model=Summary)
    async def summary(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("summary", symbol), lambda: self.forecasts.summary.remote(symbol))

    @api.get("/forecast/{symbol:path}/backtest", response_model=list[BacktestRow])
    async def backtest(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("backtest", symbol), lambda: self.forecasts.backtest.remote(symbol))

    @api.get("/forecast/{symbol:path}/accuracy", response_model=list[AccuracyRow])
    async def accuracy(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("accuracy", symbol), lambda: self.forecasts.accuracy.remote(symbol))

    @api.get("/forecast/{symbol:path}/extremes/calibration", response_model=list[ExtremeCalibrationRow])
    async def extremes_calibration(self, symbol: str = SymbolPath) -> Response:
        return await self._read(
            ("extremes_calibration", symbol), lambda: self.forecasts.extremes_calibration.remote(symbol)
        )

    @api.get("/forecast/{symbol:path}/extremes", response_model=list[ExtremesScoredRow])
    async def extremes(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("extremes", symbol), lambda: self.forecasts.extremes.remote(symbol))

    @api.get("/forecast/{symbol:path}/vs-realized", response_model=list[VsRealizedRow])
    async def vs_realized(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("vs_realized", symbol), lambda: self.forecasts.vs_realized.remote(symbol))

    # {symbol:path}: BTC/USD as it is (what Grafana's symbol variable holds) or BTC-USD; the longer routes come first
    @api.get("/forecast/{symbol:path}", response_model=list[ForecastRow])
    async def forecast(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("forecast", symbol), lambda: self.forecasts.forecast.remote(symbol))

    @api.get("/indicators/{symbol:path}", response_model=list[IndicatorRow])
    async def indicators(self, symbol: str = SymbolPath, minutes: int = MinutesQuery) -> Response:
        return await self._read(
            ("indicators", symbol, str(minutes)), lambda: self.forecasts.indicators.remote(symbol, minutes)
        )

    @api.get("/quote/{symbol:path}", response_model=LatestQuote)
    async def quote(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("quote", symbol), lambda: self.forecasts.quote.remote(symbol))

    @api.get("/recommendation/{symbol:path}/track-record", response_model=TrackRecord)
    async def track_record(self, symbol: str = SymbolPath) -> Response:
        return await self._read(("track_record", symbol), lambda: self.forecasts.track_record.remote(symbol))

    @api.get("/recommendation/{symbol:path}", response_model=Recommendation)
    async def recommendation(self, symbol: str = SymbolPath) -> dict[str, Any]:
        return await _answer(self.recommender.recommend.remote(symbol), self.recommender_limit)

    @api.post("/recommendations", response_model=Recorded)
    async def record(self, symbol: list[str] | None = SymbolsQuery) -> dict[str, Any]:
        bad = [(i, value) for i, value in enumerate(symbol or []) if not re.fullmatch(SYMBOL_PATTERN, value)]
        if bad:  # a pattern on list items breaks Serve's OpenAPI page, so the 422 is raised here, in FastAPI's shape
            raise RequestValidationError(
                [
                    {
                        "type": "string_pattern_mismatch",
                        "loc": ("query", "symbol", i),
                        "msg": f"String should match pattern '{SYMBOL_PATTERN}'",
                        "input": value,
                    }
                    for i, value in bad
                ]
            )
        wanted = list(dict.fromkeys(value.upper().replace("-", "/") for value in symbol or []))  # each once
        if len(wanted) > self.max_symbols:
            raise RequestValidationError(
                [
                    {
                        "type": "too_long",
                        "loc": ("query", "symbol"),
                        "input": len(wanted),
                        "msg": f"at most {self.max_symbols} different symbols per request "
                        f"(serve.max_symbols_per_request); got {len(wanted)}",
                    }
                ]
            )
        return await _answer(self.recommender.record.remote(wanted), self.recommender_limit)

    @api.get("/model", response_model=ModelDescription)
    async def model(self) -> dict[str, Any]:
        return await _answer(self.recommender.describe.remote(), self.recommender_limit)

    @api.get("/recommendations/latest", response_model=list[StoredRecommendation])
    async def latest(self) -> list[dict[str, Any]]:
        return await _answer(self.recommender.latest.remote(), self.recommender_limit)


def _deployment(decorated: Any) -> Deployment:
    """A class under ``@serve.deployment`` is a Deployment at run time; Ray's type hints keep it a class."""
    assert isinstance(decorated, Deployment)
    return decorated


def application(settings: Settings) -> serve.Application:
    serve_settings = settings.serve
    forecast = _deployment(Forecast).options(**serve_settings.forecast.deployment_options()).bind(settings)
    recommender_options = serve_settings.recommender.deployment_options()
    recommender = _deployment(Recommender).options(**recommender_options).bind(settings, forecast)
    return (
        _deployment(Ingress)
        .options(**serve_settings.ingress.deployment_options())
        .bind(
            forecast,
            recommender,
            SecretStr(api_key(settings)),
            not is_loopback(serve_settings.http_host),
            serve_settings.max_symbols_per_request,
            serve_settings.forecast.request_timeout_s,
            serve_settings.recommender.request_timeout_s,
            serve_settings.cache_ttl_s,
            app_version(settings),
        )
    )


def build_app(args: dict[str, str] | None = None) -> serve.Application:
    """The application builder for `serve run` / `serve deploy` (args: {"config": "mine.yaml"} optionally)."""
    return application(load_settings((args or {}).get("config")))
