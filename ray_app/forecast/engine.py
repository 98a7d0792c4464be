"""One symbol's forecast, from its regular hourly series: cross-validate, choose per target, fit, forecast, summarise.

Pure computation (no I/O), so the Ray tasks, the tests and the benchmark run exactly the same code.
Volumes and prices cannot be negative: forecasts and interval bounds are floored at 0.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ray_app.forecast.models import NAIVE, ForecastSpec, ModelScore, choose_model, cross_validate, fit_forecast
from ray_app.forecast.series import SymbolHistory


@dataclass(frozen=True)
class TargetForecast:
    """The forecast of one target (high, low, close or volume) of one symbol, with how its model was chosen."""

    target: str
    model: str
    scores: dict[str, ModelScore]  # every candidate's CV score, the baselines included
    hours: pd.DatetimeIndex
    value: np.ndarray
    bounds: dict[int, tuple[np.ndarray, np.ndarray]]
    note: str | None = None  # e.g. the chosen model failed on the full series and Naive stood in

    @property
    def naive(self) -> ModelScore:
        return self.scores[NAIVE]

    @property
    def chosen(self) -> ModelScore:
        return self.scores[self.model]

    @property
    def beats_naive(self) -> bool:
        return self.model != NAIVE and self.chosen.mase < self.naive.mase


@dataclass(frozen=True)
class Extreme:
    value: float
    at: pd.Timestamp


@dataclass(frozen=True)
class Summary:
    """The next days at a glance, from the forecasts: highest volume, highest price, lowest price."""

    highest_volume: Extreme | None
    highest_price: Extreme | None  # max of the high forecast (close when high is not a target)
    lowest_price: Extreme | None  # min of the low forecast (close when low is not a target)


@dataclass(frozen=True)
class SymbolForecast:
    history: SymbolHistory
    targets: dict[str, TargetForecast]
    cv_seconds: float
    fit_seconds: float

    @property
    def symbol(self) -> str:
        return self.history.symbol

    def summary(self) -> Summary:
        def extreme(target: str | None, pick) -> Extreme | None:
            if target is None:
                return None
            forecast = self.targets[target]
            index = int(pick(forecast.value))
            return Extreme(float(forecast.value[index]), forecast.hours[index])

        def first(*names: str) -> str | None:
            return next((name for name in names if name in self.targets), None)

        return Summary(
            highest_volume=extreme(first("volume"), np.argmax),
            highest_price=extreme(first("high", "close"), np.argmax),
            lowest_price=extreme(first("low", "close"), np.argmin),
        )


def forecast_history(history: SymbolHistory, spec: ForecastSpec) -> SymbolForecast:
    """Cross-validate every candidate on each target, choose, fit the chosen model on the full series, forecast."""
    started = time.perf_counter()
    scores = cross_validate(history.values, spec)
    chosen = {target: choose_model(target_scores, spec.min_improvement) for target, target_scores in scores.items()}
    cv_done = time.perf_counter()

    by_model: dict[str, list[str]] = defaultdict(list)
    for target, model in chosen.items():
        by_model[model].append(target)
    points, notes = {}, {}
    for model, targets in by_model.items():
        subset = {target: history.values[target] for target in targets}
        try:
            points.update(fit_forecast(model, subset, spec))
        except Exception as exc:  # the CV fits worked but the full fit did not: Naive stands in, and says so
            if model == NAIVE:
                raise
            points.update(fit_forecast(NAIVE, subset, spec))
            for target in targets:
                chosen[target] = NAIVE
                notes[target] = f"{model} failed on the full series ({type(exc).__name__}: {exc}); Naive used"[:300]

    hours = history.market.next_slots(history.last_hour, spec.horizon)
    targets = {}
    for target, model in chosen.items():
        point = points[target]
        targets[target] = TargetForecast(
            target=target,
            model=model,
            scores=scores[target],
            hours=hours,
            value=np.maximum(point.value, 0.0),
            bounds={level: (np.maximum(lo, 0.0), np.maximum(hi, 0.0)) for level, (lo, hi) in point.bounds.items()},
            note=notes.get(target),
        )
    done = time.perf_counter()
    return SymbolForecast(history, targets, cv_seconds=cv_done - started, fit_seconds=done - cv_done)


def finite_or_none(value: float) -> float | None:
    """JSON and Elasticsearch have no NaN or infinity."""
    return value if math.isfinite(value) else None
