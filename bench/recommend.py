"""Benchmark: the recommendation text over a corpus of fact sets: what the model writes, what the checks let through.

The corpus (at least 300 fact sets by default): every configured symbol at many hours of the simulator's hourly
history (seeded random walks and daily cycles at each market's price level and hours), windows of real hourly
EURUSD of 2017 (gym-anytrading's CSV, with the `bench` extra), and edge cases: big moves (+-12%, +-45%), flat
markets (no change), negative prices (as oil futures had), tiny prices (1e-5), no bar 24 h back, and forecasts that
beat naive up and down. The forecast fields of a fact set (close, its change, the week's low and high) come from
the history itself (the last week's drift and range), not from a forecast run: this measures the text, not the
forecast.

Each fact set goes through the Recommender's own writer (serve_deployments/checked_text.py: the attempts of
``recommend.attempts``, then the template) with the packaged SmolLM2-135M-Instruct (or --model), --clients at a
time, decoded in batches of --batch-size. Reported:

- raw: the share of the model's unconstrained texts (attempt ``free``: the facts as the user message, nothing
  refused in decoding, the whole text checked) with an unsupported claim, and by kind of claim;
- served: the share served from the model (by attempt) and from the template; served texts re-checked: 0 must have
  an unsupported claim;
- latency per answer (p50, p99) with --clients concurrent answers, and the batching gain: answers/s with batches of
  --batch-size against batches of 1 on the first --gain-sets fact sets.

    .venv/bin/python bench/recommend.py [--sets 300] [--clients 8] [--batch-size 8] [--json]
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ray_app.config import load_settings
from ray_app.config.serve import RecommendSettings, SignalRules
from ray_app.documents import MarketFacts
from ray_app.forecast.calendar import market_of
from ray_app.testing.bars import synthetic_bars
from serve_deployments.checked_text import CheckedText, CheckedWriter, Request
from serve_deployments.claims import CLAIM_KINDS, check_text
from serve_deployments.language_model import Generation, TextGenerator, available_model
from serve_deployments.market_facts import direction_of, judge, price_facts

PRICES = {"AAPL": 234.0, "MSFT": 512.0, "GOOG": 176.0, "IBM": 204.0, "BTC/USD": 91_250.0, "ETH/USD": 3_120.0}
END = pd.Timestamp("2026-11-27T00:00Z")
WEEK = pd.Timedelta(days=7)
console = Console(width=150)


class Batcher:
    """A queue that decodes up to ``size`` waiting requests together (what ``@serve.batch`` does in a replica)."""

    def __init__(self, decode: Callable[[list[Request]], list[Generation]], size: int, wait_s: float = 0.05) -> None:
        self.decode, self.size, self.wait_s = decode, size, wait_s
        self.queue: asyncio.Queue[tuple[Request, asyncio.Future[Generation]]] | None = None
        self.sizes: list[int] = []

    async def __call__(self, request: Request) -> Generation:
        loop = asyncio.get_running_loop()
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.worker = loop.create_task(self._run())
        done: asyncio.Future[Generation] = loop.create_future()
        await self.queue.put((request, done))
        return await done

    async def _run(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.wait_s
            while len(items) < self.size and (left := deadline - loop.time()) > 0:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            self.sizes.append(len(items))
            generations = await asyncio.to_thread(self.decode, [request for request, _ in items])
            for (_, done), generation in zip(items, generations, strict=True):
                done.set_result(generation)


def facts_at(symbol: str, bars: pd.DataFrame, at: int, rules: SignalRules, beats_naive: bool) -> MarketFacts:
    """The fact set at bar ``at``: the last price and 24 h move from the bars, the forecast from the last week's
    drift (carried a week ahead) and range."""
    seen = bars.iloc[: at + 1]
    rows = [{"timestamp": t, "close": c} for t, c in zip(seen.index, seen["close"], strict=True)]
    last_at, last_price, change, volatility = price_facts(rows)
    week = seen[seen.index > last_at - WEEK]
    drift = (week["close"].iloc[-1] / week["close"].iloc[0] - 1) * 100 if len(week) > 1 else 0.0
    close = last_price * (1 + drift / 100) if beats_naive else last_price
    change_pct = (close / last_price - 1) * 100
    low, high = float(week["low"].min()), float(week["high"].max())
    return MarketFacts(
        symbol=symbol,
        last_bar_at=last_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        last_price=last_price,
        change_24h_pct=change,
        realized_volatility_24h_pct=volatility,
        run_id="bench",
        forecast_as_of=(last_at + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        forecast_end=(last_at + WEEK).strftime("%Y-%m-%dT%H:%M:%SZ"),
        forecast_close=close,
        forecast_change_pct=change_pct,
        forecast_direction=direction_of(change_pct, rules),
        range_7d_low=low,
        range_7d_high=high,
        range_7d_low_lo_80=low - (high - low) * 0.25,
        range_7d_high_hi_80=high + (high - low) * 0.25,
        forecast_hourly_range_pct=float(((week["high"] - week["low"]) / week["close"]).mean() * 100),
        close_model="AutoETS" if beats_naive else "Naive",
        close_beats_naive=beats_naive,
    )


def corpus(settings_symbols: list[str], rules: SignalRules, per_symbol: int) -> list[tuple[str, MarketFacts]]:
    """(kind, facts) for every case of the corpus."""
    cases: list[tuple[str, MarketFacts]] = []
    rng = np.random.default_rng(32)
    for number, symbol in enumerate(settings_symbols):
        market = market_of(symbol)
        kind = "crypto" if market.name == "crypto" else "stock"
        for shape_number, shape in enumerate(("random_walk", "daily_cycle")):
            bars = synthetic_bars(
                market,
                END - pd.Timedelta(days=38),
                END,
                shape,
                seed=number * 10 + shape_number,
                price=PRICES.get(symbol, 100.0),
            )
            first = int(np.searchsorted(bars.index, bars.index[0] + WEEK + pd.Timedelta(days=1)))
            for at in np.linspace(first, len(bars) - 1, per_symbol // 2).astype(int):
                cases.append((kind, facts_at(symbol, bars, int(at), rules, bool(rng.random() < 0.4))))
    try:
        from ray_app.testing.bars import real_eurusd_hourly

        eurusd = real_eurusd_hourly()
        for at in np.linspace(400, len(eurusd) - 1, 40).astype(int):
            cases.append(("real EURUSD", facts_at("EUR/USD", eurusd, int(at), rules, bool(rng.random() < 0.4))))
    except (ImportError, FileNotFoundError):
        console.print("[yellow]gym-anytrading is not installed (pip install -e '.[bench]'): no real EURUSD cases")
    base = cases[0][1]
    edges = [
        ("big move", {"change_24h_pct": 12.4, "forecast_change_pct": 3.2, "close_beats_naive": True}),
        ("big move", {"change_24h_pct": -45.1, "forecast_change_pct": -8.7, "close_beats_naive": True}),
        ("big move", {"change_24h_pct": 45.0, "forecast_change_pct": 0.0}),
        ("big move", {"change_24h_pct": -12.0, "forecast_change_pct": 5.5, "close_beats_naive": True}),
        ("flat", {"change_24h_pct": 0.0, "forecast_change_pct": 0.0}),
        ("flat", {"change_24h_pct": 0.001, "forecast_change_pct": -0.002, "realized_volatility_24h_pct": 0.0}),
        ("no bar 24 h back", {"change_24h_pct": None, "realized_volatility_24h_pct": None}),
    ]
    for symbol in ("CL", "NG"):  # futures have traded below zero
        for change in (-305.97, 12.5, -3.1):
            price = -37.63 if symbol == "CL" else -1.25
            edges.append(("negative price", {"symbol": symbol, "last_price": price, "change_24h_pct": change}))
    for symbol in ("SHIB/USD", "PEPE/USD"):
        for change in (7.7, -0.31, 0.0):
            edges.append(("tiny price", {"symbol": symbol, "last_price": 1.234e-5, "change_24h_pct": change}))
    for kind, update in edges:
        facts = base.model_copy(update=update)
        price = facts.last_price
        forecast = price * (1 + facts.forecast_change_pct / 100)
        spread = abs(price) * 0.05
        facts = facts.model_copy(
            update={
                "forecast_close": forecast,
                "forecast_direction": direction_of(facts.forecast_change_pct, rules),
                "close_model": "AutoETS" if facts.close_beats_naive else "Naive",
                "range_7d_low": min(price, forecast) - spread,
                "range_7d_high": max(price, forecast) + spread,
                "range_7d_low_lo_80": min(price, forecast) - 2 * spread,
                "range_7d_high_hi_80": max(price, forecast) + 2 * spread,
            }
        )
        cases.append((kind, facts))
    return cases


async def _write_all(
    writer: CheckedWriter,
    cases: list[tuple[str, MarketFacts]],
    rules: SignalRules,
    generate: Callable[[Request], Awaitable[Generation]],
    clients: int,
    done: Callable[[], Any],
) -> list[tuple[CheckedText, float]]:
    """Every case written, ``clients`` at a time; (the checked text, its seconds) per case."""
    gate = asyncio.Semaphore(clients)

    async def one(facts: MarketFacts) -> tuple[CheckedText, float]:
        async with gate:
            began = time.perf_counter()
            written = await writer.write(facts, judge(facts, rules), generate)
            done()
            return written, time.perf_counter() - began

    return list(await asyncio.gather(*(one(facts) for _, facts in cases)))


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def main(
    sets: Annotated[int, typer.Option(help="fact sets from the hourly histories (the edge cases come on top)")] = 300,
    clients: Annotated[int, typer.Option(help="answers written at a time")] = 8,
    batch_size: Annotated[int, typer.Option(help="requests decoded together")] = 8,
    gain_sets: Annotated[int, typer.Option(help="fact sets timed for the batching gain")] = 24,
    model: Annotated[
        str | None, typer.Option(help="recommend.model (default: the settings', offline the packaged SmolLM2)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object last")] = False,
) -> None:
    settings = load_settings()
    recommend: RecommendSettings = settings.recommend
    if model:
        recommend = recommend.model_copy(update={"model": model, "gguf_file": None})
    recommend, note = available_model(recommend)
    if note:
        console.print(f"[dim]{note}")
    with console.status("loading the model"):
        lm = TextGenerator(recommend)
    writer = CheckedWriter(lm, recommend.model_copy(update={"text_budget_s": 1e9}))
    rules = recommend.rules
    symbols = settings.symbols
    cases = corpus(symbols, rules, max(2, math.ceil(sets / len(symbols))))
    console.print(f"{len(cases)} fact sets: {dict(Counter(kind for kind, _ in cases))}; model {lm.name}")

    # raw: the model unconstrained (attempt free), every text checked whole
    raw_kinds: Counter[str] = Counter()
    raw_unsupported = 0
    raw_texts: list[str] = []
    judgements = [judge(facts, rules) for _, facts in cases]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("raw texts (attempt free)", total=len(cases))
        for start in range(0, len(cases), batch_size):
            chunk = list(range(start, min(start + batch_size, len(cases))))
            requests = [writer.request("free", cases[i][1], judgements[i]) for i in chunk]
            for i, generation in zip(chunk, writer.decode(requests), strict=True):
                result = check_text(generation.text, cases[i][1])
                raw_texts.append(generation.text)
                if not result.passed:
                    raw_unsupported += 1
                    raw_kinds.update({claim.kind for claim in result.unsupported})
            progress.advance(task, len(chunk))

    batcher = Batcher(writer.decode, batch_size)
    began = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"served texts ({', '.join(recommend.attempts)}, then the template)", total=len(cases))
        results = asyncio.run(_write_all(writer, cases, rules, batcher, clients, lambda: progress.advance(task)))
    wall = time.perf_counter() - began

    n = len(results)
    sources = Counter(written.attempt or "template" for written, _ in results)
    served_bad = [
        (written.text, [c.reason for c in check_text(written.text, facts).unsupported])
        for (written, _), (_, facts) in zip(results, cases, strict=True)
        if not check_text(written.text, facts).passed
    ]
    served_unsupported = len(served_bad)
    latencies = sorted(seconds for _, seconds in results)
    p50 = statistics.median(latencies)
    p99 = latencies[min(n - 1, math.ceil(0.99 * n) - 1)]

    gain_cases = cases[:gain_sets]
    timings = {}
    for size in (1, batch_size):
        began = time.perf_counter()
        asyncio.run(_write_all(writer, gain_cases, rules, Batcher(writer.decode, size), clients, lambda: None))
        timings[size] = time.perf_counter() - began
    gain = timings[1] / timings[batch_size]

    table = Table(title=f"Recommendation text over {n} fact sets: {lm.name}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("raw texts (the model unconstrained) with an unsupported claim", f"{_pct(raw_unsupported, n)}%")
    for kind in CLAIM_KINDS:
        table.add_row(f"  ... with an unsupported {kind} claim", f"{_pct(raw_kinds.get(kind, 0), n)}%")
    for attempt in (*recommend.attempts, "template"):
        label = "served from the template" if attempt == "template" else f"served from the model, attempt {attempt}"
        table.add_row(label, f"{_pct(sources.get(attempt, 0), n)}%")
    table.add_row("served from the model, all attempts", f"{_pct(n - sources.get('template', 0), n)}%")
    table.add_row("served texts with an unsupported claim (re-checked)", str(served_unsupported))
    table.add_row(f"latency per answer p50 / p99 ({clients} at a time)", f"{p50:.2f} s / {p99:.2f} s")
    table.add_row("answers/s (whole corpus)", f"{n / wall:.2f}")
    table.add_row(
        f"batching gain: batches of {batch_size} vs 1 ({len(gain_cases)} sets)",
        f"{gain:.2f}x ({timings[batch_size]:.1f} s vs {timings[1]:.1f} s)",
    )
    table.add_row("mean batch size", f"{statistics.mean(batcher.sizes):.2f}")
    console.print(table)
    by_kind = Table(title="Served from the model, by kind of fact set")
    by_kind.add_column("kind")
    by_kind.add_column("sets", justify="right")
    by_kind.add_column("raw unsupported", justify="right")
    by_kind.add_column("served from model", justify="right")
    for kind in dict.fromkeys(kind for kind, _ in cases):
        chosen = [i for i, (k, _) in enumerate(cases) if k == kind]
        raw = sum(1 for i in chosen if not check_text(raw_texts[i], cases[i][1]).passed)
        model_served = sum(1 for i in chosen if results[i][0].source == "model")
        by_kind.add_row(kind, str(len(chosen)), f"{_pct(raw, len(chosen))}%", f"{_pct(model_served, len(chosen))}%")
    console.print(by_kind)
    for text, reasons in served_bad:
        console.print(f"[red]served with an unsupported claim:[/] {text} {reasons}")
    examples = [written for written, _ in results if written.source == "model"][:: max(1, n // 12)][:5]
    for written in examples:
        console.print(f"[dim]{written.attempt}:[/] {written.text}")
    if as_json:
        summary: dict[str, Any] = {
            "model": lm.name,
            "fact_sets": n,
            "kinds": dict(Counter(kind for kind, _ in cases)),
            "raw_unsupported_share": round(raw_unsupported / n, 4),
            "raw_unsupported_by_kind": {kind: round(raw_kinds.get(kind, 0) / n, 4) for kind in CLAIM_KINDS},
            "attempts": list(recommend.attempts),
            "served_from_model_share": round((n - sources.get("template", 0)) / n, 4),
            "served_by_attempt": {key: round(value / n, 4) for key, value in sources.items()},
            "template_share": round(sources.get("template", 0) / n, 4),
            "served_unsupported": served_unsupported,
            "latency_p50_s": round(p50, 3),
            "latency_p99_s": round(p99, 3),
            "clients": clients,
            "batch_size": batch_size,
            "answers_per_s": round(n / wall, 3),
            "batching_gain": round(gain, 3),
            "batching_seconds": {str(size): round(seconds, 2) for size, seconds in timings.items()},
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    typer.run(main)
