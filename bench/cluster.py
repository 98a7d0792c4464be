"""Benchmark: the platform on one Ray node vs two, on this machine, and a projection for N worker nodes.

1. forecast: N symbols (--symbols, 1,000) of 30 days of hourly stock bars (half random walks, half daily cycles),
   the production fan-out (one Ray task per symbol running ``forecast_history``: CV of every candidate, the choice
   against naive, the chosen model's fit) with bench/forecast.py's speed spec (AutoETS, AutoTheta and the
   baselines, 3 CV windows): (a) one Ray node with --cpus CPUs; (b) a head and a worker node with half each (Ray's
   own ``ray.cluster_utils.Cluster``: two raylets, tasks spread by Ray). Then the production spec (the default
   settings' models and CV windows) on --production-sample symbols, for the per-symbol cost the projection uses.
2. stream: bench/stream.py (throughput of the whole job, trades and bars caught up, against the bare loader in the
   same run; latency at --stream-rate) with two RayDP executors: (a) both on one worker node; (b) one on each of two
   worker nodes. The worker nodes join the local stack's Ray head (`ray start --address ...`) and offer a resource
   the executors ask for (stream.executor_resources).
3. projection: from the measured costs, what N worker nodes of C cores would do.

Two nodes on one machine share its cores: what this shows is that the work spreads over nodes and what crossing
nodes costs, not more speed.

    .venv/bin/python bench/cluster.py [--symbols 1000] [--skip-stream] [--skip-forecast] [--json]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import ray
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast import history_of, production_spec, speed_inputs

from ray_app.config import load_settings
from ray_app.forecast.calendar import STOCK
from ray_app.forecast.engine import forecast_history
from ray_app.testing.bars import synthetic_bars
from ray_app.testing.cluster import worker_node

REPO = Path(__file__).resolve().parent.parent
console = Console(width=150)
RESOURCE = "ray_app_bench"


@ray.remote(num_cpus=1)
def _forecast_one(history: Any, spec: Any) -> tuple[str, float]:
    began = time.process_time()
    forecast_history(history, spec)
    return ray.get_runtime_context().get_node_id(), time.process_time() - began


def _fan_out(histories: list[Any], spec: Any) -> dict[str, Any]:
    began = time.perf_counter()
    results = ray.get([_forecast_one.remote(history, spec) for history in histories])
    wall = time.perf_counter() - began
    nodes = Counter(node for node, _ in results)
    return {
        "symbols": len(histories),
        "wall_s": round(wall, 1),
        "symbols_per_s": round(len(histories) / wall, 2),
        "cpu_s_per_symbol": round(sum(cpu for _, cpu in results) / len(histories), 3),
        "tasks_per_node": sorted(nodes.values(), reverse=True),
    }


def forecast_part(symbols: int, cpus: int, production_sample: int) -> dict[str, Any]:
    run_spec, inputs = speed_inputs([symbols], ("AutoETS", "AutoTheta"))
    histories = inputs[symbols]
    result: dict[str, Any] = {}
    console.print(f"forecast: {symbols:,} symbols on one node ({cpus} CPUs) ...")
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        result["one_node"] = _fan_out(histories, run_spec)
        end = pd.Timestamp("2026-11-27T00:00Z")  # the speed inputs' end (bench/forecast.py)
        sample = [
            history_of(
                f"P{i}",
                synthetic_bars(
                    STOCK, end - pd.Timedelta(days=30), end, "daily_cycle" if i % 2 else "random_walk", seed=i
                ),
                STOCK,
            )
            for i in range(production_sample)
        ]
        spec = production_spec(tuple(load_settings().forecast.models), STOCK.horizon_steps(7), STOCK.bars_per_day)
        console.print(f"forecast: the production spec on {production_sample} symbols ...")
        result["production"] = {
            **_fan_out(sample, spec),
            "models": list(spec.candidates),
            "cv_windows": spec.cv_windows,
        }
    finally:
        ray.shutdown()
    from ray.cluster_utils import Cluster

    console.print(f"forecast: {symbols:,} symbols on two nodes ({cpus // 2} + {cpus - cpus // 2} CPUs) ...")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus // 2, "include_dashboard": False})
    cluster.add_node(num_cpus=cpus - cpus // 2)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        result["two_nodes"] = _fan_out(histories, run_spec)
    finally:
        ray.shutdown()
        cluster.shutdown()
    result["spec"] = {"models": list(run_spec.candidates), "cv_windows": run_spec.cv_windows}
    return result


def _stream_run(label: str, worker_cpus: list[int], rate: int, trades: int) -> dict[str, Any]:
    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="bc-", dir="/tmp"))
    from contextlib import ExitStack

    with ExitStack() as nodes:
        for i, cpus in enumerate(worker_cpus):
            nodes.enter_context(
                worker_node(
                    settings, resources={RESOURCE: cpus}, num_cpus=cpus, private=None, log_file=work / f"worker-{i}.log"
                )
            )
        console.print(f"stream ({label}): bench/stream.py --rates {rate} ...")
        env = {
            **os.environ,
            "RAY_APP_STREAM__EXECUTOR_RESOURCES": json.dumps({RESOURCE: 1}),
            "RAY_APP_STREAM__EXECUTOR_CORES": "1",
        }
        done = subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "stream.py"),
                "--executors",
                "2",
                "--rates",
                str(rate),
                "--trades",
                str(trades),
                "--seconds",
                "20",
                "--json",
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if done.returncode != 0:
        raise RuntimeError(f"bench/stream.py failed: {done.stdout[-3000:]}{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        key: summary[key]
        for key in (
            "throughput_trades_s",
            "trades_indexed_s",
            "bare_trades_s",
            "throughput_ratio",
            "rate_trades_s",
            "latency_p50_s",
            "latency_p99_s",
            "bar_latency_p50_s",
        )
    }


def stream_part(rate: int, trades: int) -> dict[str, Any]:
    from ray_app.stack import manager

    manager.up(load_settings())
    return {
        "one_node": _stream_run("2 executors on one worker node", [2], rate, trades),
        "two_nodes": _stream_run("1 executor on each of two worker nodes", [1, 1], rate, trades),
    }


def _projection(result: dict[str, Any], node_cores: int) -> Table:
    table = Table(
        title=f"projection: N worker nodes of {node_cores} cores (from the costs measured above)", title_justify="left"
    )
    for column in (
        "worker nodes",
        "forecast: symbols per hour (production spec)",
        "1,000 symbols take",
        "stream: trades/s the executors take (Elasticsearch not counted)",
    ):
        table.add_column(column, justify="right")
    per_symbol = result.get("forecast", {}).get("production", {}).get("cpu_s_per_symbol")
    stream = result.get("stream", {}).get("one_node")
    per_trade_core_s = 2 / stream["trades_indexed_s"] if stream else None  # 2 executors, one core each
    for nodes in (1, 2, 4, 8, 16):
        cores = nodes * node_cores
        forecast_cell = f"{3600 * cores / per_symbol:,.0f}" if per_symbol else "-"
        took = f"{1000 * per_symbol / cores:,.0f} s" if per_symbol else "-"
        stream_cell = f"{cores / per_trade_core_s:,.0f}" if per_trade_core_s else "-"
        table.add_row(str(nodes), forecast_cell, took, stream_cell)
    return table


def main(
    symbols: Annotated[int, typer.Option(help="symbols to forecast on one node and on two")] = 1000,
    cpus: Annotated[int, typer.Option(help="Ray CPUs in all (split between the two nodes)")] = os.cpu_count() or 2,
    production_sample: Annotated[int, typer.Option(help="symbols for the production spec's per-symbol cost")] = 24,
    stream_rate: Annotated[int, typer.Option(help="input rate (trades/s) of the stream's latency run")] = 5000,
    stream_trades: Annotated[int, typer.Option(help="trades for the stream's throughput run")] = 60000,
    node_cores: Annotated[int, typer.Option(help="cores per worker node in the projection")] = 8,
    skip_forecast: bool = False,
    skip_stream: bool = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object last")] = False,
) -> None:
    result: dict[str, Any] = {}
    if not skip_forecast:
        result["forecast"] = forecast_part(symbols, cpus, production_sample)
        spec = result["forecast"]["spec"]
        table = Table(
            title=f"forecast fan-out, {symbols:,} symbols ({', '.join(spec['models'])}; "
            f"{spec['cv_windows']} CV windows), {cpus} CPUs in all",
            title_justify="left",
        )
        for column in ("layout", "wall s", "symbols/s", "CPU s per symbol", "tasks per node", "vs one node"):
            table.add_column(column, justify="right")
        one = result["forecast"]["one_node"]
        for label, key in (("one node", "one_node"), ("two nodes", "two_nodes")):
            run = result["forecast"][key]
            table.add_row(
                label,
                f"{run['wall_s']:,.1f}",
                f"{run['symbols_per_s']:.2f}",
                f"{run['cpu_s_per_symbol']:.2f}",
                " + ".join(map(str, run["tasks_per_node"])),
                f"{one['wall_s'] / run['wall_s']:.2f}x",
            )
        console.print(table)
        production = result["forecast"]["production"]
        console.print(
            f"production spec ({', '.join(production['models'])}; {production['cv_windows']} CV windows): "
            f"{production['cpu_s_per_symbol']:.2f} CPU s per symbol",
            highlight=False,
        )
    if not skip_stream:
        result["stream"] = stream_part(stream_rate, stream_trades)
        table = Table(title="stream, 2 RayDP executors (1 task slot each), whole job", title_justify="left")
        for column in (
            "layout",
            "trades/s searchable",
            "trades/s with bars",
            "bare loader",
            "ratio",
            f"p50 at {stream_rate:,}/s",
            "p99",
            "bar p50",
        ):
            table.add_column(column, justify="right")
        for label, key in (("one worker node", "one_node"), ("two worker nodes", "two_nodes")):
            run = result["stream"][key]
            table.add_row(
                label,
                f"{run['trades_indexed_s']:,.0f}",
                f"{run['throughput_trades_s']:,.0f}",
                f"{run['bare_trades_s']:,.0f}",
                f"{run['throughput_ratio']:.2f}",
                f"{run['latency_p50_s']} s",
                f"{run['latency_p99_s']} s",
                f"{run['bar_latency_p50_s']} s",
            )
        console.print(table)
    console.print(_projection(result, node_cores))
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
