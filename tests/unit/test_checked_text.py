"""The recommendation's text (serve_deployments/checked_text.py): the template says only facts for every kind of
fact set, the writer serves a model text only when the checker passes it, tries tighter attempts in order within
its budget, and falls back to the template; and the track record's scoring rules (serve_deployments/track_record.py)
against returns computed here by hand."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

import pandas as pd
import pytest

from ray_app.config.serve import RecommendSettings, SignalRules
from ray_app.documents import MarketFacts
from serve_deployments.checked_text import CheckedWriter, Request, template_text
from serve_deployments.claims import check_text
from serve_deployments.language_model import Generation
from serve_deployments.market_facts import direction_of, judge
from serve_deployments.track_record import HORIZONS, _price_at, hold_band_pct, outcome

RULES = SignalRules(move_threshold_pct=1.0, trend_threshold_pct=0.5, require_beats_naive=True)


def random_facts(rng: random.Random) -> MarketFacts:
    """A fact set of any kind: big and tiny moves, no 24 h bar, negative and tiny prices, any symbol shape."""
    price = rng.choice([rng.uniform(1, 500), rng.uniform(1e4, 1e5), rng.uniform(1e-6, 1e-3), -rng.uniform(0.5, 40)])
    change = rng.choice([None, 0.0, rng.uniform(-0.004, 0.004), rng.uniform(-60, 60), rng.uniform(-2, 2)])
    forecast_change = rng.choice([0.0, rng.uniform(-15, 15), rng.uniform(-0.9, 0.9)])
    beats = rng.random() < 0.5
    close = price * (1 + forecast_change / 100)
    spread = abs(price) * rng.uniform(0.001, 0.2)
    has_range = rng.random() < 0.8
    return MarketFacts(
        symbol=rng.choice(["IBM", "BTC/USD", "EUR/USD", "BRK.B", "SHIB/USD", "CL"]),
        last_bar_at=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
        last_price=price,
        change_24h_pct=change,
        realized_volatility_24h_pct=None if change is None else abs(rng.gauss(0, 3)),
        run_id="r",
        forecast_as_of="2026-12-05T04:00:00Z",
        forecast_end="2026-12-11T20:00:00Z",
        forecast_close=close,
        forecast_change_pct=forecast_change,
        forecast_direction=direction_of(forecast_change, RULES),
        range_7d_low=min(price, close) - spread if has_range else None,
        range_7d_high=max(price, close) + spread if has_range else None,
        close_model=rng.choice(["AutoETS", "Naive", "AutoARIMA", "SeasonalNaive"]),
        close_beats_naive=beats,
    )


def test_the_template_states_only_facts_for_every_kind_of_fact_set() -> None:
    rng = random.Random(32)
    for _ in range(2000):
        facts = random_facts(rng)
        text = template_text(facts, judge(facts, RULES))
        result = check_text(text, facts)
        assert result.passed, (text, [(c.kind, c.text, c.reason) for c in result.unsupported])
        assert facts.symbol in text and judge(facts, RULES).signal in text


@dataclass
class ScriptedModel:
    """A stand-in for TextGenerator: per attempt, the text it 'writes' (the real model: test_small_language_model)."""

    texts: dict[str, str]
    chat: bool = True
    is_untrained_test_model: bool = False
    delay_s: float = 0.0

    def generate(self, prompts, constraint, refused_words=None, prefixes=None) -> list[Generation]:
        import time

        time.sleep(self.delay_s)
        return [Generation(self.texts[constraint.name], 5, len(prompts), 0.01) for _ in prompts]


def _facts() -> MarketFacts:
    return MarketFacts(
        symbol="IBM",
        last_bar_at="2026-12-05T00:00:00Z",
        last_price=203.44,
        change_24h_pct=-3.47,
        realized_volatility_24h_pct=1.82,
        run_id="r",
        forecast_as_of="2026-12-05T04:00:00Z",
        forecast_end="2026-12-11T20:00:00Z",
        forecast_close=203.44,
        forecast_change_pct=0.0,
        forecast_direction="flat",
        range_7d_low=198.35,
        range_7d_high=210.33,
        close_model="Naive",
        close_beats_naive=False,
    )


def _write(model: ScriptedModel, **settings):
    settings.setdefault("attempts", ["free", "plain", "slots"])
    recommend = RecommendSettings(
        model="m", max_new_tokens=40, no_repeat_ngram_size=3, seed=0, max_batch_size=8, batch_wait_timeout_s=0.0,
        rules=RULES, **settings,
    )  # fmt: skip
    writer = CheckedWriter(model, recommend)  # type: ignore[arg-type]
    facts = _facts()

    async def generate(request: Request) -> Generation:
        return writer.decode([request])[0]

    return asyncio.run(writer.write(facts, judge(facts, RULES), generate)), facts


INVENTED = "The IBM stock has plummeted by nearly half after the company's decision on Wednesday."
TRUE = "IBM fell 3.5% over the last day, and the forecast expects little change."


def test_a_passing_first_text_is_served_from_the_model() -> None:
    written, facts = _write(ScriptedModel({"free": TRUE, "plain": TRUE, "slots": TRUE}))
    assert (written.source, written.attempt, written.text, written.rejected) == ("model", "free", TRUE, ())
    assert written.claims == len(check_text(TRUE, facts).claims) > 0


def test_an_unsupported_text_is_never_served_and_a_tighter_attempt_follows() -> None:
    written, _ = _write(ScriptedModel({"free": INVENTED, "plain": TRUE, "slots": TRUE}))
    assert (written.source, written.attempt, written.text) == ("model", "plain", TRUE)
    assert written.rejected == ("free: unsupported percent, direction, time, named",)
    assert "Wednesday" not in " ".join(written.rejected)  # the refused text itself is neither served nor stored


def test_no_passing_candidate_gives_the_template() -> None:
    written, facts = _write(ScriptedModel({"free": INVENTED, "plain": INVENTED, "slots": " due to the CEO."}))
    assert written.source == "template" and written.attempt is None
    assert written.text == template_text(facts, judge(facts, RULES)) and check_text(written.text, facts).passed
    assert [r.split(":")[0] for r in written.rejected] == ["free", "plain", "slots"]


def test_half_a_sentence_is_cut_and_too_little_is_refused() -> None:
    written, _ = _write(ScriptedModel({"free": TRUE + " Then it will", "plain": "Ok.", "slots": "x"}))
    assert written.text == TRUE
    written, _ = _write(
        ScriptedModel({"free": "IBM fell", "plain": "IBM fell.", "slots": ""}), attempts=["free", "plain"]
    )
    assert written.source == "template"
    assert written.rejected == ("free: no complete sentence of 6 words", "plain: no complete sentence of 6 words")


def test_the_budget_bounds_the_attempts() -> None:
    slow = ScriptedModel({"free": INVENTED, "plain": INVENTED, "slots": TRUE}, delay_s=0.3)
    written, _ = _write(slow, text_budget_s=0.2)
    assert written.source == "template"
    assert written.rejected[1:] == (
        "plain: not tried, the 0.2 s budget was spent",
        "slots: not tried, the 0.2 s budget was spent",
    )


def test_the_untrained_test_model_is_never_served_and_no_attempts_means_the_template() -> None:
    written, _ = _write(ScriptedModel({"free": TRUE, "plain": TRUE, "slots": TRUE}, is_untrained_test_model=True))
    assert written.source == "template" and all("untrained" in r for r in written.rejected)
    written, _ = _write(ScriptedModel({}), attempts=[])
    assert written.source == "template" and written.rejected == () and written.generation is None


# --- the track record ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "price", "later", "hit", "follow"),
    [
        ("buy", 100.0, 101.0, True, 1.0),
        ("buy", 100.0, 99.0, False, -1.0),
        ("buy", 100.0, 100.0, False, 0.0),  # no rise, no hit
        ("sell", 100.0, 98.0, True, 2.0),
        ("sell", 100.0, 102.0, False, -2.0),
        ("hold", 100.0, 100.5, True, 0.0),  # inside a 1% band
        ("hold", 100.0, 98.5, False, 0.0),
    ],
)
def test_a_signal_hits_when_the_price_moved_its_way(signal, price, later, hit, follow) -> None:
    change, got_hit, got_follow = outcome(signal, price, later, band_pct=1.0)
    assert change == pytest.approx((later - price) / price * 100)
    assert got_hit is hit and got_follow == pytest.approx(follow)


def test_no_return_from_a_price_at_or_below_zero() -> None:
    assert outcome("buy", -37.63, 10.0, 1.0) is None and outcome("sell", 5.0, 0.0, 1.0) is None


def test_the_hold_band_scales_with_the_square_root_of_time() -> None:
    assert hold_band_pct(1.0, HORIZONS["7d"]) == pytest.approx(1.0)
    assert hold_band_pct(1.0, HORIZONS["24h"]) == pytest.approx(1 / math.sqrt(7))
    assert hold_band_pct(2.0, HORIZONS["1h"]) == pytest.approx(2 / math.sqrt(168))


def test_the_price_at_a_horizon_is_the_newest_bar_started_by_then_once_the_data_reaches_it() -> None:
    times = [pd.Timestamp("2026-12-04T18:00Z"), pd.Timestamp("2026-12-04T19:00Z"), pd.Timestamp("2026-12-07T09:00Z")]
    closes = [1.0, 2.0, 3.0]
    assert _price_at(times, closes, pd.Timestamp("2026-12-04T19:00Z")) == 2.0
    assert _price_at(times, closes, pd.Timestamp("2026-12-05T19:00Z")) == 2.0  # the market was closed: no move
    assert _price_at(times, closes, pd.Timestamp("2026-12-07T09:00Z")) == 3.0
    assert _price_at(times, closes, pd.Timestamp("2026-12-07T10:00Z")) is None  # not passed in the data yet


def test_the_symbols_track_records_combine_weighted_by_what_was_scored() -> None:
    from serve_deployments.track_record import overall

    def row(signal, scored, hits, mean):
        return {
            "signal": signal,
            "horizon": "1h",
            "scored": scored,
            "hits": hits,
            "hit_rate": hits / scored,
            "hold_band_pct": 0.08,
            "mean_return_pct": mean,
            "mean_follow_return_pct": mean,
        }

    rows = overall([{"rows": [row("buy", 3, 1, 0.3)]}, {"rows": [row("buy", 1, 1, -0.1), row("hold", 2, 2, 0.0)]}])
    buy = next(r for r in rows if r["signal"] == "buy")
    assert (buy["scored"], buy["hits"]) == (4, 2) and buy["hit_rate"] == 0.5
    assert buy["mean_return_pct"] == pytest.approx((3 * 0.3 - 0.1) / 4)
    assert [r["signal"] for r in rows] == ["buy", "hold"]
