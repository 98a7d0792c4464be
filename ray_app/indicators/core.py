"""The indicators traders read next to candles, on one symbol's bar closes: pure functions, no engines.

Definitions are TA-Lib's (the reference the tests hold them to, tests/unit/test_indicators.py), vectorised with
``scipy.signal.lfilter`` so a whole history is recomputed in milliseconds:

- EMA(n): seeded with the simple mean of the first n closes, then ``ema += 2/(n+1) * (close - ema)``.
- RSI(n): Wilder's smoothing (an EMA with alpha 1/n) of gains and losses, seeded with their mean over the first n
  changes; ``100 * gain / (gain + loss)``, 0 when nothing moved.
- MACD(fast, slow, signal): EMA(fast) - EMA(slow), both seeded so they start at the slow one's first value; the
  signal line is the EMA(signal) of MACD, the histogram their difference.
- Bollinger(n, k): the n-bar simple mean, plus and minus k population standard deviations.

Every output has one value per close; values a definition cannot give yet (too few bars) are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import lfilter

Floats = npt.NDArray[np.float64]


def _recurse(values: Floats, alpha: float, seed: float) -> Floats:
    """``y[i] = y[i-1] + alpha * (values[i] - y[i-1])`` from ``y[-1] = seed``, for every value."""
    if not len(values):
        return np.empty(0)
    smoothed, _ = lfilter([alpha], [1.0, alpha - 1.0], values, zi=[(1.0 - alpha) * seed])
    return np.asarray(smoothed, dtype=np.float64)


def _ema_from(closes: Floats, period: int, first: int) -> Floats:
    """EMA(period) whose first value sits at index ``first``: the mean of the ``period`` closes up to it."""
    out = np.full(len(closes), np.nan)
    if first >= len(closes) or first < period - 1:
        return out
    seed = float(np.mean(closes[first - period + 1 : first + 1]))
    out[first] = seed
    out[first + 1 :] = _recurse(closes[first + 1 :], 2.0 / (period + 1), seed)
    return out


def ema(closes: Floats, period: int) -> Floats:
    return _ema_from(closes, period, period - 1)


def rsi(closes: Floats, period: int) -> Floats:
    out = np.full(len(closes), np.nan)
    if len(closes) <= period:
        return out
    changes = np.diff(closes)
    gains, losses = np.clip(changes, 0, None), np.clip(-changes, 0, None)
    alpha = 1.0 / period
    gain_seed, loss_seed = float(np.mean(gains[:period])), float(np.mean(losses[:period]))
    gain = np.concatenate([[gain_seed], _recurse(gains[period:], alpha, gain_seed)])
    loss = np.concatenate([[loss_seed], _recurse(losses[period:], alpha, loss_seed)])
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out[period:] = np.where(np.abs(total) < 1e-14, 0.0, 100.0 * gain / total)
    return out


@dataclass(frozen=True)
class Macd:
    macd: Floats
    signal: Floats
    histogram: Floats


def macd(closes: Floats, fast: int, slow: int, signal: int) -> Macd:
    count = len(closes)
    start = slow - 1  # both averages start where the slow one can
    line = _ema_from(closes, fast, start) - _ema_from(closes, slow, start)
    signal_line = np.full(count, np.nan)
    first_signal = start + signal - 1
    if first_signal < count:
        signal_line[start:] = _ema_from(line[start:], signal, signal - 1)
        line[:first_signal] = np.nan  # MACD is given from where its signal line is, as TA-Lib's MACD does
    else:
        line[:] = np.nan
    return Macd(line, signal_line, line - signal_line)


@dataclass(frozen=True)
class Bands:
    upper: Floats
    middle: Floats
    lower: Floats


def bollinger(closes: Floats, period: int, sigmas: float) -> Bands:
    window = pd.Series(closes).rolling(period)
    middle = window.mean().to_numpy()
    spread = sigmas * window.std(ddof=0).to_numpy()
    return Bands(middle + spread, middle, middle - spread)


# the indicator columns, as the documents and the API spell them
COLUMNS = ("rsi", "ema_fast", "ema_slow", "macd", "macd_signal", "macd_histogram", "bb_upper", "bb_middle", "bb_lower")


def indicators(
    closes: Floats,
    rsi_period: int = 14,
    ema_fast: int = 12,
    ema_slow: int = 26,
    macd_signal: int = 9,
    bollinger_period: int = 20,
    bollinger_sigmas: float = 2.0,
) -> dict[str, Floats]:
    """Every indicator on ``closes`` (oldest first), by column name."""
    closes = np.asarray(closes, dtype=np.float64)
    lines = macd(closes, ema_fast, ema_slow, macd_signal)
    bands = bollinger(closes, bollinger_period, bollinger_sigmas)
    return {
        "rsi": rsi(closes, rsi_period),
        "ema_fast": ema(closes, ema_fast),
        "ema_slow": ema(closes, ema_slow),
        "macd": lines.macd,
        "macd_signal": lines.signal,
        "macd_histogram": lines.histogram,
        "bb_upper": bands.upper,
        "bb_middle": bands.middle,
        "bb_lower": bands.lower,
    }
