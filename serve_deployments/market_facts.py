"""The facts a recommendation is built from, and the documented rules that turn them into a signal and a sentiment.

Facts (from the hourly bars and the latest forecast run):

- ``last_price``: the close of the newest hourly bar (``last_bar_at``);
- ``change_24h_pct``: that close against the close of the newest bar at least 24 h older, in %;
- ``realized_volatility_24h_pct``: sqrt(sum of squared hourly log returns over the last 24 h) x 100;
- ``forecast_close`` / ``forecast_change_pct``: the forecast close at the horizon's last hour, and its change
  against ``last_price``; ``range_7d_low`` / ``range_7d_high``: the forecast medians of the horizon's lowest and
  highest price (ray_app/forecast/extremes.py: calibrated, the realized extreme beyond each about half the time),
  ``range_7d_low_lo_80`` / ``range_7d_high_hi_80``: the outer ends of their 80% intervals (a 10% chance each of
  going beyond); ``forecast_hourly_range_pct``: the volatility forecast, the mean hourly range in % of the price;
- ``close_model`` and ``close_beats_naive``: the model behind the close forecast and whether it beat naive in
  cross-validation.

Rules (thresholds in ``recommend.rules``):

- forecast direction: ``up`` if forecast_change_pct >= +move_threshold_pct, ``down`` if <= -move_threshold_pct,
  else ``flat``;
- signal: ``buy`` when up, ``sell`` when down, ``hold`` when flat, and ``hold`` whenever the close model did
  not beat naive (with ``require_beats_naive``): a forecast no better than "tomorrow = today" says nothing;
- sentiment (the recent past, not the forecast): ``bullish`` if change_24h_pct >= +trend_threshold_pct,
  ``bearish`` if <= -trend_threshold_pct, else ``neutral`` (also when there is no bar 24 h back).

Not investment advice: the rules are a transparent summary of a statistical forecast.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ray_app.config.serve import SignalRules
from ray_app.documents import Direction, Judgement, MarketFacts, Sentiment, Signal
from ray_app.times import iso

VOLATILITY_WINDOW = pd.Timedelta(hours=24)


class NoBars(LookupError):
    """The symbol has no hourly bars (HTTP 404)."""


def _pct(new: float, old: float) -> float:
    return (new - old) / old * 100.0


def price_facts(bars: list[dict[str, Any]]) -> tuple[pd.Timestamp, float, float | None, float | None]:
    """(last bar time, last close, 24 h change %, 24 h realized volatility %) from hourly bars, newest first."""
    frame = pd.DataFrame(bars)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame = frame.sort_values("timestamp")
    last = frame.iloc[-1]
    cut = last["timestamp"] - VOLATILITY_WINDOW
    before = frame[frame["timestamp"] <= cut]
    change = _pct(last["close"], before.iloc[-1]["close"]) if not before.empty else None
    # returns ending inside the last 24 h, starting from the last bar at or before the cut when there is one
    window = frame[frame["timestamp"] >= (before.iloc[-1]["timestamp"] if not before.empty else cut)]
    returns = [math.log(b / a) for a, b in zip(window["close"], window["close"][1:], strict=False) if a > 0 and b > 0]
    volatility = math.sqrt(sum(r * r for r in returns)) * 100.0 if returns else None
    return last["timestamp"], float(last["close"]), change, volatility


def direction_of(change_pct: float, rules: SignalRules) -> Direction:
    if change_pct >= rules.move_threshold_pct:
        return "up"
    if change_pct <= -rules.move_threshold_pct:
        return "down"
    return "flat"


def build_facts(
    symbol: str,
    bars: list[dict[str, Any]],
    close_rows: list[dict[str, Any]],
    symbol_doc: dict[str, Any],
    close_beats_naive: bool,
    run: dict[str, Any],
    rules: SignalRules,
) -> MarketFacts:
    """Facts from the newest hourly bars, the run's close forecast (rows by hour), its symbol document (7-day
    range) and whether the close model beat naive in cross-validation."""
    if not bars:
        raise NoBars(f"{symbol} has no hourly bars yet")
    last_at, last_price, change, volatility = price_facts(bars)
    final = close_rows[-1]
    forecast_change = _pct(final["close"], last_price)
    return MarketFacts(
        symbol=symbol,
        last_bar_at=iso(last_at),
        last_price=last_price,
        change_24h_pct=change,
        realized_volatility_24h_pct=volatility,
        run_id=run["run_id"],
        forecast_as_of=run["as_of"],
        forecast_end=final["timestamp"],
        forecast_close=final["close"],
        forecast_change_pct=forecast_change,
        forecast_direction=direction_of(forecast_change, rules),
        range_7d_low=symbol_doc.get("lowest_price"),
        range_7d_high=symbol_doc.get("highest_price"),
        range_7d_low_lo_80=symbol_doc.get("lowest_price_lo_80"),
        range_7d_high_hi_80=symbol_doc.get("highest_price_hi_80"),
        forecast_hourly_range_pct=symbol_doc.get("range_pct_mean"),
        close_model=final.get("close_model", "unknown"),
        close_beats_naive=close_beats_naive,
    )


def judge(facts: MarketFacts, rules: SignalRules) -> Judgement:
    move = f"forecast close {facts.forecast_change_pct:+.2f}% by {facts.forecast_end}"
    if rules.require_beats_naive and not facts.close_beats_naive:
        signal: Signal = "hold"
        why = (
            "it is the naive forecast: no model beat naive in cross-validation"
            if facts.close_model == "Naive"
            else f"{facts.close_model} did not beat naive in cross-validation"
        )
        signal_rule = f"{move}, but {why} -> hold"
    else:
        signal = {"up": "buy", "down": "sell", "flat": "hold"}[facts.forecast_direction]  # type: ignore[assignment]
        bound = rules.move_threshold_pct
        compare = {"up": f">= +{bound:g}%", "down": f"<= -{bound:g}%", "flat": f"within +-{bound:g}%"}
        signal_rule = f"{move} {compare[facts.forecast_direction]} -> {signal}"
    change = facts.change_24h_pct
    trend = rules.trend_threshold_pct
    if change is None:
        sentiment: Sentiment = "neutral"
        sentiment_rule = "no bar 24 h before the last one -> neutral"
    else:
        sentiment = "bullish" if change >= trend else "bearish" if change <= -trend else "neutral"
        compare_trend = {"bullish": f">= +{trend:g}%", "bearish": f"<= -{trend:g}%", "neutral": f"within +-{trend:g}%"}
        sentiment_rule = f"24 h change {change:+.2f}% {compare_trend[sentiment]} -> {sentiment}"
    return Judgement(signal=signal, signal_rule=signal_rule, sentiment=sentiment, sentiment_rule=sentiment_rule)


def _number(value: float | None, pattern: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, pattern)


def prompt_for(facts: MarketFacts, judgement: Judgement) -> str:
    """The language model's prompt: the facts and the rule-based verdict, ending where its comment begins."""
    return (
        f"Market report for {facts.symbol} at {pd.Timestamp(facts.last_bar_at):%Y-%m-%d %H:%M} UTC.\n"
        f"Last price: {facts.last_price:.2f}. 24-hour change: {_number(facts.change_24h_pct, '+.2f')}%. "
        f"24-hour realized volatility: {_number(facts.realized_volatility_24h_pct, '.2f')}%.\n"
        f"7-day forecast ({facts.close_model}): the close goes {facts.forecast_direction} to "
        f"{facts.forecast_close:.2f} ({facts.forecast_change_pct:+.2f}%); the week's low near "
        f"{_number(facts.range_7d_low, '.2f')} and high near {_number(facts.range_7d_high, '.2f')} (80% bounds "
        f"{_number(facts.range_7d_low_lo_80, '.2f')} to {_number(facts.range_7d_high_hi_80, '.2f')}).\n"
        f"Signal: {judgement.signal}. Sentiment: {judgement.sentiment}.\n"
        "Analyst comment:"
    )


def chat_prompt_for(facts: MarketFacts, judgement: Judgement) -> str:
    """The facts in plain words for an instruct model's user message: few numbers, rounded, since a small model
    garbles long strings of figures (the full figures stay in the answer's facts)."""

    def moved(change: float | None, when: str) -> str:
        if change is None:
            return f"There is no price from {when} to compare with."
        return f"It {'rose' if change >= 0 else 'fell'} {abs(change):.1f}% {when}."

    if facts.forecast_direction == "flat" or not facts.close_beats_naive:
        outlook = "The 7-day forecast expects little change" + (
            "." if facts.close_beats_naive else ": no model beat the naive forecast."
        )
    else:
        verb = "rise" if facts.forecast_direction == "up" else "fall"
        outlook = f"The 7-day forecast expects it to {verb} about {abs(facts.forecast_change_pct):.1f}%."
    week = (
        f" This week's low and high are forecast near {facts.range_7d_low:.2f} and {facts.range_7d_high:.2f}."
        if facts.range_7d_low is not None and facts.range_7d_high is not None
        else ""
    )
    return (
        f"{facts.symbol}. {moved(facts.change_24h_pct, 'over the last day')} {outlook}{week} "
        f"Signal: {judgement.signal}. Mood: {judgement.sentiment}."
    )
