"""`ray-app ingest`: market data into Kafka from the simulator, Alpaca's websocket, Alpaca's REST API or a recording."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from ray_app.cli.common import console, err_console, fail, settings_of
from ray_app.ingest.producer import Counters
from ray_app.schemas import STORED_TIMEFRAMES


def ingest(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--source", "-s", help="simulate | alpaca | backfill | replay")] = "simulate",
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: settings' symbols).")] = None,
    history_days: Annotated[float | None, typer.Option(help="simulate: days of history to make first.")] = None,
    live: Annotated[bool, typer.Option("--live", help="simulate: then go on in real time (paced by --speed).")] = False,
    trades_per_minute: Annotated[float | None, typer.Option(help="simulate: average trades/min per symbol.")] = None,
    seed: Annotated[int | None, typer.Option(help="simulate: random seed (same seed, same trades, every run).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="simulate: go on from where earlier runs left each symbol.")
    ] = True,
    duration: Annotated[float | None, typer.Option(help="alpaca, simulate --live: stop after N seconds.")] = None,
    speed: Annotated[float, typer.Option(help="replay, simulate --live: x real time; 0 = as fast as possible.")] = 1.0,
    record: Annotated[Path | None, typer.Option(help="alpaca: also write the raw websocket frames here.")] = None,
    days: Annotated[float | None, typer.Option(help="backfill: days of bars (default alpaca.backfill_days).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="backfill: 1Min | 1Hour (what the stream stores).")] = None,
    file: Annotated[Path | None, typer.Option(help="replay: the recording to play.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Live progress line.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="As `ray-app --config`.")] = None,
) -> None:
    """Market data into Kafka (topics trades, bars; bad records to dead-letters). Ctrl-C flushes and exits."""
    from ray_app.ingest import IngestFailed, IngestOptions, IngestSource, KafkaUnreachable, run_ingest
    from ray_app.ingest.alpaca_stream import AlpacaStreamError
    from ray_app.ingest.backfill import BackfillError
    from ray_app.ingest.journal import JournalBusy

    if config:
        ctx.find_root().obj = config
    settings = settings_of(ctx)
    try:
        chosen = IngestSource(source)
    except ValueError:
        fail(f"--source must be one of {', '.join(s.value for s in IngestSource)} (got {source!r})", code=2)
    if timeframe is not None and timeframe not in STORED_TIMEFRAMES:
        fail(
            f"--timeframe must be {' or '.join(STORED_TIMEFRAMES)}, the bars the stream stores (got {timeframe!r})",
            code=2,
        )
    options = IngestOptions(
        source=chosen,
        symbols=[s.strip() for s in symbols.split(",") if s.strip()] if symbols else None,
        history_days=history_days,
        live=live,
        trades_per_minute=trades_per_minute,
        seed=seed,
        duration_s=duration,
        speed=speed,
        record=record,
        days=days,
        timeframe=timeframe,
        file=file,
        progress=progress,
        resume=resume,
    )
    try:
        report = run_ingest(
            settings, options, on_message=lambda text: err_console.print(escape(text)), watch=progress_line
        )
    except IngestFailed as exc:
        console.print(exc.report.line(), highlight=False)
        fail(f"ingest stopped: {exc}")
    except (AlpacaStreamError, BackfillError, KafkaUnreachable, JournalBusy, ValueError, OSError) as exc:
        fail(str(exc))
    # one line whatever the terminal's width: scripts and logs read it
    console.print(
        report.line() + (f"; recorded {report.recorded_frames} frames to {record}" if record else ""),
        highlight=False,
        soft_wrap=True,
    )
    if not report.ok:
        counters = report.counters
        fail(
            f"{counters.failed + counters.dropped + report.undelivered + report.kept} messages were not delivered"
            + (f": {counters.errors[:3]}" if counters.errors else "")
        )


@contextmanager
def progress_line(counters: Counters, label: str, console: Console | None = None) -> Iterator[None]:
    """A live line: messages/s, delivered, failed, dead letters, back-pressure waits, spilled records."""

    def render() -> Text:
        spill = f"  spilled {counters.spilled:,} (sent again {counters.replayed:,})" if counters.spilled else ""
        return Text(
            f"{label}: {counters.rate():,.0f} msg/s  produced {counters.produced:,}  delivered {counters.delivered:,}"
            f"  failed {counters.failed:,}  dead letters {counters.dead_letters:,}"
            f"  back-pressure waits {counters.backpressure_waits:,}{spill}"
        )

    console = console or Console(stderr=True)
    with Live(get_renderable=render, console=console, refresh_per_second=2, transient=False):
        yield
    if not console.is_terminal:
        console.line()  # a log gets the last state as a line of its own
