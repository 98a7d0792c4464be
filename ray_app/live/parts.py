"""The live platform's parts, declared as data: what each one runs (a stage's ``run(settings, stop) -> Report``, by
import path), the order `ray-app down` stops them in, and what it does in a line.

A new part is one row here: `ray-app live start` submits it as a Ray job (`python -m ray_app live run NAME`),
`ray-app status` lists it, `ray-app down` stops it at its rank. The stream is the one part with an entry point of
its own (`python -m ray_app stream driver`, submitted by ``spark_jobs.control``: it holds its checkpoints' lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from ray_app.lifecycle import Stage


@dataclass(frozen=True)
class LivePart:
    name: str
    runs: str  # "module:function", a Stage
    stop_rank: int  # `ray-app down` stops lower ranks first: sources before what they feed, the stream last
    does: str
    entrypoint: str = ""  # the Ray job's command; empty: `python -m ray_app live run <name>`
    flushes_metrics: bool = False  # waits for its last counts to reach Prometheus before it exits

    @property
    def command(self) -> str:
        return self.entrypoint or f"python -m ray_app live run {self.name}"

    def stage(self) -> Stage:
        module, _, function = self.runs.partition(":")
        stage: Stage = getattr(import_module(module), function)
        return stage


# in the order data flows
PARTS = [
    LivePart(
        "simulator",
        "ray_app.ingest:run",
        0,
        "the simulator's live trades -> Kafka (crypto around the clock, stocks 04:00-20:00 New York)",
        flushes_metrics=True,
    ),
    LivePart(
        "stream",
        "spark_jobs.job:run",
        5,
        "Spark on Ray: Kafka -> trades, bars, dead letters in Elasticsearch",
        entrypoint="python -m ray_app stream driver",
    ),
    LivePart(
        "indicators", "ray_app.indicators.runner:run", 3, "RSI, EMA, MACD, Bollinger on 1-minute bars -> indicators-1m"
    ),
    LivePart(
        "forecaster",
        "ray_app.live.schedule:run_forecaster",
        2,
        "hourly forecasts of every symbol, and their scoring against what happened",
    ),
    LivePart(
        "recommender",
        "ray_app.live.schedule:run_recommender",
        1,
        "every symbol's recommendation through Serve, on a schedule",
    ),
    LivePart("monitor", "ray_app.live.monitor:run_monitor", 4, "lag, trade age, dead letters -> Prometheus gauges"),
]
PART_NAMES = [part.name for part in PARTS]
BY_NAME = {part.name: part for part in PARTS}
STOP_ORDER = [part.name for part in sorted(PARTS, key=lambda part: part.stop_rank)]
