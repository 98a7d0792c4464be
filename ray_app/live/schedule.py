"""The scheduled work of the live platform, each a loop its Ray job runs until stopped (SIGTERM from `ray-app down`).

- forecaster: at every hour's start (``live.forecast_every_s``) a forecast of every symbol, unless a complete run for
  that cut-off exists already (the run id is the cut-off's, so `make run` again never doubles one), then the scoring
  of every run whose horizon has begun against the bars that arrived, and of every stored recommendation whose
  horizons (1 h, 24 h, 7 d) have passed (serve_deployments/track_record.py).
- recommender: every ``live.recommend_every_s``, every symbol's recommendation through the Serve app
  (POST /recommendations), which indexes them.

A failed round (Elasticsearch, Ray or Serve away) is retried with a backoff of 15 s doubling up to the schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pandas as pd

from ray_app.config import Settings
from ray_app.lifecycle import LoopReport, StopFlag

LOG = logging.getLogger(__name__)
SETTLE_S = 60  # after the hour: the last hourly bar is closed and in Elasticsearch


def retry_delay_s(failures: int, every_s: float) -> float:
    """After the n-th failure in a row: 15 s, 30 s, 60 s ... never longer than the schedule itself."""
    return min(15.0 * 2 ** (failures - 1), every_s)


def _loop(name: str, every_s: float, stop: StopFlag, work: Callable[[], float]) -> LoopReport:
    """Run ``work`` (which returns the seconds until its next round) until stopped, backing off after failures."""
    report = LoopReport(name)
    failures = 0
    while not stop.is_set():
        report.rounds += 1
        try:
            wait_s = work()
            failures = 0
        except Exception as exc:  # the next round tries again; a schedule outlives a restart of any engine
            report.failures += 1
            failures += 1
            wait_s = retry_delay_s(failures, every_s)
            LOG.warning(
                "%s: this round failed (%d in a row), retrying in %.0f s: %s: %s",
                name,
                failures,
                wait_s,
                type(exc).__name__,
                exc,
            )
        stop.wait(max(wait_s, 1.0))
    return report


def forecast_round(settings: Settings, now: pd.Timestamp | None = None) -> float:
    """This hour's forecast unless it is done, the scoring of due runs; seconds until the next round."""
    from ray_app.es_indices import es_client
    from ray_app.forecast import store
    from ray_app.forecast.evaluation import evaluate
    from ray_app.forecast.runner import cut_off, record_stored_run, run_forecast
    from serve_deployments.track_record import score_recommendations

    now = now or pd.Timestamp.now(tz="UTC")
    as_of = cut_off(now.to_pydatetime())
    done = store.complete_run(es_client(settings), settings, as_of)
    if done is not None:
        LOG.info("forecaster: run %s is complete already", done["run_id"])
        record_stored_run(settings, done)  # its durations are the latest run's, whoever ran it
    else:
        report = run_forecast(settings, as_of=as_of)
        LOG.info(
            "forecaster: run %s %s in %.0f s (%d of %d symbols)",
            report.run_id,
            report.status,
            report.seconds,
            report.count("ok"),
            len(report.symbols),
        )
    scored = evaluate(settings)
    LOG.info("forecaster: %d target evaluations written", len(scored))
    outcomes = score_recommendations(es_client(settings), settings)
    LOG.info("forecaster: %d recommendation outcomes written", outcomes)
    return next_round_in_s(as_of, now, pd.Timestamp.now(tz="UTC"), settings.live.forecast_every_s)


def next_round_in_s(as_of: pd.Timestamp, started: pd.Timestamp, now: pd.Timestamp, every_s: float) -> float:
    """Seconds from ``now`` until the round after the one that ``started`` with cut-off ``as_of``: ``every_s`` after
    its start, but never before the next hourly cut-off plus SETTLE_S (a forecast's cut-off is the hour: a second round
    within it would find its run complete and only score every past run again); at least 1 s (a round that ran late
    starts the next at once)."""
    next_round = max(
        started + pd.Timedelta(seconds=every_s),
        as_of + pd.Timedelta(hours=1) + pd.Timedelta(seconds=SETTLE_S),
    )
    return max((next_round - now).total_seconds(), 1.0)


def run_forecaster(settings: Settings, stop: StopFlag) -> LoopReport:
    """The forecaster part: this hour's forecast and the scoring of due runs, every ``live.forecast_every_s``."""
    return _loop("forecaster", settings.live.forecast_every_s, stop, lambda: forecast_round(settings))


def recommend_round(settings: Settings) -> float:
    import httpx

    from serve_deployments.auth import API_KEY_HEADER, api_key

    began = time.monotonic()
    answer = httpx.post(
        f"{settings.serve.url}/recommendations",
        headers={API_KEY_HEADER: api_key(settings)},
        timeout=(settings.serve.recommender.request_timeout_s or 600) + 30,
    )
    answer.raise_for_status()
    LOG.info("recommender: %s recommendations written", answer.json().get("written"))
    return settings.live.recommend_every_s - (time.monotonic() - began)


def run_recommender(settings: Settings, stop: StopFlag) -> LoopReport:
    """The recommender part: every symbol's recommendation through Serve, every ``live.recommend_every_s``."""
    return _loop("recommender", settings.live.recommend_every_s, stop, lambda: recommend_round(settings))
