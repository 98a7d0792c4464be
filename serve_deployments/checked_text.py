"""The recommendation's text: written by the language model, checked claim by claim, else built from the facts.

A candidate is served only when every claim in it is supported by the facts (serve_deployments/claims.py). The
attempts, in order, each tighter than the last (``recommend.attempts``):

- ``free``: the facts in plain words as the user message; the model writes freely;
- ``plain``: the answer starts "For <symbol>," and decoding is kept to the commentary vocabulary the checker
  accepts (claims.vocabulary(): no digit, sign, name, date or word beyond it can be written), less, for each fact
  set, the words the checker would refuse (a direction no fact moved, a strong word for a small move);
- ``slots``: the answer starts with the facts' own first clause (the symbol, its last price and 24 h move, as the
  template writes them) and the model only continues it, under the ``plain`` constraint, for one sentence; what it
  adds speaks of the forecast, so the direction words refused are those the forecast does not support.

A candidate with a gap (two spaces, a space before a stop: where the decoder kept a number out) is refused too.

A candidate is cut to its complete sentences (a model stops mid-sentence at its token budget). When no candidate
passes within ``recommend.text_budget_s`` (or the model is the untrained test model, whose text is noise), the
text is :func:`template_text`: a deterministic sentence from the facts. The answer says which (``text_source``,
``text_attempt``), which claim kinds were checked and how many claims the served text makes, and why each refused
candidate was refused (the kinds of its unsupported claims; its text is neither served nor stored).

Concurrent requests are decoded together (one model call per attempt kind in a batch): :class:`CheckedWriter` is
what the Recommender deployment holds (batching with ``@serve.batch``) and what bench/recommend.py measures.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ray_app.config.serve import RecommendSettings
from ray_app.documents import Judgement, MarketFacts
from serve_deployments.claims import CLAIM_KINDS, check_text, complete_sentences, refused_words, vocabulary
from serve_deployments.language_model import Constraint, Generation, TextGenerator
from serve_deployments.market_facts import chat_prompt_for, prompt_for

TextSource = Literal["model", "template"]
MIN_WORDS = 6  # a served model text says at least this much

PLAIN_SYSTEM = (
    "You are a market analyst. Explain the facts to a trader in one or two short sentences of plain words. "
    "Do not write numbers, dates, days, news, companies, products or people."
)
CONSTRAINTS = {
    "free": Constraint("free"),
    "plain": Constraint("plain", system=PLAIN_SYSTEM, vocabulary=vocabulary()),
    "slots": Constraint("slots", system=PLAIN_SYSTEM, max_new_tokens=32, vocabulary=vocabulary()),
}
SENTENCES = {"free": 2, "plain": 2, "slots": 1}  # at most this many complete sentences are kept


def _decimals_for(size: float, significant: int) -> int:
    """Decimals that show ``significant`` digits of a number below 1 (fixed-point: a checker reads no 1e-05)."""
    return max(0, significant - 1 - math.floor(math.log10(size)))


def percent_text(value: float) -> str:
    """A percentage as the template writes it: 2 decimals, or 2 significant digits below 0.005."""
    size = abs(value)
    return f"{size:.{_decimals_for(size, 2)}f}" if 0 < size < 0.005 else f"{size:.2f}"


def price_text(value: float) -> str:
    """A price as the template writes it: 2 decimals with thousands commas, or 4 significant digits below 1."""
    size = abs(value)
    return f"{value:,.2f}" if size >= 1 or value == 0 else f"{value:.{_decimals_for(size, 4)}f}"


def first_clause(facts: MarketFacts) -> str:
    """The symbol, its last price and its 24 h move: the template's first sentence without its full stop."""
    head = f"{facts.symbol} last traded at {price_text(facts.last_price)}"
    change = facts.change_24h_pct
    if change is None:
        return f"{head}, with no price 24 hours earlier to compare"
    if percent_text(change) in {"0.00", "0"}:
        return f"{head}, unchanged over 24 hours"
    return f"{head}, {'up' if change > 0 else 'down'} {percent_text(change)}% over 24 hours"


def template_text(facts: MarketFacts, judgement: Judgement) -> str:
    """A deterministic text from the facts alone: every figure one of them, every word one the checker accepts."""
    sentences = [first_clause(facts) + "."]
    close = price_text(facts.forecast_close)
    change = percent_text(facts.forecast_change_pct)
    if not facts.close_beats_naive:
        sentences.append(f"No model beat the naive forecast, which holds the close near {close} for the next 7 days.")
    elif facts.forecast_direction == "flat":
        sentences.append(
            f"The 7-day forecast expects little change, a close near {close} ({change}% from the last price)."
        )
    else:
        way = "rising" if facts.forecast_direction == "up" else "falling"
        sentences.append(f"The 7-day forecast sees the close {way} {change}% to {close}.")
    if facts.range_7d_low is not None and facts.range_7d_high is not None:
        sentences.append(
            f"The week's low and high are forecast near {price_text(facts.range_7d_low)} and "
            f"{price_text(facts.range_7d_high)}."
        )
    sentences.append(f"Signal: {judgement.signal}; sentiment: {judgement.sentiment}.")
    return " ".join(sentences)


@dataclass(frozen=True)
class CheckedText:
    """The text served with a recommendation, where it came from and what was checked."""

    text: str
    source: TextSource
    attempt: str | None  # the attempt that wrote it (None: the template)
    prompt: str
    generation: Generation | None
    claims: int  # claims in the served text, every one supported
    rejected: tuple[str, ...]  # per refused candidate: "attempt: the kinds of its unsupported claims"
    seconds: float
    checks: tuple[str, ...] = CLAIM_KINDS

    def fields(self) -> dict[str, Any]:
        """The answer's text fields."""
        return {
            "text": self.text,
            "text_source": self.source,
            "text_attempt": self.attempt,
            "text_checks": list(self.checks),
            "text_claims": self.claims,
            "text_rejected": list(self.rejected),
            "text_s": round(self.seconds, 4),
        }


@dataclass(frozen=True)
class Request:
    """One prompt for the batched decoder: under which attempt, with which words refused and which start."""

    prompt: str
    attempt: str
    refused: frozenset[str] = field(default_factory=frozenset)
    prefix: str = ""


_GAP = re.compile(r"\s{2,}|\s[.,;:!?]")  # a word left out where the decoder kept a number or a name out


def _refusal(attempt: str, text: str, facts: MarketFacts) -> tuple[bool, int, str]:
    """(passed, claims, why refused) for one candidate."""
    if len(text.split()) < MIN_WORDS:
        return False, 0, f"{attempt}: no complete sentence of {MIN_WORDS} words"
    if _GAP.search(text):
        return False, 0, f"{attempt}: a gap where a word was kept out"
    result = check_text(text, facts)
    if result.passed:
        return True, len(result.claims), ""
    kinds = sorted({claim.kind for claim in result.unsupported}, key=CLAIM_KINDS.index)
    return False, len(result.claims), f"{attempt}: unsupported {', '.join(kinds)}"


Generate = Callable[[Request], Awaitable[Generation]]


class CheckedWriter:
    """The attempt -> check -> template sequence per answer, over the language model.

    ``decode`` runs one batch of requests (one model call per attempt kind in it); ``write`` takes the caller's
    ``generate`` (one request in, its generation out), so that the caller batches: the Recommender with
    ``@serve.batch``, bench/recommend.py with its own queue.
    """

    def __init__(self, lm: TextGenerator, settings: RecommendSettings) -> None:
        self.lm = lm
        self.settings = settings

    def decode(self, requests: list[Request]) -> list[Generation]:
        results: dict[int, Generation] = {}
        for attempt in dict.fromkeys(request.attempt for request in requests):
            chosen = [i for i, request in enumerate(requests) if request.attempt == attempt]
            generations = self.lm.generate(
                [requests[i].prompt for i in chosen],
                CONSTRAINTS[attempt],
                [requests[i].refused for i in chosen],
                [requests[i].prefix for i in chosen],
            )
            results.update(zip(chosen, generations, strict=True))
        return [results[i] for i in range(len(requests))]

    def prompt(self, facts: MarketFacts, judgement: Judgement) -> str:
        return (chat_prompt_for if self.lm.chat else prompt_for)(facts, judgement)

    def request(self, attempt: str, facts: MarketFacts, judgement: Judgement) -> Request:
        prompt = self.prompt(facts, judgement)
        if attempt == "free":
            return Request(prompt, attempt)
        if attempt == "slots":  # the facts' past in the prefix; what the model adds speaks of the forecast
            return Request(prompt, attempt, refused_words(facts, future=True), first_clause(facts) + ", and")
        return Request(prompt, attempt, refused_words(facts), f"For {facts.symbol},")

    def candidate(self, attempt: str, generation: Generation, facts: MarketFacts) -> tuple[str | None, int, str]:
        """(the text to serve or None, its claims, why refused) for one generation."""
        text = complete_sentences(generation.text, SENTENCES[attempt])
        passed, claims, why = _refusal(attempt, text, facts)
        if passed and self.lm.is_untrained_test_model:
            passed, why = False, f"{attempt}: the untrained test model's text is noise, never served"
        return (text if passed else None), claims, why

    async def write(self, facts: MarketFacts, judgement: Judgement, generate: Generate) -> CheckedText:
        """The checked text for one fact set: the first passing candidate, else the template."""
        began = time.perf_counter()
        rejected: list[str] = []
        generation: Generation | None = None
        for attempt in self.settings.attempts:
            if time.perf_counter() - began >= self.settings.text_budget_s:
                rejected.append(f"{attempt}: not tried, the {self.settings.text_budget_s:g} s budget was spent")
                continue
            request = self.request(attempt, facts, judgement)
            generation = await generate(request)
            text, claims, why = self.candidate(attempt, generation, facts)
            if text is not None:
                return CheckedText(
                    text, "model", attempt, request.prompt, generation, claims, tuple(rejected), _since(began)
                )
            rejected.append(why)
        text = template_text(facts, judgement)
        claims = len(check_text(text, facts).claims)
        prompt = self.prompt(facts, judgement)
        return CheckedText(text, "template", None, prompt, generation, claims, tuple(rejected), _since(began))


def _since(began: float) -> float:
    return time.perf_counter() - began
