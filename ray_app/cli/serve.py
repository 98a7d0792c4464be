"""`ray-app serve`: deploy the Serve application on the cluster, show its status, stop it, print its config file."""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.markup import escape

from ray_app.cli.common import console, err_console, fail, settings_of
from ray_app.config import Settings
from serve_deployments.auth import API_KEY_HEADER, api_key

serve_app = typer.Typer(
    invoke_without_command=True,
    help="The Ray Serve application: forecast and recommendation endpoints over HTTP (see `serve_deployments/app.py`).",
)


@serve_app.callback()
def serve(
    ctx: typer.Context,
    timeout: Annotated[
        float, typer.Option(help="Give up waiting for the app to answer after this many seconds.")
    ] = 180,
    redeploy: Annotated[
        bool,
        typer.Option(
            help="Redeploy even when the running app has this version (same settings, key and code), which it "
            "otherwise keeps as it is, as `serve deploy` does with an unchanged config."
        ),
    ] = False,
) -> None:
    """Deploy (or update) the app on the Ray cluster and wait until it answers; it keeps running.

    Subcommands: `serve status`, `serve stop`, `serve config`."""
    if ctx.invoked_subcommand is not None:
        return
    deploy(settings_of(ctx), timeout, keep_unchanged=not redeploy)


def deploy(settings: Settings, timeout: float, keep_unchanged: bool = False) -> float:
    """Deploy the app (``serve_deployments.deploy``) and say so; returns the seconds it took."""
    from serve_deployments.deploy import DeployFailed
    from serve_deployments.deploy import deploy as deploy_app

    try:
        deployed = deploy_app(settings, timeout, keep_unchanged)
    except DeployFailed as exc:
        fail(str(exc))
    print_deployed(settings, deployed)
    return deployed.seconds


def print_deployed(settings: Settings, deployed) -> None:
    """The app runs: where, after how long, with which model (and why not the configured one)."""
    if deployed.note:
        console.print(f"[yellow]serve: {escape(deployed.note)}[/]", highlight=False)
    how = "after" if deployed.redeployed else "unchanged, not redeployed; checked in"
    console.print(
        f"serve: app '{settings.serve.app_name}' running at {deployed.url} (OpenAPI: {deployed.url}/docs) "
        f"{how} {deployed.seconds:.1f} s; recommendation model: {deployed.model}; health: {deployed.health}",
        highlight=False,
    )


def _text(status) -> str:
    return str(getattr(status, "value", status))


@serve_app.command("status")
def status(ctx: typer.Context) -> None:
    """Applications and deployments with their replica states (also in the Ray dashboard's Serve view)."""
    from ray import serve as ray_serve

    from ray_app.ray_cluster import connect

    connect(settings_of(ctx))
    for name, app in ray_serve.status().applications.items():
        console.print(f"{name}: {_text(app.status)}", highlight=False)
        for deployment, info in app.deployments.items():
            replicas = {_text(state): count for state, count in info.replica_states.items()}
            console.print(f"  {deployment}: {_text(info.status)} {replicas}", highlight=False)


@serve_app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Delete the app (Serve itself keeps running for other apps)."""
    from ray import serve as ray_serve

    from ray_app.ray_cluster import connect

    settings = settings_of(ctx)
    connect(settings)
    ray_serve.delete(settings.serve.app_name)
    console.print(f"deleted app '{settings.serve.app_name}'")


@serve_app.command("config")
def config(ctx: typer.Context) -> None:
    """Print the Serve config file for `serve deploy` (what configs/serve.yaml holds for the defaults)."""
    from serve_deployments.config_file import HEADER, serve_config

    console.print(
        HEADER + yaml.safe_dump(serve_config(settings_of(ctx)), sort_keys=False),
        end="",
        highlight=False,
        soft_wrap=True,
    )


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def print_recommendation(answer: dict[str, Any]) -> None:
    """One recommendation for people: the verdict with its rules, the facts, the model's text and what it is."""
    trained = "" if answer["model_is_trained"] else " [bold red](UNTRAINED TEST MODEL: the text is noise)[/]"
    change = answer["change_24h_pct"]
    console.print(
        f"\n[bold]{escape(answer['symbol'])}[/] at {answer['last_bar_at']}: [bold]{answer['signal'].upper()}[/], "
        f"sentiment {answer['sentiment']}\n"
        f"  signal:    {escape(answer['signal_rule'])}\n  sentiment: {escape(answer['sentiment_rule'])}\n"
        f"  last price {answer['last_price']:,.2f}; 24 h {'n/a' if change is None else f'{change:+.2f}%'}; "
        f"7-day low ~{_money(answer['range_7d_low'])}, high ~{_money(answer['range_7d_high'])} (80%: "
        f"{_money(answer.get('range_7d_low_lo_80'))} - {_money(answer.get('range_7d_high_hi_80'))}; run "
        f"{answer['run_id']})\n"
        f"  {escape(answer['model'])}{trained}: {escape(answer['text'])!r}\n"
        f"  text: {_text_source(answer)}",
        highlight=False,
    )


def _text_source(answer: dict[str, Any]) -> str:
    """Where the text came from and what was checked, in words."""
    claims = (
        f"{answer.get('text_claims', 0)} claims, each matched to the facts ({', '.join(answer.get('text_checks', []))})"
    )
    if answer.get("text_source") == "model":
        return f"the model's (attempt {answer.get('text_attempt')}); {claims}"
    refused = "; ".join(answer.get("text_rejected") or []) or "no model attempt"
    return f"the template from the facts ({claims}); refused: {escape(refused)}"


def print_track_record(record: dict[str, Any]) -> None:
    """A symbol's track record as a table: hit rate and mean returns per signal and horizon."""
    from rich.table import Table

    table = Table(
        title=f"{record['symbol']}: {record['outcomes']} outcomes of {record['recommendations']} recommendations"
    )
    for column in ("horizon", "signal", "scored", "hit rate", "hold band", "mean return", "following it"):
        table.add_column(column, justify="left" if column in {"horizon", "signal"} else "right")
    for row in record["rows"]:
        table.add_row(
            row["horizon"],
            row["signal"],
            str(row["scored"]),
            f"{row['hit_rate']:.0%}",
            f"+-{row['hold_band_pct']:.2f}%" if row["signal"] == "hold" else "-",
            f"{row['mean_return_pct']:+.3f}%",
            f"{row['mean_follow_return_pct']:+.3f}%",
        )
    console.print(table)
    if record.get("cumulative"):
        last = record["cumulative"][-1]
        console.print(
            f"  following the 1 h signals: {last['follow_return_pct']:+.2f}% vs holding "
            f"{last['hold_return_pct']:+.2f}% over {len(record['cumulative'])} hours",
            highlight=False,
        )


def recommend(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None, typer.Option("--symbol", "-s", help="Symbols (default: every forecast one).")
    ] = None,
    every: Annotated[float | None, typer.Option(help="Repeat every this many minutes (a periodic job).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the app's answer.")] = 300,
) -> None:
    """Ask the running Serve app for recommendations and write them to the `recommendations` index.

    Also a periodic Ray job: `ray job submit --working-dir . -- ray-app recommend --every 15`."""
    settings = settings_of(ctx)
    params = {"symbol": list(symbols or [])}  # repeated: ?symbol=AAPL&symbol=BTC-USD
    while True:
        try:
            response = httpx.post(
                f"{settings.serve.url}/recommendations",
                params=params,
                timeout=timeout,
                headers={API_KEY_HEADER: api_key(settings)},
            )
            problem = None if response.status_code == 200 else f"{response.status_code}: {response.text}"
        except httpx.HTTPError as exc:
            problem = f"no answer ({exc}); deploy the app with `ray-app serve`"
        if problem is None:
            result = response.json()
            for answer in result["recommendations"]:
                print_recommendation(answer)
            for skipped in result["skipped"]:
                console.print(f"{skipped['symbol']}: no recommendation (not forecast: {skipped['reason']})")
            console.print(f"\nrecommend: {result['written']} written to '{result['index']}'", highlight=False)
        elif every is None:
            fail(f"{settings.serve.url}/recommendations: {problem}")
        else:  # a periodic job outlives a restart of the app
            err_console.print(f"[red]recommend:[/] {settings.serve.url}/recommendations: {escape(problem)}")
        if every is None:
            return
        time.sleep(every * 60)
