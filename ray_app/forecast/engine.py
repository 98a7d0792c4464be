"""One symbol's forecast, from its regular hourly series: cross-validate, choose, fit, forecast, summarise.

Pure computation (no I/O), so the Ray tasks, the tests and the benchmark run exactly the same code.

**Coherent by construction.** High, low and close are not modelled apart (three independent models gave a low
above the high and a close outside both). The models see three series that cannot contradict each other:

- ``log_close`` = ln(close): the price level, multiplicative like prices (a forecast is never negative);
- ``log_high_close`` = ln(high / close) >= 0 and ``log_close_low`` = ln(close / low) >= 0: how far the hour
  reached above and below its close, which carries the intraday rhythm (wide at the open, narrow at midday).

and the forecast is put back together: close = exp(log close), high = close * exp(max(spread up, 0)), low =
close / exp(max(spread down, 0)). So low <= close <= high at every hour and every interval level; the bounds of
each target are ordered (lo_95 <= lo_80 <= value <= hi_80 <= hi_95) and the high's and low's intervals are built
from the close's (a bound of the low never exceeds the same bound of the close, nor that of the high). Volume is
its own series, floored at 0.

**Chosen on the numbers a user sees.** Every candidate is cross-validated on each series; then each pair (model of
the log close, model of the two spreads) is scored on the *reconstructed* high, low and close against the actual
ones, beside Naive on those targets (which the pair Naive/Naive reproduces exactly). A pair is chosen only if it
passes the gate of :func:`~ray_app.forecast.models.beats` on every price target; otherwise Naive/Naive is.

**Volatility and the week's extremes.** With high, low and close, the hourly range is a target of its own
(:mod:`~ray_app.forecast.volatility`: HAR and GARCH beside Naive and SeasonalNaive, the same gate), and the close's
intervals come from it where those covered closer to nominal in cross-validation (high and low follow). The summary
(highest volume, highest price, lowest price) is forecast as extremes, each a distribution with its median, 80% and
95% bounds and its likeliest hour (:mod:`~ray_app.forecast.extremes`), not the max/min of the hourly points.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ray_app.forecast.extremes import ExtremeForecast, price_extremes, volume_extreme
from ray_app.forecast.models import (
    NAIVE,
    CvWindows,
    ForecastSpec,
    ModelScore,
    PointForecast,
    beats,
    choose_model,
    cross_validate_windows,
    fit_forecast,
    score_windows,
)
from ray_app.forecast.series import SymbolHistory
from ray_app.forecast.volatility import (
    RANGE,
    RangeForecast,
    close_bounds,
    close_variance_path,
    coverage_error,
    forecast_volatility,
    range_pct,
    volatility_close_coverage,
)


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
    method: str = ""  # how the target is made from the modelled series
    components: dict[str, str] = field(default_factory=dict)  # modelled series -> its model
    interval_source: str = "model"  # "model", or "volatility (<range model>)" when the range forecast gave them
    interval_cv_coverage: dict[str, dict[int, float]] = field(default_factory=dict)  # source -> CV coverage

    @property
    def naive(self) -> ModelScore:
        return self.scores[NAIVE]

    @property
    def chosen(self) -> ModelScore:
        return self.scores[self.model]

    @property
    def beats_naive(self) -> bool:
        return self.model != NAIVE and self.chosen.usable and self.chosen.mase < self.naive.mase


@dataclass(frozen=True)
class Summary:
    """The next days at a glance: the horizon's highest volume, highest price and lowest price, each forecast as
    an extreme (median, 80% and 95% intervals, most likely hour; :mod:`ray_app.forecast.extremes`)."""

    highest_volume: ExtremeForecast | None
    highest_price: ExtremeForecast | None  # from the highs (the closes when high is not a target)
    lowest_price: ExtremeForecast | None  # from the lows (the closes when low is not a target)


def summarise(history: SymbolHistory, hours: pd.DatetimeIndex) -> Summary:
    """The three extremes of the horizon ``hours`` from the symbol's training series."""
    values, season = history.values, history.market.bars_per_day
    highest = lowest = volume = None
    if "close" in values or "high" in values or "low" in values:
        close = values.get("close", values.get("high", values.get("low")))
        assert close is not None
        highest, lowest = price_extremes(values.get("high", close), values.get("low", close), close, hours, season)
        highest = highest if ("high" in values or "close" in values) else None
        lowest = lowest if ("low" in values or "close" in values) else None
    if "volume" in values:
        volume = volume_extreme(values["volume"], hours, season)
    return Summary(highest_volume=volume, highest_price=highest, lowest_price=lowest)


@dataclass(frozen=True)
class SymbolForecast:
    history: SymbolHistory
    targets: dict[str, TargetForecast]
    cv_seconds: float
    fit_seconds: float
    extremes: Summary | None = None  # None when built by hand: summary() computes it

    @property
    def symbol(self) -> str:
        return self.history.symbol

    def summary(self) -> Summary:
        if self.extremes is not None:
            return self.extremes
        return summarise(self.history, next(iter(self.targets.values())).hours)


LOG_CLOSE, SPREAD_UP, SPREAD_DOWN = "log_close", "log_high_close", "log_close_low"
PRICE_TARGETS = ("high", "low", "close")


def price_components(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The three series the price models see (log close and the two non-negative log spreads)."""
    close = np.maximum(values["close"], np.finfo(float).tiny)
    components = {LOG_CLOSE: np.log(close)}
    if "high" in values:
        components[SPREAD_UP] = np.log(np.maximum(values["high"], close) / close)
    if "low" in values:
        components[SPREAD_DOWN] = np.log(close / np.clip(values["low"], np.finfo(float).tiny, close))
    return components


def _ordered(
    value: np.ndarray, bounds: dict[int, tuple[np.ndarray, np.ndarray]]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Bounds widened where needed so that a wider level never lies inside a narrower one or the value."""
    ordered, lo_prev, hi_prev = {}, value, value
    for level in sorted(bounds):
        lo, hi = bounds[level]
        lo_prev, hi_prev = np.minimum(lo, lo_prev), np.maximum(hi, hi_prev)
        ordered[level] = (lo_prev, hi_prev)
    return ordered


@dataclass(frozen=True)
class Band:
    """A forecast path with its interval bounds (any shape: one horizon, or CV windows x horizon)."""

    value: np.ndarray
    bounds: dict[int, tuple[np.ndarray, np.ndarray]]

    def ordered(self) -> Band:
        return Band(self.value, _ordered(self.value, self.bounds))


def reconstruct(log_close: Band, up: Band | None, down: Band | None) -> dict[str, Band]:
    """close, high and low from the log close and the spreads; ordered and coherent at every level."""
    log_close = log_close.ordered()
    levels = sorted(log_close.bounds)
    close = Band(np.exp(log_close.value), {lv: (np.exp(lo), np.exp(hi)) for lv, (lo, hi) in log_close.bounds.items()})
    bands = {"close": close}
    if up is not None:
        up = up.ordered()
        bands["high"] = Band(
            np.exp(log_close.value + np.maximum(up.value, 0.0)),
            {
                lv: (
                    np.exp(log_close.bounds[lv][0] + np.maximum(up.bounds[lv][0], 0.0)),
                    np.exp(log_close.bounds[lv][1] + np.maximum(up.bounds[lv][1], 0.0)),
                )
                for lv in levels
            },
        )
    if down is not None:
        down = down.ordered()
        bands["low"] = Band(
            np.exp(log_close.value - np.maximum(down.value, 0.0)),
            {
                lv: (
                    np.exp(log_close.bounds[lv][0] - np.maximum(down.bounds[lv][1], 0.0)),
                    np.exp(log_close.bounds[lv][1] - np.maximum(down.bounds[lv][0], 0.0)),
                )
                for lv in levels
            },
        )
    return bands


def pair_label(close_model: str, spread_model: str) -> str:
    """How a price target's model is named: one model for all three series, or the close's + the spreads'."""
    return close_model if close_model == spread_model else f"{close_model} + {spread_model} spreads"


def _derived_score(windows: dict[str, CvWindows], values: dict[str, np.ndarray], target: str) -> ModelScore:
    def spread(key: str) -> Band | None:
        found = windows.get(key)
        return None if found is None else Band(found.value, found.bounds)

    steps = windows[LOG_CLOSE]
    band = reconstruct(Band(steps.value, steps.bounds), spread(SPREAD_UP), spread(SPREAD_DOWN))[target]
    return score_windows(CvWindows(steps.cutoffs, steps.steps, band.value, band.bounds), values[target])


@dataclass(frozen=True)
class PriceChoice:
    close_model: str
    spread_model: str
    scores: dict[str, dict[str, ModelScore]]  # target -> pair label -> score on that target


def choose_price_models(
    cv: dict[str, dict[str, CvWindows | str]], values: dict[str, np.ndarray], targets: list[str], spec: ForecastSpec
) -> PriceChoice:
    """Score every (close model, spreads model) pair on the reconstructed targets; the best pair that passes the
    gate on every price target, else Naive for all three."""
    spread_keys = [key for key in (SPREAD_UP, SPREAD_DOWN) if key in cv]
    pair_scores: dict[tuple[str, str], dict[str, ModelScore]] = {}
    for close_model in spec.candidates:
        for spread_model in spec.candidates:
            found = {LOG_CLOSE: cv[LOG_CLOSE][close_model], **{key: cv[key][spread_model] for key in spread_keys}}
            failed = next((w for w in found.values() if isinstance(w, str)), None)
            if failed is not None:
                pair_scores[(close_model, spread_model)] = {t: ModelScore(error=failed) for t in targets}
                continue
            windows = {key: w for key, w in found.items() if isinstance(w, CvWindows)}
            pair_scores[(close_model, spread_model)] = {t: _derived_score(windows, values, t) for t in targets}
    naive = pair_scores[(NAIVE, NAIVE)]
    passing = [
        pair
        for pair, scores in pair_scores.items()
        if pair != (NAIVE, NAIVE) and all(beats(scores[t], naive[t], spec.min_improvement) for t in targets)
    ]
    close_model, spread_model = min(
        passing, key=lambda pair: sum(pair_scores[pair][t].mase for t in targets), default=(NAIVE, NAIVE)
    )
    shown = {(m, m) for m in spec.candidates} | {(close_model, spread_model)}
    scores = {t: {pair_label(*pair): pair_scores[pair][t] for pair in sorted(shown)} for t in targets}
    if "close" in scores:  # the close depends on the close's model alone
        scores["close"] = {m: pair_scores[(m, m)]["close"] for m in spec.candidates}
    return PriceChoice(close_model, spread_model, scores)


def _fit(
    model: str, series: dict[str, np.ndarray], spec: ForecastSpec
) -> tuple[dict[str, PointForecast], str, str | None]:
    """Fit and forecast; when the chosen model fails on the full series, Naive stands in and says so."""
    try:
        return fit_forecast(model, series, spec), model, None
    except Exception as exc:
        if model == NAIVE:
            raise
        note = f"{model} failed on the full series ({type(exc).__name__}: {exc}); Naive used"[:300]
        return fit_forecast(NAIVE, series, spec), NAIVE, note


def forecast_history(history: SymbolHistory, spec: ForecastSpec) -> SymbolForecast:
    """Cross-validate every candidate, choose (the price models jointly, volume alone), fit on the full series,
    forecast and put high, low and close back together."""
    started = time.perf_counter()
    values = history.values
    targets = list(values)
    price_targets = [t for t in targets if t in PRICE_TARGETS]
    series = {
        **(price_components(values) if price_targets else {}),
        **({"volume": values["volume"]} if "volume" in values else {}),
    }
    cv, seconds = cross_validate_windows(series, spec)
    chosen_scores: dict[str, dict[str, ModelScore]] = {}
    models: dict[str, str] = {}
    if price_targets:
        choice = choose_price_models(cv, values, price_targets, spec)
        chosen_scores.update(choice.scores)
        models.update({LOG_CLOSE: choice.close_model, SPREAD_UP: choice.spread_model, SPREAD_DOWN: choice.spread_model})
    if "volume" in values:
        volume_scores = {
            name: ModelScore(error=w) if isinstance(w, str) else score_windows(w, values["volume"])
            for name, w in cv["volume"].items()
        }
        chosen_scores["volume"] = volume_scores
        models["volume"] = choose_model(volume_scores, spec.min_improvement)
    for target_scores in chosen_scores.values():
        for label, score in target_scores.items():
            target_scores[label] = replace(score, seconds=sum(seconds.get(m, 0.0) for m in label.split(" + ")))
    volatility = volatility_of(history, spec) if {"high", "low", "close"} <= set(values) else None
    cv_done = time.perf_counter()

    by_model: dict[str, list[str]] = defaultdict(list)
    for key, model in models.items():
        if key in series:
            by_model[model].append(key)
    points: dict[str, PointForecast] = {}
    notes: dict[str, str] = {}
    used: dict[str, str] = {}
    for model, keys in by_model.items():
        fitted, model_used, note = _fit(model, {key: series[key] for key in keys}, spec)
        points.update(fitted)
        for key in keys:
            used[key] = model_used
            if note:
                notes[key] = note

    hours = history.market.next_slots(history.last_hour, spec.horizon)
    result: dict[str, TargetForecast] = {}
    if price_targets:
        band = lambda key: Band(points[key].value, points[key].bounds) if key in points else None  # noqa: E731
        close = points[LOG_CLOSE]  # price targets always model the log close
        close_model_coverage = chosen_scores.get("close", {}).get(used[LOG_CLOSE], ModelScore()).coverage
        intervals = close_intervals(history, spec, volatility, close, close_model_coverage)
        bands = reconstruct(Band(close.value, intervals.bounds), band(SPREAD_UP), band(SPREAD_DOWN))
        note = "; ".join(sorted(set(notes.values()) - {notes.get("volume")})) or None
        for target in price_targets:
            components = {
                LOG_CLOSE: used[LOG_CLOSE],
                **({SPREAD_UP: used[SPREAD_UP]} if target == "high" else {}),
                **({SPREAD_DOWN: used[SPREAD_DOWN]} if target == "low" else {}),
            }
            scores = chosen_scores[target]
            label = (
                used[LOG_CLOSE]
                if target == "close"
                else pair_label(used[LOG_CLOSE], used.get(SPREAD_UP, used[LOG_CLOSE]))
            )
            if label not in scores:  # a fit fell back to Naive: show the score of what was used
                scores = {**scores, label: scores.get(NAIVE, ModelScore())}
            result[target] = TargetForecast(
                target,
                label,
                scores,
                hours,
                bands[target].value,
                bands[target].bounds,
                note=note,
                method=PRICE_METHOD[target],
                components=components,
                interval_source=intervals.source,
                interval_cv_coverage=intervals.cv_coverage,
            )
    if "volume" in values:
        point = points["volume"]
        value = np.maximum(point.value, 0.0)
        bounds = _ordered(
            value, {lv: (np.maximum(lo, 0.0), np.maximum(hi, 0.0)) for lv, (lo, hi) in point.bounds.items()}
        )
        scores = chosen_scores["volume"]
        result["volume"] = TargetForecast(
            "volume",
            used["volume"],
            scores,
            hours,
            value,
            bounds,
            note=notes.get("volume"),
            method="volume, floored at 0",
            components={"volume": used["volume"]},
        )
    if volatility is not None:
        result[RANGE] = TargetForecast(
            RANGE,
            volatility.model,
            {name: replace(found.score, qlike=found.qlike) for name, found in volatility.scores.items()},
            hours,
            volatility.value,
            {},
            method=RANGE_METHOD,
            components={RANGE: volatility.model},
        )
    extremes = summarise(history, hours)
    done = time.perf_counter()
    ordered_targets = {target: result[target] for target in [*targets, RANGE] if target in result}
    return SymbolForecast(
        history, ordered_targets, cv_seconds=cv_done - started, fit_seconds=done - cv_done, extremes=extremes
    )


RANGE_METHOD = "100 x ln(high / low): the hourly range in % of the price (volatility)"


def volatility_of(history: SymbolHistory, spec: ForecastSpec) -> RangeForecast:
    values = history.values
    return forecast_volatility(
        range_pct(values["high"], values["low"]),
        values["close"],
        spec.horizon,
        spec.season_length,
        spec.cv_windows,
        spec.cv_step,
        spec.min_improvement,
    )


@dataclass(frozen=True)
class CloseIntervals:
    """The log close's interval bounds and where they came from, with each source's CV coverage."""

    bounds: dict[int, tuple[np.ndarray, np.ndarray]]
    source: str
    cv_coverage: dict[str, dict[int, float]]


def close_intervals(
    history: SymbolHistory,
    spec: ForecastSpec,
    volatility: RangeForecast | None,
    close: PointForecast,
    model_coverage: dict[int, float],
) -> CloseIntervals:
    """The close model's own bounds, or the range forecast's where those covered closer to nominal in CV."""
    if volatility is None:
        return CloseIntervals(close.bounds, "model", {"model": model_coverage})
    values = history.values
    ranges = range_pct(values["high"], values["low"])
    source = f"volatility ({volatility.model})"
    vol_coverage = volatility_close_coverage(
        ranges,
        values["close"],
        volatility.model,
        spec.horizon,
        spec.season_length,
        spec.cv_windows,
        spec.cv_step,
        spec.levels,
    )
    coverage = {"model": model_coverage, source: vol_coverage}
    if coverage_error(vol_coverage) >= coverage_error(model_coverage):
        return CloseIntervals(close.bounds, "model", coverage)
    last_log_close = float(np.log(max(values["close"][-1], np.finfo(float).tiny)))
    variance = close_variance_path(ranges, values["close"], volatility.value, spec.season_length)
    return CloseIntervals(close_bounds(last_log_close, variance, spec.levels), source, coverage)


PRICE_METHOD = {
    "close": "exp(log close)",
    "high": "close x exp(log(high/close) spread, floored at 0)",
    "low": "close / exp(log(close/low) spread, floored at 0)",
}


def incoherent_hours(result: SymbolForecast, tolerance: float = 1e-9) -> list[str]:
    """Every way the forecast breaks coherence, one line per target, hour and rule (empty when coherent).

    Rules: low <= close <= high for the values and for every bound; each target's bounds ordered (lo of the wider
    level <= lo of the narrower <= value <= hi of the narrower <= hi of the wider); the low's bounds at or below the
    high's; volume and every bound >= 0; all finite.
    """
    problems: list[str] = []
    targets = result.targets
    slack = lambda a: tolerance * np.maximum(np.abs(a), 1.0)  # noqa: E731  (float rounding of exp/log)

    def check(name: str, ok: np.ndarray, hours: pd.DatetimeIndex) -> None:
        for index in np.flatnonzero(~ok):
            problems.append(f"{name} at {hours[index]:%Y-%m-%d %H:%M}")

    for target, forecast in targets.items():
        levels = sorted(forecast.bounds)
        check(
            f"{target}: not finite",
            np.isfinite(forecast.value)
            & np.all([np.isfinite(b) for lv in levels for b in forecast.bounds[lv]], axis=0),
            forecast.hours,
        )
        inner_lo, inner_hi = forecast.value, forecast.value
        for level in levels:
            lo, hi = forecast.bounds[level]
            check(f"{target}: lo_{level} above the narrower bound", lo <= inner_lo + slack(lo), forecast.hours)
            check(f"{target}: hi_{level} below the narrower bound", hi + slack(hi) >= inner_hi, forecast.hours)
            inner_lo, inner_hi = lo, hi
        check(f"{target}: negative", forecast.value >= 0, forecast.hours)
    pairs = [("low", "close"), ("close", "high"), ("low", "high")]
    for below, above in pairs:
        if below in targets and above in targets:
            a, b = targets[below], targets[above]
            check(f"{below} above {above}", a.value <= b.value + slack(b.value), a.hours)
            for level in set(a.bounds) & set(b.bounds):
                for side, k in (("lo", 0), ("hi", 1)):
                    x, y = a.bounds[level][k], b.bounds[level][k]
                    check(f"{below} {side}_{level} above {above} {side}_{level}", x <= y + slack(y), a.hours)
    return problems


def finite_or_none(value: float) -> float | None:
    """JSON and Elasticsearch have no NaN or infinity."""
    return value if math.isfinite(value) else None
