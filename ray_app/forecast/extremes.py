"""The horizon's highest price, lowest price and highest hourly volume, forecast as what they are: extremes.

The maximum of hourly point forecasts is not a forecast of the maximum: with prices forecast as naive it is the
last close plus one hour's spread (the realized week's high went above it in 97% of hourly EURUSD windows). Each
extreme here is a distribution: its median, its 80% and 95% intervals, and the hour it most likely happens.

**Prices: the reflection principle, scaled by a volatility forecast, calibrated on the symbol's own history.**
For a driftless random walk in log price with variance ``V`` over the horizon, the running maximum ``M`` has
``P(M <= m) = 2 Phi(m / sqrt(V)) - 1`` (and the minimum mirrors it). The bars' highs and lows include each hour's
excursions, which the continuous walk includes too. The three steps:

1. ``V``: the horizon's variance, per step the larger of Parkinson's range estimate and the close-to-close
   variance (the latter catches a stock's overnight gaps), half from the whole training window and half from its
   last horizon (volatility clusters; a two-term HAR);
2. that forecast is itself uncertain: the spread ``s`` of ln(realized / forecast variance) at rolling origins of the
   symbol's history makes the distribution a lognormal scale mixture of the reflection law (fatter tails);
3. the normalised extremes (``ln(extreme / close) / sqrt(V)``) at every earlier origin of the history give
   empirical quantiles; they are blended with the mixture's by the evidence they hold (``n / (n + 16)``, ``n`` the
   number of independent horizons), which catches what the continuous walk misses (gaps that open below the
   close, skew).

The most likely hour follows the arcsine law of the time of a random walk's maximum, in variance time: the first
and the last hours of the horizon carry most mass, the more so the more volatile they are.

**Volume: a two-level bootstrap of the symbol's own days.** Log volume is a daily level plus the day's shape by
hour. Each simulated path takes the recent level (the last 3 days), one level shift drawn from the history's
day-to-day shifts (smoothed with Silverman's bandwidth, so a finite history does not cap the tails), and for each
future day the hourly shape of a random past day; the highest hour of each path gives the distribution and the hour
it most often lands on.

All of it is computed from the training series only (no I/O), deterministic for the same input (fixed seed).
The calibration on real data is in ``bench/forecast.py`` and docs/forecast.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)  # the 95% and 80% intervals' ends and the median
LEVEL_QUANTILES = {80: (0.1, 0.9), 95: (0.025, 0.975)}
OWN_HISTORY_PRIOR = 16  # independent horizons of evidence at which the history's quantiles weigh as much as theory
VOLUME_LEVEL_DAYS = 3
VOLUME_PATHS = 2000
_GAUSS_HERMITE = np.polynomial.hermite_e.hermegauss(21)
_Z_GRID = np.linspace(0.0, 12.0, 6001)


@dataclass(frozen=True)
class ExtremeForecast:
    """The forecast of one extreme over the horizon: median, interval bounds per level, most likely hour."""

    median: float
    bounds: dict[int, tuple[float, float]]  # level -> (lo, hi)
    at: pd.Timestamp  # the hour the extreme most likely happens
    at_probability: float  # the probability it happens in that hour

    @property
    def value(self) -> float:
        return self.median

    def quantiles(self) -> dict[float, float]:
        """Quantile level -> value (the median and each interval's ends)."""
        found = {0.5: self.median}
        for level, (lo_q, hi_q) in LEVEL_QUANTILES.items():
            if level in self.bounds:
                found[lo_q], found[hi_q] = self.bounds[level]
        return dict(sorted(found.items()))


def reflection_quantiles(vol_of_vol: float, quantiles: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """Quantiles of max(W_t, t <= 1) for a standard Brownian motion W whose variance is scaled by exp(N(0, s^2)):
    ``s = 0`` gives the reflection principle's ``Phi^-1((1 + q) / 2)``."""
    nodes, weights = _GAUSS_HERMITE
    weights = weights / weights.sum()
    scale = np.exp(max(vol_of_vol, 0.0) * nodes / 2)
    cdf = np.sum(weights[:, None] * (2 * norm.cdf(_Z_GRID[None, :] / scale[:, None]) - 1), axis=0)
    return np.interp(quantiles, cdf, _Z_GRID)


def _bar_variances(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bar: Parkinson's variance (ln(high/low)^2 / 4 ln 2) and the squared close-to-close log change."""
    tiny = np.finfo(float).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        parkinson = np.log(np.maximum(high, tiny) / np.maximum(low, tiny)) ** 2 / (4 * math.log(2))
    log_close = np.log(np.maximum(close, tiny))
    changes = np.diff(log_close, prepend=log_close[0]) ** 2
    return np.nan_to_num(parkinson), np.nan_to_num(changes)


class _StepVariance:
    """The per-step variance forecast at any origin of one history, from prefix sums (O(1) per origin)."""

    def __init__(self, parkinson: np.ndarray, changes: np.ndarray, horizon: int):
        self.parkinson = np.concatenate([[0.0], np.cumsum(parkinson)])
        self.changes = np.concatenate([[0.0], np.cumsum(changes)])
        self.horizon = horizon

    def _mean(self, sums: np.ndarray, start: int, end: int) -> float:
        return (sums[end] - sums[start]) / max(end - start, 1)

    def level(self, start: int, end: int) -> float:
        return max(self._mean(self.parkinson, start, end), self._mean(self.changes, start, end))

    def at(self, origin: int) -> float:
        """The forecast per-step variance after bar ``origin`` (bars 0..origin known)."""
        end = origin + 1
        return 0.5 * self.level(0, end) + 0.5 * self.level(max(0, end - self.horizon), end)


def _vol_of_vol(variance: _StepVariance, points: int, horizon: int) -> float:
    errors = []
    for origin in range(max(points // 3, 2), points - horizon, max(1, horizon // 4)):
        forecast, realized = variance.at(origin), variance.level(origin + 1, origin + 1 + horizon)
        if forecast > 0 and realized > 0:
            errors.append(math.log(realized / forecast))
    return float(np.std(errors)) if len(errors) > 1 else 0.0


def _own_normalised(
    variance: _StepVariance, log_extreme: np.ndarray, log_close: np.ndarray, horizon: int, upward: bool
) -> np.ndarray:
    """ln(extreme / close) / sqrt(V) at every origin of the history with a whole horizon after it."""
    found = []
    points = len(log_close)
    for origin in range(max(points // 3, 2), points - horizon):
        spread = math.sqrt(variance.at(origin) * horizon)
        if spread <= 0:
            continue
        window = log_extreme[origin + 1 : origin + 1 + horizon]
        move = window.max() - log_close[origin] if upward else log_close[origin] - window.min()
        found.append(move / spread)
    return np.array(found)


def _arcsine_hour(step_variance: np.ndarray) -> tuple[int, float]:
    """The step that most likely holds a random walk's maximum (or minimum), and its probability."""
    cumulative = np.cumsum(np.maximum(step_variance, 0.0))
    total = cumulative[-1] if len(cumulative) else 0.0
    if total <= 0:
        return len(step_variance) - 1, 1.0 / max(len(step_variance), 1)
    cdf = (2 / math.pi) * np.arcsin(np.sqrt(np.clip(cumulative / total, 0.0, 1.0)))
    mass = np.diff(np.concatenate([[0.0], cdf]))
    step = int(np.argmax(mass))
    return step, float(mass[step])


def _ordered(values: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(values)


def _forecast(values: np.ndarray, at: pd.Timestamp, probability: float) -> ExtremeForecast:
    lo95, lo80, median, hi80, hi95 = (float(v) for v in values)
    return ExtremeForecast(median, {80: (lo80, hi80), 95: (lo95, hi95)}, at, probability)


def price_extremes(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, hours: pd.DatetimeIndex, season: int
) -> tuple[ExtremeForecast, ExtremeForecast]:
    """The highest and the lowest price over the forecast ``hours``, from the training bars (oldest first)."""
    high, low, close = (np.asarray(a, dtype="float64") for a in (high, low, close))
    horizon, points = len(hours), len(close)
    tiny = np.finfo(float).tiny
    parkinson, changes = _bar_variances(high, low, close)
    variance = _StepVariance(parkinson, changes, horizon)
    step_variance = variance.at(points - 1)
    spread = math.sqrt(step_variance * horizon)
    theory = reflection_quantiles(_vol_of_vol(variance, points, horizon))
    log_close = np.log(np.maximum(close, tiny))
    last = float(log_close[-1])
    per_hour = (parkinson + changes)[-min(points, 20 * season) :]
    slots = (np.arange(len(per_hour)) - len(per_hour)) % season
    overall = float(per_hour.mean()) if len(per_hour) else 0.0
    hour_profile = np.array([per_hour[slots == s].mean() if (slots == s).any() else overall for s in range(season)])
    timing = hour_profile[np.arange(horizon) % season]
    results = []
    for upward, series in ((True, np.log(np.maximum(high, tiny))), (False, np.log(np.maximum(low, tiny)))):
        own = _own_normalised(variance, series, log_close, horizon, upward)
        independent = len(own) / horizon
        weight = independent / (independent + OWN_HISTORY_PRIOR)
        normalised = theory if len(own) == 0 else (1 - weight) * theory + weight * np.quantile(own, QUANTILES)
        moves = _ordered(normalised) * spread
        step, probability = _arcsine_hour(timing)
        prices = np.exp(last + moves) if upward else np.exp(last - moves[::-1])
        results.append(_forecast(prices, hours[step], probability))
    return results[0], results[1]


def volume_extreme(volume: np.ndarray, hours: pd.DatetimeIndex, season: int, seed: int = 0) -> ExtremeForecast:
    """The highest hourly volume over the forecast ``hours``, from the training volumes (oldest first)."""
    volume = np.maximum(np.asarray(volume, dtype="float64"), 0.0)
    horizon = len(hours)
    mean = float(volume.mean()) if len(volume) else 0.0
    if mean <= 0 or len(volume) < season:
        return _forecast(np.zeros(len(QUANTILES)), hours[-1], 1.0 / max(horizon, 1))
    floor = mean * 1e-3  # hours without a trade: ln(0) has no place in a log-normal day
    log_volume = np.log(volume + floor)
    days = len(log_volume) // season
    chunks = log_volume[len(log_volume) - days * season :].reshape(days, season)  # the last day ends the history
    means = chunks.mean(axis=1)
    shapes = chunks - means[:, None]
    lookback = min(VOLUME_LEVEL_DAYS, max(days - 1, 1))
    shifts = (
        np.array([means[d] - means[d - lookback : d].mean() for d in range(lookback, days)])
        if days > 1
        else np.zeros(1)
    )
    level = float(means[-lookback:].mean())
    rng = np.random.default_rng(seed)
    future_days = math.ceil(horizon / season)
    bandwidth = 1.06 * float(np.std(shifts)) * len(shifts) ** -0.2 if len(shifts) > 1 else 0.0
    shift = shifts[rng.integers(0, len(shifts), size=(VOLUME_PATHS, 1))] + rng.normal(0, bandwidth, (VOLUME_PATHS, 1))
    paths = level + shift[:, :, None] + shapes[rng.integers(0, days, size=(VOLUME_PATHS, future_days))]
    paths = paths.reshape(VOLUME_PATHS, -1)[:, :horizon]
    peaks = np.maximum(np.exp(paths.max(axis=1)) - floor, 0.0)
    when = np.bincount(paths.argmax(axis=1), minlength=horizon)
    step = int(np.argmax(when))
    return _forecast(_ordered(np.quantile(peaks, QUANTILES)), hours[step], float(when[step] / VOLUME_PATHS))


def pinball_loss(realized: float, quantiles: dict[float, float], floor: float) -> float:
    """Mean quantile (pinball) loss over the given levels, on 100 x ln(value) (a loss in percent of the value,
    comparable across symbols and prices); values are floored at ``floor`` > 0 first."""
    y = 100 * math.log(max(realized, floor))
    losses = []
    for tau, value in quantiles.items():
        diff = y - 100 * math.log(max(value, floor))
        losses.append(max(tau * diff, (tau - 1) * diff))
    return float(np.mean(losses))


def point_as_quantiles(value: float) -> dict[float, float]:
    """A point forecast read as a distribution: the same value at every quantile level (how the old rule is scored)."""
    return dict.fromkeys(QUANTILES, value)
