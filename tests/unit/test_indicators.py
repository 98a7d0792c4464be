"""The indicators against TA-Lib, the reference library, on the same bars: every value, NaN where TA-Lib has none.

TA-Lib is not a copy of our formula: it is the C library traders' tools are checked against, run here through its
own Python wrapper on the closes our core sees."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from ray_app.indicators.core import COLUMNS, indicators
from ray_app.indicators.runner import BAR_FIELDS, Series, documents, first_change


def reference(closes: np.ndarray) -> dict[str, np.ndarray]:
    macd, signal, histogram = talib.MACD(closes, fastperiod=12, slowperiod=26, signalperiod=9)
    upper, middle, lower = talib.BBANDS(closes, timeperiod=20, nbdevup=2, nbdevdn=2, matype=talib.MA_Type.SMA)
    return {
        "rsi": talib.RSI(closes, timeperiod=14),
        "ema_fast": talib.EMA(closes, timeperiod=12),
        "ema_slow": talib.EMA(closes, timeperiod=26),
        "macd": macd,
        "macd_signal": signal,
        "macd_histogram": histogram,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
    }


def assert_equal_to_talib(closes: np.ndarray) -> None:
    ours, theirs = indicators(closes), reference(closes)
    assert set(ours) == set(theirs) == set(COLUMNS)
    for column in COLUMNS:
        assert np.array_equal(np.isnan(ours[column]), np.isnan(theirs[column])), column
        scale = max(float(np.nanmax(np.abs(closes))), 1.0) if len(closes) else 1.0
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-9, atol=1e-9 * scale, err_msg=column)


def random_walk(count: int, seed: int, start: float = 100.0, volatility: float = 0.002) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0, volatility, count)))


@pytest.mark.parametrize("seed", range(5))
def test_every_indicator_equals_talib_on_a_month_of_minutes(seed: int) -> None:
    assert_equal_to_talib(random_walk(43_200, seed, start=[100.0, 65_000.0, 0.5, 3_000.0, 20.0][seed]))


@pytest.mark.parametrize("count", [0, 1, 2, 11, 12, 13, 14, 15, 19, 20, 25, 26, 27, 33, 34, 35, 100])
def test_short_histories_give_values_exactly_where_talib_does(count: int) -> None:
    assert_equal_to_talib(random_walk(count, count))


def test_flat_prices_and_one_way_moves_equal_talib() -> None:
    flat = np.full(200, 42.0)
    assert_equal_to_talib(flat)
    assert np.all(indicators(flat)["rsi"][14:] == 0)  # nothing moved: TA-Lib's 0, not a division by zero
    assert_equal_to_talib(np.linspace(10, 20, 300))  # only gains: RSI 100
    assert_equal_to_talib(np.linspace(20, 10, 300))  # only losses: RSI 0
    stepped = np.repeat(random_walk(60, 3), 5)  # quiet stretches between moves
    assert_equal_to_talib(stepped)


def test_other_periods_follow_the_settings() -> None:
    closes = random_walk(2_000, 9)
    ours = indicators(
        closes, rsi_period=7, ema_fast=5, ema_slow=35, macd_signal=4, bollinger_period=10, bollinger_sigmas=1.5
    )
    macd, signal, _ = talib.MACD(closes, fastperiod=5, slowperiod=35, signalperiod=4)
    upper, _, _ = talib.BBANDS(closes, timeperiod=10, nbdevup=1.5, nbdevdn=1.5)
    for column, theirs in (
        ("rsi", talib.RSI(closes, 7)),
        ("ema_slow", talib.EMA(closes, 35)),
        ("macd", macd),
        ("macd_signal", signal),
        ("bb_upper", upper),
    ):
        np.testing.assert_allclose(ours[column], theirs, rtol=1e-9, atol=1e-9, err_msg=column)


def _series(starts: list[int], closes: list[float]) -> Series:
    bars = np.array([[c, c + 1, c - 1, c, 10.0] for c in closes]).reshape(len(closes), len(BAR_FIELDS))
    return Series(np.array(starts, dtype=np.int64), bars, loaded=True)


def test_a_cycle_rewrites_from_the_first_bar_that_changed() -> None:
    old = _series([0, 60, 120, 180], [1.0, 2.0, 3.0, 4.0])
    assert first_change(old, _series([0, 60, 120, 180, 240], [1.0, 2.0, 3.0, 4.0, 5.0])) == 4  # only grew
    assert first_change(old, _series([0, 60, 120, 180], [1.0, 2.0, 3.5, 4.0])) == 2  # a late trade revised a bar
    assert first_change(old, _series([0, 60, 90, 120, 180], [1.0, 2.0, 2.5, 3.0, 4.0])) == 2  # a bar filled a gap
    revised_high = _series([0, 60, 120, 180], [1.0, 2.0, 3.0, 4.0])
    revised_high.bars[3, BAR_FIELDS.index("high")] = 9.0  # the candle changed, the close did not
    assert first_change(old, revised_high) == 3


def test_documents_carry_the_bar_and_leave_out_what_is_not_defined_yet() -> None:
    series = _series([0, 60, 120], [1.0, 2.0, 3.0])
    docs = documents("BTC/USD", series, indicators(series.closes), 1, "2026-12-01T00:00:00Z")
    assert [doc["timestamp"] for doc in docs] == ["1970-01-01T00:01:00Z", "1970-01-01T00:02:00Z"]
    assert docs[0] == {
        "symbol": "BTC/USD",
        "timestamp": "1970-01-01T00:01:00Z",
        "bars": 2,
        "open": 2.0,
        "high": 3.0,
        "low": 1.0,
        "close": 2.0,
        "volume": 10.0,
        "updated_at": "2026-12-01T00:00:00Z",
    }
