"""The statsforecast models, their rolling-origin cross-validation, the error measures, and the choice of model.

Every target series is cross-validated with the configured models plus two baselines, Naive (the last value)
and SeasonalNaive (the value one day earlier). Errors are measured on each window's unseen horizon:

- MASE: mean absolute error divided by the mean absolute one-hour change of that window's training data
  (below 1: better than the in-sample one-step naive). Naive's own CV MASE is the bar to clear.
- sMAPE: mean of 200 * |y - yhat| / (|y| + |yhat|), in percent (0 to 200; 0/0 counts as 0).
- coverage: the share of actual values inside each prediction interval (80% should hold about 80%).

A model is chosen only when its CV MASE is lower than Naive's by ``min_improvement``; otherwise Naive is.
A model that fails or yields no finite score is reported with its error and never chosen.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ray_app.config import ForecastSettings
from ray_app.forecast.calendar import Market

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
            cv_step=settings.cv_step_hours or horizon,
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


def _score(cv: pd.DataFrame, name: str, y: np.ndarray, levels: tuple[int, ...]) -> ModelScore:
    """Scores of one model on one series from statsforecast's cross-validation frame (ds and cutoff are steps)."""
    predicted = cv[name].to_numpy(dtype="float64")
    if not np.isfinite(predicted).all():
        return ModelScore(error="non-finite forecasts in cross-validation")
    window_mase = [
        mase(window["y"].to_numpy(), window[name].to_numpy(), y[: int(cutoff) + 1])
        for cutoff, window in cv.groupby("cutoff", sort=True)
    ]
    actual = cv["y"].to_numpy(dtype="float64")
    coverage = {}
    for level in levels:
        lo, hi = cv.get(f"{name}-lo-{level}"), cv.get(f"{name}-hi-{level}")
        if lo is not None and hi is not None:
            coverage[level] = float(((actual >= lo.to_numpy()) & (actual <= hi.to_numpy())).mean())
    return ModelScore(mase=float(np.mean(window_mase)), smape=smape(actual, predicted), coverage=coverage)


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


def cross_validate(series: dict[str, np.ndarray], spec: ForecastSpec) -> dict[str, dict[str, ModelScore]]:
    """Series key -> model name -> its rolling-origin CV score."""
    scores: dict[str, dict[str, ModelScore]] = {key: {} for key in series}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsforecast warns about differencing and convergence per fit
        for name in spec.candidates:
            began = time.perf_counter()
            results = _cross_validate_model(name, series, spec)
            seconds = (time.perf_counter() - began) / len(series)
            for key, result in results.items():
                if isinstance(result, Exception):
                    score = ModelScore(error=f"{type(result).__name__}: {result}"[:300])
                else:
                    score = _score(result, name, series[key], spec.levels)
                scores[key][name] = replace(score, seconds=seconds)
    return scores


def choose_model(scores: dict[str, ModelScore], min_improvement: float) -> str:
    """The model with the lowest CV MASE if it beats Naive's by `min_improvement`, else Naive."""
    naive = scores.get(NAIVE)
    usable = {name: score for name, score in scores.items() if score.usable}
    if not usable:
        return NAIVE
    best = min(usable, key=lambda name: (usable[name].mase, name != NAIVE))
    if naive is None or not naive.usable:
        return best
    if best != NAIVE and usable[best].mase < naive.mase * (1 - min_improvement):
        return best
    return NAIVE


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
