"""Turning a model's raw output into a score or a distribution (pure Python, no Spark).

Models rarely return exactly the JSON the prompt asks for: they wrap it in code
fences, use single quotes, forget a closing brace, add prose after it, or answer
in plain words. The functions here recover what can honestly be recovered and
say how (``parse_method``), so a bad answer becomes a visible status instead of
a silent guess. `wvb_spark.stages.predictions` applies them to Spark columns.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass

SCORE_KEY = "answer as a score"
# Keys accepted for the score, best first, after normalising case, "_" and "-" to spaces.
SCORE_KEYS = (SCORE_KEY, "answer score", "score", "answer")

PARSE_METHODS = ("json", "json_repaired", "number_in_text", "none")

# The one number syntax of prediction files: optional sign, digits, optional fraction,
# optional exponent, spaces around allowed ("3", " -2.5 ", ".5", "1e2"). Python's float()
# and Spark's cast accept more ("2d", "3f", "0x1p1", "1_0", "inf", other scripts' digits),
# none of which a model or a spreadsheet writes for a number. ASCII-only, so Java's regex
# (Spark's rlike) reads it the same way.
NUMBER_SYNTAX = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
_NUMBER_SYNTAX = re.compile(NUMBER_SYNTAX, re.ASCII)

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
# A number not glued to a word or another number ("Q1" and "v2.5" are not numbers here).
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])")
_LEADING_NUMBER = re.compile(r"^\s*[-+]?\d+(?:\.\d+)?")
# The score key followed by its value, for answers too broken to load as JSON.
_SCORE_PAIR = re.compile(
    r"""["']?answer[ _-]as[ _-]a[ _-]score["']?\s*:\s*(?:"([^"\n]*)"?|'([^'\n]*)'?|([^,}\n]*))""",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedAnswer:
    """What was read from a model's text: the score as written (a string, checked later
    against the question's scale) and how it was found. ``score_text`` is None when no
    score could be found and "" when the model gave an explicitly empty score."""

    score_text: str | None
    parse_method: str


def _normalise_key(key: str) -> str:
    return re.sub(r"[\s_-]+", " ", str(key)).strip().lower()


def _score_from_object(obj) -> tuple[bool, str | None]:
    """(found, score_text) for a decoded JSON object: the value of the best score key."""
    if not isinstance(obj, dict):
        return False, None
    keys = {_normalise_key(k): k for k in obj}
    for wanted in SCORE_KEYS:
        if wanted in keys:
            return True, _score_text_from_value(obj[keys[wanted]])
    return False, None


def _score_text_from_value(value) -> str:
    """A JSON value as score text: numbers as written, strings trimmed to their leading
    number when they start with one ("3 - Somewhat important" -> "3")."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    text = str(value).strip()
    leading = _LEADING_NUMBER.match(text)
    return leading.group(0).strip() if leading else text


def _json_candidates(text: str) -> list[str]:
    """Text to try as JSON: the inside of each code fence first, then the whole text."""
    fenced = [m.group(1) for m in _FENCE.finditer(text) if "{" in m.group(1)]
    return fenced + [text]


def _decode_first_object(text: str):
    """The first JSON object that decodes at some '{' of the text (prose after it is ignored)."""
    return _decode_first_value(text, openings=r"\{", kinds=dict)


def _repair(fragment: str) -> str:
    """Common JSON slips: single quotes around keys/values, trailing commas, Python
    literals, a missing closing brace."""
    repaired = re.sub(r"([{,:\[]\s*)'", r'\1"', fragment)
    repaired = re.sub(r"'(\s*[:,}\]])", r'"\1', repaired)
    repaired = re.sub(r",\s*([}\]])", r"\1", repaired)
    repaired = re.sub(r"\bNone\b", "null", repaired)
    repaired = re.sub(r"\bTrue\b", "true", repaired)
    repaired = re.sub(r"\bFalse\b", "false", repaired)
    if repaired.count("{") > repaired.count("}"):
        repaired = repaired.rstrip().rstrip(",") + "}" * (repaired.count("{") - repaired.count("}"))
    return repaired


def _repaired_object(text: str):
    start = text.find("{")
    if start < 0:
        return None
    end = text.rfind("}")
    fragment = text[start : end + 1] if end > start else text[start:]
    for attempt in (fragment, _repair(fragment)):
        try:
            obj = ast.literal_eval(attempt)
            if isinstance(obj, dict):
                return obj
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
        obj = _decode_first_object(attempt)
        if obj is not None:
            return obj
    return None


def first_number_on_scale(text: str, scale_min: int | None, scale_max: int | None) -> str | None:
    """The first number in the text that lies within [scale_min, scale_max], as written."""
    if scale_min is None or scale_max is None:
        return None
    for match in _NUMBER.finditer(text):
        value = float(match.group(0))
        if scale_min <= value <= scale_max:
            return match.group(0).lstrip("+")
    return None


def parse_answer(text: str | None, scale_min: int | None, scale_max: int | None) -> ParsedAnswer:
    """Read the score from a model's answer.

    In order: a JSON object with an "answer as a score" key (inside a code fence or
    anywhere in the text, prose around it ignored) -> ``json``; the same after repairing
    single quotes, trailing commas or a missing brace, or a bare ``"answer as a score": x``
    pair -> ``json_repaired``; otherwise the first number in the text within the question's
    scale -> ``number_in_text``; otherwise nothing -> ``none``.
    """
    if text is None or not str(text).strip():
        return ParsedAnswer(None, "none")
    text = str(text)
    candidates = _json_candidates(text)
    for candidate in candidates:
        found, score = _score_from_object(_decode_first_object(candidate))
        if found:
            return ParsedAnswer(score, "json")
    for candidate in candidates:
        found, score = _score_from_object(_repaired_object(candidate))
        if found:
            return ParsedAnswer(score, "json_repaired")
    pair = _SCORE_PAIR.search(text)
    if pair:
        value = next((g for g in pair.groups() if g is not None), "")
        return ParsedAnswer(_score_text_from_value(value), "json_repaired")
    number = first_number_on_scale(text, scale_min, scale_max)
    if number is not None:
        return ParsedAnswer(number, "number_in_text")
    return ParsedAnswer(None, "none")


# ---------------------------------------------------------------- distributions

DISTRIBUTION_KINDS = ("probabilities", "logprobs")


@dataclass(frozen=True)
class ParsedDistribution:
    """A normalised distribution over scale_min..scale_max, or None with the reason.

    off_scale_mass: the share of the model's answer that fell outside the scale and was
    left out before normalising (probability on other tokens; unusable samples);
    n_samples / n_unusable: for a distribution of sampled answers."""

    distribution: list[float] | None
    status: str  # valid | missing | non_numeric | out_of_range
    off_scale_mass: float | None = None
    n_samples: int | None = None
    n_unusable: int | None = None


def is_number_text(text: str) -> bool:
    """Whether `text` is a number in the files' syntax (NUMBER_SYNTAX)."""
    return _NUMBER_SYNTAX.fullmatch(text) is not None


def _as_number(value) -> float | None:
    """A float from a JSON number (JSON's own NaN / Infinity included) or from a string in
    NUMBER_SYNTAX; None for blanks; NaN if unreadable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, str) and not is_number_text(value):
        return math.nan
    if not isinstance(value, (str, int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer beyond float: as unusable as an infinite weight
        return math.inf


def parse_distribution(
    payload: str | None, kind: str, scale_min: int | None, scale_max: int | None
) -> ParsedDistribution:
    """Normalise one distribution prediction.

    ``payload`` is JSON: either a list with one entry per scale point (scale_min first) or
    an object keyed by scale value ({"1": 0.2, "2": 0.8}). ``kind`` says whether entries are
    probabilities (any non-negative weights; divided by their sum) or log-probabilities
    (exponentiated, then normalised). Blank / null entries and scale points absent from an
    object count as probability 0 (log-probability -inf).

    Status: ``missing`` when nothing is given; ``non_numeric`` for an unreadable entry, a
    negative probability, a NaN, or all-zero mass; ``out_of_range`` for a list of the wrong
    length or mass on a value outside the scale.
    """
    if kind not in DISTRIBUTION_KINDS:
        raise ValueError(f"unknown distribution kind {kind!r}")
    if scale_min is None or scale_max is None:
        return ParsedDistribution(None, "out_of_range")
    if payload is None or not str(payload).strip():
        return ParsedDistribution(None, "missing")
    try:
        raw = json.loads(payload)
    except ValueError:
        return ParsedDistribution(None, "non_numeric")
    size = scale_max - scale_min + 1
    if isinstance(raw, list):
        values = [_as_number(v) for v in raw]
        if all(v is None for v in values):
            return ParsedDistribution(None, "missing")
        if len(values) != size:
            return ParsedDistribution(None, "out_of_range")
    elif isinstance(raw, dict):
        values = [None] * size
        given = False
        for key, entry in raw.items():
            number = _as_number(entry)
            if number is None:
                continue
            given = True
            if not is_number_text(key):
                return ParsedDistribution(None, "non_numeric")
            point = float(key)
            if not math.isfinite(point) or point != int(point):
                return ParsedDistribution(None, "out_of_range")
            index = int(point) - scale_min
            if not 0 <= index < size:
                if kind == "logprobs" or number != 0:
                    return ParsedDistribution(None, "out_of_range")
                continue
            values[index] = number
        if not given:
            return ParsedDistribution(None, "missing")
    else:
        return ParsedDistribution(None, "non_numeric")

    if kind == "logprobs":
        if any(v is not None and (math.isnan(v) or v > 0) for v in values):
            return ParsedDistribution(None, "non_numeric")
        present = [v for v in values if v is not None and v != -math.inf]
        if not present:
            return ParsedDistribution(None, "non_numeric")
        top = max(present)  # subtract the max so exp() cannot underflow to all zeros
        weights = [0.0 if v is None or v == -math.inf else math.exp(v - top) for v in values]
    else:
        weights = [0.0 if v is None else v for v in values]
        if any(math.isnan(w) or math.isinf(w) or w < 0 for w in weights):
            return ParsedDistribution(None, "non_numeric")
    total = sum(weights)
    if total <= 0:
        return ParsedDistribution(None, "non_numeric")
    return ParsedDistribution([w / total for w in weights], "valid")


# ---------------------------------------------------------------- elicited distributions
#
# Three ways of asking a model for a distribution rather than one answer: the
# probabilities of its first token over the option numbers (or letters), several sampled
# answers, or a distribution the model writes out ("verbalised"); and a harness's
# log-likelihood of each option. Each becomes a ParsedDistribution like the files'.

_TOKEN_EDGES = " \t\n\r\"'`*_([{<.:)]}>,;"


def scale_point_of_token(token: str | None, scale_min: int, scale_max: int, letters: bool = False) -> int | None:
    """The scale point a first token names: its digits when the options were numbered as the
    scale ("3", " 3", "3." -> 3), or its letter when they were lettered (A = scale_min);
    None for any other token. Spaces and bracket/period marks around it are trimmed."""
    if token is None:
        return None
    text = str(token).strip(_TOKEN_EDGES)
    if letters:
        if len(text) == 1 and "A" <= text.upper() <= "Z":
            point = scale_min + ord(text.upper()) - ord("A")
            return point if point <= scale_max else None
        return None
    if not text.isascii() or not text.isdigit():
        return None
    point = int(text)
    return point if scale_min <= point <= scale_max else None


def distribution_from_top_logprobs(
    pairs, scale_min: int | None, scale_max: int | None, letters: bool = False
) -> ParsedDistribution:
    """[(token, logprob), ...] of the first answer token -> the distribution over the scale.

    Tokens naming the same point (" 3" and "3") add up; the probabilities of the scale
    tokens are divided by their sum, and what the listed tokens did not put on the scale
    (1 - that sum) is kept as off_scale_mass (a refusal, another word, the unlisted tail).
    No scale token at all -> non_numeric; no tokens -> missing.
    """
    if scale_min is None or scale_max is None:
        return ParsedDistribution(None, "out_of_range")
    if not pairs:
        return ParsedDistribution(None, "missing")
    weights = [0.0] * (scale_max - scale_min + 1)
    found = False
    for token, logprob in pairs:
        value = _as_number(logprob)
        if value is None or math.isnan(value) or value > 1e-9:
            return ParsedDistribution(None, "non_numeric")
        point = scale_point_of_token(token, scale_min, scale_max, letters)
        if point is None:
            continue
        found = True
        weights[point - scale_min] += math.exp(value)
    total = sum(weights)
    if not found or total <= 0:
        return ParsedDistribution(None, "non_numeric", off_scale_mass=1.0)
    return ParsedDistribution([w / total for w in weights], "valid", off_scale_mass=max(0.0, 1.0 - total))


def distribution_from_samples(texts, scale_min: int | None, scale_max: int | None) -> ParsedDistribution:
    """Several sampled answers -> the share of each scale point among the usable ones.

    Each text is read like a single answer (parse_answer); a sample is unusable when no
    whole number on the scale comes out of it (or the request failed: None). off_scale_mass
    is the unusable share. No usable sample -> non_numeric (missing when none was given).
    """
    if scale_min is None or scale_max is None:
        return ParsedDistribution(None, "out_of_range")
    texts = list(texts or [])
    if not texts:
        return ParsedDistribution(None, "missing", n_samples=0, n_unusable=0)
    counts = [0] * (scale_max - scale_min + 1)
    unusable = 0
    for text in texts:
        answer = parse_answer(text, scale_min, scale_max)
        value = answer.score_text
        number = float(value) if value is not None and is_number_text(value) else None
        if number is None or not math.isfinite(number) or number != int(number) or not scale_min <= number <= scale_max:
            unusable += 1
            continue
        counts[int(number) - scale_min] += 1
    usable = len(texts) - unusable
    share = unusable / len(texts)
    if usable == 0:
        blank = all(t is None or not str(t).strip() for t in texts)
        return ParsedDistribution(
            None, "missing" if blank else "non_numeric", off_scale_mass=share, n_samples=len(texts), n_unusable=unusable
        )
    return ParsedDistribution(
        [c / usable for c in counts], "valid", off_scale_mass=share, n_samples=len(texts), n_unusable=unusable
    )


_DISTRIBUTION_KEYS = ("distribution", "probabilities", "probability", "probs", "answer distribution")


def _verbalised_object(value):
    """The probabilities inside a decoded JSON value: a list, an object keyed by option, or
    either under a "distribution"/"probabilities" key."""
    if isinstance(value, dict):
        keys = {_normalise_key(k): k for k in value}
        for wanted in _DISTRIBUTION_KEYS:
            if wanted in keys and isinstance(value[keys[wanted]], (dict, list)):
                return value[keys[wanted]]
        return value
    return value if isinstance(value, list) else None


def verbalised_payload(text: str | None, scale_min: int | None = None) -> str | None:
    """The JSON distribution a model wrote in its answer (code fence or prose around it
    allowed), as a payload for parse_distribution; keys like "3", "3. Rather important" or
    "Option 3" name scale points. None when the text holds no JSON object or list."""
    if text is None or not str(text).strip():
        return None
    text = str(text)
    decoded = None
    for candidate in _json_candidates(text):
        decoded = _decode_first_value(candidate)
        if decoded is None:
            obj = _repaired_object(candidate)
            decoded = obj
        if decoded is not None:
            break
    found = _verbalised_object(decoded)
    if isinstance(found, list):
        return json.dumps(found)
    if isinstance(found, dict):
        out = {}
        for key, value in found.items():
            number = re.search(r"[-+]?\d+", str(key))
            out[number.group(0) if number else str(key)] = value
        return json.dumps(out)
    return None


def _decode_first_value(text: str, openings: str = r"[\[{]", kinds=(dict, list)):
    """The first JSON value of `kinds` that decodes where `openings` matches (default: an
    object or list at some '{' or '[')."""
    decoder = json.JSONDecoder()
    for match in re.finditer(openings, text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, kinds):
            return value
    return None


def verbalised_distribution(text: str | None, scale_min: int | None, scale_max: int | None) -> ParsedDistribution:
    """A distribution the model wrote out -> normalised like a distribution file's
    probabilities (percentages work: entries are divided by their sum)."""
    if text is None or not str(text).strip():
        return ParsedDistribution(None, "missing")
    payload = verbalised_payload(text, scale_min)
    if payload is None:
        return ParsedDistribution(None, "non_numeric")
    return parse_distribution(payload, "probabilities", scale_min, scale_max)


def distribution_from_loglikelihoods(values, scale_min: int | None, scale_max: int | None) -> ParsedDistribution:
    """One log-likelihood per option, in scale order (an eval harness's multiple-choice
    answer) -> their softmax. The wrong number of options -> out_of_range."""
    if scale_min is None or scale_max is None:
        return ParsedDistribution(None, "out_of_range")
    if not values:
        return ParsedDistribution(None, "missing")
    if len(values) != scale_max - scale_min + 1:
        return ParsedDistribution(None, "out_of_range")
    return parse_distribution(
        json.dumps([v if v is None or isinstance(v, (int, float)) else str(v) for v in values]),
        "logprobs",
        scale_min,
        scale_max,
    )
