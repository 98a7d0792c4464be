"""The two kinds of market the platform knows, in numbers: how many hourly bars a trading day has, how many hours a
horizon of calendar days covers, how many trading days a window of calendar days holds. The settings check
(``ray_app.config``) and the forecast calendar (``ray_app.forecast.calendar``) both read them from here.

Stocks are modelled over the regular US session, 09:30-16:00 America/New_York on weekdays: 7 hourly bars a session
(the 09:00 bar holds 09:30-10:00), 5 sessions a week. Crypto trades every hour of every day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ray_app.schemas import is_crypto

SESSION_FIRST_BAR_HOUR = 9  # New York hour of a stock session's first bar (09:30 open)
SESSION_LAST_BAR_HOUR = 15  # New York hour of its last bar (16:00 close)
SESSIONS_PER_WEEK = 5


@dataclass(frozen=True)
class MarketHours:
    """A kind of market's trading hours, counted."""

    name: Literal["stock", "crypto"]

    @property
    def bars_per_day(self) -> int:
        """Hourly bars in one trading day: the season length of a series."""
        return SESSION_LAST_BAR_HOUR - SESSION_FIRST_BAR_HOUR + 1 if self.name == "stock" else 24

    def horizon_steps(self, days: int) -> int:
        """Hourly steps in ``days`` calendar days: 24 a day for crypto, 7 per session and 5 sessions a week for
        stocks."""
        if self.name == "crypto":
            return days * 24
        return math.ceil(days * SESSIONS_PER_WEEK / 7) * self.bars_per_day

    def trading_days(self, calendar_days: float) -> float:
        """About how many trading days ``calendar_days`` hold (weekdays only for stocks)."""
        return calendar_days if self.name == "crypto" else calendar_days * SESSIONS_PER_WEEK / 7


STOCK_HOURS = MarketHours("stock")
CRYPTO_HOURS = MarketHours("crypto")


def market_hours(symbol: str) -> MarketHours:
    return CRYPTO_HOURS if is_crypto(symbol) else STOCK_HOURS


def default_cv_step(horizon: int) -> int:
    """Cross-validation origins half a horizon apart (overlapping windows): twice the evidence from the same
    history."""
    return max(1, math.ceil(horizon / 2))


def hours_needed(market: MarketHours, horizon_days: int, cv_windows: int, cv_step_hours: int | None) -> int:
    """The hourly bars a forecast needs: its cross-validation windows of a horizon each, plus two days to fit on."""
    horizon = market.horizon_steps(horizon_days)
    step = cv_step_hours or default_cv_step(horizon)
    return horizon + (cv_windows - 1) * step + 2 * market.bars_per_day


def hours_held(market: MarketHours, lookback_days: float) -> int:
    """The hourly bars a window of ``lookback_days`` calendar days holds, about."""
    return int(market.trading_days(lookback_days)) * market.bars_per_day
