"""Market alerts (``alerts:``): conditions on the live market data, each a rule Prometheus evaluates on the monitor's
per-symbol gauges (``ray_app.market_alerts``) and Alertmanager delivers, and the same rule for Grafana."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ray_app.config.base import _Section

AlertKind = Literal[
    "price_above",  # the last price (a price-setting trade's, Alpaca's conditions) above `value`
    "price_below",
    "move_pct",  # the last price moved by `value` % or more (negative: fell by) against its value `window_s` ago
    "rsi_above",  # the latest 1-minute bar's RSI above `value` (0-100)
    "rsi_below",
    "bollinger_break",  # the last price outside the latest 1-minute bar's Bollinger bands
    "signal_change",  # the recommendation's signal (buy / hold / sell) changed within `window_s`
    "outside_forecast_80",  # the last price outside the 80% interval the latest forecast gave for this hour's close
]
NEEDS_VALUE = {"price_above", "price_below", "move_pct", "rsi_above", "rsi_below"}


class MarketAlertRule(_Section):
    """One market alert: a condition on every symbol it names, how long it must hold, how loud it is."""

    # the alert's name in Prometheus and Alertmanager (a metric-name spelling)
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    when: AlertKind
    symbols: list[str] = Field(default_factory=list)  # empty: every symbol of `symbols`
    value: float | None = None  # the level, the move in %, the RSI threshold
    window_s: int = Field(default=900, ge=60, le=7 * 86400)  # move_pct and signal_change look this far back
    for_s: int = Field(default=0, ge=0, le=86400)  # the condition must hold this long before the alert fires
    # the alert stays firing this long after the condition ends (a price wandering around a level alerts once)
    keep_firing_s: int = Field(default=0, ge=0, le=86400)
    severity: Literal["page", "warning", "info"] = "info"

    @model_validator(mode="after")
    def _value_fits_the_kind(self) -> MarketAlertRule:
        if self.when in NEEDS_VALUE and self.value is None:
            raise ValueError(f"{self.when} needs a value (the level, the move in %, the RSI)")
        if self.when not in NEEDS_VALUE and self.value is not None:
            raise ValueError(f"{self.when} takes no value")
        if self.when in {"rsi_above", "rsi_below"} and not 0 < (self.value or 0) < 100:
            raise ValueError("an RSI threshold lies between 0 and 100")
        if self.when in {"price_above", "price_below"} and not (self.value or 0) > 0:
            raise ValueError("a price level is a positive number")
        if self.when == "move_pct" and not (-100 < (self.value or 0) < 1000 and self.value):
            raise ValueError("a move is a percentage, not 0, above -100: 2 = up 2% or more, -2 = down 2% or more")
        if self.when in {"move_pct", "signal_change"} and self.for_s >= self.window_s:
            raise ValueError(f"for_s must be shorter than window_s, or {self.when} could never hold that long")
        return self


class MarketAlertSettings(_Section):
    """The market alerts; names unique."""

    rules: list[MarketAlertRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> MarketAlertSettings:
        names = [rule.name for rule in self.rules]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"rule names must be unique: {twice} appear more than once")
        return self
