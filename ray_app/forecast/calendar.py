"""When a symbol trades: which hourly bars belong to its series, and the hours a forecast covers.

Stocks are modelled over the regular US session, 09:30-16:00 America/New_York on weekdays. Hourly bars start on
the hour, so a session has 7 of them (the 09:00 bar holds 09:30-10:00, the 15:00 bar 15:00-16:00) and a "day" of
the series is 7 steps; bars outside the session (extended-hours trades) are left out and counted. There is no
holiday calendar: a weekday without a single bar in the history is taken as a holiday and left out, and future
holidays get forecasts like any weekday. Crypto trades every hour of every day: 24 steps a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ray_app.markets import SESSION_FIRST_BAR_HOUR, SESSION_LAST_BAR_HOUR, SESSIONS_PER_WEEK, MarketHours
from ray_app.schemas import is_crypto

NEW_YORK = ZoneInfo("America/New_York")
HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class Market(MarketHours):
    """The trading calendar of a kind of symbol, on UTC hour starts (its counts: ``ray_app.markets``)."""

    def in_session(self, hours: pd.DatetimeIndex) -> np.ndarray:
        """Which UTC hour starts are bars of the series."""
        if self.name == "crypto":
            return np.ones(len(hours), dtype=bool)
        local = hours.tz_convert(NEW_YORK)
        return np.asarray(
            (local.weekday < 5) & (local.hour >= SESSION_FIRST_BAR_HOUR) & (local.hour <= SESSION_LAST_BAR_HOUR)
        )

    def session_day(self, hours: pd.DatetimeIndex) -> np.ndarray:
        """The trading day each hour belongs to (New York date for stocks, UTC date for crypto)."""
        zone = NEW_YORK if self.name == "stock" else "UTC"
        return np.asarray(hours.tz_convert(zone).normalize().tz_localize(None))

    def slots_between(self, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        """Every bar hour from `first` to `last` (both included) on trading days."""
        hours = pd.date_range(first, last, freq=HOUR, tz="UTC")
        return hours[self.in_session(hours)]

    def next_slots(self, after: pd.Timestamp, count: int) -> pd.DatetimeIndex:
        """The `count` bar hours that follow `after`."""
        # a week of calendar hours holds 35 stock bars; ask for enough weeks at once
        span_hours = count * (24 * 7) // (self.bars_per_day * SESSIONS_PER_WEEK) + 24 * 7
        hours = pd.date_range(after + HOUR, periods=span_hours, freq=HOUR, tz="UTC")
        return hours[self.in_session(hours)][:count]


STOCK = Market("stock")
CRYPTO = Market("crypto")


def market_of(symbol: str) -> Market:
    return CRYPTO if is_crypto(symbol) else STOCK
