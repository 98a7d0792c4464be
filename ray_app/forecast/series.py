"""Hourly bars of one symbol -> regular series (one value per trading hour) for each forecast target.

An hour of the trading calendar without a bar had no trade: its volume is 0 and its high, low and close are the
previous close (the price did not move). The share of such filled hours is reported, and a symbol with too many
of them, or too few hours for cross-validation, is skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ray_app.forecast.calendar import Market

BAR_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class SymbolHistory:
    """The regular hourly series of one symbol: what the models are trained on."""

    symbol: str
    market: Market
    hours: pd.DatetimeIndex  # UTC bar starts, one per trading hour, no gaps
    values: dict[str, np.ndarray]  # target -> one value per hour
    filled: np.ndarray  # True where the hour had no bar and was filled
    outside_session: int = 0  # bars left out: extended hours, weekends (stocks)
    holidays: int = 0  # weekdays without any bar, left out (stocks)

    @property
    def points(self) -> int:
        return len(self.hours)

    @property
    def gap_fraction(self) -> float:
        return float(self.filled.mean()) if len(self.filled) else 0.0

    @property
    def last_hour(self) -> pd.Timestamp:
        return self.hours[-1]


@dataclass(frozen=True)
class Skipped:
    """A symbol that is not forecast in this run, and why (shown in the run report)."""

    symbol: str
    reason: str
    details: dict[str, float | int | str] = field(default_factory=dict)


def bars_frame(rows: list[dict]) -> pd.DataFrame:
    """Bar documents (as stored in bars-1h) -> a frame indexed by UTC bar start, sorted, one row per hour."""
    if not rows:
        return pd.DataFrame(columns=list(BAR_COLUMNS[1:]), index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    frame = pd.DataFrame(rows, columns=list(BAR_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame = frame.drop_duplicates("timestamp", keep="last").set_index("timestamp").sort_index()
    return frame.astype("float64")


def build_history(
    symbol: str,
    bars: pd.DataFrame,
    market: Market,
    targets: list[str],
    *,
    min_points: int,
    max_gap_fraction: float,
) -> SymbolHistory | Skipped:
    """Regular series of `targets` from the symbol's hourly bars, or the reason it cannot be forecast."""
    if bars.empty:
        return Skipped(symbol, "no hourly bars in the training window")
    in_session = market.in_session(bars.index)
    outside = int((~in_session).sum())
    bars = bars[in_session]
    if bars.empty:
        return Skipped(symbol, f"all {outside} hourly bars are outside the {market.name} session")

    grid = market.slots_between(bars.index[0], bars.index[-1])
    holidays = 0
    if market.name == "stock":
        # a weekday without any bar is a holiday (or a halt), not 7 hours of an unchanged price
        traded_days = set(market.session_day(bars.index))
        days = market.session_day(grid)
        keep = np.fromiter((day in traded_days for day in days), dtype=bool, count=len(days))
        holidays = len(set(days[~keep]))
        grid = grid[keep]

    regular = bars.reindex(grid)
    filled = regular["close"].isna().to_numpy()
    close = regular["close"].ffill()
    regular = regular.assign(
        close=close,
        open=regular["open"].fillna(close),
        high=regular["high"].fillna(close),
        low=regular["low"].fillna(close),
        volume=regular["volume"].fillna(0.0),
    )
    gap_fraction = float(filled.mean())
    if gap_fraction > max_gap_fraction:
        return Skipped(
            symbol,
            f"{int(filled.sum())} of {len(grid)} trading hours ({gap_fraction:.0%}) had no bar; "
            f"the limit is {max_gap_fraction:.0%} (forecast.max_gap_fraction)",
            {"points": len(grid), "gap_fraction": gap_fraction},
        )
    if len(grid) < min_points:
        return Skipped(
            symbol,
            f"{len(grid)} trading hours of history; cross-validation and a forecast need at least {min_points} "
            "(lower forecast.cv_windows or forecast.horizon_days, or wait for more data)",
            {"points": len(grid)},
        )
    return SymbolHistory(
        symbol=symbol,
        market=market,
        hours=grid,
        values={target: regular[target].to_numpy(dtype="float64") for target in targets},
        filled=filled,
        outside_session=outside,
        holidays=holidays,
    )
