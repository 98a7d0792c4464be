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
  with the fact its clause describes: the forecast in a clause with a forecast word (expected, will, outlook ...),
  else the 24 h change; a strong word (plummet, soar, crash ...) also needs a move of at least
  :data:`STRONG_MOVE_PCT`; a word that sizes the move (big, sharp, significant / slight, modest, stable) needs one
  of at least, or below, :data:`BIG_MOVE_PCT`;
- ``time``: weekdays, months, years, "tomorrow", quarters: only those the facts' own dates name;
- ``named``: news, events, decisions, products, people, companies' acts (earnings, CEO, announced, AI, tokens ...),
  causes (due to, because, driven by: no fact says why a price moved), and any proper name or code-like token
  (BIP38) that is not in the facts (the symbol, its parts, the model);
- ``meta``: the text speaks of itself or its reader (you, this article, the snippet, here's an explanation), not of
  the market.

- ``word``: every other word is in the commentary vocabulary (:func:`vocabulary`: function words, hedges, the
  terms the facts speak in, with their inflections): a word beyond it (weather, business plans, an invented word)
  says something no fact holds, or nothing a reader can check.

Number words (seven, twenty) are numbers.

Pure functions of the text and the facts; no model is needed to check a text.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import pandas as pd

from ray_app.documents import Judgement, MarketFacts

CLAIM_KINDS = ("percent", "number", "direction", "time", "named", "meta", "word")


def words(text: str) -> frozenset[str]:
    """A vocabulary written as one string of words."""
    return frozenset(text.split())


BIG_MOVE_PCT = 2.0  # a word that sizes a move as big needs one at least this large; a small-move word, one below
BIG_WORDS = words(
    "big bigger biggest large larger sharp sharper sharply steep steeply strong stronger strongly significant "
    "significantly major huge heavy heavily"
)
SMALL_WORDS = words(
    "little slight slightly modest modestly small smaller minor mild calm quiet stable steady steadily flat unchanged"
)
HORIZONS = (24.0, 7.0, 1.0, 80.0, 95.0)  # hours, days and interval levels the facts speak in
STRONG_MOVE_PCT = 5.0  # a move a strong word (plummet, soar, crash) may describe

UP_WORDS = words(
    "upside growth positive positively above "
    "rise rises rising rose risen gain gains gained gaining up climb climbs climbed climbing uptrend upward upwards "
    "higher increase increased increasing rally rallied rallies advance advanced bullish"
)
DOWN_WORDS = words(
    "downside negative negatively below "
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
TIME_WORDS = words(
    "tomorrow yesterday tonight quarter quarters quarterly year's decade holiday holidays weekend weeks month months "
    "years"
)
NEWS_WORDS = words(
    "news announce announced announces announcement report reported reports reporting earnings decision decisions "
    "ceo cfo founder management company company's companies firm regulator regulators regulation sec fed "
    "inflation election war lawsuit merger acquisition acquired launch launched product products ai automation "
    "token tokens blockchain website according analysts analyst investors rumor rumors partnership deal "
    "dividend layoffs rates geopolitical update updates "
    "platform spoilers investor trader's manipulate edited source sources rate interest giant tech due because "
    "caused causes driven amid thanks sector index benchmark business plans strategy contracts futures economic "
    "economy global backdrop opportunity"
)
# a clause with one of these speaks of the forecast; any other, of the past (the 24 h change)
FUTURE_WORDS = words(
    "will would expected expects expect expecting forecast forecasts forecasting predicted predicts prediction "
    "outlook poised set likely could might ahead next potential projected projects sees see seen"
)
META_WORDS = words(
    "you your you're yours here's snippet code message explanation scenario chatbot assistant example response "
    "article post tweet story blog text our we us note reminder twists exciting surprises"
)
ORDINAL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty"
)
NUMBER_WORDS = {word: float(value) for value, word in enumerate(re.findall(r"\w+", ORDINAL))} | {
    "thirty": 30.0,
    "forty": 40.0,
    "fifty": 50.0,
    "hundred": 100.0,
    "thousand": 1000.0,
    "million": 1e6,
}
FRACTION_WORDS = {"half": 50.0, "double": 100.0, "doubled": 100.0, "third": 100 / 3, "quarter": 25.0}
ALLOWED_NAMES = words(
    "the a an it its this that signal sentiment hold buy sell bullish bearish neutral utc market price prices "
    "stock stocks crypto forecast naive i"
)

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")
_PERCENT = re.compile(r"(?<![\w.])([-+]?\d+(?:,\d{3})*(?:\.\d+)?)\s*(%|percent\b|per cent\b)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*")
_CLAUSE_END = re.compile(r"[.;!?,](?=\s|$)|\b(?:and|but|while|whereas)\b")


# The words a market comment may use: function words, hedges, and the terms the facts speak in. A word outside
# it (weather, business, holiday, an invented word) is a claim the facts cannot support, or noise: not served.
COMMENTARY = words(
    "a an the and or but so yet nor if then than as while whereas though although because of to in on at by for "
    "with without from into onto over under above below near around about across along between within beyond "
    "toward towards through during after before since until against despite per via "
    "it its it's this that these those there here which who what how where whether "
    "is are was were be been being has have had having do does did will would shall should can could may might "
    "must not no nor more most less least much many few some any all both each every other another such same own "
    "only just also even still again already almost nearly quite rather very too further "
    "one first last next latest recent recently current currently now today overall "
    "little slight slightly modest modestly small smaller large larger big bigger sharp sharply steep steeply "
    "strong stronger strongly weak weaker weakly firm steady steadily stable flat calm quiet mixed clear clearly "
    "likely unlikely possible possibly probably potential potentially expected expect expects expecting "
    "suggest suggests suggesting indicate indicates indicating show shows showing point points pointing "
    "see sees seen remain remains remained remaining stay stays stayed staying hold holds held holding keep keeps "
    "kept continue continues continued continuing move moves moved moving moving trade trades traded trading "
    "stock stocks share shares price prices pair market markets asset assets coin token "
    "trend trends trending momentum volatility volatile range ranges level levels high highs low lows close "
    "closes closing open session sessions hour hours day days week week's period horizon "
    "change changes changed changing direction pressure support signal signals sentiment mood outlook forecast "
    "forecasts forecasting model models naive data move buyers sellers traders trader investors caution cautious "
    "risk risks view picture sign signs sideways unchanged little way ahead back beat beats "
    "buy sell neutral bullish bearish positive negative "
    "make makes made get gets got give gives gave go goes went come comes came take takes took look looks looked "
    "seem seems seemed appear appears appeared suggest call calls "
    "good better best bad worse worst well earlier later compare compared percent cover covers end ends "
    "watch watching fluctuate fluctuation swing swings volume range-bound wide narrow tight time times part "
    "expected following follow follows instead rest start starts"
)
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"))


def vocabulary() -> frozenset[str]:
    """Every word a served comment may use (besides the facts' names and numbers): :data:`COMMENTARY` and the
    checker's own direction, time and horizon words (each still checked as its kind)."""
    return COMMENTARY | UP_WORDS | DOWN_WORDS | STRONG_UP | STRONG_DOWN | FUTURE_WORDS | ALLOWED_NAMES


def in_vocabulary(word: str, known: frozenset[str]) -> bool:
    """``word`` (lowercase) is in ``known``, itself or as an inflection (-s, -es, -ies, -ed, -ing, -ly)."""
    if word in known:
        return True
    for suffix, stem in (*_SUFFIXES, ("ly", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            base = word[: -len(suffix)] + stem
            if base in known or (
                suffix in {"ed", "ing"} and len(base) > 2 and base[-1] == base[-2] and base[:-1] in known
            ):
                return True
    return False


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


def _directions(facts: MarketFacts, future: bool | None = None) -> dict[str, float]:
    """Each direction a fact can support, with the size of its move in %: the past day's (``future`` False), the
    forecast's (True) or either (None)."""
    found: dict[str, float] = {}
    past = facts.change_24h_pct if future is not True else None
    ahead = facts.forecast_change_pct if future is not False and facts.forecast_direction != "flat" else None
    for change in (past, ahead):
        if change is not None and change != 0:
            way = "up" if change > 0 else "down"
            found[way] = max(found.get(way, 0.0), abs(change))
    return found


def _move(facts: MarketFacts, future: bool) -> float | None:
    """The size of the move a clause speaks of, in %: the forecast's, or the last 24 hours' (None: unknown)."""
    if future:
        return abs(facts.forecast_change_pct)
    return None if facts.change_24h_pct is None else abs(facts.change_24h_pct)


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
        prices = _price_facts(facts)
        ok = _matches(token, value, prices) or _matches(token, abs(value), [abs(p) for p in prices])
        ok = ok or (value in HORIZONS and _decimals(token) == 0)
        claims.append(Claim("number", match.group(0), ok, "" if ok else f"{match.group(0)} is no price in the facts"))

    dates = _fact_dates(facts)
    cuts = [0, *(m.start() for m in _CLAUSE_END.finditer(text)), len(text)]
    clauses = [(start, end, text[start:end]) for start, end in itertools.pairwise(cuts)]
    weekdays = {WEEKDAYS[d.weekday()] for d in dates}
    months = {MONTHS[d.month - 1] for d in dates}
    allowed = _allowed_names(facts)
    known = vocabulary()
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
            clause = next((c for start, end, c in clauses if start <= match.start() < end), text)
            future = bool(set(_WORD.findall(clause.lower())) & FUTURE_WORDS)
            size = _directions(facts, future).get(way)
            if size is None:
                about = "the forecast" if future else "the last 24 hours"
                claims.append(Claim("direction", word, False, f"'{word}' says {way}; {about} did not move {way}"))
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
        elif lower in BIG_WORDS or lower in SMALL_WORDS:
            clause = next((c for start, end, c in clauses if start <= match.start() < end), text)
            future = bool(set(_WORD.findall(clause.lower())) & FUTURE_WORDS)
            move = _move(facts, future)
            big = lower in BIG_WORDS
            if move is None:
                claims.append(Claim("direction", word, False, f"'{word}' sizes a move; no 24 h change is in the facts"))
            elif big != (move >= BIG_MOVE_PCT):
                about = "the forecast's" if future else "the last 24 hours'"
                claims.append(Claim("direction", word, False, f"'{word}' does not size {about} {move:.2f}% move"))
            else:
                claims.append(Claim("direction", word, True))
        elif lower == "may" and word == "may":  # the verb, not the month
            continue
        elif lower in WEEKDAYS or lower in MONTHS or lower in TIME_WORDS:
            ok = lower in weekdays or lower in months
            claims.append(Claim("time", word, ok, "" if ok else f"'{word}' is in no fact"))
        elif lower in NUMBER_WORDS:
            value = NUMBER_WORDS[lower]
            ok = value in HORIZONS or _matches("0", value, _price_facts(facts))
            claims.append(Claim("number", word, ok, "" if ok else f"'{word}' is no number in the facts"))
        elif lower in META_WORDS:
            claims.append(Claim("meta", word, False, f"'{word}': the text speaks of itself or its reader"))
        elif lower in NEWS_WORDS:
            claims.append(Claim("named", word, False, f"'{word}': news, events and decisions are in no fact"))
        elif re.search(r"\d", word) and lower not in allowed:
            claims.append(Claim("named", word, False, f"'{word}' is no name in the facts"))
        elif (
            lower.replace("'", "").isalpha()
            and not in_vocabulary(lower, known)
            and lower not in allowed
            and (word.islower() or index == 0 or text[: match.start()].rstrip().endswith((".", "!", "?", ":", '"')))
        ):
            claims.append(Claim("word", word, False, f"'{word}' is outside the commentary vocabulary"))
        elif word[0].isupper() and lower not in allowed:
            sentence_start = index == 0 or text[: match.start()].rstrip().endswith((".", "!", "?", ":", '"'))
            if not sentence_start or word.isupper():
                claims.append(Claim("named", word, False, f"'{word}' is no name in the facts"))
    return CheckResult(tuple(claims))


def refused_words(facts: MarketFacts, future: bool | None = None) -> frozenset[str]:
    """The words :func:`check_text` would refuse in any text about ``facts``: what a decoder may be kept from saying.

    News and time words, weekdays and months the facts do not name, fractions that are no fact, and direction
    words for a way no fact moved (strong ones also for a move under :data:`STRONG_MOVE_PCT`); with ``future``,
    only the forecast's (True) or the past day's (False) move counts, for a text that speaks of that one alone.
    """
    directions = _directions(facts, future)
    dates = _fact_dates(facts)
    named_days = {WEEKDAYS[d.weekday()] for d in dates} | {MONTHS[d.month - 1] for d in dates}
    refused = set(NEWS_WORDS | TIME_WORDS | META_WORDS)
    refused |= {word for word, value in NUMBER_WORDS.items() if value not in HORIZONS} | (
        set(WEEKDAYS) | set(MONTHS)
    ) - named_days - {"may"}
    refused |= {word for word, pct in FRACTION_WORDS.items() if not _matches("0", pct, _percent_facts(facts))}
    sides = (True, False) if future is None else (future,)
    moves = [m for m in (_move(facts, side) for side in sides) if m is not None]
    if all(m < BIG_MOVE_PCT for m in moves):
        refused |= BIG_WORDS
    if moves and all(m >= BIG_MOVE_PCT for m in moves):
        refused |= SMALL_WORDS
    for way, plain, strong in (("up", UP_WORDS, STRONG_UP), ("down", DOWN_WORDS, STRONG_DOWN)):
        size = directions.get(way)
        if size is None:
            refused |= plain | strong
        elif size < STRONG_MOVE_PCT:
            refused |= strong
    return frozenset(refused)


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def complete_sentences(text: str, most: int | None = None) -> str:
    """``text`` cut after its last complete sentence (at most ``most`` sentences); "" when none is complete.

    A model stops at its token budget mid-sentence; half a sentence is not served.
    """
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    if most is not None:
        ends = ends[:most]
    return text[: ends[-1]].strip() if ends else ""
