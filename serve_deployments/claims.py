"""The claim checker: every claim a generated market comment makes, checked against the facts it was given.

A small language model writes fluent text and invents freely ("plummeted by nearly half", "on Wednesday", "the
company's recent decision", "BIP38 tokens"). Before a text is served or stored, each claim it makes is found and
checked; one unsupported claim and the text is not served. The kinds of claim (:data:`CLAIM_KINDS`):

- ``percent``: a number with ``%`` / "percent" (or a fraction word: "half", "a third") must equal one of the
  percentages in the facts (24 h change, its volatility, the forecast change, the hourly range) at the rounding the
  text uses (1.5% matches 1.47, not 1.4; "nearly"/"about" do not widen it);
- ``number``: any other number must equal a price in the facts (last price, forecast close, the week's low and high
  and their 80% ends) at the text's rounding, or a horizon the facts name (24 hours, 7 days);
- ``direction``: a word that says which way the price went or will go (rose, fell, upward, downturn ...) must agree
  with the fact it can describe: the 24 h change or the forecast direction; a strong word (plummet, soar, crash ...)
  also needs a move of at least :data:`STRONG_MOVE_PCT`;
- ``time``: weekdays, months, years, "tomorrow", quarters: only those the facts' own dates name;
- ``named``: news, events, decisions, products, people, companies' acts (earnings, CEO, announced, AI, tokens ...),
  and any proper name or code-like token (BIP38) that is not in the facts (the symbol, its parts, the model).

Pure functions of the text and the facts; no model is needed to check a text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from ray_app.documents import Judgement, MarketFacts

CLAIM_KINDS = ("percent", "number", "direction", "time", "named")


def words(text: str) -> frozenset[str]:
    """A vocabulary written as one string of words."""
    return frozenset(text.split())


STRONG_MOVE_PCT = 5.0  # a move a strong word (plummet, soar, crash) may describe

UP_WORDS = words(
    "rise rises rising rose risen gain gains gained gaining up climb climbs climbed climbing uptrend upward upwards "
    "higher increase increased increasing rally rallied rallies advance advanced bullish"
)
DOWN_WORDS = words(
    "fall falls falling fell fallen drop drops dropped dropping decline declines declined declining down downturn "
    "downward downwards lower decrease decreased decreasing slide slid sliding dip dipped dips loss losses lost "
    "bearish"
)
STRONG_UP = words("surge surged surging soar soared soaring skyrocket skyrocketed skyrocketing boom")
STRONG_DOWN = words(
    "plummet plummeted plummeting plunge plunged plunging crash crashed crashing collapse collapsed tumble tumbled "
    "tumbling tank tanked"
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
TIME_WORDS = words("tomorrow yesterday tonight quarter quarters quarterly year's decade")
NEWS_WORDS = words(
    "news announce announced announces announcement report reported reports reporting earnings decision decisions "
    "ceo cfo founder management company company's companies firm regulator regulators regulation sec fed "
    "inflation election war lawsuit merger acquisition acquired launch launched product products ai automation "
    "token tokens blockchain website according analysts analyst investors rumor rumors partnership deal "
    "dividend layoffs"
)
FRACTION_WORDS = {"half": 50.0, "double": 100.0, "doubled": 100.0, "third": 100 / 3, "quarter": 25.0}
ALLOWED_NAMES = words(
    "the a an it its this that signal sentiment hold buy sell bullish bearish neutral utc market price prices "
    "stock stocks crypto forecast naive i"
)

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")
_PERCENT = re.compile(r"(?<![\w.])([-+]?\d+(?:,\d{3})*(?:\.\d+)?)\s*(%|percent\b|per cent\b)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*")


@dataclass(frozen=True)
class Claim:
    """One claim found in a text: its kind, the words that make it, and whether the facts support it (why not)."""

    kind: str
    text: str
    supported: bool
    reason: str = ""


@dataclass(frozen=True)
class CheckResult:
    """Every claim of one text; ``passed`` when none is unsupported. ``checked`` names the kinds looked for."""

    claims: tuple[Claim, ...]
    checked: tuple[str, ...] = CLAIM_KINDS

    @property
    def unsupported(self) -> tuple[Claim, ...]:
        return tuple(claim for claim in self.claims if not claim.supported)

    @property
    def passed(self) -> bool:
        return not self.unsupported


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def _matches(token: str, value: float, candidates: list[float]) -> bool:
    """``value`` as written (``token`` gives the rounding) equals a candidate rounded the same way."""
    tolerance = 0.5 * 10 ** -_decimals(token) + 1e-9
    return any(abs(value - candidate) <= tolerance for candidate in candidates if math.isfinite(candidate))


def _percent_facts(facts: MarketFacts) -> list[float]:
    values = [facts.change_24h_pct, facts.realized_volatility_24h_pct, facts.forecast_change_pct]
    values.append(facts.forecast_hourly_range_pct)
    return [abs(v) for v in values if v is not None]


def _price_facts(facts: MarketFacts) -> list[float]:
    values = [
        facts.last_price,
        facts.forecast_close,
        facts.range_7d_low,
        facts.range_7d_high,
        facts.range_7d_low_lo_80,
        facts.range_7d_high_hi_80,
    ]
    return [v for v in values if v is not None]


def _fact_dates(facts: MarketFacts) -> list[pd.Timestamp]:
    return [pd.Timestamp(value) for value in (facts.last_bar_at, facts.forecast_as_of, facts.forecast_end)]


def _directions(facts: MarketFacts) -> dict[str, float]:
    """Each direction a fact can support, with the size of its move in %."""
    found: dict[str, float] = {}
    for change in (facts.change_24h_pct, facts.forecast_change_pct if facts.forecast_direction != "flat" else None):
        if change is not None and change != 0:
            way = "up" if change > 0 else "down"
            found[way] = max(found.get(way, 0.0), abs(change))
    return found


def _allowed_names(facts: MarketFacts) -> set[str]:
    parts = re.split(r"[/\-. ]", facts.symbol.lower())
    return {facts.symbol.lower(), *parts, *facts.close_model.lower().replace("+", " ").split(), *ALLOWED_NAMES}


def check_text(text: str, facts: MarketFacts, judgement: Judgement | None = None) -> CheckResult:
    """Find every claim of ``text`` and check it against ``facts``."""
    claims: list[Claim] = []
    percent_spans = []
    for match in _PERCENT.finditer(text):
        percent_spans.append(match.span(1))
        token = match.group(1).replace(",", "")
        value = abs(float(token))
        ok = _matches(token, value, _percent_facts(facts))
        claims.append(Claim("percent", match.group(0), ok, "" if ok else f"{value:g}% is no percentage in the facts"))
    for match in _NUMBER.finditer(text):
        if any(start <= match.start() < end for start, end in percent_spans):
            continue
        token = match.group(0).replace(",", "").lstrip("+")
        value = float(token)
        if re.fullmatch(r"(19|20)\d\d", token):  # a year: a time claim
            ok = token in {str(d.year) for d in _fact_dates(facts)}
            claims.append(Claim("time", token, ok, "" if ok else f"the year {token} is in no fact"))
            continue
        horizons = [24.0, 7.0, 1.0, 80.0, 95.0]
        ok = _matches(token, abs(value), _price_facts(facts)) or (value in horizons and _decimals(token) == 0)
        claims.append(Claim("number", match.group(0), ok, "" if ok else f"{match.group(0)} is no price in the facts"))

    directions = _directions(facts)
    dates = _fact_dates(facts)
    weekdays = {WEEKDAYS[d.weekday()] for d in dates}
    months = {MONTHS[d.month - 1] for d in dates}
    allowed = _allowed_names(facts)
    words = list(_WORD.finditer(text))
    for index, match in enumerate(words):
        word = match.group(0)
        lower = word.lower().removesuffix("'s")
        parts = lower.split("-")
        if len(parts) > 1 and any(part in MONTHS or part in WEEKDAYS for part in parts):
            lower = next(part for part in parts if part in MONTHS or part in WEEKDAYS)  # mid-January
        if lower in FRACTION_WORDS:
            ok = _matches("0", FRACTION_WORDS[lower], _percent_facts(facts))
            claims.append(Claim("percent", word, ok, "" if ok else f"'{word}' ({FRACTION_WORDS[lower]:g}%) is no fact"))
        elif lower in UP_WORDS or lower in STRONG_UP or lower in DOWN_WORDS or lower in STRONG_DOWN:
            way = "up" if lower in UP_WORDS or lower in STRONG_UP else "down"
            strong = lower in STRONG_UP or lower in STRONG_DOWN
            size = directions.get(way)
            if size is None:
                claims.append(Claim("direction", word, False, f"'{word}' says {way}; no fact moved {way}"))
            elif strong and size < STRONG_MOVE_PCT:
                claims.append(
                    Claim(
                        "direction",
                        word,
                        False,
                        f"'{word}' needs a move of {STRONG_MOVE_PCT:g}%; the facts' {size:.2f}%",
                    )
                )
            else:
                claims.append(Claim("direction", word, True))
        elif lower in WEEKDAYS or lower in MONTHS or lower in TIME_WORDS:
            ok = lower in weekdays or lower in months
            claims.append(Claim("time", word, ok, "" if ok else f"'{word}' is in no fact"))
        elif lower in NEWS_WORDS:
            claims.append(Claim("named", word, False, f"'{word}': news, events and decisions are in no fact"))
        elif re.search(r"\d", word) and lower not in allowed:
            claims.append(Claim("named", word, False, f"'{word}' is no name in the facts"))
        elif word[0].isupper() and lower not in allowed:
            sentence_start = index == 0 or text[: match.start()].rstrip().endswith((".", "!", "?", ":", '"'))
            if not sentence_start or word.isupper():
                claims.append(Claim("named", word, False, f"'{word}' is no name in the facts"))
    return CheckResult(tuple(claims))
