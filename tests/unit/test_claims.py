"""The claim checker (serve_deployments/claims.py): a table of claim kinds, each with texts the facts support and
texts they do not, among them the four the packaged model really wrote after `make run` (issue 32)."""

from __future__ import annotations

import pytest

from ray_app.documents import MarketFacts
from serve_deployments.claims import CLAIM_KINDS, check_text


def facts(symbol: str = "IBM", change: float | None = -3.47, forecast_change: float = 0.0) -> MarketFacts:
    direction = "up" if forecast_change >= 1 else "down" if forecast_change <= -1 else "flat"
    return MarketFacts(
        symbol=symbol,
        last_bar_at="2026-12-05T00:00:00Z",  # a Saturday (UTC) in December
        last_price=203.44,
        change_24h_pct=change,
        realized_volatility_24h_pct=1.82,
        run_id="r",
        forecast_as_of="2026-12-05T04:00:00Z",
        forecast_end="2026-12-11T20:00:00Z",  # a Friday
        forecast_close=203.44 * (1 + forecast_change / 100),
        forecast_change_pct=forecast_change,
        forecast_direction=direction,
        range_7d_low=198.35,
        range_7d_high=210.33,
        range_7d_low_lo_80=189.99,
        range_7d_high_hi_80=222.22,
        forecast_hourly_range_pct=0.54,
        close_model="Naive",
        close_beats_naive=False,
    )


# kind -> (text, symbol, supported)
TABLE = {
    "percent": [
        ("IBM fell 3.5% over the last day.", "IBM", True),
        ("IBM fell 3.47% in 24 hours.", "IBM", True),
        ("Its hourly range is forecast at 0.54 percent.", "IBM", True),
        ("IBM fell 4% over the last day.", "IBM", False),  # 3.47 rounds to 3, not 4
        ("IBM fell 3.4% over the last day.", "IBM", False),  # 3.47 rounds to 3.5
        ("The IBM stock has plummeted by nearly half.", "IBM", False),  # issue 32: "half" is 50%
    ],
    "number": [
        ("The last price is 203.44.", "IBM", True),
        ("The week's low is near 198.35 and the high near 210.33.", "IBM", True),
        ("It trades around 203.", "IBM", True),  # 203.44 at the text's rounding
        ("The 7-day forecast covers 24 hours and more.", "IBM", True),
        ("It trades around 205.", "IBM", False),
        ("Support sits at 190.5.", "IBM", False),
        ("It fell over the last three days.", "IBM", False),  # number words are numbers
        ("The forecast covers the next seven days.", "IBM", True),
    ],
    "direction": [
        ("IBM fell over the last day.", "IBM", True),
        ("The price dropped.", "IBM", True),
        ("IBM rose over the last day.", "IBM", False),
        ("An uptrend is forming.", "IBM", False),
        ("The stock plummeted.", "IBM", False),  # a strong word for a 3.47% move
        ("IBM made a sharp move over the last day.", "IBM", True),  # 3.47% is big (>= 2%)
        ("IBM saw a slight dip over the last day.", "IBM", False),  # ... and not slight
        ("The outlook shows big changes ahead.", "IBM", False),  # the forecast is flat (0%)
        ("The forecast expects a stable close.", "IBM", True),
    ],
    "time": [
        ("On Saturday the price was 203.44.", "IBM", True),  # the last bar's day
        ("The forecast ends on Friday.", "IBM", True),
        ("MSFT's performance on Wednesday and Thursday showing signs of volatility", "MSFT", False),  # issue 32
        ("A potential correction is likely ahead of now on Wednesday", "GOOG", False),  # issue 32
        ("It should recover tomorrow.", "IBM", False),
        ("It will keep falling until mid-January.", "IBM", False),
        ("A move not seen since 2019.", "IBM", False),
    ],
    "named": [
        ("IBM fell 3.5%; the signal is hold.", "IBM", True),
        ("BTC/USD fell; the BTC price is lower.", "BTC/USD", True),
        (
            "the company's recent decision to implement AI and automation could be contributing to this downturn",
            "IBM",
            False,
        ),  # issue 32
        ("... due to the recent surge of interest in BIP38 tokens", "BTC/USD", False),  # issue 32
        ("Earnings are due, analysts say.", "IBM", False),
        ("IBM fell after Arvind Krishna spoke.", "IBM", False),
        ("IBM fell due to supply chain disruptions.", "IBM", False),  # no fact says why
        ("IBM fell amid a wider sell-off in the sector.", "IBM", False),
    ],
    "meta": [
        ("IBM fell 3.5% over the last day; the signal is hold.", "IBM", True),
        ("Here's an explanation based on your text snippet.", "IBM", False),
        ("This article contains information for traders.", "IBM", False),
    ],
    "word": [
        ("Traders are watching the stock's fluctuations; it dropped.", "IBM", True),  # inflections are words
        ("IBM is expected to drop around iaxionate by iread.", "IBM", False),  # invented words
        ("IBM is set for a dip as weather patterns affect markets.", "IBM", False),  # a cause no fact holds
        ("For CL, some data could impact our business plans.", "CL", False),
    ],
}


def test_every_kind_has_passing_and_failing_examples() -> None:
    assert set(TABLE) == set(CLAIM_KINDS)
    for kind, rows in TABLE.items():
        assert {supported for _, _, supported in rows} == {True, False}, kind


@pytest.mark.parametrize(
    ("kind", "text", "symbol", "supported"),
    [(kind, text, symbol, supported) for kind, rows in TABLE.items() for text, symbol, supported in rows],
)
def test_a_claim_is_supported_only_by_the_facts(kind: str, text: str, symbol: str, supported: bool) -> None:
    result = check_text(text, facts(symbol))
    assert result.passed == supported, [(c.kind, c.text, c.reason) for c in result.unsupported]
    if not supported:
        assert kind in {claim.kind for claim in result.unsupported}
        assert all(claim.reason for claim in result.unsupported)  # says why, in words


def test_a_move_up_is_supported_when_a_fact_moved_up() -> None:
    up = facts(change=2.1, forecast_change=6.0)
    assert check_text("It rose 2.1% and the forecast sees it climbing 6% by Friday.", up).passed
    assert check_text("The forecast sees it soaring.", up).passed  # the forecast's 6% move is strong enough
    assert not check_text("It soared.", up).passed  # the past day's 2.1% is not
    assert not check_text("It fell.", up).passed


def test_without_a_24h_change_no_past_move_is_supported() -> None:
    assert not check_text("It fell 3.5% over the last day.", facts(change=None)).passed
