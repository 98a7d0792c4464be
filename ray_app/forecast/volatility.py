"""Volatility as a forecast of its own: each hour's price range, from the bars, with naive and seasonal baselines.

What is forecastable in a market is the size of its moves, not their direction: volatility clusters (a wide hour
is followed by wide hours) and has a daily rhythm (wide at the open, narrow at midday). The target is the hourly
range in percent of the price, ``100 x ln(high / low)`` (Parkinson's estimator of an hour's volatility is this
range / sqrt(4 ln 2): several times more efficient than the close-to-close change). Candidates:

- ``Naive``: the last hour's range, held flat; ``SeasonalNaive``: the range one day earlier (the same hour);
- ``HAR``: the heterogeneous autoregression of realized volatility (Corsi, 2009) on the deseasonalised range: the
  horizon's mean level regressed on the last day's, the last week's and the whole window's mean levels (fitted by
  least squares on the symbol's own history), times the range's daily profile (its mean per hour of the day);
- ``GARCH``: GARCH(1,1) (statsforecast's ``garch_model``) on the deseasonalised hourly close-to-close log
  returns; its conditional variance path, mean-reverting to the long-run level, scales the range's daily profile.

Each candidate is cross-validated on the symbol's own history (the same rolling origins as every target) and
scored by MASE on the range and by QLIKE (``y/f - ln(y/f) - 1`` on squared ranges, the loss suited to variance;
hours with a zero range are left out, forecasts are floored at 1% of the training mean). The gate is the one every
target passes (:func:`~ray_app.forecast.models.choose_model`): a model is chosen only when its CV MASE is
``min_improvement`` below Naive's.

The chosen range path also gives the close a volatility-based interval: the per-hour close-to-close variance of
the training window by hour of the day, scaled by the forecast level, accumulated over the horizon (a random walk
whose variance has the forecast size). The close uses these bounds where they covered better in cross-validation
than the close model's own (:func:`close_interval_choice`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ray_app.forecast.models import NAIVE, SEASONAL_NAIVE, ModelScore, choose_model, mase, smape

RANGE = "range"
HAR, GARCH = "HAR", "GARCH"
VOLATILITY_MODELS = (HAR, GARCH, NAIVE, SEASONAL_NAIVE)
QLIKE_FLOOR = 0.01  # forecasts floored at this share of the training mean range (a zero forecast has no QLIKE)


def range_pct(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Each hour's range, 100 x ln(high / low), in percent of the price (0 where the hour did not move)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ranged = 100 * np.log(np.asarray(high, dtype="float64") / np.asarray(low, dtype="float64"))
    return np.where(np.isfinite(ranged) & (ranged > 0), ranged, 0.0)


def slot_of(start: int, count: int, season: int) -> np.ndarray:
    """The hour of the day (position in the season) of steps ``start .. start + count - 1`` of a series."""
    return np.arange(start, start + count) % season


def daily_profile(values: np.ndarray, season: int) -> np.ndarray:
    """Each hour of the day's mean, relative to the overall mean (1 everywhere for a flat or empty series)."""
    slots = slot_of(0, len(values), season)
    overall = float(values.mean()) if len(values) else 0.0
    if overall <= 0:
        return np.ones(season)
    means = np.array([values[slots == s].mean() if (slots == s).any() else overall for s in range(season)])
    return np.where(means > 0, means / overall, 1.0)


def _naive(ranges: np.ndarray, close: np.ndarray, horizon: int, season: int) -> np.ndarray:
    return np.full(horizon, ranges[-1])


def _seasonal_naive(ranges: np.ndarray, close: np.ndarray, horizon: int, season: int) -> np.ndarray:
    last_day = ranges[-season:] if len(ranges) >= season else np.resize(ranges, season)
    return np.resize(last_day, horizon)


def _window_mean(values: np.ndarray, end: int, length: int) -> float:
    return float(values[max(0, end - length + 1) : end + 1].mean())


def _har(ranges: np.ndarray, close: np.ndarray, horizon: int, season: int) -> np.ndarray:
    profile = daily_profile(ranges, season)
    level = ranges / profile[slot_of(0, len(ranges), season)]
    n, mean = len(level), float(level.mean())
    origins = range(5 * season - 1, n - horizon)
    predicted = mean
    if len(origins) >= 8:
        rows = np.array(
            [
                [1.0, _window_mean(level, t, season), _window_mean(level, t, 5 * season), level[: t + 1].mean()]
                for t in origins
            ]
        )
        target = np.array([level[t + 1 : t + 1 + horizon].mean() for t in origins])
        coefficients, *_ = np.linalg.lstsq(rows, target, rcond=None)
        now = np.array([1.0, _window_mean(level, n - 1, season), _window_mean(level, n - 1, 5 * season), mean])
        predicted = float(now @ coefficients)
    else:  # too little history to fit: the last week's mean level (a HAR with all weight on one term)
        predicted = _window_mean(level, n - 1, 5 * season)
    if not math.isfinite(predicted):
        predicted = mean
    predicted = float(np.clip(predicted, 0.25 * mean, 4 * mean)) if mean > 0 else 0.0
    return predicted * profile[slot_of(n, horizon, season)]


def _garch_variance_path(returns: np.ndarray, horizon: int) -> np.ndarray:
    """GARCH(1,1) fitted by statsforecast; the expected conditional variance over the next ``horizon`` steps, in
    units of the input's variance."""
    from statsforecast.garch import garch_model, garch_sigma2

    scale = float(returns.std())
    if scale <= 0 or len(returns) < 30:
        return np.ones(horizon)
    x = returns / scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = garch_model(x, 1, 1)
    omega, alpha, beta = (float(c) for c in fitted["coeff"])
    sigma2 = garch_sigma2(fitted["coeff"], x, 1, 1)
    in_sample = float(np.nanmean(sigma2[1:])) if len(sigma2) > 1 else 1.0
    following = omega + alpha * x[-1] ** 2 + beta * float(sigma2[-1])
    persistence = alpha + beta
    long_run = omega / (1 - persistence) if persistence < 1 else following
    path = long_run + persistence ** np.arange(horizon) * (following - long_run)
    path = path / in_sample if in_sample > 0 and math.isfinite(in_sample) else np.ones(horizon)
    return np.where(np.isfinite(path) & (path > 0), path, 1.0)


def _garch(ranges: np.ndarray, close: np.ndarray, horizon: int, season: int) -> np.ndarray:
    profile = daily_profile(ranges, season)
    mean_level = float((ranges / profile[slot_of(0, len(ranges), season)]).mean())
    returns = np.diff(np.log(np.maximum(close, np.finfo(float).tiny)))
    squared = np.concatenate([[0.0], returns**2])
    cc_profile = daily_profile(squared, season)[slot_of(1, len(returns), season)]
    deseasonalised = returns / np.sqrt(cc_profile)
    variance = _garch_variance_path(deseasonalised, horizon)
    return mean_level * np.sqrt(variance) * profile[slot_of(len(ranges), horizon, season)]


MODELS: dict[str, Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]] = {
    HAR: _har,
    GARCH: _garch,
    NAIVE: _naive,
    SEASONAL_NAIVE: _seasonal_naive,
}


def qlike(actual: np.ndarray, forecast: np.ndarray, floor: float) -> float:
    """Mean QLIKE on squared ranges over the hours that moved (the loss that ranks variance forecasts right)."""
    moved = actual > 0
    if not moved.any():
        return math.nan
    ratio = actual[moved] ** 2 / np.maximum(forecast[moved], floor) ** 2
    return float(np.mean(ratio - np.log(ratio) - 1))


@dataclass(frozen=True)
class VolatilityScore:
    """A candidate's cross-validation on the range: the shared score, and QLIKE beside it."""

    score: ModelScore
    qlike: float


def cutoffs(points: int, horizon: int, windows: int, step: int) -> list[int]:
    """The rolling origins (index of the last training point), oldest first, the last one a horizon from the end."""
    return [c for c in (points - horizon - 1 - k * step for k in reversed(range(windows))) if c >= 2]


def forecast_range(model: str, ranges: np.ndarray, close: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The named model's forecast of the next ``horizon`` hourly ranges (never negative, always finite)."""
    path = MODELS[model](ranges, close, horizon, season)
    return np.where(np.isfinite(path) & (path > 0), path, 0.0)


def cross_validate_range(
    ranges: np.ndarray, close: np.ndarray, horizon: int, season: int, windows: int, step: int
) -> dict[str, VolatilityScore]:
    """Every candidate scored on the same rolling origins as the other targets."""
    origins = cutoffs(len(ranges), horizon, windows, step)
    results: dict[str, VolatilityScore] = {}
    for model in VOLATILITY_MODELS:
        try:
            window_mase, losses, actual_all, predicted_all = [], [], [], []
            for cutoff in origins:
                train, actual = ranges[: cutoff + 1], ranges[cutoff + 1 : cutoff + 1 + horizon]
                predicted = forecast_range(model, train, close[: cutoff + 1], horizon, season)[: len(actual)]
                window_mase.append(mase(actual, predicted, train))
                losses.append(qlike(actual, predicted, QLIKE_FLOOR * max(float(train.mean()), 1e-12)))
                actual_all.append(actual)
                predicted_all.append(predicted)
            if not origins:
                raise ValueError("too few hours for one cross-validation window")
            score = ModelScore(
                mase=float(np.mean(window_mase)),
                smape=smape(np.concatenate(actual_all), np.concatenate(predicted_all)),
                window_mase=tuple(window_mase),
            )
            finite = [loss for loss in losses if math.isfinite(loss)]
            results[model] = VolatilityScore(score, float(np.mean(finite)) if finite else math.nan)
        except Exception as exc:  # a model that fails is reported with its error and never chosen
            results[model] = VolatilityScore(ModelScore(error=f"{type(exc).__name__}: {exc}"[:300]), math.nan)
    return results


@dataclass(frozen=True)
class RangeForecast:
    """The chosen forecast of the hourly range (percent of price), with every candidate's CV score."""

    model: str
    scores: dict[str, VolatilityScore]
    value: np.ndarray


def forecast_volatility(
    ranges: np.ndarray, close: np.ndarray, horizon: int, season: int, windows: int, step: int, min_improvement: float
) -> RangeForecast:
    scores = cross_validate_range(ranges, close, horizon, season, windows, step)
    model = choose_model({name: found.score for name, found in scores.items()}, min_improvement)
    return RangeForecast(model, scores, forecast_range(model, ranges, close, horizon, season))


def close_variance_path(ranges: np.ndarray, close: np.ndarray, forecast: np.ndarray, season: int) -> np.ndarray:
    """Per-step variance of the log close over the horizon: the training window's close-to-close variance by hour
    of the day (the overnight gap lands on a session's first hour), scaled by the forecast range level."""
    returns = np.diff(np.log(np.maximum(close, np.finfo(float).tiny)))
    squared = np.concatenate([[0.0], returns**2])
    slots = slot_of(0, len(squared), season)
    by_slot = np.array([squared[1:][slots[1:] == s].mean() if (slots[1:] == s).any() else 0.0 for s in range(season)])
    trained = float(ranges.mean())
    level = float(forecast.mean()) / trained if trained > 0 else 1.0
    return by_slot[slot_of(len(close), len(forecast), season)] * max(level, 0.1) ** 2


def close_bounds(
    last_log_close: float, variance: np.ndarray, levels: tuple[int, ...]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Bounds of the log close: a random walk whose step variance is ``variance``, Gaussian per level."""
    spread = np.sqrt(np.cumsum(variance))
    return {
        level: (
            last_log_close - norm.ppf(0.5 + level / 200) * spread,
            last_log_close + norm.ppf(0.5 + level / 200) * spread,
        )
        for level in levels
    }


def coverage_error(coverage: dict[int, float]) -> float:
    """How far the intervals' coverage is from nominal, mean over levels (in shares; inf when unknown)."""
    return float(np.mean([abs(share - level / 100) for level, share in coverage.items()])) if coverage else math.inf


def volatility_close_coverage(
    ranges: np.ndarray,
    close: np.ndarray,
    model: str,
    horizon: int,
    season: int,
    windows: int,
    step: int,
    levels: tuple[int, ...],
) -> dict[int, float]:
    """Cross-validated coverage of the volatility-based close intervals, on the rolling origins of every target."""
    inside: dict[int, list[np.ndarray]] = {level: [] for level in levels}
    log_close = np.log(np.maximum(close, np.finfo(float).tiny))
    for cutoff in cutoffs(len(ranges), horizon, windows, step):
        train_ranges, train_close = ranges[: cutoff + 1], close[: cutoff + 1]
        path = forecast_range(model, train_ranges, train_close, horizon, season)
        bounds = close_bounds(log_close[cutoff], close_variance_path(train_ranges, train_close, path, season), levels)
        actual = log_close[cutoff + 1 : cutoff + 1 + horizon]
        for level, (lo, hi) in bounds.items():
            inside[level].append((actual >= lo[: len(actual)]) & (actual <= hi[: len(actual)]))
    return {level: float(np.concatenate(found).mean()) for level, found in inside.items() if found}
