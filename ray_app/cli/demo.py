"""`ray-app demo` and `ray-app smoke`: render the bring-up (``ray_app.operations.bring_up``) as it goes, then the
closing report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ray_app.cli.common import console, err_console, fail, settings_of
from ray_app.config import Settings
from ray_app.errors import ActionableError
from ray_app.operations.bring_up import BringUpReport


def smoke_table(results: list[Any]) -> Table:
    table = Table(title="smoke round trip", title_justify="left")
    for column in ("engine", "result", "detail", "seconds"):
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(
            result.engine,
            "[green]ok[/]" if result.ok else "[red]FAILED[/]",
            escape(result.detail),
            f"{result.seconds:.2f}",
        )
    return table


def smoke(ctx: typer.Context) -> None:
    """Produce and consume keyed Kafka messages, index and search a document, run a Ray job; print a report."""
    from ray_app.smoke import run_smoke

    with console.status("round trip through Kafka, Elasticsearch and Ray"):
        results = run_smoke(settings_of(ctx))
    console.print(smoke_table(results))
    if not all(result.ok for result in results):
        raise typer.Exit(1)


class DemoView:
    """The bring-up on the terminal: a line per stage, its tables, spinners and progress bars."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def begin(self, stage: str, text: str) -> None:
        console.print(f"\n{stage}: {escape(text)}", highlight=False)

    def note(self, text: str) -> None:
        console.print(escape(text), highlight=False, soft_wrap=True)

    def problem(self, stage: str, text: str) -> None:
        err_console.print(f"[red]{stage}:[/] {escape(text)}")

    @contextmanager
    def busy(self, text: str) -> Iterator[Callable[[str], None]]:
        with console.status(text) as spinner:
            yield lambda update: spinner.update(update)

    def stack(self, report: Any) -> None:
        from ray_app.cli.stack import show_stack

        show_stack(self.settings, report)

    def smoke(self, results: list[Any]) -> None:
        console.print(smoke_table(results))

    def ingest_watch(self) -> Any:
        from ray_app.cli.ingest import progress_line

        return progress_line

    def ingest(self, report: Any, topics: dict[str, tuple[int, int]]) -> None:
        console.print(report.line(), highlight=False, soft_wrap=True)
        table = Table(title="Kafka topics", title_justify="left")
        for column in ("topic", "partitions", "messages"):
            table.add_column(column, justify="left" if column == "topic" else "right")
        for name, (partitions, messages) in topics.items():
            table.add_row(name, str(partitions), f"{messages:,}")
        console.print(table)

    def stream(self, submission_id: str, submitted: bool, lags: list[Any], documents: dict[str, int]) -> None:
        from ray_app.cli.stream import document_table, lag_text

        console.print(
            f"streaming job {submission_id} "
            + ("submitted" if submitted else "is already running (not started again)")
            + f"; logs: ray job logs --address {self.settings.ray.dashboard_url} -f "
            f"{submission_id}",
            highlight=False,
        )
        console.print(f"caught up with Kafka ({lag_text(lags)} messages behind)", highlight=False)
        console.print(document_table(documents, "Elasticsearch documents per index"))

    @contextmanager
    def forecasting(self, symbols: list[str]) -> Iterator[Callable[[Any], None]]:
        from ray_app.cli.forecast import symbol_line

        columns = (SpinnerColumn(), TextColumn("forecasting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task("symbols", total=len(symbols))

            def on_symbol(symbol_report: Any) -> None:
                progress.console.print(symbol_line(symbol_report), highlight=False)
                progress.advance(task)

            yield on_symbol

    def forecast_run(self, run: dict[str, Any], plot_dir: Path | None) -> None:
        from ray_app.cli.forecast import print_run
        from ray_app.es_indices import es_client

        print_run(self.settings, es_client(self.settings), run, plot_dir)

    def evaluations(self, evaluations: list[Any]) -> None:
        from ray_app.cli.forecast import print_evaluations

        print_evaluations(evaluations)

    def serve(self, deployed: Any, summary_url: str | None, summary: Any, result: dict[str, Any]) -> None:
        from ray_app.cli.serve import print_deployed, print_recommendation

        print_deployed(self.settings, deployed)
        if summary_url:
            console.print(f"\nGET {summary_url}", highlight=False)
            console.print_json(data=summary)
        url = self.settings.serve.url
        if result.get("stored"):
            every = self.settings.live.recommend_every_s
            console.print(
                f"\nGET {url}/recommendations/latest: each generated within the last {every / 60:g} min (the live "
                "recommender's period), so not generated again",
                highlight=False,
            )
        else:
            console.print(f"\nPOST {url}/recommendations (GET {url}/recommendation/<symbol> for one)", highlight=False)
        for answer in result["recommendations"]:
            print_recommendation(answer)
        if result.get("stored"):
            generated = ", ".join(f"{a['symbol']} {a['generated_at'][11:19]}" for a in result["recommendations"])
            console.print(f"\nrecommend: stored, generated at (UTC) {generated}", highlight=False)
        else:
            console.print(f"\nrecommend: {result['written']} written to '{result['index']}'", highlight=False)

    def track_record(self, written: int, scored: int, records: list[dict[str, Any]]) -> None:
        from ray_app.cli.serve import print_track_record
        from serve_deployments.track_record import overall

        console.print(
            f"\ntrack record: {written} back-dated recommendations, {scored} outcomes (1 h, 24 h, 7 d) "
            f"(GET {self.settings.serve.url}/recommendation/<symbol>/track-record)",
            highlight=False,
        )
        recommendations = sum(record["recommendations"] for record in records)
        outcomes = sum(record["outcomes"] for record in records)
        print_track_record(
            {
                "symbol": "all symbols",
                "recommendations": recommendations,
                "outcomes": outcomes,
                "rows": overall(records),
            }
        )
        for record in records:
            if record["cumulative"]:
                last = record["cumulative"][-1]
                console.print(
                    f"  {record['symbol']}: following the 1 h signals {last['follow_return_pct']:+.2f}% vs holding "
                    f"{last['hold_return_pct']:+.2f}% over {len(record['cumulative'])} hours",
                    highlight=False,
                )

    def charts(self, paths: list[Path]) -> None:
        console.print(
            f"\ncharts of the Grafana panels (same queries): {', '.join(str(c) for c in paths)}", highlight=False
        )
        console.print(
            "Grafana: the `docker run` in docs/grafana.md (bound to 127.0.0.1, a password of its own, the "
            "Serve API key from RAY_APP_SERVE__API_KEY) -> http://127.0.0.1:3000, folder ray-app",
            highlight=False,
            soft_wrap=True,
        )

    def parts(self, started: list[Any]) -> None:
        from ray_app.cli.live import print_started

        print_started(started)


def closing_report(settings: Settings, report: BringUpReport) -> None:
    """How long it took, where each engine answers, how to watch what keeps running and how to stop it."""
    steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in report.step_seconds.items())
    console.print(
        f"\nfirst forecast {report.first_forecast_s:.0f} s after the start; all of it {report.seconds:.0f} s"
        f"\nsteps: {steps}"
        "\nstill running: the simulator's live trades, the stream, indicators, hourly forecasts and their scoring, "
        "recommendations every 15 min, the Serve app, the monitor"
        f"\nwatch: ray-app status   |   Ray dashboard {settings.ray.dashboard_url} (Jobs, Serve, Metrics)   |   "
        f"Prometheus {settings.prometheus.url}   |   Serve {settings.serve.url}/docs   |   Grafana: docs/grafana.md "
        "(Trading, Forecasting, Pipeline health)"
        "\nstop all of it: ray-app down (in order: jobs, Serve, stack; data, checkpoints and the simulator's progress "
        f"are kept in {settings.state_dir}, and `make run` goes on from there)",
        highlight=False,
    )


def demo(ctx: typer.Context) -> None:
    """The whole pipeline on the embedded local default: stack up, a round trip through every engine, simulated
    trades into Kafka, the streaming job into Elasticsearch, forecasts on Ray, the Serve app; then a report with
    charts of the Grafana panels; it leaves the pipeline moving (`ray-app status`; `ray-app down` stops it)."""
    from ray_app.operations.bring_up import bring_up
    from spark_jobs.control import StreamControlError

    settings = settings_of(ctx)
    try:
        report = bring_up(settings, ctx.find_root().obj, DemoView(settings))
    except ActionableError as exc:
        fail(exc.one_line())
    except StreamControlError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print(
            "\n[yellow]interrupted.[/] What is up keeps running; stop it with: ray-app down (data is kept)"
        )
        raise typer.Exit(130) from None
    closing_report(settings, report)
    if not report.ok:
        raise typer.Exit(1)
