"""The horizon's extremes and the volatility target, without engines: known answers from simulation (never from
the rules under test), calibration over many seeds, and series built to break them (flat, gap, jump, tiny)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ray_app.forecast.calendar import CRYPTO
from ray_app.forecast.extremes import (
    pinball_loss,
    point_as_quantiles,
    price_extremes,
    reflection_quantiles,
    volume_extreme,
)
from ray_app.forecast.models import NAIVE
from ray_app.forecast.volatility import (
    close_bounds,
    close_variance_path,
    forecast_range,
    forecast_volatility,
    range_pct,
)

SUBSTEPS = 30  # price moves per hourly bar: the bar's high and low are the path's own extremes
HISTORY, HORIZON, SEASON = 720, 168, 24
START = pd.Timestamp("2026-10-01T00:00Z")


def random_walk_bars(seed: int, hours: int, sigma_hour: float, price: float = 100.0) -> pd.DataFrame:
    """Hourly bars of a driftless random walk in log price with a known hourly volatility, sampled finely."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, sigma_hour / math.sqrt(SUBSTEPS), hours * SUBSTEPS)
    path = math.log(price) + np.cumsum(steps)
    by_hour = path.reshape(hours, SUBSTEPS)
    opens = np.concatenate([[math.log(price)], by_hour[:-1, -1]])
    high = np.maximum(by_hour.max(axis=1), opens)
    low = np.minimum(by_hour.min(axis=1), opens)
    volume = np.exp(rng.normal(7.0, 0.4, hours) + 0.8 * np.sin(2 * np.pi * np.arange(hours) / SEASON))
    index = pd.date_range(START, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {"high": np.exp(high), "low": np.exp(low), "close": np.exp(by_hour[:, -1]), "volume": volume}, index=index
    )


def _extremes(bars: pd.DataFrame):
    train, future = bars.iloc[:HISTORY], bars.iloc[HISTORY:]
    hours = pd.DatetimeIndex(future.index)
    highest, lowest = price_extremes(
        train["high"].to_numpy(), train["low"].to_numpy(), train["close"].to_numpy(), hours, SEASON
    )
    volume = volume_extreme(train["volume"].to_numpy(), hours, SEASON)
    return train, future, highest, lowest, volume


def test_the_reflection_law_matches_a_simulated_brownian_maximum() -> None:
    # the reference: Brownian paths whose maximum between grid points is drawn exactly (a Brownian bridge's maximum
    # given its ends is (a + b + sqrt((b - a)^2 - 2 dt ln U)) / 2), so no discretisation bias
    rng = np.random.default_rng(0)
    steps, dt = 200, 1 / 200
    ends = np.cumsum(rng.normal(0.0, math.sqrt(dt), (20000, steps)), axis=1)
    starts = np.concatenate([np.zeros((20000, 1)), ends[:, :-1]], axis=1)
    bridge = (starts + ends + np.sqrt((ends - starts) ** 2 - 2 * dt * np.log(rng.uniform(size=ends.shape)))) / 2
    simulated = np.quantile(bridge.max(axis=1), [0.1, 0.5, 0.9])
    assert reflection_quantiles(0.0, (0.1, 0.5, 0.9)) == pytest.approx(simulated, abs=0.03)
    wider = reflection_quantiles(0.5, (0.025, 0.5, 0.975))
    plain = reflection_quantiles(0.0, (0.025, 0.5, 0.975))
    assert wider[0] < plain[0] and wider[2] > plain[2]  # an uncertain variance gives fatter tails


def test_the_median_of_a_random_walks_weekly_maximum_is_near_the_simulated_one() -> None:
    sigma = 0.004
    bars = random_walk_bars(seed=1, hours=HISTORY + HORIZON, sigma_hour=sigma)
    train, _, highest, lowest, _ = _extremes(bars)
    # the reference: the median weekly maximum of many fresh walks with the same volatility (not the rule's formula)
    rng = np.random.default_rng(7)
    walks = np.cumsum(rng.normal(0.0, sigma / math.sqrt(SUBSTEPS), (3000, HORIZON * SUBSTEPS)), axis=1)
    expected_up = float(np.median(walks.max(axis=1)))
    expected_down = float(np.median(-walks.min(axis=1)))
    last = float(train["close"].iloc[-1])
    assert math.log(highest.median / last) == pytest.approx(expected_up, rel=0.2)
    assert math.log(last / lowest.median) == pytest.approx(expected_down, rel=0.2)


def test_over_many_seeds_the_extremes_are_calibrated() -> None:
    found = {"highest_price": [], "lowest_price": [], "highest_volume": []}
    for seed in range(120):
        bars = random_walk_bars(seed=100 + seed, hours=HISTORY + HORIZON, sigma_hour=0.003 + 0.002 * (seed % 3))
        _, future, highest, lowest, volume = _extremes(bars)
        realized = {
            "highest_price": future["high"].max(),
            "lowest_price": future["low"].min(),
            "highest_volume": future["volume"].max(),
        }
        for name, forecast in (("highest_price", highest), ("lowest_price", lowest), ("highest_volume", volume)):
            value = realized[name]
            found[name].append(
                (
                    value > forecast.median,
                    forecast.bounds[80][0] <= value <= forecast.bounds[80][1],
                    forecast.bounds[95][0] <= value <= forecast.bounds[95][1],
                )
            )
    for name, rows in found.items():
        above, inside_80, inside_95 = np.mean(rows, axis=0)
        assert 0.38 <= above <= 0.62, (name, above)
        assert 0.70 <= inside_80 <= 0.90, (name, inside_80)
        assert 0.88 <= inside_95 <= 1.0, (name, inside_95)


def test_the_extremes_say_a_week_is_wider_than_an_hour() -> None:
    bars = random_walk_bars(seed=3, hours=HISTORY + HORIZON, sigma_hour=0.004)
    train, _, highest, lowest, _ = _extremes(bars)
    last = train.iloc[-1]
    hour_spread = math.log(last["high"] / last["low"])
    week_spread = math.log(highest.median / lowest.median)
    assert week_spread > 3 * hour_spread


def test_the_likeliest_hour_of_a_random_walks_maximum_is_at_an_end_of_the_horizon() -> None:
    bars = random_walk_bars(seed=5, hours=HISTORY + HORIZON, sigma_hour=0.004)
    _, future, highest, lowest, _ = _extremes(bars)
    ends = {future.index[0], future.index[-1]}
    # the arcsine law: the maximum of a random walk sits most often right after the start or at the end; the
    # reference is the simulated share of walks whose maximum is in the first or the last hour
    rng = np.random.default_rng(11)
    walks = np.cumsum(rng.normal(0.0, 1.0, (4000, HORIZON * SUBSTEPS)), axis=1)
    hour_of_max = walks.argmax(axis=1) // SUBSTEPS
    shares = np.bincount(hour_of_max, minlength=HORIZON) / len(walks)
    assert int(np.argmax(shares)) in (0, HORIZON - 1)
    assert highest.at in ends and lowest.at in ends
    assert highest.at_probability == pytest.approx(max(shares[0], shares[-1]), rel=0.35)


@pytest.mark.parametrize(
    "shape",
    ["flat", "gap", "jump", "tiny", "zero_volume", "fractional_volume"],
)
def test_adversarial_series_give_finite_ordered_extremes(shape: str) -> None:
    bars = random_walk_bars(seed=9, hours=HISTORY + HORIZON, sigma_hour=0.004)
    if shape == "flat":
        bars[["high", "low", "close"]] = 50.0
        bars["volume"] = 10.0
    elif shape == "gap":
        bars.iloc[HISTORY - 30 :, :3] *= 1.25  # a 25% gap up a day before the cut-off
    elif shape == "jump":
        bars.iloc[HISTORY - 1, 0] *= 1.5  # one absurd high in the last bar
    elif shape == "tiny":
        bars[["high", "low", "close"]] *= 1e-7
    elif shape == "zero_volume":
        bars["volume"] = 0.0
    elif shape == "fractional_volume":
        bars["volume"] *= 1e-6
    train, _, highest, lowest, volume = _extremes(bars)
    last = float(train["close"].iloc[-1])
    for extreme in (highest, lowest, volume):
        quantiles = np.array(list(extreme.quantiles().values()))
        assert np.isfinite(quantiles).all() and (quantiles >= 0).all()
        assert (np.diff(quantiles) >= 0).all()
    assert lowest.median <= last * (1 + 1e-12) and last <= highest.median * (1 + 1e-12)
    assert lowest.bounds[95][0] <= highest.bounds[95][0] and lowest.bounds[95][1] <= highest.bounds[95][1]
    if shape == "flat":
        assert highest.median == pytest.approx(50.0) and lowest.median == pytest.approx(50.0)
        assert volume.median == pytest.approx(10.0, rel=0.01)
    if shape == "zero_volume":
        assert volume.median == 0.0
    if shape == "tiny":
        assert highest.median / last < 1.2 and lowest.median / last > 0.8  # scaled like the price, not absolute


@pytest.mark.parametrize("points", [1, 2, 5, 30])
def test_a_history_shorter_than_a_day_still_gives_finite_ordered_extremes(points: int) -> None:
    bars = random_walk_bars(seed=12, hours=points + HORIZON, sigma_hour=0.004)
    hours = pd.DatetimeIndex(bars.index[points:])
    train = bars.iloc[:points]
    highest, lowest = price_extremes(
        train["high"].to_numpy(), train["low"].to_numpy(), train["close"].to_numpy(), hours, SEASON
    )
    volume = volume_extreme(train["volume"].to_numpy(), hours, SEASON)
    for extreme in (highest, lowest, volume):
        quantiles = np.array(list(extreme.quantiles().values()))
        assert np.isfinite(quantiles).all() and (np.diff(quantiles) >= 0).all()
        assert math.isfinite(extreme.at_probability) and extreme.at in hours


def test_the_pinball_loss_of_known_quantiles() -> None:
    # realized e^1: the median e^1 loses nothing; a point at e^0 under-forecasts by 100 log-points at every level
    assert pinball_loss(math.e, {0.5: math.e}, 1e-12) == pytest.approx(0.0)
    losses = [tau * 100 for tau in (0.025, 0.1, 0.5, 0.9, 0.975)]
    assert pinball_loss(math.e, point_as_quantiles(1.0), 1e-12) == pytest.approx(sum(losses) / 5)
    assert pinball_loss(1.0, {0.9: math.e}, 1e-12) == pytest.approx(0.1 * 100)  # over-forecast at 90%


# --- the volatility target --------------------------------------------------------------------------------------


def clustered_bars(seed: int, hours: int) -> pd.DataFrame:
    """Bars whose volatility has a daily rhythm and slow regimes: what a volatility model should catch."""
    rng = np.random.default_rng(seed)
    regime = np.exp(np.cumsum(rng.normal(0, 0.05, hours)))
    rhythm = 1 + 0.7 * np.sin(2 * np.pi * np.arange(hours) / SEASON)
    sigma = 0.002 * regime / regime.mean() * rhythm
    steps = rng.normal(0.0, 1.0, (hours, SUBSTEPS)) * (sigma[:, None] / math.sqrt(SUBSTEPS))
    path = 4.6 + np.cumsum(steps.ravel()).reshape(hours, SUBSTEPS)
    index = pd.date_range(START, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {"high": np.exp(path.max(axis=1)), "low": np.exp(path.min(axis=1)), "close": np.exp(path[:, -1])}, index=index
    )


def test_the_range_is_percent_of_the_price_and_zero_for_an_hour_without_a_move() -> None:
    assert range_pct(np.array([101.0, 5.0, 0.0]), np.array([100.0, 5.0, 0.0])) == pytest.approx(
        [100 * math.log(1.01), 0.0, 0.0]
    )


def test_a_volatility_model_beats_naive_where_volatility_has_a_rhythm() -> None:
    wins, naive_losses, chosen_losses = 0, [], []
    for seed in range(6):
        bars = clustered_bars(seed, HISTORY + HORIZON)
        ranges = range_pct(bars["high"].to_numpy(), bars["low"].to_numpy())
        close = bars["close"].to_numpy()
        train, actual = ranges[:HISTORY], ranges[HISTORY:]
        chosen = forecast_volatility(train, close[:HISTORY], HORIZON, SEASON, 6, HORIZON // 2, 0.1)
        naive = forecast_range(NAIVE, train, close[:HISTORY], HORIZON, SEASON)
        chosen_losses.append(np.mean(np.abs(actual - chosen.value)))
        naive_losses.append(np.mean(np.abs(actual - naive)))
        wins += chosen.model != NAIVE
    assert wins >= 5 and np.mean(chosen_losses) < 0.9 * np.mean(naive_losses)


def test_a_flat_series_has_no_volatility_and_zero_width_close_intervals() -> None:
    ranges, close = np.zeros(HISTORY), np.full(HISTORY, 10.0)
    chosen = forecast_volatility(ranges, close, HORIZON, SEASON, 6, HORIZON // 2, 0.1)
    assert np.isfinite(chosen.value).all() and (chosen.value == 0).all()
    variance = close_variance_path(ranges, close, chosen.value, SEASON)
    lo, hi = close_bounds(math.log(10.0), variance, (80,))[80]
    assert np.allclose(lo, math.log(10.0)) and np.allclose(hi, math.log(10.0))


def test_volatility_based_close_intervals_cover_near_nominal_on_a_random_walk() -> None:
    inside = {80: [], 95: []}
    for seed in range(40):
        bars = clustered_bars(200 + seed, HISTORY + HORIZON)
        ranges = range_pct(bars["high"].to_numpy(), bars["low"].to_numpy())
        close = bars["close"].to_numpy()
        chosen = forecast_volatility(ranges[:HISTORY], close[:HISTORY], HORIZON, SEASON, 6, HORIZON // 2, 0.1)
        variance = close_variance_path(ranges[:HISTORY], close[:HISTORY], chosen.value, SEASON)
        actual = np.log(close[HISTORY:])
        for level, (lo, hi) in close_bounds(math.log(close[HISTORY - 1]), variance, (80, 95)).items():
            inside[level].append(np.mean((actual >= lo) & (actual <= hi)))
    assert abs(np.mean(inside[80]) - 0.80) <= 0.08 and abs(np.mean(inside[95]) - 0.95) <= 0.05


def test_hours_of_the_crypto_calendar_are_what_the_extremes_point_at() -> None:
    bars = random_walk_bars(seed=2, hours=HISTORY + HORIZON, sigma_hour=0.004)
    hours = CRYPTO.next_slots(bars.index[HISTORY - 1], HORIZON)
    highest, _ = price_extremes(
        bars["high"].to_numpy()[:HISTORY],
        bars["low"].to_numpy()[:HISTORY],
        bars["close"].to_numpy()[:HISTORY],
        hours,
        SEASON,
    )
    assert highest.at in hours
