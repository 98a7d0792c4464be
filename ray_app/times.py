"""Every way the platform writes and reads a time: one module, so a trade, a bar and a forecast agree to the digit.

All times are UTC. Trades keep Alpaca's nanoseconds (RFC 3339 with nine fractional digits, and the same instant as
integer nanoseconds for Spark's arithmetic); bars, forecasts and the rest are whole seconds
(``2026-11-28T14:30:00Z``).
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import pandas as pd

SECONDS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
NEW_YORK = ZoneInfo("America/New_York")  # the US stock market's clock: sessions, trading days


_SECOND_TEXTS: dict[int, str] = {}  # trades arrive many to a second: each second is formatted once


def _second_text(seconds: int) -> str:
    text = _SECOND_TEXTS.get(seconds)
    if text is None:
        if len(_SECOND_TEXTS) >= 65536:
            _SECOND_TEXTS.clear()
        text = _SECOND_TEXTS[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return text


def format_ns(epoch_ns: int) -> str:
    """Nanoseconds since the epoch -> ``2026-11-28T14:30:00.123456789Z``."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    text = _SECOND_TEXTS.get(seconds) or _second_text(seconds)  # on the ingest's hottest line: one lookup
    return f"{text}.{str(nanos).zfill(9)}Z"  # zfill: half the cost of a :09d format


def parse_rfc3339_ns(text: str) -> int:
    """``2026-11-28T14:30:00.123456789Z`` (or an offset, or fewer digits) -> nanoseconds since the epoch."""
    text = text.strip()
    main, fraction, zone = text, "", ""
    if text.endswith(("Z", "z")):
        main, zone = text[:-1], "+00:00"
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        main, zone = text[:-6], text[-6:]
    else:
        raise ValueError(f"timestamp {text!r} has no time zone")
    if "." in main:
        main, fraction = main.split(".", 1)
        if not fraction.isdigit() or len(fraction) > 9:
            raise ValueError(f"timestamp {text!r} has a bad fraction of a second")
    whole = datetime.fromisoformat(main + zone)
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


@lru_cache(maxsize=4096)
def _new_york_date(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, tz=UTC).astimezone(NEW_YORK).strftime("%Y-%m-%d")


def trading_day(epoch_ns: int) -> str:
    """The US trading day an instant belongs to: its New York calendar date, ``2026-11-30``. US stock trading runs
    04:00-20:00 New York, so a day's trades never straddle midnight there."""
    # New York's offset from UTC is whole hours: the hour decides the date
    return _new_york_date(epoch_ns // 3_600_000_000_000)


def now_ns() -> int:
    return time.time_ns()


def format_seconds(epoch_s: int) -> str:
    """Whole seconds since the epoch -> ``2026-11-28T14:30:00Z`` (a bar's start, an update time)."""
    return time.strftime(SECONDS_FORMAT, time.gmtime(epoch_s))


def parse_seconds(text: str) -> int:
    """``2026-11-28T14:30:00Z`` -> whole seconds since the epoch."""
    return calendar.timegm(time.strptime(text, SECONDS_FORMAT))


def iso(moment: pd.Timestamp | datetime) -> str:
    """A pandas or datetime moment (with a zone) -> ``2026-11-28T14:30:00Z``."""
    import pandas as pd

    return pd.Timestamp(moment).tz_convert("UTC").strftime(SECONDS_FORMAT)


def now_iso() -> str:
    return iso(datetime.now(UTC))
