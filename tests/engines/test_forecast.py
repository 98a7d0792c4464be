"""Forecasting on the real engines: hourly bars in Elasticsearch -> Ray tasks -> forecasts and run reports.

The bars are written the way the streaming job writes bars-1h, with shapes whose right answer is known: a
strong daily cycle (a seasonal model must win), random walks (naive should), a symbol with two days of history
(skipped), and failures on cue (an exception; a Ray worker that dies).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from elasticsearch.helpers import bulk

from ray_app.config import Settings, load_settings
from ray_app.es_indices import MAPPINGS, ensure_index, es_client
from ray_app.forecast import store
from ray_app.forecast.calendar import CRYPTO, STOCK, market_of
from ray_app.forecast.runner import RunReport, run_forecast
from ray_app.testing.bars import FailOn, bar_actions, synthetic_bars
from ray_app.testing.settings import module_env, settings_env
from ray_app.testing.stack import environment, run_cli
from ray_app.times import now_iso

AS_OF = pd.Timestamp("2026-11-11T00:00Z")  # a Wednesday
SHAPES = {  # symbol -> (shape, days of history)
    "BTC/USD": ("daily_cycle", 12),
    "ETH/USD": ("random_walk", 12),
    "AAPL": ("daily_cycle", 12),
    "MSFT": ("random_walk", 12),
    "IBM": ("random_walk", 2),
}
SYMBOLS = list(SHAPES)
TARGETS = ["high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def forecast_env(stack: Settings) -> Iterator[dict[str, str]]:
    """Indices of this module's own and a small forecast (1 day ahead, 2 CV windows, 2 models)."""
    small = {
        "lookback_days": 12,
        "horizon_days": 1,
        "cv_windows": 2,
        "models": ["AutoETS", "AutoTheta"],
        "symbols_per_task": 2,
        "task_num_cpus": 0.5,
    }
    env = module_env(stack, "fc", {"symbols": SYMBOLS, "forecast": small}, topics=())
    with environment(env):
        yield env
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def settings(forecast_env: dict[str, str]) -> Settings:
    settings = load_settings()
    es = es_client(settings)
    index = settings.elasticsearch.indices.bars_1h
    ensure_index(settings, es, index, MAPPINGS["bars_1h"])
    for seed, (symbol, (shape, days)) in enumerate(SHAPES.items()):
        bars = synthetic_bars(market_of(symbol), AS_OF - pd.Timedelta(days=days), AS_OF, shape, seed=seed)
        bulk(es, bar_actions(index, symbol, bars))
    # a bar after the cut-off must not be used for training
    late = synthetic_bars(CRYPTO, AS_OF, AS_OF + pd.Timedelta(hours=3), "random_walk", seed=99, price=1e6)
    bulk(es, bar_actions(index, "BTC/USD", late), refresh="wait_for")
    return settings


def _forecast_docs(settings: Settings, run_id: str) -> list[dict]:
    es = es_client(settings)
    es.indices.refresh(index=settings.elasticsearch.indices.forecasts)
    page = es.search(index=settings.elasticsearch.indices.forecasts, query={"term": {"run_id": run_id}}, size=10_000)
    return [hit["_source"] for hit in page["hits"]["hits"]]


@pytest.fixture(scope="module")
def first_run(settings: Settings) -> RunReport:
    seen = []
    report = run_forecast(settings, as_of=AS_OF, compute=FailOn(frozenset({"MSFT"})), on_symbol=seen.append)
    assert sorted(r.symbol for r in seen) == sorted(SYMBOLS)  # the progress callback saw every symbol
    return report


def test_each_symbol_is_forecast_skipped_or_failed_with_its_reason(first_run: RunReport) -> None:
    by_symbol = {report.symbol: report for report in first_run.symbols}
    assert {s: r.status for s, r in by_symbol.items()} == {
        "BTC/USD": "ok",
        "ETH/USD": "ok",
        "AAPL": "ok",
        "MSFT": "failed",
        "IBM": "skipped",
    }
    assert "injected failure for MSFT" in by_symbol["MSFT"].reason
    assert "trading hours of history" in by_symbol["IBM"].reason and "at least 25" in by_symbol["IBM"].reason
    assert first_run.status == "partial"
    # the work ran in Ray workers, not in this process
    pids = {report.fields["worker_pid"] for report in first_run.symbols}
    assert os.getpid() not in pids


def test_forecasts_cover_the_horizon_on_trading_hours_with_ordered_intervals(
    settings: Settings, first_run: RunReport
) -> None:
    docs = pd.DataFrame(_forecast_docs(settings, first_run.run_id))
    counts = docs.groupby(["symbol", "target"]).size().to_dict()
    expected = {
        (s, t): 24 if s.endswith("/USD") else 7 for s in ("BTC/USD", "ETH/USD", "AAPL") for t in [*TARGETS, "range"]
    }
    assert counts == expected
    hours = pd.DatetimeIndex(pd.to_datetime(docs["timestamp"], utc=True))
    stock = (docs["symbol"] == "AAPL").to_numpy()
    assert bool(STOCK.in_session(hours[stock]).all())
    assert hours[~stock].min() == AS_OF  # crypto: the first forecast hour is the cut-off hour itself
    bounded = docs[docs["target"] != "range"]  # the volatility forecast has no intervals
    assert (
        (bounded["lo_95"] <= bounded["lo_80"])
        & (bounded["lo_80"] <= bounded["value"])
        & (bounded["value"] <= bounded["hi_80"])
        & (bounded["hi_80"] <= bounded["hi_95"])
    ).all()
    # the bars after the cut-off (priced around 1e6) were not training data
    assert docs[docs["symbol"] == "BTC/USD"]["value"].max() < 1e3 * 10


def test_the_known_answers_come_out_and_the_report_compares_every_model_with_naive(
    settings: Settings, first_run: RunReport
) -> None:
    targets = {
        (doc["symbol"], doc["target"]): doc
        for doc in store.run_records(es_client(settings), settings, first_run.run_id, "target")
    }
    for symbol in ("BTC/USD", "AAPL"):  # strong daily cycle
        for target in ("close", "volume"):
            doc = targets[(symbol, target)]
            assert doc["chosen_model"] != "Naive" and doc["beats_naive"], doc
            assert doc["mase"] < 0.5 * doc["naive_mase"]
    for doc in targets.values():
        # never a model that did not beat naive's CV MASE by forecast.min_improvement (10%)
        assert doc["chosen_model"] == "Naive" or doc["mase"] < 0.9 * doc["naive_mase"], doc
        if doc["target"] == "range":  # volatility: its own candidates, QLIKE beside MASE, no intervals
            assert set(doc["cv"]) == {"HAR", "GARCH", "Naive", "SeasonalNaive"}
            assert all(score["qlike"] >= 0 for score in doc["cv"].values() if "qlike" in score)
            continue
        assert set(doc["cv"]) == {"AutoETS", "AutoTheta", "Naive", "SeasonalNaive"}
        assert doc["cv"]["Naive"]["mase"] == doc["naive_mase"]
        assert all(score["seconds"] > 0 for score in doc["cv"].values())  # what each model costs
        assert 0 <= doc["coverage_80"] <= doc["coverage_95"] <= 1


def test_summary_is_computed_from_the_stored_forecasts(settings: Settings, first_run: RunReport) -> None:
    docs = pd.DataFrame(_forecast_docs(settings, first_run.run_id))
    symbols = {
        doc["symbol"]: doc for doc in store.run_records(es_client(settings), settings, first_run.run_id, "symbol")
    }
    for symbol in ("BTC/USD", "ETH/USD", "AAPL"):
        rows = docs[docs["symbol"] == symbol]
        low, high, volume = (
            rows[rows["target"] == t].set_index("timestamp")["value"] for t in ("low", "high", "volume")
        )
        doc = symbols[symbol]
        hours = set(low.index)
        for extreme in ("highest_price", "lowest_price", "highest_volume"):
            keys = ("lo_95", "lo_80", "", "hi_80", "hi_95")
            ends = [doc[f"{extreme}_{key}" if key else extreme] for key in keys]
            assert ends == sorted(ends), (symbol, extreme)
            assert doc[f"{extreme}_at"] in hours and 0 < doc[f"{extreme}_at_probability"] <= 1
        assert doc["lowest_price"] < doc["highest_price"]
        # an extreme, not the max of smooth points: the week's high median above the first hour's high forecast
        assert doc["highest_price"] >= high.iloc[0] and doc["lowest_price"] <= low.iloc[0]
        assert doc["highest_volume_hi_95"] >= volume.max()
        assert doc["range_model"] in {"HAR", "GARCH", "Naive", "SeasonalNaive"} and doc["range_pct_mean"] > 0
    assert symbols["IBM"]["status"] == "skipped" and symbols["MSFT"]["status"] == "failed"


def test_running_the_same_run_again_overwrites_and_the_latest_run_is_found(
    settings: Settings, first_run: RunReport
) -> None:
    again = run_forecast(settings, as_of=AS_OF)  # no injected failure this time: MSFT is forecast too
    assert again.run_id == first_run.run_id
    docs = _forecast_docs(settings, again.run_id)
    assert len(docs) == 5 * (24 + 24 + 7 + 7)  # 5 targets (range too) of BTC, ETH, AAPL, MSFT; nothing doubled
    assert len({(d["symbol"], d["target"], d["timestamp"]) for d in docs}) == len(docs)
    latest = store.latest_run(es_client(settings), settings)
    assert latest["run_id"] == again.run_id and latest["forecasted"] == 4 and latest["skipped"] == 1


def test_a_dying_worker_fails_its_symbols_only(settings: Settings) -> None:
    report = run_forecast(
        settings, symbols=["ETH/USD", "BTC/USD", "AAPL"], as_of=AS_OF, compute=FailOn(frozenset({"AAPL"}), how="exit")
    )
    statuses = {r.symbol: r.status for r in report.symbols}
    assert statuses == {"ETH/USD": "ok", "BTC/USD": "ok", "AAPL": "failed"}, report.symbols
    failed = next(r for r in report.symbols if r.symbol == "AAPL")
    assert "Ray task failed" in failed.reason
    stored = store.run_records(es_client(settings), settings, report.run_id, "symbol")
    assert {d["symbol"]: d["status"] for d in stored} == statuses


def test_cli_prints_the_summary_and_plots_every_symbol(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(
        "forecast", "--symbol", "BTC/USD", "--symbol", "AAPL", "--as-of", "2026-11-11T00:00Z", "--plot", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Next 1 days per symbol" in result.stdout and "Cross-validation" in result.stdout
    assert "complete" in result.stdout
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == ["AAPL.png", "BTC-USD.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000 for p in pngs)
    shown = run_cli("forecast", "show")
    assert shown.returncode == 0 and "forecast run " in shown.stdout, shown.stdout + shown.stderr


def test_cli_rejects_bad_input_with_a_clear_message(settings: Settings) -> None:
    bad_time = run_cli("forecast", "--as-of", "yesterday-ish")
    assert bad_time.returncode == 1 and "is not a time" in bad_time.stderr
    off_hour = run_cli("forecast", "--as-of", "2026-11-11T00:30Z")
    assert off_hour.returncode == 1 and "must be on the hour" in off_hour.stderr
    bad_symbol = run_cli("forecast", "--symbol", "not a symbol")
    assert bad_symbol.returncode == 1 and "not ticker symbols" in bad_symbol.stderr
    unknown = run_cli("forecast", "show", "--run-id", "nope")
    assert unknown.returncode == 1 and "no forecast run 'nope'" in unknown.stderr


def test_every_n_minutes_survives_elasticsearch_being_away_and_runs_until_sigterm(
    settings: Settings, stack_dir: Path
) -> None:
    from urllib.parse import urlsplit

    from tests.support.tcp_proxy import TcpProxy

    now = pd.Timestamp.now(tz="UTC").floor("h")
    es = es_client(settings)
    bars = synthetic_bars(CRYPTO, now - pd.Timedelta(days=12), now, "daily_cycle", seed=5)
    bulk(es, bar_actions(settings.elasticsearch.indices.bars_1h, "SOL/USD", bars), refresh="wait_for")
    target = urlsplit(settings.elasticsearch.url)
    log_path = stack_dir / "forecast-every.log"
    # Elasticsearch is away when the schedule starts: the first run fails, the job goes on and retries
    with (
        TcpProxy(target.hostname or "127.0.0.1", target.port or 9200, forwarding=False) as proxy,
        log_path.open("w") as log,
    ):
        env = {**os.environ, **settings_env({"elasticsearch": {"url": f"http://127.0.0.1:{proxy.port}"}})}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ray_app", "forecast", "--every", "1", "-s", "SOL/USD"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        # the run's cut-off is the hour it starts in (this one, or the next if the hour turns meanwhile)
        run_ids = [store.run_id_for(settings, now + pd.Timedelta(hours=k), ["SOL/USD"]) for k in (0, 1)]
        try:
            deadline = time.monotonic() + 120
            while "retrying in" not in log_path.read_text():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
            assert proxy.refused > 0
            proxy.forwarding = True
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                found = es.options(ignore_status=404).mget(
                    index=settings.elasticsearch.indices.forecast_runs, ids=run_ids
                )
                if any(doc.get("found") and doc["_source"]["status"] == "complete" for doc in found["docs"]):
                    break
                assert proc.poll() is None, log_path.read_text()
                time.sleep(1)
            else:
                pytest.fail("no complete scheduled run within 180 s of Elasticsearch coming back")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text()
    assert "forecast run failed" in text and "is the stack up" in text and "next run in 1 min" in text


def test_as_a_ray_job(settings: Settings, forecast_env: dict[str, str]) -> None:
    ray_cli = Path(sys.executable).with_name("ray")
    result = subprocess.run(
        [
            str(ray_cli),
            "job",
            "submit",
            "--address",
            settings.ray.dashboard_url,
            "--runtime-env-json",
            json.dumps({"env_vars": forecast_env}),
            "--",
            "python",
            "-m",
            "ray_app",
            "forecast",
            "--symbol",
            "ETH/USD",
            "--as-of",
            "2026-11-11T00:00Z",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout.lower() and "ETH/USD" in result.stdout
    run_id = store.run_id_for(settings, AS_OF, ["ETH/USD"])
    run = es_client(settings).get(index=settings.elasticsearch.indices.forecast_runs, id=run_id)["_source"]
    assert run["status"] == "complete" and run["forecasted"] == 1


def test_a_past_run_is_scored_against_the_bars_that_came_after(
    settings: Settings, first_run: RunReport, forecast_env: dict[str, str]
) -> None:
    """Bars arriving after the cut-off score the run: MASE beside naive's, coverage, direction; rewritten as more
    hours pass, complete at the horizon's end, never doubled."""
    import numpy as np

    from ray_app.forecast.evaluation import evaluate
    from ray_app.forecast.series import bars_frame

    es = es_client(settings)
    index, bars_index = settings.elasticsearch.indices.forecast_evaluations, settings.elasticsearch.indices.bars_1h
    realized = synthetic_bars(CRYPTO, AS_OF, AS_OF + pd.Timedelta(hours=24), "random_walk", seed=1, price=101)
    bulk(es, bar_actions(bars_index, "ETH/USD", realized.iloc[:10]), refresh="wait_for")
    first = {(e.symbol, e.target): e for e in evaluate(settings, run_ids=[first_run.run_id])}
    # BTC/USD has the 3 late bars of the fixture, ETH/USD the 10 just written; AAPL's horizon has no bar yet
    assert {key[0] for key in first} == {"BTC/USD", "ETH/USD"}
    assert {e.elapsed_hours for (s, _), e in first.items() if s == "ETH/USD"} == {10}
    assert {e.elapsed_hours for (s, _), e in first.items() if s == "BTC/USD"} == {3}
    assert not any(e.complete for e in first.values())

    # the same numbers, computed here from the stored forecast and the bars
    rows = store.run_forecasts(es, settings, first_run.run_id, "ETH/USD")
    train = bars_frame(store.load_bars(es, settings, ["ETH/USD"], AS_OF - pd.Timedelta(days=12), AS_OF)["ETH/USD"])
    for target in TARGETS:
        forecast = rows[rows["target"] == target].set_index("timestamp").sort_index().iloc[:10]
        actual = realized[target].iloc[:10].to_numpy()
        y = train[target].to_numpy()
        scale = np.abs(np.diff(y)).mean()
        got = first[("ETH/USD", target)]
        assert got.mase == pytest.approx(np.abs(actual - forecast["value"].to_numpy()).mean() / scale, rel=1e-9)
        assert got.naive_mase == pytest.approx(np.abs(actual - y[-1]).mean() / scale, rel=1e-9)
        inside = (actual >= forecast["lo_80"].to_numpy()) & (actual <= forecast["hi_80"].to_numpy())
        assert got.coverage_80 == pytest.approx(inside.mean())
        assert got.beats_naive == (got.model != "Naive" and got.mase < got.naive_mase * (1 - 1e-9))
    ranged = first[("ETH/USD", "range")]  # volatility: the hourly range, 100 x ln(high / low)
    actual_range = 100 * np.log(realized["high"].iloc[:10].to_numpy() / realized["low"].iloc[:10].to_numpy())
    train_range = 100 * np.log(train["high"].to_numpy() / train["low"].to_numpy())
    range_rows = rows[rows["target"] == "range"].set_index("timestamp").sort_index().iloc[:10]["value"].to_numpy()
    range_scale = np.abs(np.diff(train_range)).mean()
    assert ranged.mase == pytest.approx(np.abs(actual_range - range_rows).mean() / range_scale, rel=1e-9)
    assert ranged.naive_mase == pytest.approx(np.abs(actual_range - train_range[-1]).mean() / range_scale, rel=1e-9)
    assert ranged.coverage_80 is None and ranged.coverage_95 is None  # no intervals, so no coverage (not 0%)
    close = first[("ETH/USD", "close")]
    threshold = settings.recommend.rules.move_threshold_pct
    end_change = 100 * (rows[rows["target"] == "close"]["value"].iloc[-1] / train["close"].iloc[-1] - 1)
    expected_direction = "up" if end_change >= threshold else "down" if end_change <= -threshold else "flat"
    moves = 100 * (realized["close"].iloc[:10].to_numpy() / train["close"].iloc[-1] - 1)
    realized_directions = np.where(moves >= threshold, "up", np.where(moves <= -threshold, "down", "flat"))
    assert close.direction == expected_direction
    assert close.direction_hit_rate == pytest.approx((realized_directions == expected_direction).mean())

    # the rest of the horizon arrives: the same documents are rewritten, now complete
    bulk(es, bar_actions(bars_index, "ETH/USD", realized.iloc[10:]), refresh="wait_for")
    result = run_cli("forecast", "evaluate", "--run-id", first_run.run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Forecasts vs what happened" in result.stdout and "24/24" in result.stdout
    docs = [
        hit["_source"]
        for hit in es.search(index=index, query={"term": {"run_id": first_run.run_id}}, size=100)["hits"]["hits"]
    ]
    # 2 symbols x 5 targets (high, low, close, volume, range); ETH/USD's 3 extremes, scored now its horizon is over
    assert len(docs) == 13 and len({(d["symbol"], d["target"]) for d in docs}) == 13
    assert all(d["complete"] and d["elapsed_hours"] == 24 for d in docs if d["symbol"] == "ETH/USD")
    eth = es.get(index=settings.elasticsearch.indices.forecast_runs, id=f"{first_run.run_id}|ETH/USD")["_source"]
    happened = {
        "highest_price": realized["high"].max(),
        "lowest_price": realized["low"].min(),
        "highest_volume": realized["volume"].max(),
    }
    scored = {d["target"]: d for d in docs if d["symbol"] == "ETH/USD" and d["target"] in happened}
    assert set(scored) == set(happened)
    for extreme, value in happened.items():
        got = scored[extreme]
        assert got["realized"] == pytest.approx(value) and got["median"] == pytest.approx(eth[extreme])
        assert got["above_median"] == (value > eth[extreme])
        assert got["inside_80"] == (eth[f"{extreme}_lo_80"] <= value <= eth[f"{extreme}_hi_80"])
        assert got["pinball"] >= 0 and got["naive_pinball"] >= 0

    # and as a Ray job, the same command
    ray_cli = Path(sys.executable).with_name("ray")
    job = subprocess.run(
        [
            str(ray_cli),
            "job",
            "submit",
            "--address",
            settings.ray.dashboard_url,
            "--runtime-env-json",
            json.dumps({"env_vars": forecast_env}),
            "--",
            "python",
            "-m",
            "ray_app",
            "forecast",
            "evaluate",
            "--run-id",
            first_run.run_id,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, job.stdout + job.stderr
    assert "succeeded" in job.stdout.lower()
    assert es.count(index=index, query={"term": {"run_id": first_run.run_id}})["count"] == 13


def test_a_symbols_complete_forecast_is_never_hidden_nor_served_in_part(settings: Settings) -> None:
    """What Serve answers per symbol through a subset run, a driver that dies mid-write, a symbol that fails, and a
    re-run of a run id that dies while rewriting: always the newest complete forecast, never part of one."""
    from elasticsearch.helpers import bulk as es_bulk

    from serve_deployments.forecast_reader import ForecastReader

    es = es_client(settings)
    uncached = settings.model_copy(update={"serve": settings.serve.model_copy(update={"cache_ttl_s": 0})})

    def current() -> dict[str, dict]:
        return {row["symbol"]: row for row in ForecastReader(uncached).symbols()}

    def rows(symbol: str) -> list[dict]:
        return ForecastReader(uncached).forecast(symbol)

    full = run_forecast(settings, as_of=AS_OF + pd.Timedelta(hours=1))
    served = {symbol: rows(symbol) for symbol in ("BTC/USD", "ETH/USD", "AAPL")}
    assert all(served.values()) and {current()[s]["run_id"] for s in served} == {full.run_id}

    # a subset run: BTC/USD moves to it, every other symbol keeps the full run's forecast
    subset = run_forecast(settings, symbols=["BTC/USD"], as_of=AS_OF + pd.Timedelta(hours=2))
    now = current()
    assert now["BTC/USD"]["run_id"] == subset.run_id
    assert now["ETH/USD"]["run_id"] == now["AAPL"]["run_id"] == full.run_id
    assert rows("ETH/USD") == served["ETH/USD"] and rows("AAPL") == served["AAPL"]
    btc = rows("BTC/USD")

    def half_written(run: store.RunContext, status: str) -> None:
        """A newer run's driver that died with BTC/USD half written (its record left `writing`, or `failed`)."""
        store.write_run(es, settings, run, {"status": "running", "started_at": now_iso()})
        store.write(es, [store.symbol_action(settings, run, "BTC/USD", {"status": status})])
        page = es.search(
            index=settings.elasticsearch.indices.forecasts,
            size=10_000,
            query={"bool": {"filter": [{"term": {"run_id": subset.run_id}}, {"term": {"symbol": "BTC/USD"}}]}},
        )
        docs = [hit["_source"] for hit in page["hits"]["hits"]]
        es_bulk(
            es,
            [
                {
                    "_index": settings.elasticsearch.indices.forecasts,
                    "_id": f"{run.run_id}|{d['symbol']}|{d['target']}|{d['timestamp']}",
                    "_source": {**d, "run_id": run.run_id, "value": d["value"] * 2},
                }
                for d in docs[: len(docs) // 2]
            ],
            refresh="wait_for",
        )
        es.indices.refresh(index=settings.elasticsearch.indices.forecast_runs)

    for status in ("writing", "failed"):
        half_written(store.RunContext(f"died-{status}", AS_OF + pd.Timedelta(hours=3)), status)
        assert current()["BTC/USD"]["run_id"] == subset.run_id, status
        assert rows("BTC/USD") == btc, status

    # a re-run of the subset run id that dies while rewriting BTC/USD: its earlier rows are no longer whole, so
    # the symbol's previous complete forecast (the full run's) is served, not a mix
    again = store.RunContext(subset.run_id, AS_OF + pd.Timedelta(hours=2))
    store.write(es, [store.symbol_action(settings, again, "BTC/USD", {"status": "writing"})])
    es.indices.refresh(index=settings.elasticsearch.indices.forecast_runs)
    assert current()["BTC/USD"]["run_id"] == full.run_id
    assert rows("BTC/USD") == served["BTC/USD"]
    # and once the re-run completes, it is current again
    assert run_forecast(settings, symbols=["BTC/USD"], as_of=AS_OF + pd.Timedelta(hours=2)).run_id == subset.run_id
    assert current()["BTC/USD"]["run_id"] == subset.run_id and rows("BTC/USD") == btc
