"""The Ray Serve application: a FastAPI ingress in front of the Forecast deployment.

    GET /symbols                    the latest forecast run's symbols (slug: the URL form, BTC-USD)
    GET /forecast/{symbol}          hourly rows: each target's value and 80/95% bounds
    GET /forecast/{symbol}/summary  highest volume, highest price, lowest price, each with its hour
    GET /healthz                    Elasticsearch reachable
    GET /docs                       OpenAPI

Errors are JSON with an HTTP status that says what happened, never 200: unknown symbol or no run yet -> 404,
a bad parameter -> 422 naming it, Elasticsearch unreachable -> 503 with the reason.

Run it with `ray-app serve`, or `serve run serve_deployments.app:build_app` / `serve deploy configs/serve.yaml`
(the settings come from RAY_APP_* variables and RAY_APP_CONFIG, as everywhere).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Path
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from ray_app.config import Settings, load_settings
from serve_deployments.forecast_reader import BackendUnavailable, ForecastReader, NoForecastYet, UnknownSymbol

api = FastAPI(
    title="ray-app",
    description="Forecasts (statsforecast on Ray, each next to naive) for Grafana's Infinity datasource and people.",
)

SymbolPath = Path(description="A symbol, '/' written as '-' (AAPL, BTC-USD)", pattern=r"^[A-Za-z0-9.\-]{1,20}$")


@api.exception_handler(LookupError)
async def _not_found(_request, exc: LookupError) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


@api.exception_handler(BackendUnavailable)
async def _unavailable(_request, exc: BackendUnavailable) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


@serve.deployment
class Forecast:
    """Reads the latest forecast run from Elasticsearch (cached for serve.cache_ttl_s)."""

    def __init__(self, settings: Settings) -> None:
        self.reader = ForecastReader(settings)

    def call(self, question: str, *args: str) -> Any:
        return getattr(self.reader, question)(*args)


async def _ask(handle: DeploymentHandle, question: str, *args: str) -> Any:
    try:
        return await handle.call.remote(question, *args)
    except (UnknownSymbol, NoForecastYet) as exc:  # Ray re-raises the replica's error as a subclass of its type
        raise LookupError(str(exc).splitlines()[-1]) from None
    except BackendUnavailable as exc:
        raise BackendUnavailable(str(exc).splitlines()[-1]) from None


@serve.deployment
@serve.ingress(api)
class Ingress:
    def __init__(self, forecast: DeploymentHandle) -> None:
        self.forecast = forecast

    @api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return await _ask(self.forecast, "health")

    @api.get("/symbols")
    async def symbols(self) -> list[dict[str, Any]]:
        return await _ask(self.forecast, "symbols")

    @api.get("/forecast/{symbol}")
    async def forecast(self, symbol: str = SymbolPath) -> list[dict[str, Any]]:
        return await _ask(self.forecast, "forecast", symbol)

    @api.get("/forecast/{symbol}/summary")
    async def summary(self, symbol: str = SymbolPath) -> dict[str, Any]:
        return await _ask(self.forecast, "summary", symbol)


def application(settings: Settings) -> serve.Application:
    serve_settings = settings.serve
    forecast = Forecast.options(**serve_settings.forecast.deployment_options()).bind(settings)
    return Ingress.options(**serve_settings.ingress.deployment_options()).bind(forecast)


def build_app(args: dict[str, str] | None = None) -> serve.Application:
    """The application builder for `serve run` / `serve deploy` (args: {"config": "mine.yaml"} optionally)."""
    return application(load_settings((args or {}).get("config")))
