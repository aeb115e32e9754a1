"""`wvb synth`: a synthetic WVS Wave 7 file in the official CSV layout.

The real microdata needs a registration and may not be redistributed, so every
later stage is developed and tested on this file instead. It has the official
header (the 375 codebook variables), official codes and missing-value codes,
the real file's countries with close to their real sample sizes, and answers
whose per-country distributions are the published ones:

* real: for every (country, value question) that has a published aggregate
  (resources/wvs7_country_distributions.csv), the share of the country's
  answers at each scale point. Pairs without one borrow the question's shares
  from the countries of the same continent (else from all countries);
  questions no country has an aggregate for keep invented shares;
* invented: who gives which answer. A respondent's latent score for a question
  is demographic shifts (education, urban/rural, age, sex) + one trait per
  topic block + noise; within a country the respondents who answer are ranked
  by it and the target shares say how many of them, from the bottom, get each
  scale point (systematic rounding). So a country's marginals are the real
  ones while demographics still predict answers and answers within a block
  still correlate;
* missing values: pairs the real tabulation shows were not asked, and a few
  pairs without a real aggregate, are -4 for the whole country; item
  non-response (-1/-2) at a few percent, rare -5; the raw codes that
  answer_adjustment.json turns into missing at their real shares.

Everything is vectorised numpy over chunks of respondents, and every random
draw comes from a generator seeded by (seed, purpose, chunk number), so the
same seed gives a byte-identical file whatever the machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from scipy.special import ndtr, ndtri

from wvb_spark.core import metadata
from wvb_spark.core.errors import InputError
from wvb_spark.core.stage import Result

CHUNK_ROWS = 20_000

# Package data: the real file's countries with their sample sizes, and the
# published per-country answer shares (see resources/README.md for provenance).
SIZES_RESOURCE = "wvs7_country_sizes.csv"
AGGREGATES_RESOURCE = "wvs7_country_distributions.csv"
# The aggregate source that tabulated whole countries: a question it covers
# but has no shares for in a country it covers was not asked there.
FULL_TABULATION_SOURCE = "SimLLMCultureDist"
# Identity codes the real file carries but the v5.0 codebook does not list
# (Hong Kong's ISO alpha-3, Uruguay's Correlates of War abbreviation).
CODES_MISSING_FROM_CODEBOOK = {("B_COUNTRY_ALPHA", "Hong Kong SAR"): "HKG", ("C_COW_ALPHA", "Uruguay"): "URU"}
MIN_PER_COUNTRY = 20  # below N = 20 x countries, fewer countries are used
RUNNING_NUMBER_LIMIT = 929_999  # D_INTERVIEW = code*1e6 + 70,000 + running number stays unique

# Spellings that differ between the codebook's country lists.
COUNTRY_ALIASES = {
    "Macao": "Macao SAR",
    "Macau SAR": "Macao SAR",
    "Russian Federation": "Russia",
    "Malasia": "Malaysia",
    "Hong Kong SAR PRC": "Hong Kong SAR",
    "United States of America": "United States",
    "United Kingdom": "Great Britain",
}
# Country of birth codes (Q266-Q268) where the survey code is not an ISO country.
BIRTH_COUNTRY_CODE = {909: 826}
OTHER_BIRTH_COUNTRY = 9999  # Q266-Q268 "Other"; its alpha-3 column gets "OTH"

# Where a (country, question)'s answer shares come from (AnswerTargets.source).
TARGET_SOURCES = ("real", "continent", "pooled", "invented")
REAL, CONTINENT, POOLED, INVENTED = range(len(TARGET_SOURCES))
MAX_CUTS = 9  # cuts between the scale points of the longest (10-point) value question

# Missing-value rates.
NOT_ASKED_UNCOVERED_SHARE = 0.045  # pairs without a real aggregate not asked: -4 for the whole country
DONT_KNOW_MEAN = 0.018  # -1, per value question (varies by question, country and education)
NO_ANSWER_MEAN = 0.006  # -2
MISSING_RARE = 0.0005  # -5
ADJUSTED_TO_MISSING_RATE = {"Q111": 0.04, "Q221": 0.05, "Q222": 0.05, "Q254": 0.02}  # invented questions only
ALTERNATE_RAW_SHARE = 0.3  # invented questions: share of a point with two raw codes written as the second
DEMOGRAPHIC_MISSING = {-1: 0.006, -2: 0.006, -5: 0.001}  # generic background variables
GENERIC_NOT_ASKED_COUNTRY_SHARE = 0.04
REGIONAL_ORGANISATION_NOT_ASKED_SHARE = 0.7  # Q82_*: asked only where the organisation matters

CONTINENT_DEVELOPMENT = {  # mean of a country's education / urbanisation index
    "Africa": -0.6,
    "Asia": 0.05,
    "Europe": 0.8,
    "North America": 0.7,
    "Oceania": 0.8,
    "South America": 0.0,
}
CONTINENT_MEAN_AGE = {"Africa": 34, "Asia": 41, "Europe": 49, "North America": 46, "Oceania": 48, "South America": 40}
ISCED_CUTS = np.array([-1.8, -1.0, -0.35, 0.45, 0.7, 0.95, 1.6, 2.4])  # latent education -> ISCED 0..8
# Invented demographic effects on the latent score [education, urban, age, female]:
# a topic block's effect is +-(a size in this range); a question deviates from it
# by a normal draw of QUESTION_EFFECT_SD. No block is left without an education effect.
BLOCK_EFFECT_RANGE = (np.array([0.3, 0.1, 0.1, 0.05]), np.array([0.75, 0.4, 0.45, 0.3]))
QUESTION_EFFECT_SD = 0.12
LATENT_SD = math.sqrt(1 + 1.0 + 0.65 + 0.2)  # invented questions: noise + trait + country + demographics
INVENTED_WITHIN_SD = math.sqrt(1 + 1.0 + 0.2)  # the same within a country


@dataclass(frozen=True)
class SynthSummary:
    """What `write_synthetic_wvs` wrote: data rows (fault rows included), header
    columns, share of (respondent, value question) cells answered after adjustment
    (over the generated respondents, faults excluded), seconds, fault manifest path."""

    rows: int
    columns: int
    answered_share: float
    seconds: float
    faults: Path | None


def _resource_rows(name: str) -> list[dict[str, str]]:
    """Rows of a CSV shipped in wvb_spark/resources (never a path outside the package)."""
    text = resources.files("wvb_spark").joinpath("resources", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


# ---------------------------------------------------------------- codebook lookups


def _int_codes(variable: str, negative: bool = False) -> list[int]:
    """The variable's codebook codes as ints: the valid ones, or the missing ones."""
    codes = [int(float(k)) for k in metadata.choices(variable)]
    return [c for c in codes if (c < 0) == negative]


def _country_code_of(code: str, countries: list[str]) -> str | None:
    """Country-specific codes start with the country's numeric code (e.g. N_TOWN
    32001 is a town of 32 = Argentina; 764001 of 764 = Thailand): the longest
    country code that leaves at least three digits."""
    best = None
    for country in countries:
        if code.startswith(country) and len(code) - len(country) >= 3 and (best is None or len(country) > len(best)):
            best = country
    return best


def _codes_by_country(variable: str) -> dict[int, np.ndarray]:
    """Country number -> the variable's codes that belong to that country (towns, parties, ...)."""
    countries = list(metadata.choices("B_COUNTRY"))
    owned: dict[int, list[int]] = {}
    for code in metadata.choices(variable):
        if code.startswith("-"):
            continue
        owner = _country_code_of(code, countries)
        if owner is not None:
            owned.setdefault(int(owner), []).append(int(code))
    return {country: np.array(sorted(codes), dtype=np.int64) for country, codes in owned.items()}


@dataclass(frozen=True)
class Country:
    """One Wave 7 country: its identity codes, continent, survey year and the
    real file's sample size."""

    code: int
    name: str
    alpha: str
    cow_num: int
    cow_alpha: str
    continent: str
    year: int
    real_size: int


def _identity_code(variable: str, name: str) -> str:
    """The codebook's code for country `name` in an identity variable, or the real
    file's code where the codebook lists none (see CODES_MISSING_FROM_CODEBOOK)."""
    by_name = {COUNTRY_ALIASES.get(label, label): code for code, label in metadata.choices(variable).items()}
    return by_name[name] if name in by_name else CODES_MISSING_FROM_CODEBOOK[(variable, name)]


def _survey_years() -> dict[int, int]:
    """B_COUNTRY -> fieldwork year, from the S025 (country x 10,000 + year) codes."""
    years: dict[int, int] = {}
    for code in sorted(metadata.choices("S025"), key=int):
        years.setdefault(int(code) // 10_000, int(code) % 10_000)
    return years


@cache
def wave7_countries() -> tuple[Country, ...]:
    """The real file's countries (resources/wvs7_country_sizes.csv) with their
    identity codes, in a fixed order that interleaves continents, so that the
    first few (all a small file uses) still span continents."""
    labels, years, continents = metadata.choices("B_COUNTRY"), _survey_years(), metadata.country_continents()
    by_continent: dict[str, list[Country]] = {}
    for row in _resource_rows(SIZES_RESOURCE):
        code = int(row["B_COUNTRY"])
        name = COUNTRY_ALIASES.get(labels[str(code)], labels[str(code)])
        country = Country(
            code,
            name,
            _identity_code("B_COUNTRY_ALPHA", name),
            int(_identity_code("C_COW_NUM", name)),
            _identity_code("C_COW_ALPHA", name),
            continents[name],
            years[code],
            int(row["respondents"]),
        )
        by_continent.setdefault(country.continent, []).append(country)
    order: list[Country] = []
    while any(by_continent.values()):
        for continent in metadata.CONTINENTS:
            if by_continent.get(continent):
                order.append(by_continent[continent].pop(0))
    return tuple(order)


def country_sizes(respondents: int, real_sizes: np.ndarray) -> np.ndarray:
    """Per-country sample sizes adding up to `respondents`: a floor of
    MIN_PER_COUNTRY each (less when N is tiny) plus the rest shared in proportion
    to the real sizes above that floor (largest remainder), so that at the real
    N each country has about its real size and any N keeps the real proportions."""
    k = len(real_sizes)
    floor = MIN_PER_COUNTRY if respondents >= MIN_PER_COUNTRY * k else respondents // k
    above = np.maximum(np.asarray(real_sizes, dtype=float) - floor, 1.0)
    exact = floor + (respondents - floor * k) * above / above.sum()
    sizes = np.floor(exact).astype(np.int64)
    short = respondents - int(sizes.sum())
    sizes[np.argsort(-(exact - sizes), kind="stable")[:short]] += 1
    return sizes


# ---------------------------------------------------------------- real answer shares


@dataclass(frozen=True)
class _Aggregates:
    """The shipped aggregates, indexed for lookups by question and country."""

    shares: dict[str, dict[str, dict[int, float]]]  # question -> country -> raw code -> share
    tabulated_countries: frozenset[str]  # countries and questions of the full per-country tabulation
    tabulated_questions: frozenset[str]


@cache
def _aggregates() -> _Aggregates:
    """The shipped aggregates, read once per process."""
    shares: dict[str, dict[str, dict[int, float]]] = {}
    countries, questions = set(), set()
    for row in _resource_rows(AGGREGATES_RESOURCE):
        shares.setdefault(row["qid"], {}).setdefault(row["country"], {})[int(row["answer_code"])] = float(row["share"])
        if row["source"] == FULL_TABULATION_SOURCE:
            countries.add(row["country"])
            questions.add(row["qid"])
    return _Aggregates(shares, frozenset(countries), frozenset(questions))


@cache
def _raw_code_table(qid: str) -> tuple[np.ndarray, np.ndarray, int]:
    """For a value question: the raw code written for each scale point (the code
    equal to the point first), a second raw code for points that have two (else
    the same one), and the raw code the adjustment turns into missing (-9: none)."""
    question, mapping = metadata.questions()[qid], metadata.answer_adjustments().get(qid, {})
    primary, alternate = [], []
    assert question.scale_min is not None and question.scale_max is not None  # every value question has a scale
    for point in range(question.scale_min, question.scale_max + 1):
        raws = sorted((r for r in _int_codes(qid) if mapping.get(r, r) == point), key=lambda r: (r != point, r))
        primary.append(raws[0])
        alternate.append(raws[1] if len(raws) > 1 else raws[0])
    dropped = [r for r, a in mapping.items() if a is None]
    return np.array(primary, dtype=np.int64), np.array(alternate, dtype=np.int64), dropped[0] if dropped else -9


def _raw_shares(qid: str, countries: tuple[Country, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Raw-code shares (countries x the question's valid codes) and their source:
    the country's own aggregate, else the mean over the same continent's
    countries that have one, else the mean over all; None if no country has one."""
    by_country = _aggregates().shares.get(qid)
    if not by_country:
        return None
    codes, continent_of = _int_codes(qid), metadata.country_continents()
    table = {name: np.array([shares.get(code, 0.0) for code in codes]) for name, shares in by_country.items()}
    pooled = np.mean(list(table.values()), axis=0)
    per_continent: dict[str, list[np.ndarray]] = {}
    for name, row in table.items():
        per_continent.setdefault(continent_of[name], []).append(row)
    continent_mean = {continent: np.mean(rows, axis=0) for continent, rows in per_continent.items()}
    rows, source = [], []
    for country in countries:
        if country.name in table:
            row, kind = table[country.name], REAL
        elif country.continent in continent_mean:
            row, kind = continent_mean[country.continent], CONTINENT
        else:
            row, kind = pooled, POOLED
        rows.append(row)
        source.append(kind)
    return np.array(rows), np.array(source)


def _adjusted_shares(qid: str, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw-code shares -> (cumulative shares at the cuts between scale points after
    answer_adjustment.json, padded with 1 to MAX_CUTS; share of raw answers the
    adjustment turns into missing; share of the second raw code of a point with two)."""
    codes, mapping = _int_codes(qid), metadata.answer_adjustments().get(qid, {})
    question = metadata.questions()[qid]
    assert question.scale_min is not None  # every value question has a scale
    primary, alternate, _ = _raw_code_table(qid)
    by_code = dict(zip(codes, raw.T))
    to_missing = sum((by_code[c] for c in codes if c in mapping and mapping[c] is None), np.zeros(len(raw)))
    points = np.zeros((len(raw), len(primary)))
    for code in codes:
        if mapping.get(code, code) is not None:
            points[:, cast(int, mapping.get(code, code)) - question.scale_min] += by_code[code]
    second = [(p, a) for p, a in zip(primary, alternate) if a != p]
    alternate_share = np.zeros(len(raw))
    if second:
        first_code, second_code = second[0]
        alternate_share = by_code[second_code] / np.maximum(by_code[first_code] + by_code[second_code], 1e-12)
    total = points.sum(axis=1, keepdims=True)
    shares = np.where(total > 0, points / np.maximum(total, 1e-12), 1.0 / len(primary))
    cum = np.ones((len(raw), MAX_CUTS))
    cum[:, : len(primary) - 1] = np.clip(np.cumsum(shares, axis=1)[:, :-1], 0.0, 1.0)
    return cum, to_missing, alternate_share


@dataclass(frozen=True)
class AnswerTargets:
    """Per (country, value question), from the real aggregates: cumulative answer
    shares at the cuts between scale points (padded with 1; NaN where invented),
    the share of raw answers the adjustment turns into missing, the share of the
    second raw code where a point has two, the source (index into
    TARGET_SOURCES) and whether the real tabulation shows it was not asked."""

    cum: np.ndarray  # (countries, questions, MAX_CUTS)
    to_missing: np.ndarray  # (countries, questions)
    alternate: np.ndarray
    source: np.ndarray
    not_asked: np.ndarray


@cache
def answer_targets() -> AnswerTargets:
    """The answer shares each of wave7_countries() is calibrated to, in that order
    (seed-free, so worked out once; a smaller file uses the first rows)."""
    ids, aggregates, countries = metadata.value_question_ids(), _aggregates(), wave7_countries()
    k = len(countries)
    cum = np.full((k, len(ids), MAX_CUTS), np.nan)
    to_missing, alternate, source = np.zeros((k, len(ids))), np.zeros((k, len(ids))), np.full((k, len(ids)), INVENTED)
    not_asked = np.zeros((k, len(ids)), dtype=bool)
    for i, qid in enumerate(ids):
        raw = _raw_shares(qid, countries)
        if raw is None:
            to_missing[:, i], alternate[:, i] = ADJUSTED_TO_MISSING_RATE.get(qid, 0.0), ALTERNATE_RAW_SHARE
            continue
        cum[:, i], to_missing[:, i], alternate[:, i] = _adjusted_shares(qid, raw[0])
        source[:, i] = raw[1]
        if qid in aggregates.tabulated_questions:
            not_asked[:, i] = [
                c.name in aggregates.tabulated_countries and c.name not in aggregates.shares[qid] for c in countries
            ]
    for array in (cum, to_missing, alternate, source, not_asked):
        array.setflags(write=False)  # cached and shared by every model of the process
    return AnswerTargets(cum, to_missing, alternate, source, not_asked)


# ---------------------------------------------------------------- the model


def _cumulative(probabilities: np.ndarray) -> np.ndarray:
    """Cumulative distribution along the last axis, ending at exactly 1."""
    cum = np.cumsum(probabilities, axis=-1)
    return cum / cum[..., -1:]


def _smooth_histogram(rng: np.random.Generator, points: int) -> np.ndarray:
    """An invented overall histogram: unimodal or U-shaped, slightly jittered,
    every scale point used somewhere."""
    centre = (np.arange(points) + 0.5) / points
    a, b = rng.uniform(0.7, 3.5, 2)
    p = centre ** (a - 1) * (1 - centre) ** (b - 1)
    p = p / p.sum() * rng.dirichlet(np.full(points, 60.0)) * points
    return 0.88 * p / p.sum() + 0.12 / points


class SurveyModel:
    """Country, question and variable parameters of one synthetic survey (fixed by seed and N)."""

    def __init__(self, respondents: int, seed: int):
        """Countries and sizes for N, then every parameter from one generator seeded by (seed, 0)."""
        if respondents < 1:
            raise InputError(f"--respondents must be at least 1, got {respondents}")
        rng = np.random.default_rng([seed, 0])
        all_countries = wave7_countries()
        n_countries = max(1, min(len(all_countries), respondents // MIN_PER_COUNTRY))
        self.countries = all_countries[:n_countries]
        self.sizes = country_sizes(respondents, np.array([c.real_size for c in self.countries]))
        if self.sizes.max() > RUNNING_NUMBER_LIMIT:
            raise InputError(f"--respondents {respondents} is too large: D_INTERVIEW running numbers would overflow")
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.respondents = respondents
        self.codes = np.array([c.code for c in self.countries], dtype=np.int64)
        self.years = np.array([c.year for c in self.countries], dtype=np.int64)
        continent_index = {name: i for i, name in enumerate(metadata.CONTINENTS)}
        self.continent = np.array([continent_index[c.continent] for c in self.countries])
        self._country_traits(rng)
        self._languages(rng)
        self._value_questions(rng)
        self._generic_variables(rng)
        self.owned = {
            v: _codes_by_country(v)
            for v in (
                "N_TOWN",
                "N_REGION_ISO",
                "N_REGION_WVS",
                "N_REGION_NUTS2",
                "Q223",
                "Q275A",
                "Q276A",
                "Q277A",
                "Q278A",
                "Q290",
            )
        }
        birth_codes = set(_int_codes("Q266"))
        as_birth = [BIRTH_COUNTRY_CODE.get(c.code, c.code) for c in all_countries]
        self.birth_codes = np.array([b if b in birth_codes else OTHER_BIRTH_COUNTRY for b in as_birth])[:n_countries]
        self.foreign_birth_codes = np.array([b for b in as_birth if b in birth_codes])
        self.birth_alpha = {b: c.alpha for b, c in zip(as_birth, all_countries)} | {
            826: "GBR",
            OTHER_BIRTH_COUNTRY: "OTH",
        }
        self.religion_cum = _cumulative(rng.dirichlet(np.full(10, 0.35), size=n_countries) + 0.003)

    def _country_traits(self, rng: np.random.Generator) -> None:
        """Invented country-level parameters of the background variables."""
        k = len(self.countries)
        self.development = np.array([CONTINENT_DEVELOPMENT[c.continent] for c in self.countries]) + rng.normal(
            0, 0.35, k
        )
        self.urban_share = np.clip(0.62 + 0.2 * self.development + rng.normal(0, 0.08, k), 0.3, 0.95)
        self.mean_age = np.array([CONTINENT_MEAN_AGE[c.continent] for c in self.countries]) + rng.normal(0, 2.5, k)
        self.female_share = rng.uniform(0.48, 0.56, k)
        self.immigrant_share = np.clip(rng.gamma(1.2, 0.05, k), 0.005, 0.4)
        self.weight_sigma = rng.uniform(0.15, 0.5, k)
        self.fieldwork_start = rng.integers(1, 10, k)
        self.fieldwork_months = rng.integers(1, 4, k)
        self.mode = rng.choice([1, 2, 1, 1, 3, 5], size=k)
        self.times_not_asked = rng.random(k) < 0.15

    def _languages(self, rng: np.random.Generator) -> None:
        """Interview languages: two per country from the codebook's list (no link to the country)."""
        iso_by_label = {label: iso for iso, label in metadata.choices("LNGE_ISO").items()}
        interview = metadata.choices("S_INTLANGUAGE")
        self.language_codes = np.array([int(c) for c in interview if int(c) > 0], dtype=np.int64)
        self.language_iso = np.array(
            [iso_by_label.get(interview[str(c)], "oth") for c in self.language_codes], dtype=object
        )
        n = len(self.language_codes)
        self.country_languages = np.stack([rng.choice(n, size=2, replace=False) for _ in self.countries])
        home = set(_int_codes("Q272"))
        self.home_language_ok = np.array([c in home for c in self.language_codes])
        self.home_language_codes = np.array(sorted(home), dtype=np.int64)

    def _value_questions(self, rng: np.random.Generator) -> None:
        """Per value question: latent loadings and demographic effects (invented),
        the answer shares per country (real where published), missing rates and
        the adjusted -> raw code tables."""
        questions = metadata.questions()
        self.value_ids = metadata.value_question_ids()
        categories = sorted({questions[q].category for q in self.value_ids})
        self.category_of = np.array([categories.index(questions[q].category) for q in self.value_ids])
        n_q, n_cat, k = len(self.value_ids), len(categories), len(self.countries)
        sign = rng.choice([-1.0, 1.0], size=n_q)
        self.loading = sign * rng.uniform(0.7, 1.3, n_q)
        # demographic effects [education, urban, age, female], coherent within a block
        block_effects = rng.choice([-1.0, 1.0], size=(n_cat, 4)) * rng.uniform(*BLOCK_EFFECT_RANGE, size=(n_cat, 4))
        self.demographic_effect = sign[:, None] * block_effects[self.category_of] + rng.normal(
            0, QUESTION_EFFECT_SD, (n_q, 4)
        )
        targets = answer_targets()
        self.target_source = targets.source[:k]
        invented = self.target_source == INVENTED
        self.cum = np.where(invented[:, :, None], self._invented_cum(rng, sign, n_cat), targets.cum[:k])
        self.to_missing, self.alternate = targets.to_missing[:k], targets.alternate[:k]
        tables = [_raw_code_table(q) for q in self.value_ids]
        self.raw_primary = np.stack([np.pad(t[0], (0, MAX_CUTS + 1 - len(t[0])), mode="edge") for t in tables])
        self.raw_alternate = np.stack([np.pad(t[1], (0, MAX_CUTS + 1 - len(t[1])), mode="edge") for t in tables])
        self.to_missing_code = np.array([t[2] for t in tables], dtype=np.int64)
        uncovered = (self.target_source != REAL) & (rng.random((k, n_q)) < NOT_ASKED_UNCOVERED_SHARE)
        self.not_asked = targets.not_asked[:k] | uncovered
        self.dont_know = rng.beta(2, 2 / DONT_KNOW_MEAN - 2, n_q)
        self.no_answer = rng.beta(2, 2 / NO_ANSWER_MEAN - 2, n_q)
        self.country_nonresponse = rng.lognormal(-0.125, 0.5, k)

    def _invented_cum(self, rng: np.random.Generator, sign: np.ndarray, n_cat: int) -> np.ndarray:
        """Cumulative shares (countries, questions, cuts) for questions without any
        aggregate: an invented smooth histogram per question, shifted per country by
        continent, country and question random effects (so invented differences)."""
        k, n_q = len(self.countries), len(self.value_ids)
        continent_block = rng.normal(0, 0.6, (len(metadata.CONTINENTS), n_cat))
        country_block = rng.normal(0, 0.45, (k, n_cat))
        offset = sign[None, :] * (
            continent_block[self.continent][:, self.category_of] + country_block[:, self.category_of]
        ) + rng.normal(0, 0.3, (k, n_q))
        questions = metadata.questions()
        cum = np.ones((k, n_q, MAX_CUTS))
        for i, qid in enumerate(self.value_ids):
            scale_min, scale_max = questions[qid].scale_min, questions[qid].scale_max
            assert scale_min is not None and scale_max is not None  # every value question has a scale
            points = scale_max - scale_min + 1
            cuts = ndtri(np.cumsum(_smooth_histogram(rng, points))[:-1])
            cum[:, i, : points - 1] = ndtr((cuts[None, :] * LATENT_SD - offset[:, i : i + 1]) / INVENTED_WITHIN_SD)
        return cum

    def _generic_variables(self, rng: np.random.Generator) -> None:
        """Every other coded variable: a per-country distribution over its codes."""
        self.generic = {}
        k = len(self.countries)
        for variable in metadata.codebook_variables():
            if variable in SPECIAL_VARIABLES or variable in self.value_ids:
                continue
            codes = np.array(_int_codes(variable), dtype=np.int64)
            if len(codes) == 0:
                raise AssertionError(f"{variable}: no handler and no codes")  # pragma: no cover
            overall = rng.dirichlet(np.full(len(codes), 2.0))
            by_country = 0.5 * overall + 0.5 * rng.dirichlet(np.full(len(codes), 1.5), size=k)
            missing = set(_int_codes(variable, negative=True))
            share = (
                REGIONAL_ORGANISATION_NOT_ASKED_SHARE
                if variable.startswith("Q82_")
                else GENERIC_NOT_ASKED_COUNTRY_SHARE
            )
            not_asked = (rng.random(k) < share) if -4 in missing else np.zeros(k, dtype=bool)
            rates = [(c, r) for c, r in DEMOGRAPHIC_MISSING.items() if c in missing]
            self.generic[variable] = (codes, _cumulative(by_country), not_asked, rates)


# Variables with their own generator below (everything else is generic).
SPECIAL_VARIABLES = frozenset(
    "A_STUDY A_WAVE A_YEAR B_COUNTRY B_COUNTRY_ALPHA C_COW_NUM C_COW_ALPHA D_INTERVIEW J_INTDATE FW_END "
    "FW_START K_TIME_START K_TIME_END K_DURATION Q_MODE N_REGION_ISO N_REGION_WVS N_REGION_NUTS2 N_TOWN "
    "G_TOWNSIZE G_TOWNSIZE2 H_SETTLEMENT H_URBRURAL I_PSU O1_LONGITUDE O2_LATITUDE S_INTLANGUAGE LNGE_ISO "
    "W_WEIGHT S018 S025 Q33_3 Q34_3 Q35_3 Q94R Q95R Q96R Q97R Q98R Q99R Q100R Q101R Q102R Q103R Q104R Q105R "
    "Q172R Q223 Q223_ABREV Q223_LOCAL Q260 Q261 Q262 X003R X003R2 Q263 Q264 Q265 Q266 X002_02B Q267 V002A_01 "
    "Q268 V001A_01 Q269 Q271 Q273 Q274 Q275 Q275A Q275R Q276 Q276A Q276R Q277 Q277A Q277R Q278 Q278A Q278R "
    "Q279 Q286 Q287 Q288 Q288R Q289 Q289CS9 Q290".split()
)


# ---------------------------------------------------------------- drawing helpers


def _draw_index(rng: np.random.Generator, cumulative_rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row, each row with its own cumulative distribution."""
    u = rng.random(len(cumulative_rows))
    return (u[:, None] >= cumulative_rows[:, :-1]).sum(axis=1)


def _with_missing(rng: np.random.Generator, values: np.ndarray, rates) -> np.ndarray:
    """Replace values by missing codes at the given (code, rate) shares; a rate
    may be one number or one per row."""
    u = rng.random(len(values))
    out = values.copy()
    low = np.zeros(len(values))
    for code, rate in rates:
        high = low + rate
        out[(u >= low) & (u < high)] = code
        low = high
    return out


def _keep_missing(source: np.ndarray, derived: np.ndarray) -> np.ndarray:
    """A recoded variable is missing wherever its source is."""
    return np.where(source < 0, source, derived)


def _recode(values: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """Map codes through `table` (codes not in it are kept), as the file's recoded variables do."""
    out = values.copy()
    for source, target in table.items():
        out[values == source] = target
    return out


def _pick_owned(rng, owned: dict[int, np.ndarray], country_codes, cidx, position=None) -> np.ndarray:
    """A country-specific code (town, region, party, ...) for each row, -4 where
    the codebook has none for the country. `position` in [0,1) picks by rank."""
    n = len(cidx)
    out = np.full(n, -4, dtype=np.int64)
    u = rng.random(n) if position is None else position
    for ci in np.unique(cidx):
        codes = owned.get(int(country_codes[ci]))
        if codes is None:
            continue
        rows = cidx == ci
        out[rows] = codes[np.minimum((u[rows] * len(codes)).astype(np.int64), len(codes) - 1)]
    return out


def _ordinal_from_latent(latent: np.ndarray, points: int) -> np.ndarray:
    """Cut a standard-normal-ish latent into 1..points at equal-probability cuts."""
    cuts = ndtri(np.arange(1, points) / points)
    return np.searchsorted(cuts, latent) + 1


# ---------------------------------------------------------------- one chunk of respondents


def generate_rows(model: SurveyModel, rows: np.ndarray, rng: np.random.Generator) -> tuple[dict, int]:
    """Columns for the respondents at global positions `rows` (0-based), and the
    number of answered (respondent, value question) cells among them."""
    cidx = np.searchsorted(model.starts, rows, side="right") - 1
    cols: dict[str, np.ndarray] = {}
    _identity_columns(model, rows, cidx, rng, cols)
    people = _draw_people(model, cidx, rng)
    language = _place_columns(model, cidx, people.urban, rng, cols)
    answered = _value_columns(model, cidx, people, rng, cols)
    _value_recodes(cols)
    _generic_columns(model, cidx, rng, cols)
    _party_columns(model, cidx, rng, cols)
    _family_columns(model, cidx, people, rng, cols)
    _education_columns(model, cidx, people, rng, cols)
    _work_belief_language_columns(model, cidx, people, language, rng, cols)
    return cols, answered


def _identity_columns(
    model: SurveyModel, rows: np.ndarray, cidx: np.ndarray, rng: np.random.Generator, cols: dict
) -> None:
    """Study, country identity codes, interview id, fieldwork date and times."""
    n, code, year = len(rows), model.codes[cidx], model.years[cidx]
    cols["A_STUDY"] = np.full(n, 2)
    cols["A_WAVE"] = np.full(n, 7)
    cols["A_YEAR"] = year
    cols["B_COUNTRY"] = code
    cols["B_COUNTRY_ALPHA"] = np.array([c.alpha for c in model.countries], dtype=object)[cidx]
    cols["C_COW_NUM"] = np.array([c.cow_num for c in model.countries])[cidx]
    cols["C_COW_ALPHA"] = np.array([c.cow_alpha for c in model.countries], dtype=object)[cidx]
    cols["D_INTERVIEW"] = code * 1_000_000 + 70_000 + rows - model.starts[cidx] + 1
    start_month = model.fieldwork_start[cidx]
    end_month = np.minimum(start_month + model.fieldwork_months[cidx], 12)
    month = start_month + (rng.random(n) * (end_month - start_month + 1)).astype(np.int64)
    cols["J_INTDATE"] = year * 10_000 + month * 100 + rng.integers(1, 29, n)
    cols["FW_END"] = year * 100 + end_month
    cols["FW_START"] = year * 100 + start_month
    minutes_start = rng.integers(8 * 60, 20 * 60, n)
    duration = np.clip(np.round(rng.lognormal(math.log(60), 0.3, n)), 20, 180).astype(np.int64)
    minutes_end = np.minimum(minutes_start + duration, 23 * 60 + 59)
    no_times = model.times_not_asked[cidx]
    cols["K_TIME_START"] = np.where(no_times, -4, np.round(minutes_start // 60 + (minutes_start % 60) / 100, 2))
    cols["K_TIME_END"] = np.where(no_times, -4, np.round(minutes_end // 60 + (minutes_end % 60) / 100, 2))
    cols["K_DURATION"] = np.where(no_times, -4, duration)
    cols["Q_MODE"] = model.mode[cidx]
    cols["S025"] = code * 10_000 + year


@dataclass(frozen=True)
class _People:
    """The demographics that drive answers, one entry per respondent."""

    female: np.ndarray
    age: np.ndarray
    isced: np.ndarray  # 0..8
    level: np.ndarray  # index into metadata.EDUCATION_LEVELS
    urban: np.ndarray
    shifts: np.ndarray  # (respondents, 4): education, urban, age, female on the latent's scale


@cache
def _level_of_isced() -> np.ndarray:
    """ISCED 0..8 -> education level index, through the codebook labels."""
    labels, levels = metadata.choices("Q275"), metadata.education_levels()
    return np.array([metadata.EDUCATION_LEVELS.index(levels[labels[str(i)]]) for i in range(9)])


def _draw_people(model: SurveyModel, cidx: np.ndarray, rng: np.random.Generator) -> _People:
    """Sex, age, education (older people less educated, by the country's
    development) and urban/rural (more urban among the educated)."""
    n = len(cidx)
    female = rng.random(n) < model.female_share[cidx]
    mean_age = model.mean_age[cidx]
    age = np.clip(np.round(16 + rng.gamma(2.2, (mean_age - 16) / 2.2)), 16, 90).astype(np.int64)
    age_z = (age - 45) / 17
    isced = np.searchsorted(ISCED_CUTS, model.development[cidx] - 0.25 * age_z + rng.normal(0, 1, n))
    level = _level_of_isced()[isced]
    urban = rng.random(n) < np.clip(model.urban_share[cidx] + 0.05 * (level - 1.5), 0, 1)
    shifts = np.stack([(level - 1.5) / 1.1, np.where(urban, 0.5, -0.5), age_z, np.where(female, 0.5, -0.5)], axis=1)
    return _People(female, age, isced, level, urban, shifts)


def _place_columns(
    model: SurveyModel, cidx: np.ndarray, urban: np.ndarray, rng: np.random.Generator, cols: dict
) -> np.ndarray:
    """Settlement, town and region, interview language and weights; returns the
    interview language (an index into model.language_codes) for Q272."""
    n = len(cidx)
    size_latent = np.where(urban, rng.integers(5, 9, n), rng.integers(1, 5, n))
    cols["G_TOWNSIZE"] = _with_missing(rng, size_latent, [(-5, 0.004)])
    cols["G_TOWNSIZE2"] = _keep_missing(
        cols["G_TOWNSIZE"], _recode(size_latent, {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 5})
    )
    settlement = np.where(
        urban, rng.choice([1, 2, 3, 4], size=n, p=[0.3, 0.3, 0.2, 0.2]), np.where(rng.random(n) < 0.85, 5, 4)
    )
    cols["H_SETTLEMENT"] = _with_missing(rng, settlement, [(-5, 0.003)])
    cols["H_URBRURAL"] = _with_missing(rng, np.where(urban, 1, 2), [(-5, 0.003)])
    town_rank = np.where(urban, rng.random(n) * 0.3, 0.3 + rng.random(n) * 0.7)
    cols["N_TOWN"] = _pick_owned(rng, model.owned["N_TOWN"], model.codes, cidx, town_rank)
    for variable in ("N_REGION_ISO", "N_REGION_WVS", "N_REGION_NUTS2"):
        cols[variable] = _pick_owned(rng, model.owned[variable], model.codes, cidx)
    cols["I_PSU"] = np.full(n, -4)
    cols["O1_LONGITUDE"] = np.full(n, "-999.00", dtype=object)
    cols["O2_LATITUDE"] = np.full(n, "-999.00", dtype=object)
    # interview language: codes shared by S_INTLANGUAGE and Q272; ISO letters by label
    language = model.country_languages[cidx, (rng.random(n) < 0.1).astype(np.int64)]
    cols["S_INTLANGUAGE"] = model.language_codes[language]
    cols["LNGE_ISO"] = model.language_iso[language]
    weight = rng.lognormal(-(model.weight_sigma[cidx] ** 2) / 2, model.weight_sigma[cidx])
    cols["W_WEIGHT"] = np.round(weight, 6)
    cols["S018"] = np.round(weight * 1000 / model.sizes[cidx], 6)
    return language


# ---------------------------------------------------------------- value questions


def _value_columns(model: SurveyModel, cidx: np.ndarray, people: _People, rng: np.random.Generator, cols: dict) -> int:
    """Raw codes of every value question; returns the number of answered cells.
    Countries are handled one at a time because a country's answer counts are
    fixed by its target shares (see _country_answers)."""
    by_question = np.empty((len(model.value_ids), len(cidx)), dtype=np.int64)
    nonresponse = model.country_nonresponse[cidx] * np.where(
        people.level == 0, 1.6, np.where(people.level == 3, 0.7, 1.0)
    )
    answered = 0
    for country in np.unique(cidx):
        rows = np.flatnonzero(cidx == country)
        raw, count = _country_answers(model, int(country), people.shifts[rows], nonresponse[rows], rng)
        if _contiguous(rows):
            by_question[:, rows[0] : rows[-1] + 1] = raw
        else:
            by_question[:, rows] = raw
        answered += count
    for i, qid in enumerate(model.value_ids):
        cols[qid] = by_question[i]
    return answered


def _contiguous(rows: np.ndarray) -> bool:
    """Whether sorted row positions form one block (a slice copies faster than fancy indexing)."""
    return len(rows) > 0 and rows[-1] - rows[0] == len(rows) - 1


def _country_answers(
    model: SurveyModel, country: int, shifts: np.ndarray, nonresponse: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Raw codes (questions, respondents) of some respondents of one country, and
    the number of answered cells. The latent score (demographic shifts + block
    trait + noise) ranks those who answer; the country's target shares fix how
    many get each scale point, so its marginals are the real ones however few
    respondents there are, and demographics and traits decide who gets which."""
    n, n_q = len(shifts), len(model.value_ids)
    traits = rng.normal(0, 1, (int(model.category_of.max()) + 1, n))
    latent = model.demographic_effect @ shifts.T + model.loading[:, None] * traits[model.category_of]
    latent += rng.normal(0, 1, (n_q, n))
    missing = _missing_codes(model, country, nonresponse, rng)
    answered = missing == 0
    index = _quota_index(latent, answered, model.cum[country], rng.random(n_q))
    raw = np.take_along_axis(model.raw_primary, index, axis=1)
    two_codes = np.flatnonzero(model.alternate[country] > 0)
    if len(two_codes):
        second = rng.random((len(two_codes), n)) < model.alternate[country, two_codes, None]
        raw[two_codes] = np.where(
            second, np.take_along_axis(model.raw_alternate[two_codes], index[two_codes], axis=1), raw[two_codes]
        )
    return np.where(answered, raw, missing), int(answered.sum())


def _missing_codes(model: SurveyModel, country: int, nonresponse: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per (question, respondent): 0 where answered, else the code written instead:
    -1/-2 (more among the least educated), -5, the raw code the adjustment turns
    into missing (at the country's real share), -4 for questions not asked."""
    u = rng.random((len(model.value_ids), len(nonresponse)))
    fixed = MISSING_RARE + model.to_missing[country]
    q, r = np.nonzero(u < np.outer(model.dont_know + model.no_answer, nonresponse) + fixed[:, None])
    # a few per cent of the cells: which code each gets is worked out for these only
    dont_know = model.dont_know[q] * nonresponse[r]
    no_answer = dont_know + model.no_answer[q] * nonresponse[r]
    band = (u[q, r] >= dont_know).astype(np.int64) + (u[q, r] >= no_answer) + (u[q, r] >= no_answer + MISSING_RARE)
    codes = np.zeros(u.shape, dtype=np.int64)
    codes[q, r] = np.where(band == 3, model.to_missing_code[q], np.array([-1, -2, -5, 0])[band])
    codes[model.not_asked[country]] = -4
    return codes


def _quota_index(latent: np.ndarray, answered: np.ndarray, cum: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Scale-point index per (question, respondent) by systematic sampling over
    the latent order: with m answering, the lowest floor(m * cum_1 + u) get the
    first point, up to floor(m * cum_2 + u) the second, and so on (u uniform per
    question), so each point's count is its target share of m rounded up or
    down with the right expectation. A cut's latent threshold is the order
    statistic at its bound (those who do not answer sort last, as infinity; a
    bound of everyone is infinity too). Rows that do not answer get any index."""
    n = latent.shape[1]
    ordered = np.sort(np.where(answered, latent, np.inf), axis=1)
    bounds = np.floor(answered.sum(axis=1)[:, None] * cum + offsets[:, None]).astype(np.int64)  # (questions, cuts)
    thresholds = np.where(bounds < n, np.take_along_axis(ordered, np.minimum(bounds, n - 1), axis=1), np.inf)
    index = np.zeros(latent.shape, dtype=np.int64)
    for cut in range(cum.shape[1]):
        used = np.flatnonzero(thresholds[:, cut] < np.inf)  # questions with a point above this cut that someone gets
        if len(used) == len(thresholds):
            index += latent >= thresholds[:, cut : cut + 1]
        elif len(used):
            index[used] += latent[used] >= thresholds[used, cut : cut + 1]
    return index


def _value_recodes(cols: dict) -> None:
    """The file's recodes of value questions (Q33_3 ... Q172R), consistent with them."""
    for base in ("Q33", "Q34", "Q35"):
        cols[f"{base}_3"] = _keep_missing(cols[base], _recode(cols[base], {1: 1, 2: 1, 3: 3, 4: 2, 5: 2}))
    for number in range(94, 105):
        cols[f"Q{number}R"] = _keep_missing(cols[f"Q{number}"], np.minimum(cols[f"Q{number}"], 1))
    cols["Q172R"] = _keep_missing(cols["Q172"], _recode(cols["Q172"], {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4}))


# ---------------------------------------------------------------- background variables


def _generic_columns(model: SurveyModel, cidx: np.ndarray, rng: np.random.Generator, cols: dict) -> None:
    """Codebook variables outside the benchmark: per-country distributions, no link to other answers."""
    for variable, (codes, cumulative, not_asked, rates) in model.generic.items():
        values = codes[_draw_index(rng, cumulative[cidx])]
        values = _with_missing(rng, values, rates)
        cols[variable] = np.where(not_asked[cidx], -4, values)
    cols["Q105R"] = _keep_missing(cols["Q105"], np.minimum(cols["Q105"], 1))


def _party_columns(model: SurveyModel, cidx: np.ndarray, rng: np.random.Generator, cols: dict) -> None:
    """Party preference (a party of the country, or a generic answer) with its name and initials."""
    n = len(cidx)
    party = _pick_owned(rng, model.owned["Q223"], model.codes, cidx)
    generic_party = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.1, 0.45, 0.1, 0.25, 0.1])
    party = np.where((party < 0) | (rng.random(n) < 0.2), generic_party, party)
    cols["Q223"] = _with_missing(rng, party, [(-1, 0.05), (-2, 0.06), (-5, 0.002)])
    names = metadata.choices("Q223")
    local = _map_values(cols["Q223"], lambda c: _party_local_name(names.get(str(c), "")) if c > 100 else "")
    cols["Q223_LOCAL"] = local
    cols["Q223_ABREV"] = _map_values(local, _initials)


def _family_columns(
    model: SurveyModel, cidx: np.ndarray, people: _People, rng: np.random.Generator, cols: dict
) -> None:
    """Sex, age, migration background and birth countries, marital status, children, household."""
    n, age = len(cidx), people.age
    cols["Q260"] = _with_missing(rng, np.where(people.female, 2, 1), [(-2, 0.001), (-5, 0.0005)])
    age_reported = _with_missing(rng, age, [(-1, 0.003), (-2, 0.004)])
    cols["Q262"] = age_reported
    cols["Q261"] = _keep_missing(age_reported, model.years[cidx] - age)
    cols["X003R"] = _keep_missing(age_reported, np.searchsorted([25, 35, 45, 55, 65], age, side="right") + 1)
    cols["X003R2"] = _keep_missing(age_reported, np.searchsorted([30, 50], age, side="right") + 1)
    immigrant = rng.random(n) < model.immigrant_share[cidx]
    cols["Q263"] = _with_missing(rng, np.where(immigrant, 2, 1), [(-1, 0.001), (-2, 0.002)])
    own_birth = model.birth_codes[cidx]
    for person, (imm_var, birth_var, alpha_var) in enumerate(
        [(None, "Q266", "X002_02B"), ("Q264", "Q267", "V002A_01"), ("Q265", "Q268", "V001A_01")]
    ):
        born_abroad = immigrant if person == 0 else np.where(immigrant, rng.random(n) < 0.85, rng.random(n) < 0.04)
        foreign = model.foreign_birth_codes[rng.integers(0, len(model.foreign_birth_codes), n)]
        foreign = np.where(foreign == own_birth, OTHER_BIRTH_COUNTRY, foreign)
        birth = _with_missing(rng, np.where(born_abroad, foreign, own_birth), [(-1, 0.004), (-2, 0.003)])
        cols[birth_var] = birth
        cols[alpha_var] = _map_values(birth, lambda b: model.birth_alpha.get(int(b), str(b)))
        if imm_var:
            cols[imm_var] = _with_missing(rng, np.where(born_abroad, 2, 1), [(-1, 0.01), (-2, 0.004)])
    cols["Q269"] = _with_missing(rng, np.where(immigrant & (rng.random(n) < 0.5), 2, 1), [(-1, 0.001), (-2, 0.002)])
    age_bin = np.searchsorted([25, 35, 55], age, side="right")
    marital = np.array(
        [
            [0.12, 0.08, 0.005, 0.005, 0.0, 0.79],
            [0.45, 0.12, 0.03, 0.02, 0.005, 0.375],
            [0.65, 0.08, 0.08, 0.03, 0.02, 0.14],
            [0.6, 0.04, 0.08, 0.02, 0.2, 0.06],
        ]
    )
    status = _draw_index(rng, _cumulative(marital)[age_bin]) + 1
    cols["Q273"] = _with_missing(rng, status, [(-2, 0.004)])
    children = np.minimum(rng.poisson(np.clip((age - 20) / 9, 0, 2.6) * (1.3 - 0.25 * (people.level - 1.5))), 7)
    cols["Q274"] = _with_missing(rng, np.where((status == 6) & (rng.random(n) < 0.8), 0, children), [(-2, 0.003)])
    cols["Q271"] = _with_missing(rng, np.where(rng.random(n) < np.where(age < 30, 0.55, 0.1), 2, 1), [(-2, 0.003)])


def _education_columns(
    model: SurveyModel, cidx: np.ndarray, people: _People, rng: np.random.Generator, cols: dict
) -> None:
    """Education of respondent, spouse (only if married or living together) and
    parents (ISCED 0..8), with the recodes and country-specific codes."""
    n, isced = len(cidx), people.isced
    cols["Q275"] = _with_missing(rng, isced, [(-1, 0.006), (-2, 0.008), (-5, 0.002)])
    partnered = (cols["Q273"] == 1) | (cols["Q273"] == 2)
    spouse = np.clip(isced + rng.integers(-1, 2, n), 0, 8)
    cols["Q276"] = _with_missing(rng, np.where(partnered, spouse, -3), [(-1, 0.01), (-2, 0.008)])
    for variable in ("Q277", "Q278"):
        parent = np.clip(isced - rng.integers(0, 4, n), 0, 8)
        cols[variable] = _with_missing(rng, parent, [(-1, 0.04), (-2, 0.01)])
    for variable in ("Q275", "Q276", "Q277", "Q278"):
        coded = cols[variable]
        recoded = _keep_missing(coded, np.searchsorted([3, 5], coded, side="right") + 1)
        cols[f"{variable}R"] = np.where(recoded == -3, -5, recoded)  # the recodes have no "not applicable" code
        position = np.clip(coded, 0, 8) / 9 + rng.random(n) / 9
        country_specific = _pick_owned(rng, model.owned[f"{variable}A"], model.codes, cidx, position)
        cols[f"{variable}A"] = np.where(
            coded < 0, np.where(country_specific < 0, country_specific, coded), country_specific
        )


def _work_belief_language_columns(
    model: SurveyModel, cidx: np.ndarray, people: _People, language: np.ndarray, rng: np.random.Generator, cols: dict
) -> None:
    """Employment by age, income and class by education, religion (one dominant
    group per country, detailed code consistent), ethnic group, home language."""
    n = len(cidx)
    employment = np.array(
        [
            [0.15, 0.12, 0.05, 0.0, 0.05, 0.5, 0.12, 0.01],
            [0.45, 0.12, 0.15, 0.0, 0.12, 0.04, 0.1, 0.02],
            [0.45, 0.1, 0.17, 0.03, 0.15, 0.0, 0.08, 0.02],
            [0.12, 0.05, 0.1, 0.55, 0.15, 0.0, 0.02, 0.01],
        ]
    )
    age_bin = np.searchsorted([25, 35, 60], people.age, side="right")
    cols["Q279"] = _with_missing(rng, _draw_index(rng, _cumulative(employment)[age_bin]) + 1, [(-2, 0.005)])
    ses = 0.6 * (people.level - 1.5) / 1.1 + 0.3 * np.where(people.urban, 0.5, -0.5) + rng.normal(0, 0.8, n)
    cols["Q288"] = _with_missing(rng, _ordinal_from_latent(ses, 10), [(-1, 0.02), (-2, 0.015)])
    cols["Q288R"] = _keep_missing(cols["Q288"], np.searchsorted([4, 8], cols["Q288"], side="right") + 1)
    cols["Q287"] = _with_missing(
        rng, 6 - _ordinal_from_latent(ses + rng.normal(0, 0.5, n), 5), [(-1, 0.01), (-2, 0.01)]
    )
    cols["Q286"] = _with_missing(
        rng, 5 - _ordinal_from_latent(ses + rng.normal(0, 0.7, n), 4), [(-1, 0.01), (-2, 0.01)]
    )
    religion = _draw_index(rng, model.religion_cum[cidx])
    cols["Q289"] = _with_missing(rng, religion, [(-1, 0.004), (-2, 0.01)])
    position = rng.random(n)
    out = np.full(n, -4, dtype=np.int64)
    for group, codes in _detailed_religion_codes().items():
        rows_in = cols["Q289"] == group
        out[rows_in] = codes[np.minimum((position[rows_in] * len(codes)).astype(np.int64), len(codes) - 1)]
    cols["Q289CS9"] = np.where(cols["Q289"] < 0, cols["Q289"], out)
    cols["Q290"] = _with_missing(rng, _pick_owned(rng, model.owned["Q290"], model.codes, cidx), [(-2, 0.01)])
    home_same = model.home_language_ok[language] & (rng.random(n) < 0.9)
    other_home = model.home_language_codes[rng.integers(0, len(model.home_language_codes), n)]
    cols["Q272"] = _with_missing(rng, np.where(home_same, model.language_codes[language], other_home), [(-2, 0.003)])


def _map_values(values: np.ndarray, function) -> np.ndarray:
    """Apply a Python function once per distinct value (not once per row)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([function(v) for v in distinct], dtype=object)[inverse]


def _party_local_name(label: str) -> str:
    """A party's name from its codebook label ('ARG: Front for Victory' -> 'Front for Victory'),
    without characters that would need CSV quoting."""
    name = label.split(": ", 1)[-1]
    return re.sub(r'[,"\r\n]', " ", name).strip()


def _initials(name: str) -> str:
    """A party abbreviation from its name's capitalised words (at most 8 letters)."""
    return "".join(word[0] for word in re.findall(r"[A-Za-z]+", name) if word[0].isupper())[:8]


def _detailed_religion_codes() -> dict[int, np.ndarray]:
    """Q289CS9 detailed codes by Q289 group: 9-digit codes are the non-religious (0),
    8-digit codes start with their group's digit (1 Catholic ... 9 Other)."""
    groups: dict[int, list[int]] = {}
    for code in _int_codes("Q289CS9"):
        group = 0 if len(str(code)) == 9 else int(str(code)[0])
        groups.setdefault(group, []).append(code)
    return {g: np.array(sorted(c), dtype=np.int64) for g, c in groups.items()}


# ---------------------------------------------------------------- writing


def _csv_bytes(header: tuple[str, ...], cols: dict[str, np.ndarray]) -> bytes:
    """Data lines (no header) for one chunk; strings are written unquoted."""
    table = pa.table({name: pa.array(cols[name]) for name in header})
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue()


@dataclass(frozen=True)
class _FaultPlan:
    duplicate_of: int  # 0-based row whose D_INTERVIEW the extra row repeats
    missing_field_country_row: int  # a row of the country the short extra row belongs to
    non_numeric_row: int
    non_numeric_column: str
    out_of_range_row: int
    out_of_range_column: str
    out_of_range_value: int


NON_NUMERIC_VALUE = "DK"


def _plan_faults(model: SurveyModel, seed: int) -> _FaultPlan:
    """Which rows and columns get the injected faults: drawn from their own seeded
    generator, so the clean rows are the same as without --inject-faults."""
    if model.respondents < 4:
        raise InputError("--inject-faults needs at least 4 respondents")
    rng = np.random.default_rng([seed, 2])
    rows = rng.choice(model.respondents, size=4, replace=False)
    columns = rng.choice(len(model.value_ids), size=2, replace=False)
    out_column = model.value_ids[columns[1]]
    return _FaultPlan(
        duplicate_of=int(rows[0]),
        missing_field_country_row=int(rows[1]),
        non_numeric_row=int(rows[2]),
        non_numeric_column=model.value_ids[columns[0]],
        out_of_range_row=int(rows[3]),
        out_of_range_column=out_column,
        out_of_range_value=max(_int_codes(out_column)) + 5,
    )


def write_synthetic_wvs(path, respondents: int, seed: int, inject_faults: bool = False) -> SynthSummary:
    """Write the synthetic WVS Wave 7 CSV to `path` (parent directories created).

    With `inject_faults`, two of the `respondents` rows get one bad cell each
    (a non-numeric code, an out-of-range code) and two extra rows are appended
    (a second interview with an existing D_INTERVIEW; a row one field short), so
    the file has respondents + 2 data rows; `path`.faults.json lists them."""
    began = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = SurveyModel(respondents, seed)
    header = metadata.codebook_variables()
    plan = _plan_faults(model, seed) if inject_faults else None
    answered = 0
    ids: dict[int, int] = {}
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        out.write((",".join(header) + "\n").encode())
        for chunk, start in enumerate(range(0, respondents, CHUNK_ROWS)):
            rows = np.arange(start, min(start + CHUNK_ROWS, respondents))
            cols, chunk_answered = generate_rows(model, rows, np.random.default_rng([seed, 1, chunk]))
            answered += chunk_answered
            if plan is not None:
                _apply_cell_faults(plan, rows, cols, ids)
            out.write(_csv_bytes(header, cols))
        faults = []
        if plan is not None:
            faults = _write_extra_fault_rows(plan, model, seed, header, out, ids)
    os.replace(partial, path)
    faults_path = None
    if plan is not None:
        faults_path = path.with_name(path.name + ".faults.json")
        faults_path.write_text(json.dumps(faults, indent=2) + "\n", encoding="utf-8")
    elif path.with_name(path.name + ".faults.json").exists():
        path.with_name(path.name + ".faults.json").unlink()  # a stale manifest would describe another file
    rows_written = respondents + (2 if plan is not None else 0)
    return SynthSummary(
        rows=rows_written,
        columns=len(header),
        answered_share=answered / (respondents * len(model.value_ids)),
        seconds=time.perf_counter() - began,
        faults=faults_path,
    )


def _apply_cell_faults(plan: _FaultPlan, rows: np.ndarray, cols: dict, ids: dict) -> None:
    """Put the in-place faults into this chunk and remember the ids the manifest needs."""
    first = int(rows[0])
    for target in (plan.duplicate_of, plan.non_numeric_row, plan.out_of_range_row):
        if first <= target <= int(rows[-1]):
            ids[target] = int(cols["D_INTERVIEW"][target - first])
    if first <= plan.non_numeric_row <= int(rows[-1]):
        column = cols[plan.non_numeric_column].astype(str).astype(object)
        column[plan.non_numeric_row - first] = NON_NUMERIC_VALUE
        cols[plan.non_numeric_column] = column
    if first <= plan.out_of_range_row <= int(rows[-1]):
        cols[plan.out_of_range_column][plan.out_of_range_row - first] = plan.out_of_range_value


def _write_extra_fault_rows(plan: _FaultPlan, model: SurveyModel, seed: int, header, out, ids: dict) -> list[dict]:
    """Append the duplicate-id row and the row one field short; return the manifest entries."""
    n = model.respondents
    extra, _ = generate_rows(
        model, np.array([plan.duplicate_of, plan.missing_field_country_row]), np.random.default_rng([seed, 3])
    )
    country = np.searchsorted(model.starts, plan.missing_field_country_row, side="right") - 1
    short_id = int(model.codes[country]) * 1_000_000 + 70_000 + int(model.sizes[country]) + 1
    extra["D_INTERVIEW"][1] = short_id
    lines = _csv_bytes(header, extra).decode().splitlines()
    out.write((lines[0] + "\n").encode())
    out.write((lines[1].rsplit(",", 1)[0] + "\n").encode())  # last field (and its comma) dropped
    duplicate_id = ids[plan.duplicate_of]
    return [
        {
            "row": plan.duplicate_of + 1,
            "d_interview": duplicate_id,
            "kind": "duplicate_d_interview",
            "column": "D_INTERVIEW",
            "raw_value": str(duplicate_id),
        },
        {
            "row": n + 1,
            "d_interview": duplicate_id,
            "kind": "duplicate_d_interview",
            "column": "D_INTERVIEW",
            "raw_value": str(duplicate_id),
        },
        {"row": n + 2, "d_interview": short_id, "kind": "missing_field", "column": header[-1], "raw_value": None},
        {
            "row": plan.non_numeric_row + 1,
            "d_interview": ids[plan.non_numeric_row],
            "kind": "non_numeric_code",
            "column": plan.non_numeric_column,
            "raw_value": NON_NUMERIC_VALUE,
        },
        {
            "row": plan.out_of_range_row + 1,
            "d_interview": ids[plan.out_of_range_row],
            "kind": "out_of_range_code",
            "column": plan.out_of_range_column,
            "raw_value": str(plan.out_of_range_value),
        },
    ]


# ---------------------------------------------------------------- command line


SETTINGS = "synth"
OPTIONS = ("respondents", "seed")


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """The command's options (`wvb synth --help`)."""
    parser.add_argument(
        "--respondents",
        type=int,
        metavar="N",
        help=f"number of respondents (default: {defaults['respondents']:,}, the real file's size)",
    )
    parser.add_argument("--seed", type=int, help=f"random seed (default: {defaults['seed']})")
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="CSV file to write (parent directories are created)"
    )
    parser.add_argument(
        "--inject-faults", action="store_true", help="add known bad rows and write FILE.faults.json listing them"
    )


def run(args: argparse.Namespace, config: dict) -> Result:
    """Run `wvb synth`: write the file and say what was written; bad input is a one-line error."""
    respondents, seed = int(config["synth"]["respondents"]), int(config["synth"]["seed"])
    if seed < 0:
        raise InputError(f"--seed must be non-negative, got {seed}")
    try:
        summary = write_synthetic_wvs(args.out, respondents, seed, args.inject_faults)
    except OSError as exc:
        raise InputError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    return Result(
        lines=[
            f"rows: {summary.rows:,}",
            f"columns: {summary.columns}",
            f"answered value-question cells: {summary.answered_share:.2%}",
            f"time: {summary.seconds:.1f} s",
            f"wrote {args.out}" + (f" and {summary.faults}" if summary.faults else ""),
        ]
    )
