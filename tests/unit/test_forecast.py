"""Forecasting without engines: trading calendar, series building, error measures, the model choice on series
whose right answer is known, and the 7-day summary."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ray_app.config import ConfigError, load_settings
from ray_app.forecast.calendar import CRYPTO, NEW_YORK, STOCK
from ray_app.forecast.engine import SymbolForecast, forecast_history, summarise
from ray_app.forecast.models import NAIVE, ForecastSpec, ModelScore, choose_model, cross_validate, mase, smape
from ray_app.forecast.series import Skipped, SymbolHistory, bars_frame, build_history
from ray_app.testing.bars import synthetic_bars

TARGETS = ["high", "low", "close", "volume"]
# small enough for a unit test: one day ahead, three one-day CV windows
SMALL = {
    "horizon": 24,
    "cv_windows": 3,
    "cv_step": 24,
    "refit": True,
    "min_improvement": 0.1,
    "arima_approximation": True,
    "levels": (80, 95),
    "models": ("AutoETS", "AutoTheta"),
}


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")


def spec_for(market, **overrides) -> ForecastSpec:
    """Crypto: one day ahead (24 steps); stocks: one week of sessions (35 steps), enough points to judge intervals."""
    steps = 24 if market is CRYPTO else 35
    return ForecastSpec(
        **{**SMALL, "horizon": steps, "cv_step": steps, "season_length": market.bars_per_day, **overrides}
    )


# --- calendar ------------------------------------------------------------------------------------------------


def test_stock_session_is_seven_hourly_bars_across_the_dst_change() -> None:
    # US daylight saving time ended on Sunday 2026-11-01: the session moves one UTC hour later
    before = STOCK.slots_between(ts("2026-10-30T00:00Z"), ts("2026-10-30T23:00Z"))
    after = STOCK.slots_between(ts("2026-11-02T00:00Z"), ts("2026-11-02T23:00Z"))
    assert [h.hour for h in before] == [13, 14, 15, 16, 17, 18, 19]
    assert [h.hour for h in after] == [14, 15, 16, 17, 18, 19, 20]
    weekend = STOCK.slots_between(ts("2026-10-31T00:00Z"), ts("2026-11-01T23:00Z"))
    assert len(weekend) == 0
    assert len(CRYPTO.slots_between(ts("2026-10-31T00:00Z"), ts("2026-11-01T23:00Z"))) == 48


def test_horizon_of_seven_days_is_168_crypto_hours_and_five_stock_sessions() -> None:
    assert CRYPTO.horizon_steps(7) == 168
    assert STOCK.horizon_steps(7) == 35
    assert STOCK.horizon_steps(1) == 7


def test_next_stock_hours_after_friday_close_start_monday_morning() -> None:
    friday_last_bar = pd.Timestamp("2026-11-27T15:00", tz=NEW_YORK).tz_convert("UTC")
    following = STOCK.next_slots(friday_last_bar, 35)
    local = following.tz_convert(NEW_YORK)
    assert local[0] == pd.Timestamp("2026-11-30T09:00", tz=NEW_YORK)
    assert len(following) == 35 and set(local.weekday) == {0, 1, 2, 3, 4}
    assert set(local.hour) == set(range(9, 16))
    assert list(CRYPTO.next_slots(ts("2026-11-27T23:00Z"), 2)) == [ts("2026-11-28T00:00Z"), ts("2026-11-28T01:00Z")]


# --- series --------------------------------------------------------------------------------------------------


def _frame(hours: pd.DatetimeIndex, close: list[float]) -> pd.DataFrame:
    values = np.asarray(close, dtype=float)
    return pd.DataFrame(
        {"open": values, "high": values + 1, "low": values - 1, "close": values, "volume": 10.0}, index=hours
    )


def test_an_hour_without_a_bar_is_filled_with_the_last_close_and_zero_volume() -> None:
    hours = CRYPTO.slots_between(ts("2026-11-01T00:00Z"), ts("2026-11-01T05:00Z"))
    bars = _frame(hours, [10, 11, 12, 13, 14, 15]).drop(hours[[2, 3]])
    history = build_history("BTC/USD", bars, CRYPTO, TARGETS, min_points=1, max_gap_fraction=0.5)
    assert isinstance(history, SymbolHistory)
    assert list(history.values["close"]) == [10, 11, 11, 11, 14, 15]
    assert list(history.values["high"]) == [11, 12, 11, 11, 15, 16]
    assert list(history.values["volume"]) == [10, 10, 0, 0, 10, 10]
    assert history.gap_fraction == pytest.approx(2 / 6)


def test_stock_bars_outside_the_session_and_weekday_holidays_are_left_out() -> None:
    days = STOCK.slots_between(ts("2026-11-23T00:00Z"), ts("2026-11-27T23:00Z"))  # Mon-Fri, Thursday = Thanksgiving
    thanksgiving = days[days.tz_convert(NEW_YORK).day == 26]
    traded = days.drop(thanksgiving)
    after_hours = pd.DatetimeIndex([pd.Timestamp("2026-11-24T17:00", tz=NEW_YORK).tz_convert("UTC")])
    bars = _frame(traded.append(after_hours), [*range(len(traded)), 999]).sort_index()
    history = build_history("AAPL", bars, STOCK, TARGETS, min_points=1, max_gap_fraction=0.0)
    assert isinstance(history, SymbolHistory)
    assert history.points == 28 and history.holidays == 1 and history.outside_session == 1
    assert 999 not in history.values["close"] and history.gap_fraction == 0


def test_too_little_history_or_too_many_gaps_skip_the_symbol_with_the_reason() -> None:
    hours = CRYPTO.slots_between(ts("2026-11-01T00:00Z"), ts("2026-11-01T09:00Z"))
    short = build_history(
        "ETH/USD", _frame(hours, list(range(10))), CRYPTO, TARGETS, min_points=48, max_gap_fraction=0.2
    )
    assert isinstance(short, Skipped) and "10 trading hours" in short.reason and "at least 48" in short.reason
    gappy = build_history(
        "ETH/USD", _frame(hours, list(range(10))).iloc[[0, 9]], CRYPTO, TARGETS, min_points=1, max_gap_fraction=0.2
    )
    assert isinstance(gappy, Skipped) and "8 of 10 trading hours (80%) had no bar" in gappy.reason
    empty = build_history("ETH/USD", bars_frame([]), CRYPTO, TARGETS, min_points=1, max_gap_fraction=0.2)
    assert isinstance(empty, Skipped) and empty.reason == "no hourly bars in the training window"


def test_bar_documents_become_a_sorted_frame_without_duplicate_hours() -> None:
    rows = [
        {"timestamp": "2026-11-01T01:00:00Z", "open": 2, "high": 2, "low": 2, "close": 2, "volume": 1},
        {"timestamp": "2026-11-01T00:00:00Z", "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1},
        {"timestamp": "2026-11-01T01:00:00Z", "open": 3, "high": 3, "low": 3, "close": 3, "volume": 1},
    ]
    frame = bars_frame(rows)
    assert list(frame["close"]) == [1, 3] and frame.index.is_monotonic_increasing


# --- measures and choice -------------------------------------------------------------------------------------


def test_mase_and_smape_by_hand() -> None:
    train = np.array([1.0, 2.0, 4.0])  # mean one-step change 1.5
    assert mase(np.array([5.0, 7.0]), np.array([4.0, 4.0]), train) == pytest.approx(2.0 / 1.5)
    assert smape(np.array([100.0, 0.0]), np.array([110.0, 0.0])) == pytest.approx(100 * (20 / 210) / 2)
    assert mase(np.array([3.0]), np.array([3.0]), np.array([3.0, 3.0])) == 0.0
    assert math.isinf(mase(np.array([4.0]), np.array([3.0]), np.array([3.0, 3.0])))


def test_a_model_worse_than_naive_or_failing_is_never_chosen() -> None:
    naive = ModelScore(mase=1.0)
    assert choose_model({NAIVE: naive, "AutoETS": ModelScore(mase=1.2)}, 0.0) == NAIVE
    assert choose_model({NAIVE: naive, "AutoETS": ModelScore(mase=0.95)}, 0.1) == NAIVE  # within the margin
    assert choose_model({NAIVE: naive, "AutoETS": ModelScore(mase=0.85)}, 0.1) == "AutoETS"
    assert choose_model({NAIVE: naive, "AutoETS": ModelScore(mase=0.5, error="boom")}, 0.1) == NAIVE
    assert choose_model({NAIVE: naive, "AutoETS": ModelScore(mase=math.nan)}, 0.1) == NAIVE
    assert choose_model({NAIVE: naive, "AutoETS": ModelScore(mase=0.8), "AutoTheta": ModelScore(mase=0.7)}, 0.1) == (
        "AutoTheta"
    )


def test_on_pure_random_walks_naive_is_chosen() -> None:
    spec = spec_for(CRYPTO)
    series = {}
    for seed in range(8):
        bars = synthetic_bars(CRYPTO, ts("2026-11-01T00:00Z"), ts("2026-11-11T00:00Z"), "random_walk", seed)
        series[f"walk{seed}"] = bars["close"].to_numpy()
    chosen = Counter(choose_model(scores, spec.min_improvement) for scores in cross_validate(series, spec).values())
    # a driftless random walk has no better forecast than its last value; chance may let one model through
    assert chosen[NAIVE] >= 7, chosen


@pytest.mark.parametrize("market", [CRYPTO, STOCK], ids=["crypto-24h", "stock-7h-session"])
def test_on_a_strong_daily_cycle_a_seasonal_model_wins_by_far_with_calibrated_intervals(market) -> None:
    spec = spec_for(market)
    bars = synthetic_bars(market, ts("2026-10-12T00:00Z"), ts("2026-11-11T00:00Z"), "daily_cycle", seed=3)
    history = build_history("BTC/USD", bars, market, TARGETS, min_points=spec.min_points, max_gap_fraction=0)
    assert isinstance(history, SymbolHistory)
    result = forecast_history(history, spec)
    for target in ("close", "volume"):
        forecast = result.targets[target]
        assert forecast.model != NAIVE, forecast.scores
        assert forecast.chosen.mase < 0.5 * forecast.naive.mase, forecast.scores
        assert 0.6 <= forecast.chosen.coverage[80] <= 0.97 and forecast.chosen.coverage[95] >= 0.8
        assert forecast.beats_naive
    assert len(result.targets["close"].hours) == spec.horizon
    assert bool(market.in_session(result.targets["close"].hours).all())


def test_a_model_that_fails_is_reported_and_the_others_still_compete(monkeypatch) -> None:
    from statsforecast.models import AutoTheta

    from ray_app.forecast import models

    class Broken(AutoTheta):
        def fit(self, *args, **kwargs):
            raise FloatingPointError("broken on purpose")

        def forecast(self, *args, **kwargs):
            raise FloatingPointError("broken on purpose")

    original = models.make_model
    monkeypatch.setattr(
        models,
        "make_model",
        lambda name, spec: (
            Broken(season_length=spec.season_length, alias=name) if name == "AutoTheta" else original(name, spec)
        ),
    )
    spec = spec_for(CRYPTO)
    bars = synthetic_bars(CRYPTO, ts("2026-11-01T00:00Z"), ts("2026-11-11T00:00Z"), "daily_cycle", seed=1)
    scores = cross_validate({"close": bars["close"].to_numpy()}, spec)["close"]
    assert scores["AutoTheta"].error and "broken on purpose" in scores["AutoTheta"].error
    assert scores["AutoETS"].usable and scores[NAIVE].usable
    assert choose_model(scores, spec.min_improvement) != "AutoTheta"


def test_the_summary_is_the_extremes_of_the_history_not_the_maxima_of_the_point_forecasts() -> None:
    """The old rule (max of high, min of low over the point forecasts) gave a week's range as one hour's; the
    summary now forecasts the extremes from the history: wider than one bar's spread, and ordered."""
    bars = synthetic_bars(CRYPTO, ts("2026-10-01T00:00Z"), ts("2026-10-31T00:00Z"), "random_walk", seed=4)
    history = SymbolHistory(
        "BTC/USD",
        CRYPTO,
        pd.DatetimeIndex(bars.index),
        {name: bars[name].to_numpy(dtype="float64") for name in ("high", "low", "close", "volume")},
        np.zeros(len(bars), dtype=bool),
    )
    hours = CRYPTO.next_slots(history.last_hour, 168)
    result = SymbolForecast(history, {}, cv_seconds=0, fit_seconds=0, extremes=summarise(history, hours))
    summary = result.summary()
    assert summary.highest_price and summary.lowest_price and summary.highest_volume
    last = bars.iloc[-1]
    assert summary.highest_price.bounds[80][1] > last["high"] and summary.lowest_price.bounds[80][0] < last["low"]
    assert summary.lowest_price.median < last["close"] < summary.highest_price.median
    for extreme in (summary.highest_price, summary.lowest_price, summary.highest_volume):
        quantiles = list(extreme.quantiles().values())
        assert quantiles == sorted(quantiles) and extreme.at in hours and 0 < extreme.at_probability <= 1


def test_forecast_settings_fail_fast_with_the_key(monkeypatch) -> None:
    monkeypatch.setenv("RAY_APP_FORECAST__LEVELS", "[80, 150]")
    with pytest.raises(ConfigError, match=r"forecast.levels: interval levels are percentages"):
        load_settings()
    monkeypatch.setenv("RAY_APP_FORECAST__LEVELS", "[80, 95]")
    monkeypatch.setenv("RAY_APP_FORECAST__MODELS", '["AutoETS", "Prophet"]')
    with pytest.raises(ConfigError, match=r"forecast.models.1"):
        load_settings()
    monkeypatch.delenv("RAY_APP_FORECAST__MODELS")
    # 6 CV windows of 7 days, 84 h apart, need 168 + 5 x 84 + 48 = 636 crypto hours: 10 days cannot hold them
    monkeypatch.setenv("RAY_APP_FORECAST__LOOKBACK_DAYS", "10")
    with pytest.raises(ConfigError, match=r"need 636 crypto hours but forecast.lookback_days 10 holds about 240"):
        load_settings()
    monkeypatch.setenv("RAY_APP_SYMBOLS", '["AAPL"]')  # stocks: 35 + 5 x 18 + 14 = 139 needed, 10 days hold ~49
    with pytest.raises(ConfigError, match=r"need 139 stock hours"):
        load_settings()


# --- coherence -----------------------------------------------------------------------------------------------


def _bars_of(
    hours: pd.DatetimeIndex, close: np.ndarray, up: np.ndarray, down: np.ndarray, volume: np.ndarray | None = None
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "open": close,
            "high": close + up,
            "low": close - down,
            "close": close,
            "volume": np.full(len(close), 1000.0) if volume is None else volume,
        },
        index=hours,
    )


def _adversarial(market, kind: str) -> pd.DataFrame:
    """Series built to pull high, low and close apart, or to break a model: each is a class of trouble."""
    hours = market.slots_between(ts("2026-10-12T00:00Z"), ts("2026-11-10T23:00Z"))
    n = len(hours)
    rng = np.random.default_rng(7)
    t = np.arange(n)
    close = 100 + np.cumsum(rng.normal(0, 0.2, n))
    up, down = np.full(n, 0.3), np.full(n, 0.3)
    if kind == "opposite_trends":  # the high trends up, the low down: separate models would cross them
        up, down = 0.3 + 0.02 * t, 0.3 + 0.02 * t
    elif kind == "trend_up_lows_collapse":  # close trends up hard while the range widens only downwards
        close, down = 100 + 0.5 * t, 0.1 + 0.05 * t
    elif kind == "flat":  # nothing moves at all
        close, up, down = np.full(n, 50.0), np.zeros(n), np.zeros(n)
    elif kind == "tiny_price":  # a sub-penny token
        close, up, down = close * 1e-7, up * 1e-7, down * 1e-7
    elif kind == "price_jump":  # the price doubles overnight
        close = close + np.where(t > n * 2 // 3, 100.0, 0.0)
    bars = _bars_of(hours, close, up, down, 1000 + 500 * np.sin(2 * np.pi * t / market.bars_per_day))
    if kind == "gap":  # a week without any bar (filled with the last close and no volume)
        bars = bars.drop(hours[n // 2 : n // 2 + 5 * market.bars_per_day])
    return bars


def _assert_coherent(result: SymbolForecast) -> None:
    from ray_app.forecast.engine import incoherent_hours

    problems = incoherent_hours(result)
    assert not problems, problems[:5]
    high, low, close = (result.targets[t] for t in ("high", "low", "close"))
    assert (low.value <= close.value).all() and (close.value <= high.value).all()
    assert (result.targets["volume"].value >= 0).all()
    for level in (80, 95):  # spelled out once more, not through the engine's own checker
        assert (low.bounds[level][0] <= close.bounds[level][0]).all()
        assert (close.bounds[level][1] <= high.bounds[level][1]).all()
        assert (high.bounds[level][0] <= high.value).all() and (low.value <= low.bounds[level][1]).all()
    assert (high.bounds[95][0] <= high.bounds[80][0]).all() and (low.bounds[80][1] <= low.bounds[95][1]).all()


@pytest.mark.parametrize("market", [CRYPTO, STOCK], ids=["crypto", "stock"])
@pytest.mark.parametrize(
    "kind", ["opposite_trends", "trend_up_lows_collapse", "gap", "flat", "tiny_price", "price_jump"]
)
def test_forecasts_are_coherent_on_adversarial_series(market, kind) -> None:
    spec = spec_for(market)
    history = build_history(
        "X", _adversarial(market, kind), market, TARGETS, min_points=spec.min_points, max_gap_fraction=0.5
    )
    assert isinstance(history, SymbolHistory), history
    result = forecast_history(history, spec)
    _assert_coherent(result)
    if kind == "opposite_trends":  # the widening range is forecast as such, not as a crossing
        assert (result.targets["high"].value - result.targets["low"].value > 0).all()


def test_forecasts_are_coherent_on_the_simulator_s_trades() -> None:
    from ray_app.forecast.series import bars_frame
    from ray_app.ingest.simulator import TradeSimulator

    end = ts("2026-11-27T00:00Z")
    trades = TradeSimulator(["AAPL", "BTC/USD"], seed=5, trades_per_minute=4).trades(
        (end - pd.Timedelta(days=25)).value, end.value
    )
    frame = pd.DataFrame(
        [
            {"symbol": t.symbol, "ts": pd.Timestamp(t.timestamp_ns, tz="UTC"), "price": t.price, "size": t.size}
            for t in trades
        ]
    )
    for symbol, market in (("AAPL", STOCK), ("BTC/USD", CRYPTO)):
        rows = frame[frame["symbol"] == symbol].set_index("ts").sort_index()
        hourly = rows["price"].resample("1h").ohlc().assign(volume=rows["size"].resample("1h").sum()).dropna()
        bars = bars_frame([{"timestamp": hour.isoformat(), **row} for hour, row in hourly.iterrows()])
        spec = spec_for(market)
        history = build_history(symbol, bars, market, TARGETS, min_points=spec.min_points, max_gap_fraction=0.3)
        assert isinstance(history, SymbolHistory), history
        _assert_coherent(forecast_history(history, spec))


def test_forecasts_are_coherent_on_real_daily_stocks() -> None:
    from ray_app.testing.bars import real_daily_stocks

    stocks = real_daily_stocks()
    spec = ForecastSpec(**{**SMALL, "horizon": 5, "cv_step": 5, "season_length": 5})
    for ticker in ("AAPL", "IBM"):
        frame = stocks[ticker].iloc[-250:]
        values = {target: frame[target].to_numpy(dtype="float64") for target in TARGETS}
        history = SymbolHistory(ticker, CRYPTO, pd.DatetimeIndex(frame.index), values, np.zeros(250, dtype=bool))
        _assert_coherent(forecast_history(history, spec))


def test_high_and_low_without_close_fail_fast_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_APP_FORECAST__TARGETS", '["high", "low"]')
    with pytest.raises(ConfigError, match=r"forecast\.targets.*close"):
        load_settings()


def test_the_price_choice_is_judged_on_high_low_and_close_and_naive_pairs_reproduce_naive() -> None:
    spec = spec_for(CRYPTO)
    bars = synthetic_bars(CRYPTO, ts("2026-11-01T00:00Z"), ts("2026-11-11T00:00Z"), "random_walk", seed=2)
    history = build_history("BTC/USD", bars, CRYPTO, TARGETS, min_points=1, max_gap_fraction=0)
    result = forecast_history(history, spec)
    for target in ("high", "low", "close"):
        forecast = result.targets[target]
        assert forecast.method and "log_close" in forecast.components
        # Naive on the log close and on the spreads is Naive on the target itself: the last value, every hour
        naive_scores = cross_validate({target: history.values[target]}, spec)[target][NAIVE]
        assert forecast.naive.mase == pytest.approx(naive_scores.mase, rel=1e-9)
    assert result.targets["close"].components == {"log_close": result.targets["close"].model}


def test_by_default_six_cv_windows_half_a_horizon_apart_fit_in_the_lookback() -> None:
    """What held-out data asked for (docs/forecast.md, its benchmark): more CV evidence from the same history."""
    settings = load_settings()
    for market in (CRYPTO, STOCK):
        spec = ForecastSpec.for_market(settings.forecast, market)
        assert spec.cv_windows == 6 and spec.cv_step == math.ceil(spec.horizon / 2)
        lookback_hours = settings.forecast.lookback_days * (24 if market is CRYPTO else 7 * 5 / 7)
        assert spec.min_points <= lookback_hours


def test_a_crypto_symbol_s_task_is_submitted_before_a_stock_s() -> None:
    from ray_app.config import load_settings
    from ray_app.forecast.runner import expected_work

    settings = load_settings()
    # 24 bars a day, 7 days a week and a 168-step horizon against 7 bars a session and 35 steps: ~20x the work
    assert expected_work(settings, ["BTC/USD"]) > 10 * expected_work(settings, ["AAPL"])
    assert expected_work(settings, ["AAPL", "IBM"]) == 2 * expected_work(settings, ["AAPL"])
