"""The statsforecast models, their rolling-origin cross-validation, the error measures, and the choice of model.

Every target series is cross-validated with the configured models plus two baselines, Naive (the last value)
and SeasonalNaive (the value one day earlier). Errors are measured on each window's unseen horizon:

- MASE: mean absolute error divided by the mean absolute one-hour change of that window's training data
  (below 1: better than the in-sample one-step naive). Naive's own CV MASE is the bar to clear.
- sMAPE: mean of 200 * |y - yhat| / (|y| + |yhat|), in percent (0 to 200; 0/0 counts as 0).
- coverage: the share of actual values inside each prediction interval (80% should hold about 80%).

A model is chosen only when its mean CV MASE is at least ``min_improvement`` below Naive's; otherwise Naive is. A
model that fails or yields no finite score is reported with its error and never chosen. How many windows, and how
far apart, is the settings' (``forecast.cv_windows``, 6, ``forecast.cv_step_hours``, default half the horizon):
on real prices, 3 windows a whole horizon apart let a model through on one or two lucky windows, and it lost to
Naive on the days after; 6 windows half a horizon apart did not (bench/forecast.py, docs/forecast.md).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ray_app.config.forecast import ForecastSettings
from ray_app.forecast.calendar import Market
from ray_app.markets import default_cv_step

NAIVE = "Naive"
SEASONAL_NAIVE = "SeasonalNaive"
BASELINES = (NAIVE, SEASONAL_NAIVE)


@dataclass(frozen=True)
class ForecastSpec:
    """What the models are asked for, per market: horizon and season in hourly steps, CV windows, intervals."""

    horizon: int
    season_length: int
    models: tuple[str, ...]
    levels: tuple[int, ...]
    cv_windows: int
    cv_step: int
    refit: bool
    min_improvement: float
    arima_approximation: bool

    @classmethod
    def for_market(cls, settings: ForecastSettings, market: Market) -> ForecastSpec:
        horizon = market.horizon_steps(settings.horizon_days)
        return cls(
            horizon=horizon,
            season_length=market.bars_per_day,
            models=tuple(settings.models),
            levels=tuple(settings.levels),
            cv_windows=settings.cv_windows,
            cv_step=settings.cv_step_hours or default_cv_step(horizon),
            refit=settings.cv_refit,
            min_improvement=settings.min_improvement,
            arima_approximation=settings.arima_approximation,
        )

    @property
    def candidates(self) -> tuple[str, ...]:
        return (*self.models, *BASELINES)

    @property
    def min_points(self) -> int:
        """Hours a series needs: every CV window's horizon, and two days of training before the first origin."""
        return self.horizon + (self.cv_windows - 1) * self.cv_step + 2 * self.season_length


def make_model(name: str, spec: ForecastSpec):
    """A statsforecast model by name, its output columns named after it."""
    from statsforecast.models import AutoARIMA, AutoCES, AutoETS, AutoTheta, Naive, SeasonalNaive

    season = spec.season_length
    factories: dict[str, Callable[[], object]] = {
        "AutoETS": lambda: AutoETS(season_length=season, alias=name),
        "AutoTheta": lambda: AutoTheta(season_length=season, alias=name),
        "AutoARIMA": lambda: AutoARIMA(season_length=season, approximation=spec.arima_approximation, alias=name),
        "AutoCES": lambda: AutoCES(season_length=season, alias=name),
        NAIVE: lambda: Naive(alias=name),
        SEASONAL_NAIVE: lambda: SeasonalNaive(season_length=season, alias=name),
    }
    return factories[name]()


@dataclass(frozen=True)
class ModelScore:
    """One model's cross-validation result on one series."""

    mase: float = math.nan
    smape: float = math.nan
    coverage: dict[int, float] = field(default_factory=dict)  # interval level -> share of actuals inside
    error: str | None = None
    seconds: float = 0.0  # this model's cross-validation time per series
    window_mase: tuple[float, ...] = ()  # per CV window, oldest first
    qlike: float = math.nan  # the range (volatility) target only: QLIKE on squared ranges

    @property
    def usable(self) -> bool:
        return self.error is None and math.isfinite(self.mase)


def _long_frame(series: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.concat(
        [pd.DataFrame({"unique_id": key, "ds": np.arange(len(y)), "y": y}) for key, y in series.items()],
        ignore_index=True,
    )


def mase(actual: np.ndarray, predicted: np.ndarray, train: np.ndarray) -> float:
    error = float(np.mean(np.abs(actual - predicted)))
    scale = float(np.mean(np.abs(np.diff(train)))) if len(train) > 1 else 0.0
    if scale == 0.0:
        return 0.0 if error == 0.0 else math.inf
    return error / scale


def smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(predicted)
    ratio = np.divide(
        2 * np.abs(actual - predicted), denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(100 * ratio.mean())


@dataclass(frozen=True)
class CvWindows:
    """One model's cross-validation forecasts of one series: per window, its cut-off and the forecast horizon."""

    cutoffs: np.ndarray  # (windows,) index of the last training point
    steps: np.ndarray  # (windows, horizon) index of each forecast point in the series
    value: np.ndarray  # (windows, horizon)
    bounds: dict[int, tuple[np.ndarray, np.ndarray]]  # level -> (lo, hi), each (windows, horizon)


def cv_windows_of(cv: pd.DataFrame, name: str, levels: tuple[int, ...]) -> CvWindows:
    """statsforecast's cross-validation frame of one series (ds and cutoff are steps) as arrays per window."""
    groups = [window for _, window in cv.groupby("cutoff", sort=True)]

    def stack(column: str) -> np.ndarray:
        return np.stack([window[column].to_numpy(dtype="float64") for window in groups])

    bounds = {}
    for level in levels:
        if f"{name}-lo-{level}" in cv and f"{name}-hi-{level}" in cv:
            bounds[level] = (stack(f"{name}-lo-{level}"), stack(f"{name}-hi-{level}"))
    return CvWindows(
        cutoffs=np.array([int(window["cutoff"].iloc[0]) for window in groups]),
        steps=np.stack([window["ds"].to_numpy(dtype="int64") for window in groups]),
        value=stack(name),
        bounds=bounds,
    )


def score_windows(windows: CvWindows, y: np.ndarray) -> ModelScore:
    """MASE per window (scaled by that window's training data), sMAPE and interval coverage over all windows."""
    if not np.isfinite(windows.value).all():
        return ModelScore(error="non-finite forecasts in cross-validation")
    actual = y[windows.steps]
    window_mase = tuple(
        mase(actual[k], windows.value[k], y[: int(cutoff) + 1]) for k, cutoff in enumerate(windows.cutoffs)
    )
    coverage = {level: float(((actual >= lo) & (actual <= hi)).mean()) for level, (lo, hi) in windows.bounds.items()}
    return ModelScore(
        mase=float(np.mean(window_mase)),
        smape=smape(actual.ravel(), windows.value.ravel()),
        coverage=coverage,
        window_mase=window_mase,
    )


def _cross_validate_model(
    name: str, series: dict[str, np.ndarray], spec: ForecastSpec
) -> dict[str, pd.DataFrame | Exception]:
    from statsforecast import StatsForecast

    def run(subset: dict[str, np.ndarray]) -> pd.DataFrame:
        engine = StatsForecast(models=[make_model(name, spec)], freq=1, n_jobs=1)
        return engine.cross_validation(
            df=_long_frame(subset),
            h=spec.horizon,
            n_windows=spec.cv_windows,
            step_size=spec.cv_step,
            level=list(spec.levels),
            refit=spec.refit,
        )

    try:
        cv = run(series)
        return {key: frame for key, frame in cv.groupby("unique_id", sort=False)}
    except Exception:  # one bad series fails the whole call: try each alone, so the others keep their scores
        results: dict[str, pd.DataFrame | Exception] = {}
        for key, y in series.items():
            try:
                results[key] = run({key: y})
            except Exception as exc:
                results[key] = exc
        return results


def cross_validate_windows(
    series: dict[str, np.ndarray], spec: ForecastSpec
) -> tuple[dict[str, dict[str, CvWindows | str]], dict[str, float]]:
    """Series key -> model name -> its CV forecasts (or the error text); and each model's CV seconds per series."""
    results: dict[str, dict[str, CvWindows | str]] = {key: {} for key in series}
    seconds: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsforecast warns about differencing and convergence per fit
        for name in spec.candidates:
            began = time.perf_counter()
            outcome = _cross_validate_model(name, series, spec)
            seconds[name] = (time.perf_counter() - began) / len(series)
            for key, result in outcome.items():
                if isinstance(result, Exception):
                    results[key][name] = f"{type(result).__name__}: {result}"[:300]
                else:
                    results[key][name] = cv_windows_of(result, name, spec.levels)
    return results, seconds


def cross_validate(series: dict[str, np.ndarray], spec: ForecastSpec) -> dict[str, dict[str, ModelScore]]:
    """Series key -> model name -> its rolling-origin CV score."""
    windows, seconds = cross_validate_windows(series, spec)
    scores: dict[str, dict[str, ModelScore]] = {}
    for key, by_model in windows.items():
        scores[key] = {}
        for name, result in by_model.items():
            score = ModelScore(error=result) if isinstance(result, str) else score_windows(result, series[key])
            scores[key][name] = replace(score, seconds=seconds[name])
    return scores


def beats(score: ModelScore, naive: ModelScore, min_improvement: float) -> bool:
    """The gate: a mean CV MASE at least ``min_improvement`` below Naive's (both usable)."""
    return score.usable and naive.usable and score.mase < naive.mase * (1 - min_improvement)


def choose_model(scores: dict[str, ModelScore], min_improvement: float) -> str:
    """The model with the lowest CV MASE among those that pass the gate against Naive (see ``beats``), else Naive."""
    naive = scores.get(NAIVE)
    usable = {name: score for name, score in scores.items() if score.usable}
    if not usable:
        return NAIVE
    if naive is None or not naive.usable:
        return min(usable, key=lambda name: usable[name].mase)
    passing = [name for name, score in usable.items() if name != NAIVE and beats(score, naive, min_improvement)]
    return min(passing, key=lambda name: usable[name].mase) if passing else NAIVE


@dataclass(frozen=True)
class PointForecast:
    """A fitted model's forecast of one series: values and interval bounds per level."""

    value: np.ndarray
    bounds: dict[int, tuple[np.ndarray, np.ndarray]]


def fit_forecast(name: str, series: dict[str, np.ndarray], spec: ForecastSpec) -> dict[str, PointForecast]:
    """Fit `name` on every series in full and forecast the horizon; raises if the model fails."""
    from statsforecast import StatsForecast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = StatsForecast(models=[make_model(name, spec)], freq=1, n_jobs=1)
        frame = engine.forecast(df=_long_frame(series), h=spec.horizon, level=list(spec.levels))
    results = {}
    for key, rows in frame.groupby("unique_id", sort=False):
        value = rows[name].to_numpy(dtype="float64")
        bounds = {
            level: (
                rows[f"{name}-lo-{level}"].to_numpy(dtype="float64"),
                rows[f"{name}-hi-{level}"].to_numpy("float64"),
            )
            for level in spec.levels
        }
        if not (np.isfinite(value).all() and all(np.isfinite(b).all() for pair in bounds.values() for b in pair)):
            raise ValueError(f"{name} forecast non-finite values for {key}")
        results[str(key)] = PointForecast(value, bounds)
    return results
