"""`make run`'s bring-up: the whole pipeline on the embedded local default, stage by stage in the order data flows
(stack, smoke, ingest, stream, forecast, scored forecast, serve, charts, the live parts), each stage's result handed
to a :class:`View` as it comes (the CLI renders it: ``ray_app.cli.demo``), and a report of how long it took.

A second bring-up on a running pipeline redoes nothing that is done: the simulator's live job already feeds Kafka,
the stream is running, this hour's forecast is complete, the Serve app of the same version is left as it is (and
the recommendations the live recommender made within its period are shown, not made again), each live part runs at
most once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ray_app.config import Settings

Spinner = Callable[[str], None]


class View(Protocol):
    """What the bring-up says as it goes. Every method gets a stage's typed result; none decides anything."""

    def begin(self, stage: str, text: str) -> None:
        """A stage starts: what it is about to do, in a line."""

    def note(self, text: str) -> None:
        """A fact a person should know (a source's note, a stage that had nothing to do)."""

    def problem(self, stage: str, text: str) -> None:
        """A stage could not do its part, in plain words; the bring-up goes on with the next one."""

    def busy(self, text: str) -> AbstractContextManager[Spinner]:
        """Around a wait: a line whose text the stage updates."""

    def stack(self, report: Any) -> None:
        """The local stack is up (``ray_app.stack.manager.UpReport``)."""

    def smoke(self, results: list[Any]) -> None:
        """The round trip through every engine (``ray_app.smoke.CheckResult`` each)."""

    def ingest_watch(self) -> Any:
        """The live counters' display around the ingest run (``ray_app.ingest.Watch``), or None."""

    def ingest(self, report: Any, topics: dict[str, tuple[int, int]]) -> None:
        """What the ingest run delivered (``IngestReport``) and each topic's (partitions, messages)."""

    def stream(self, submission_id: str, submitted: bool, lags: list[Any], documents: dict[str, int]) -> None:
        """The streaming job runs and has caught up with Kafka; documents per index."""

    def forecasting(self, symbols: list[str]) -> AbstractContextManager[Callable[[Any], None]]:
        """Around a forecast run: a callback that hears each symbol's report as it finishes."""

    def forecast_run(self, run: dict[str, Any], plot_dir: Path | None) -> None:
        """A forecast run as stored (the ``forecast-runs`` document)."""

    def evaluations(self, evaluations: list[Any]) -> None:
        """Past runs scored against what happened (``ForecastEvaluationDocument`` each)."""

    def serve(self, deployed: Any, summary_url: str | None, summary: Any, result: dict[str, Any]) -> None:
        """The Serve app answers (``Deployed``): a forecast summary and every symbol's recommendation."""

    def track_record(self, written: int, scored: int, records: list[dict[str, Any]]) -> None:
        """Back-dated recommendations written, outcomes scored, and each symbol's track record."""

    def charts(self, paths: list[Path]) -> None:
        """PNGs of the main Grafana panels, from the dashboards' own queries."""

    def parts(self, started: list[Any]) -> None:
        """The live parts submitted as Ray jobs, or found running (``ray_app.live.jobs.Started`` each)."""


@dataclass
class BringUpReport:
    """How the bring-up went: each stage's verdict, when the first forecast was there, how long all of it took."""

    stages: dict[str, bool] = field(default_factory=dict)
    first_forecast_s: float = 0.0
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)  # each step, in the order they ran

    @property
    def ok(self) -> bool:
        return all(self.stages.values())


def _simulator_job_running(settings: Settings) -> bool:
    from ray_app.live.jobs import is_running, job_states
    from ray_app.ray_cluster import JobApiError

    try:
        return is_running(job_states(settings).get("simulator"))
    except (JobApiError, RuntimeError, ConnectionError):
        return False


def stack_stage(settings: Settings, view: View) -> None:
    """The local engines up (Kafka, Elasticsearch, a Ray head), topics and index templates in place. Raises
    ``ActionableError`` when they cannot be: nothing after this can run."""
    from ray_app.stack import manager

    with view.busy("starting the local stack") as spinner:
        report = manager.up(settings, progress=spinner)
    view.stack(report)


def smoke_stage(settings: Settings, view: View) -> bool:
    """The round trip through every engine; True when every engine answered."""
    from ray_app.smoke import run_smoke

    with view.busy("round trip through Kafka, Elasticsearch and Ray"):
        results = run_smoke(settings)
    view.smoke(results)
    return all(result.ok for result in results)


def ingest_stage(settings: Settings, view: View) -> bool:
    """Feed Kafka with the simulator's history; a second bring-up goes on from where the first left off."""
    from ray_app.ingest import IngestFailed, IngestOptions, IngestSource, run_ingest
    from ray_app.kafka_topics import topic_sizes

    if _simulator_job_running(settings):
        view.note(
            "ingest: the live simulator job is running (a previous `make run`) and feeds Kafka from where the "
            "history ended; nothing to add"
        )
        return True
    view.begin(
        "ingest",
        f"simulating {settings.simulator.history_days:g} days of trades for "
        f"{', '.join(settings.symbols)} (seed {settings.simulator.seed}, source=simulator)",
    )
    try:
        report = run_ingest(
            settings, IngestOptions(source=IngestSource.SIMULATE), on_message=view.note, watch=view.ingest_watch()
        )
    except IngestFailed as exc:
        view.note(exc.report.line())
        view.problem("ingest", str(exc))
        return False
    sizes = topic_sizes(settings, [t.name for t in settings.kafka.topics.all()]) if report.ok else {}
    view.ingest(report, sizes)
    return report.ok


def stream_stage(settings: Settings, config_file: Path | None, view: View, timeout_s: float = 1800) -> None:
    """The streaming job as a Ray job, waited on until it has caught up with Kafka; it keeps running. Raises
    ``StreamControlError`` when it cannot start or catch up."""
    from ray_app.es_indices import document_counts
    from spark_jobs.control import submit, wait_caught_up

    view.begin("stream", "Spark on Ray (RayDP) -> Elasticsearch; the job keeps running (`ray-app stream stop`)")
    submission_id, submitted = submit(settings, str(config_file) if config_file else None)
    with view.busy("waiting for the streaming job") as spinner:

        def tick(state: Any, lags: list[Any]) -> None:
            behind = ", ".join(f"{lag.query} {'-' if lag.messages is None else f'{lag.messages:,}'}" for lag in lags)
            spinner(f"streaming job {state.value.lower()}; messages behind Kafka: {behind or '-'}")

        lags = wait_caught_up(settings, submission_id, timeout_s, on_tick=tick)
    view.stream(submission_id, submitted, lags, document_counts(settings))


def _complete_run(settings: Settings, as_of: pd.Timestamp) -> dict[str, Any] | None:
    """A complete run of this cut-off, if one exists: a second bring-up redoes nothing."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.es_indices import es_client
    from ray_app.forecast import store

    try:
        return store.complete_run(es_client(settings), settings, as_of)
    except (ApiError, ESConnectionError):
        return None


def _forecast(settings: Settings, view: View, as_of: pd.Timestamp | None, plot_dir: Path | None) -> str:
    from ray_app.es_indices import es_client
    from ray_app.forecast.runner import run_forecast

    symbols = list(settings.symbols)
    with view.forecasting(symbols) as on_symbol:
        report = run_forecast(settings, symbols=symbols, as_of=as_of, on_symbol=on_symbol)
    run = es_client(settings).get(index=settings.elasticsearch.indices.forecast_runs, id=report.run_id)["_source"]
    view.forecast_run(run, plot_dir)
    return report.status


def forecast_stage(settings: Settings, view: View) -> bool:
    """Forecast every symbol from the bars the stream wrote, this hour's cut-off; one plot per symbol."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.forecast.runner import cut_off

    if (done := _complete_run(settings, cut_off())) is not None:
        view.note(
            f"forecast: run {done['run_id']} (cut-off {done['as_of']}) is complete already: not run again "
            "(`ray-app forecast show`)"
        )
        return True
    forecast = settings.forecast
    view.begin(
        "forecast",
        f"the last {forecast.lookback_days:g} days of hourly bars -> the next "
        f"{forecast.horizon_days} days, {', '.join(forecast.models)} cross-validated against naive, "
        "one Ray task per symbol",
    )
    try:
        return _forecast(settings, view, None, settings.state_dir / "forecast-plots") in {"complete", "partial"}
    except (ApiError, ESConnectionError, ConnectionError) as exc:
        view.problem("forecast", str(exc))
        return False


def scored_forecast_stage(settings: Settings, view: View) -> bool:
    """The same forecast from a cut-off one horizon back, scored against the bars that arrived since: its whole
    horizon has passed, so every target and the week's extremes are scored, and the Forecasting dashboard's "vs
    what happened" panels have real numbers on the first run."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.forecast.evaluation import evaluate
    from ray_app.forecast.runner import cut_off

    back_days = settings.forecast.horizon_days
    as_of = cut_off() - pd.Timedelta(days=back_days)
    if (done := _complete_run(settings, as_of)) is not None:
        view.note(
            f"forecast: run {done['run_id']} (cut-off {done['as_of']}) is complete already: not run again "
            "(`ray-app forecast show`)"
        )
        return True
    view.begin(
        "forecast, scored",
        f"the same forecast from a cut-off {back_days} days back (its whole horizon has passed) "
        f"({as_of:%Y-%m-%d %H:%M} UTC), then scored against the bars since "
        "(`ray-app forecast evaluate`)",
    )
    try:
        from ray_app.forecast.runner import run_forecast

        report = run_forecast(settings, symbols=list(settings.symbols), as_of=as_of)
        from ray_app.es_indices import es_client
        from ray_app.forecast.report import run_line

        run = es_client(settings).get(index=settings.elasticsearch.indices.forecast_runs, id=report.run_id)["_source"]
        view.note(run_line(run))
        evaluations = evaluate(settings, run_ids=[report.run_id])
        view.evaluations(evaluations)
        return len(evaluations) > 0
    except (ApiError, ESConnectionError, ConnectionError) as exc:
        view.problem("forecast, scored", str(exc))
        return False


def _fresh_recommendations(settings: Settings, http: Any, symbols: list[str]) -> list[dict[str, Any]] | None:
    """The stored recommendation of every symbol, when each was generated within the live recommender's period
    (``live.recommend_every_s``): a second bring-up shows them instead of generating them again. None otherwise."""
    latest = {row["symbol"]: row for row in http.get(f"{settings.serve.url}/recommendations/latest").json()}
    oldest = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=settings.live.recommend_every_s)
    if not symbols or any(
        symbol not in latest or pd.Timestamp(latest[symbol]["generated_at"]) < oldest for symbol in symbols
    ):
        return None
    return [latest[symbol] for symbol in symbols]


def serve_stage(settings: Settings, view: View) -> str | None:
    """Deploy the Serve app, read a forecast summary and every symbol's recommendation (also indexed). Returns the
    symbol the charts show (the first one forecast), None when the app did not answer."""
    import httpx

    from serve_deployments.auth import API_KEY_HEADER, api_key
    from serve_deployments.deploy import DeployFailed, deploy

    view.begin("serve", "Ray Serve app (FastAPI ingress, Forecast and Recommender deployments, autoscaled)")
    try:
        deployed = deploy(settings, timeout=600, keep_unchanged=True)
    except DeployFailed as exc:
        view.problem("serve", str(exc))
        return None
    url = settings.serve.url
    # the key goes with every request: reads need it too when the app listens beyond the loopback
    http = httpx.Client(headers={API_KEY_HEADER: api_key(settings)}, timeout=60)
    try:
        symbols = [row for row in http.get(f"{url}/symbols").json() if row["status"] == "ok"]
        summary_url = f"{url}/forecast/{symbols[0]['slug']}/summary" if symbols else None
        summary = http.get(summary_url).json() if summary_url else None
        stored = None if deployed.redeployed else _fresh_recommendations(settings, http, [s["symbol"] for s in symbols])
        if stored is not None:
            result = {"recommendations": stored, "written": 0, "index": None, "stored": True}
        else:
            recorded = http.post(f"{url}/recommendations", timeout=600)
            recorded.raise_for_status()
            result = recorded.json()
    except httpx.HTTPError as exc:
        view.problem("serve", f"the app did not answer as expected: {exc}")
        return None
    finally:
        http.close()
    view.serve(deployed, summary_url, summary, result)
    return symbols[0]["symbol"] if symbols else settings.symbols[0]


def track_record_stage(settings: Settings, view: View) -> bool:
    """Recommendations at every hour since the scored run's cut-off (from that run, the template text), then every
    stored recommendation scored at the horizons that have passed: a track record on the first run."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.es_indices import es_client
    from ray_app.forecast.runner import cut_off
    from serve_deployments.track_record import backdate_recommendations, score_recommendations, track_record

    view.begin(
        "track record",
        "recommendations back-dated to every hour since the scored run's cut-off, then every stored one scored "
        "at 1 h, 24 h and 7 days",
    )
    try:
        run = _complete_run(settings, cut_off() - pd.Timedelta(days=settings.forecast.horizon_days))
        es = es_client(settings)
        written = backdate_recommendations(es, settings, run["run_id"]) if run else 0
        scored = score_recommendations(es, settings)
        view.track_record(written, scored, [track_record(es, settings, symbol) for symbol in settings.symbols])
        return scored > 0
    except (ApiError, ESConnectionError, ConnectionError) as exc:
        view.problem("track record", str(exc))
        return False


def charts_stage(settings: Settings, view: View, symbol: str) -> bool:
    """PNGs of the main Grafana panels from the dashboards' own queries."""
    from elasticsearch import ApiError
    from elasticsearch import ConnectionError as ESConnectionError

    from ray_app.dashboards.render import render_panels
    from ray_app.es_indices import es_client

    try:
        charts = render_panels(es_client(settings), settings, symbol, settings.state_dir / "dashboard-charts")
    except (ApiError, ESConnectionError, OSError, ValueError, KeyError) as exc:
        view.problem("charts", str(exc))
        return False
    view.charts(charts)
    return True


def live_stage(settings: Settings, config_file: Path | None, view: View) -> bool:
    """Leave the pipeline moving: the live parts as Ray jobs (each at most once)."""
    from ray_app.live.jobs import start_parts
    from ray_app.ray_cluster import JobApiError

    view.begin("live", "the parts that keep the pipeline moving, each a Ray job (the dashboard's Jobs view)")
    try:
        started = start_parts(settings, str(config_file) if config_file else None)
    except (JobApiError, RuntimeError, ConnectionError) as exc:
        view.problem("live", f"the parts could not be submitted: {exc}")
        return False
    view.parts(started)
    return True


def bring_up(settings: Settings, config_file: Path | None, view: View) -> BringUpReport:
    """The pipeline, stage by stage, in the order data flows. A stage that fails is reported and the next one is
    tried; the stack and the stream raise (``ActionableError``, ``StreamControlError``): nothing after them runs."""
    began = time.monotonic()
    report = BringUpReport()
    step_began = began

    def timed(step: str) -> None:
        nonlocal step_began
        now = time.monotonic()
        report.step_seconds[step] = now - step_began
        step_began = now

    stack_stage(settings, view)
    timed("stack")
    report.stages["smoke"] = smoke_stage(settings, view)
    timed("smoke")
    report.stages["ingest"] = ingest_stage(settings, view)
    timed("ingest")
    stream_stage(settings, config_file, view)
    timed("stream (caught up)")
    report.stages["forecast"] = forecast_stage(settings, view)
    timed("forecast")
    report.first_forecast_s = time.monotonic() - began
    report.stages["forecast, scored"] = scored_forecast_stage(settings, view)
    timed("forecast, scored")
    charted = serve_stage(settings, view)
    report.stages["serve"] = charted is not None
    timed("serve")
    report.stages["track record"] = track_record_stage(settings, view)
    timed("track record")
    report.stages["charts"] = charted is not None and charts_stage(settings, view, charted)
    timed("charts")
    report.stages["live"] = live_stage(settings, config_file, view)
    timed("live")
    report.seconds = time.monotonic() - began
    return report
