"""The benchmark's metadata, read from the package's own resources.

Everything that knows about question scales, codebook codes, answer
adjustments and the continent / education groupings goes through here, so no
stage parses the resource files on its own.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

MISSING_CODES = {-1: "Don't know", -2: "No answer", -3: "Not applicable", -4: "Not asked", -5: "Missing"}
NOT_CODEBOOK_VARIABLES = ("version", "doi")


@dataclass(frozen=True)
class Question:
    """One benchmark variable: a value question (ordinal scale) or a demographic one."""

    question_id: str
    text: str
    category: str
    use_case: str  # "value" or "demographic"
    scale_min: int | None
    scale_max: int | None
    data_type: str  # "ordinal" or "non_ordinal"

    @property
    def is_value(self) -> bool:
        return self.use_case == "value"


def _resource_text(name: str) -> str:
    return resources.files("wvb_spark").joinpath("resources", name).read_text(encoding="utf-8")


def _resource_json(name: str):
    return json.loads(_resource_text(name))


def _resource_csv(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(_resource_text(name).splitlines()))


def _int_or_none(value) -> int | None:
    return None if value in ("", None) else int(value)


@cache
def questions() -> dict[str, Question]:
    """All 282 benchmark variables in metadata order, keyed by question_id."""
    raw = _resource_json("question_metadata.json")
    return {
        qid: Question(
            question_id=qid,
            text=entry["question"],
            category=entry["category"],
            use_case=entry["use_case"],
            scale_min=_int_or_none(entry["answer_scale_min"]),
            scale_max=_int_or_none(entry["answer_scale_max"]),
            data_type=entry["answer_data_type"],
        )
        for qid, entry in raw.items()
    }


@cache
def value_question_ids() -> tuple[str, ...]:
    """The 239 value questions, the ones that become examples."""
    return tuple(q.question_id for q in questions().values() if q.is_value)


@cache
def demographic_variables() -> tuple[str, ...]:
    """The 43 demographic variables (D_INTERVIEW included), in metadata order."""
    return tuple(q.question_id for q in questions().values() if not q.is_value)


@cache
def codebook() -> dict[str, dict]:
    """The WVS Wave 7 codebook: per variable, its label, type and code -> label choices."""
    return _resource_json("codebook.json")


@cache
def codebook_variables() -> tuple[str, ...]:
    """The 375 variables of the official file's header, in codebook order."""
    return tuple(v for v in codebook() if v not in NOT_CODEBOOK_VARIABLES)


def choices(variable: str) -> dict[str, str]:
    """Code (as written in the file) -> label for one codebook variable."""
    return codebook()[variable]["choices"]


@cache
def answer_adjustments() -> dict[str, dict[int, int | None]]:
    """Raw code -> adjusted code per question; None means 'treat as missing'."""
    raw = _resource_json("answer_adjustment.json")
    return {qid: {int(k): _int_or_none(v) for k, v in mapping.items()} for qid, mapping in raw.items()}


@cache
def probe_questions() -> dict[str, str]:
    """The 36 value questions of the published probe study -> their prompt text."""
    return _resource_json("value_questions.json")


@cache
def country_continents(published: bool = False) -> dict[str, str]:
    """Country name -> continent. The project's mapping covers every codebook country;
    ``published=True`` gives the release's file, which misses two of them."""
    name = "published/country2continent.csv" if published else "country2continent.csv"
    return {row["Country"]: row["Continent"] for row in _resource_csv(name)}


@cache
def education_levels(published: bool = False) -> dict[str, str]:
    """Q275 label -> one of four education levels. ``published=True`` gives the
    release's file, whose ISCED 7 spelling matches no codebook label."""
    name = "published/education2level.csv" if published else "education2level.csv"
    return {row["Education"]: row["Level"] for row in _resource_csv(name)}


CONTINENTS = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")
EDUCATION_LEVELS = ("Primary or No Education", "Lower Secondary", "Upper to Post Secondary", "Tertiary")
