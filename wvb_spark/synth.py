"""`wvb synth`: a synthetic WVS Wave 7 file in the official CSV layout.

The real microdata needs a registration and may not be redistributed, so every
later stage is developed and tested on this file instead. It has the official
header (the 375 codebook variables), official codes and missing-value codes,
and answers drawn from a survey-like model, so that histograms differ by
country, continent and education and a demographic-aware predictor beats a
global one:

* each value question belongs to a topic block (its metadata category); a
  respondent has one latent trait per block, so answers within a block
  correlate;
* a question's latent score is country offset (continent + country + question
  noise) + demographic shifts (education, urban/rural, age, sex) + trait +
  noise, cut into the question's scale points by fixed thresholds;
* missing values: whole countries not asked (-4) on some questions, item
  non-response (-1/-2) at a few percent, rare -5, plus the raw codes that
  answer_adjustment.json turns into missing.

Everything is vectorised numpy over chunks of respondents, and every random
draw comes from a generator seeded by (seed, purpose, chunk number), so the
same seed gives a byte-identical file whatever the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from scipy.special import ndtri

from wvb_spark import metadata
from wvb_spark.errors import WvbError

DEFAULT_RESPONDENTS = 94_728
DEFAULT_SEED = 7
CHUNK_ROWS = 20_000

# The WVS Wave 7 countries (ISO alpha-3). Hong Kong (no B_COUNTRY_ALPHA code),
# Brazil (no S025 country-year code) and Uruguay (no C_COW_ALPHA code) are left
# out so that every identity code written is a codebook choice: 61 countries.
WAVE7_COUNTRIES = (
    "AND ARG ARM AUS BGD BOL CAN CHL CHN COL CYP CZE DEU ECU EGY ETH GBR GRC GTM IDN IRN "
    "IRQ JOR JPN KAZ KEN KGZ KOR LBN LBY MAC MOR MDV MEX MMR MNG MYS NGA NIC NIR NLD NZL "
    "PAK PER PHL PRI ROU RUS SGP SRB SVK THA TJK TUN TUR TWN UKR USA VEN VNM ZWE"
).split()
MIN_PER_COUNTRY = 20  # below N = 20 x countries, fewer countries are used
SIZE_RANGE = (1_000, 4_000)  # per-country sample sizes at the default N
RUNNING_NUMBER_LIMIT = 929_999  # D_INTERVIEW = code*1e6 + 70,000 + running number stays unique

# Spellings that differ between the codebook's country lists.
COUNTRY_ALIASES = {
    "Macao": "Macao SAR", "Macau SAR": "Macao SAR", "Russian Federation": "Russia", "Malasia": "Malaysia",
    "Hong Kong SAR PRC": "Hong Kong SAR", "United States of America": "United States",
    "United Kingdom": "Great Britain",
}
# Country of birth codes (Q266-Q268) where the survey code is not an ISO country.
BIRTH_COUNTRY_CODE = {909: 826}
OTHER_BIRTH_COUNTRY = 9999  # Q266-Q268 "Other"; its alpha-3 column gets "OTH"

# Missing-value rates.
NOT_ASKED_COUNTRY_SHARE = 0.02  # (country, value question) pairs not asked: -4 for the whole country
DONT_KNOW_MEAN = 0.018  # -1, per value question (varies by question, country and education)
NO_ANSWER_MEAN = 0.006  # -2
MISSING_RARE = 0.0005  # -5
ADJUSTED_TO_MISSING_RATE = {"Q111": 0.04, "Q221": 0.05, "Q222": 0.05, "Q254": 0.02}  # raw codes -> missing
ALTERNATE_RAW_SHARE = 0.3  # Q241-Q249: share of adjusted 1 written as raw 0
DEMOGRAPHIC_MISSING = {-1: 0.006, -2: 0.006, -5: 0.001}  # generic background variables
GENERIC_NOT_ASKED_COUNTRY_SHARE = 0.04
REGIONAL_ORGANISATION_NOT_ASKED_SHARE = 0.7  # Q82_*: asked only where the organisation matters

CONTINENT_DEVELOPMENT = {  # mean of a country's education / urbanisation index
    "Africa": -0.6, "Asia": 0.05, "Europe": 0.8, "North America": 0.7, "Oceania": 0.8, "South America": 0.0,
}
CONTINENT_MEAN_AGE = {"Africa": 34, "Asia": 41, "Europe": 49, "North America": 46, "Oceania": 48, "South America": 40}
ISCED_CUTS = np.array([-1.8, -1.0, -0.35, 0.45, 0.7, 0.95, 1.6, 2.4])  # latent education -> ISCED 0..8


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
    code: int
    name: str
    alpha: str
    cow_num: int
    cow_alpha: str
    continent: str
    year: int


def wave7_countries() -> list[Country]:
    """The survey's countries with their codebook identity codes, in a fixed
    order that interleaves continents (so small files still span continents)."""

    def by_name(variable: str) -> dict[str, str]:
        return {COUNTRY_ALIASES.get(label, label): code for code, label in metadata.choices(variable).items()}

    number = by_name("B_COUNTRY")
    alpha_name = {code: COUNTRY_ALIASES.get(label, label) for code, label in metadata.choices("B_COUNTRY_ALPHA").items()}
    cow_num, cow_alpha = by_name("C_COW_NUM"), by_name("C_COW_ALPHA")
    years: dict[int, int] = {}
    for code in sorted(metadata.choices("S025"), key=int):
        years.setdefault(int(code) // 10_000, int(code) % 10_000)
    continents = metadata.country_continents()
    countries = []
    for alpha in WAVE7_COUNTRIES:
        name = alpha_name[alpha]
        code = int(number[name])
        countries.append(Country(code, name, alpha, int(cow_num[name]), cow_alpha[name], continents[name], years[code]))
    by_continent: dict[str, list[Country]] = {}
    for country in countries:
        by_continent.setdefault(country.continent, []).append(country)
    order: list[Country] = []
    while any(by_continent.values()):
        for continent in metadata.CONTINENTS:
            if by_continent.get(continent):
                order.append(by_continent[continent].pop(0))
    return order


def country_sizes(respondents: int, n_countries: int, rng: np.random.Generator) -> np.ndarray:
    """Per-country sample sizes adding up to `respondents`: a pattern of sizes
    1,000 + extra (the extras adding up to the default N) scaled to `respondents`,
    on top of a floor of MIN_PER_COUNTRY each (largest remainder rounding)."""
    low, high = SIZE_RANGE
    extras = np.minimum(rng.dirichlet(np.ones(n_countries)) * max(DEFAULT_RESPONDENTS - low * n_countries, 0), high - low - 60)
    pattern = low + extras
    floor = MIN_PER_COUNTRY if respondents >= MIN_PER_COUNTRY * n_countries else respondents // n_countries
    exact = floor + (respondents - floor * n_countries) * pattern / pattern.sum()
    sizes = np.floor(exact).astype(np.int64)
    short = respondents - int(sizes.sum())
    sizes[np.argsort(-(exact - sizes), kind="stable")[:short]] += 1
    return sizes


# ---------------------------------------------------------------- the model


def _cumulative(probabilities: np.ndarray) -> np.ndarray:
    cum = np.cumsum(probabilities, axis=-1)
    return cum / cum[..., -1:]


class SurveyModel:
    """Country, question and variable parameters of one synthetic survey (fixed by seed and N)."""

    def __init__(self, respondents: int, seed: int):
        if respondents < 1:
            raise WvbError(f"--respondents must be at least 1, got {respondents}")
        rng = np.random.default_rng([seed, 0])
        all_countries = wave7_countries()
        n_countries = max(1, min(len(all_countries), respondents // MIN_PER_COUNTRY))
        self.countries = all_countries[:n_countries]
        self.sizes = country_sizes(respondents, n_countries, rng)
        if self.sizes.max() > RUNNING_NUMBER_LIMIT:
            raise WvbError(f"--respondents {respondents} is too large: D_INTERVIEW running numbers would overflow")
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.respondents = respondents
        k = n_countries
        self.codes = np.array([c.code for c in self.countries], dtype=np.int64)
        self.years = np.array([c.year for c in self.countries], dtype=np.int64)
        continent_index = {name: i for i, name in enumerate(metadata.CONTINENTS)}
        self.continent = np.array([continent_index[c.continent] for c in self.countries])
        self.development = np.array([CONTINENT_DEVELOPMENT[c.continent] for c in self.countries]) + rng.normal(0, 0.35, k)
        self.urban_share = np.clip(0.62 + 0.2 * self.development + rng.normal(0, 0.08, k), 0.3, 0.95)
        self.mean_age = np.array([CONTINENT_MEAN_AGE[c.continent] for c in self.countries]) + rng.normal(0, 2.5, k)
        self.female_share = rng.uniform(0.48, 0.56, k)
        self.immigrant_share = np.clip(rng.gamma(1.2, 0.05, k), 0.005, 0.4)
        self.weight_sigma = rng.uniform(0.15, 0.5, k)
        self.fieldwork_start = rng.integers(1, 10, k)
        self.fieldwork_months = rng.integers(1, 4, k)
        self.mode = rng.choice([1, 2, 1, 1, 3, 5], size=k)
        self.times_not_asked = rng.random(k) < 0.15
        self._languages(rng)
        self._value_questions(rng)
        self._generic_variables(rng)
        self.owned = {v: _codes_by_country(v) for v in (
            "N_TOWN", "N_REGION_ISO", "N_REGION_WVS", "N_REGION_NUTS2", "Q223", "Q275A", "Q276A", "Q277A", "Q278A", "Q290")}
        birth_codes = set(_int_codes("Q266"))
        as_birth = [BIRTH_COUNTRY_CODE.get(c.code, c.code) for c in all_countries]
        self.birth_codes = np.array([b if b in birth_codes else OTHER_BIRTH_COUNTRY for b in as_birth])[:k]
        self.foreign_birth_codes = np.array([b for b in as_birth if b in birth_codes])
        self.birth_alpha = {b: c.alpha for b, c in zip(as_birth, all_countries)} | {826: "GBR", OTHER_BIRTH_COUNTRY: "OTH"}
        self.religion_cum = _cumulative(rng.dirichlet(np.full(10, 0.35), size=k) + 0.003)

    def _languages(self, rng: np.random.Generator) -> None:
        iso_by_label = {label: iso for iso, label in metadata.choices("LNGE_ISO").items()}
        interview = metadata.choices("S_INTLANGUAGE")
        self.language_codes = np.array([int(c) for c in interview if int(c) > 0], dtype=np.int64)
        self.language_iso = np.array([iso_by_label.get(interview[str(c)], "oth") for c in self.language_codes], dtype=object)
        n = len(self.language_codes)
        self.country_languages = np.stack([rng.choice(n, size=2, replace=False) for _ in self.countries])
        home = set(_int_codes("Q272"))
        self.home_language_ok = np.array([c in home for c in self.language_codes])
        self.home_language_codes = np.array(sorted(home), dtype=np.int64)

    def _value_questions(self, rng: np.random.Generator) -> None:
        """Per value question: scale, latent loadings, demographic effects, country
        offsets, thresholds, missing rates and the adjusted -> raw code table."""
        questions = metadata.questions()
        adjustments = metadata.answer_adjustments()
        self.value_ids = metadata.value_question_ids()
        categories = sorted({questions[q].category for q in self.value_ids})
        self.category_of = np.array([categories.index(questions[q].category) for q in self.value_ids])
        n_q, n_cat, k = len(self.value_ids), len(categories), len(self.countries)
        n_cont = len(metadata.CONTINENTS)
        sign = rng.choice([-1.0, 1.0], size=n_q)
        self.loading = sign * rng.uniform(0.7, 1.3, n_q)
        # demographic effects [education, urban, age, female], coherent within a block
        block_effects = rng.normal(0, [0.45, 0.3, 0.3, 0.2], size=(n_cat, 4))
        self.demographic_effect = sign[:, None] * block_effects[self.category_of] + rng.normal(0, 0.12, (n_q, 4))
        continent_block = rng.normal(0, 0.6, (n_cont, n_cat))
        country_block = rng.normal(0, 0.45, (k, n_cat))
        self.offset = (sign[None, :] * (continent_block[self.continent][:, self.category_of] + country_block[:, self.category_of])
                       + rng.normal(0, 0.3, (k, n_q)))  # (country, question)
        latent_sd = math.sqrt(1 + 1.0 + 0.65 + 0.2)  # noise + trait + country + demographics
        self.scale_min = np.array([questions[q].scale_min for q in self.value_ids])
        self.points = np.array([questions[q].scale_max - questions[q].scale_min + 1 for q in self.value_ids])
        self.thresholds = []
        self.raw_primary, self.raw_alternate = [], []  # adjusted value index -> raw code
        self.to_missing_code = np.full(n_q, -9, dtype=np.int64)  # raw code that adjusts to missing, if any
        for i, qid in enumerate(self.value_ids):
            # a smooth (unimodal or U-shaped) overall histogram, slightly jittered
            centre = (np.arange(self.points[i]) + 0.5) / self.points[i]
            a, b = rng.uniform(0.7, 3.5, 2)
            p = centre ** (a - 1) * (1 - centre) ** (b - 1)
            p = p / p.sum() * rng.dirichlet(np.full(self.points[i], 60.0)) * self.points[i]
            p = 0.88 * p / p.sum() + 0.12 / self.points[i]  # every scale point is used somewhere
            self.thresholds.append(ndtri(np.cumsum(p)[:-1]) * latent_sd)
            mapping = adjustments.get(qid, {})
            primary, alternate = [], []
            for v in range(questions[qid].scale_min, questions[qid].scale_max + 1):
                raws = [r for r in _int_codes(qid) if mapping.get(r, r) == v]
                raws.sort(key=lambda r: (r != v, r))  # the identical code first
                primary.append(raws[0])
                alternate.append(raws[1] if len(raws) > 1 else raws[0])
            self.raw_primary.append(np.array(primary, dtype=np.int64))
            self.raw_alternate.append(np.array(alternate, dtype=np.int64))
            dropped = [r for r, a in mapping.items() if a is None]
            if dropped:
                self.to_missing_code[i] = dropped[0]
        self.not_asked = rng.random((k, n_q)) < NOT_ASKED_COUNTRY_SHARE
        self.dont_know = rng.beta(2, 2 / DONT_KNOW_MEAN - 2, n_q)
        self.no_answer = rng.beta(2, 2 / NO_ANSWER_MEAN - 2, n_q)
        self.country_nonresponse = rng.lognormal(-0.125, 0.5, k)
        self.to_missing_rate = np.array([ADJUSTED_TO_MISSING_RATE.get(q, 0.0) for q in self.value_ids])

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
            share = REGIONAL_ORGANISATION_NOT_ASKED_SHARE if variable.startswith("Q82_") else GENERIC_NOT_ASKED_COUNTRY_SHARE
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
    n = len(rows)
    cidx = np.searchsorted(model.starts, rows, side="right") - 1
    running = rows - model.starts[cidx] + 1
    code = model.codes[cidx]
    year = model.years[cidx]
    cols: dict[str, np.ndarray] = {}
    # --- identity and fieldwork
    cols["A_STUDY"] = np.full(n, 2)
    cols["A_WAVE"] = np.full(n, 7)
    cols["A_YEAR"] = year
    cols["B_COUNTRY"] = code
    cols["B_COUNTRY_ALPHA"] = np.array([c.alpha for c in model.countries], dtype=object)[cidx]
    cols["C_COW_NUM"] = np.array([c.cow_num for c in model.countries])[cidx]
    cols["C_COW_ALPHA"] = np.array([c.cow_alpha for c in model.countries], dtype=object)[cidx]
    cols["D_INTERVIEW"] = code * 1_000_000 + 70_000 + running
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
    # --- demographics that drive the answers
    female = rng.random(n) < model.female_share[cidx]
    mean_age = model.mean_age[cidx]
    age = np.clip(np.round(16 + rng.gamma(2.2, (mean_age - 16) / 2.2)), 16, 90).astype(np.int64)
    age_z = (age - 45) / 17
    edu_latent = model.development[cidx] - 0.25 * age_z + rng.normal(0, 1, n)
    isced = np.searchsorted(ISCED_CUTS, edu_latent)
    level_of_isced = np.array([metadata.EDUCATION_LEVELS.index(metadata.education_levels()[metadata.choices("Q275")[str(i)]])
                               for i in range(9)])
    level = level_of_isced[isced]
    urban = rng.random(n) < np.clip(model.urban_share[cidx] + 0.05 * (level - 1.5), 0, 1)
    demographics = np.stack([(level - 1.5) / 1.1, np.where(urban, 0.5, -0.5), age_z, np.where(female, 0.5, -0.5)], axis=1)
    # --- settlement
    size_latent = np.where(urban, rng.integers(5, 9, n), rng.integers(1, 5, n))
    cols["G_TOWNSIZE"] = _with_missing(rng, size_latent, [(-5, 0.004)])
    cols["G_TOWNSIZE2"] = _keep_missing(cols["G_TOWNSIZE"], _recode(size_latent, {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 5}))
    settlement = np.where(urban, rng.choice([1, 2, 3, 4], size=n, p=[0.3, 0.3, 0.2, 0.2]), np.where(rng.random(n) < 0.85, 5, 4))
    cols["H_SETTLEMENT"] = _with_missing(rng, settlement, [(-5, 0.003)])
    cols["H_URBRURAL"] = _with_missing(rng, np.where(urban, 1, 2), [(-5, 0.003)])
    town_rank = np.where(urban, rng.random(n) * 0.3, 0.3 + rng.random(n) * 0.7)
    cols["N_TOWN"] = _pick_owned(rng, model.owned["N_TOWN"], model.codes, cidx, town_rank)
    for variable in ("N_REGION_ISO", "N_REGION_WVS", "N_REGION_NUTS2"):
        cols[variable] = _pick_owned(rng, model.owned[variable], model.codes, cidx)
    cols["I_PSU"] = np.full(n, -4)
    cols["O1_LONGITUDE"] = np.full(n, "-999.00", dtype=object)
    cols["O2_LATITUDE"] = np.full(n, "-999.00", dtype=object)
    # --- interview language (codes shared by S_INTLANGUAGE and Q272; ISO letters by label)
    second = rng.random(n) < 0.1
    language = model.country_languages[cidx, second.astype(np.int64)]
    cols["S_INTLANGUAGE"] = model.language_codes[language]
    cols["LNGE_ISO"] = model.language_iso[language]
    weight = rng.lognormal(-model.weight_sigma[cidx] ** 2 / 2, model.weight_sigma[cidx])
    cols["W_WEIGHT"] = np.round(weight, 6)
    cols["S018"] = np.round(weight * 1000 / model.sizes[cidx], 6)
    cols["S025"] = code * 10_000 + year
    # --- value questions
    answered = 0
    traits = rng.normal(0, 1, (n, int(model.category_of.max()) + 1))
    shifts = demographics @ model.demographic_effect.T  # (n, questions)
    nonresponse = model.country_nonresponse[cidx] * np.where(level == 0, 1.6, np.where(level == 3, 0.7, 1.0))
    for i, qid in enumerate(model.value_ids):
        latent = (model.offset[cidx, i] + shifts[:, i] + model.loading[i] * traits[:, model.category_of[i]]
                  + rng.normal(0, 1, n))
        index = np.searchsorted(model.thresholds[i], latent)
        raw = np.where(rng.random(n) < ALTERNATE_RAW_SHARE, model.raw_alternate[i][index], model.raw_primary[i][index])
        rates = [(-1, model.dont_know[i] * nonresponse), (-2, model.no_answer[i] * nonresponse), (-5, MISSING_RARE)]
        if model.to_missing_code[i] != -9:
            rates.append((int(model.to_missing_code[i]), model.to_missing_rate[i]))
        raw = _with_missing(rng, raw, rates)
        raw = np.where(model.not_asked[cidx, i], -4, raw)
        answered += int(((raw >= 0) & (raw != model.to_missing_code[i])).sum())
        cols[qid] = raw
    # --- recodes of value questions
    for base in ("Q33", "Q34", "Q35"):
        cols[f"{base}_3"] = _keep_missing(cols[base], _recode(cols[base], {1: 1, 2: 1, 3: 3, 4: 2, 5: 2}))
    for number in range(94, 105):
        cols[f"Q{number}R"] = _keep_missing(cols[f"Q{number}"], np.minimum(cols[f"Q{number}"], 1))
    cols["Q172R"] = _keep_missing(cols["Q172"], _recode(cols["Q172"], {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4}))
    # --- generic coded variables
    for variable, (codes, cumulative, not_asked, rates) in model.generic.items():
        values = codes[_draw_index(rng, cumulative[cidx])]
        values = _with_missing(rng, values, rates)
        cols[variable] = np.where(not_asked[cidx], -4, values)
    cols["Q105R"] = _keep_missing(cols["Q105"], np.minimum(cols["Q105"], 1))
    # --- party preference
    party = _pick_owned(rng, model.owned["Q223"], model.codes, cidx)
    generic_party = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.1, 0.45, 0.1, 0.25, 0.1])
    party = np.where((party < 0) | (rng.random(n) < 0.2), generic_party, party)
    cols["Q223"] = _with_missing(rng, party, [(-1, 0.05), (-2, 0.06), (-5, 0.002)])
    names = metadata.choices("Q223")
    local = _map_values(cols["Q223"], lambda c: _party_local_name(names.get(str(c), "")) if c > 100 else "")
    cols["Q223_LOCAL"] = local
    cols["Q223_ABREV"] = _map_values(local, _initials)
    # --- respondent background
    cols["Q260"] = _with_missing(rng, np.where(female, 2, 1), [(-2, 0.001), (-5, 0.0005)])
    age_reported = _with_missing(rng, age, [(-1, 0.003), (-2, 0.004)])
    cols["Q262"] = age_reported
    cols["Q261"] = _keep_missing(age_reported, year - age)
    cols["X003R"] = _keep_missing(age_reported, np.searchsorted([25, 35, 45, 55, 65], age, side="right") + 1)
    cols["X003R2"] = _keep_missing(age_reported, np.searchsorted([30, 50], age, side="right") + 1)
    immigrant = rng.random(n) < model.immigrant_share[cidx]
    cols["Q263"] = _with_missing(rng, np.where(immigrant, 2, 1), [(-1, 0.001), (-2, 0.002)])
    own_birth = model.birth_codes[cidx]
    for person, (imm_var, birth_var, alpha_var) in enumerate(
            [(None, "Q266", "X002_02B"), ("Q264", "Q267", "V002A_01"), ("Q265", "Q268", "V001A_01")]):
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
    marital = np.array([[.12, .08, .005, .005, .0, .79], [.45, .12, .03, .02, .005, .375],
                        [.65, .08, .08, .03, .02, .14], [.6, .04, .08, .02, .2, .06]])
    status = _draw_index(rng, _cumulative(marital)[age_bin]) + 1
    cols["Q273"] = _with_missing(rng, status, [(-2, 0.004)])
    children = np.minimum(rng.poisson(np.clip((age - 20) / 9, 0, 2.6) * (1.3 - 0.25 * (level - 1.5))), 7)
    cols["Q274"] = _with_missing(rng, np.where((status == 6) & (rng.random(n) < 0.8), 0, children), [(-2, 0.003)])
    cols["Q271"] = _with_missing(rng, np.where(rng.random(n) < np.where(age < 30, 0.55, 0.1), 2, 1), [(-2, 0.003)])
    # education: respondent, spouse, parents (ISCED 0..8) with recodes and country-specific codes
    cols["Q275"] = _with_missing(rng, isced, [(-1, 0.006), (-2, 0.008), (-5, 0.002)])
    partnered = (status == 1) | (status == 2)
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
        cols[f"{variable}A"] = np.where(coded < 0, np.where(country_specific < 0, country_specific, coded), country_specific)
    # employment and class
    employment = np.array([[.15, .12, .05, .0, .05, .5, .12, .01], [.45, .12, .15, .0, .12, .04, .1, .02],
                           [.45, .1, .17, .03, .15, .0, .08, .02], [.12, .05, .1, .55, .15, .0, .02, .01]])
    cols["Q279"] = _with_missing(rng, _draw_index(rng, _cumulative(employment)[np.searchsorted([25, 35, 60], age, side="right")]) + 1,
                                 [(-2, 0.005)])
    ses = 0.6 * (level - 1.5) / 1.1 + 0.3 * np.where(urban, 0.5, -0.5) + rng.normal(0, 0.8, n)
    cols["Q288"] = _with_missing(rng, _ordinal_from_latent(ses, 10), [(-1, 0.02), (-2, 0.015)])
    cols["Q288R"] = _keep_missing(cols["Q288"], np.searchsorted([4, 8], cols["Q288"], side="right") + 1)
    cols["Q287"] = _with_missing(rng, 6 - _ordinal_from_latent(ses + rng.normal(0, 0.5, n), 5), [(-1, 0.01), (-2, 0.01)])
    cols["Q286"] = _with_missing(rng, 5 - _ordinal_from_latent(ses + rng.normal(0, 0.7, n), 4), [(-1, 0.01), (-2, 0.01)])
    # religion: major group per country, detailed code consistent with it
    religion = _draw_index(rng, model.religion_cum[cidx])
    cols["Q289"] = _with_missing(rng, religion, [(-1, 0.004), (-2, 0.01)])
    detailed = _detailed_religion_codes()
    position = rng.random(n)
    out = np.full(n, -4, dtype=np.int64)
    for group, codes in detailed.items():
        rows_in = cols["Q289"] == group
        out[rows_in] = codes[np.minimum((position[rows_in] * len(codes)).astype(np.int64), len(codes) - 1)]
    cols["Q289CS9"] = np.where(cols["Q289"] < 0, cols["Q289"], out)
    cols["Q290"] = _with_missing(rng, _pick_owned(rng, model.owned["Q290"], model.codes, cidx), [(-2, 0.01)])
    home_same = model.home_language_ok[language] & (rng.random(n) < 0.9)
    other_home = model.home_language_codes[rng.integers(0, len(model.home_language_codes), n)]
    cols["Q272"] = _with_missing(rng, np.where(home_same, model.language_codes[language], other_home), [(-2, 0.003)])
    return cols, answered


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
    if model.respondents < 4:
        raise WvbError("--inject-faults needs at least 4 respondents")
    rng = np.random.default_rng([seed, 2])
    rows = rng.choice(model.respondents, size=4, replace=False)
    columns = rng.choice(len(model.value_ids), size=2, replace=False)
    out_column = model.value_ids[columns[1]]
    return _FaultPlan(
        duplicate_of=int(rows[0]), missing_field_country_row=int(rows[1]), non_numeric_row=int(rows[2]),
        non_numeric_column=model.value_ids[columns[0]], out_of_range_row=int(rows[3]),
        out_of_range_column=out_column, out_of_range_value=max(_int_codes(out_column)) + 5)


def write_synthetic_wvs(path, respondents: int = DEFAULT_RESPONDENTS, seed: int = DEFAULT_SEED,
                        inject_faults: bool = False) -> SynthSummary:
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
    ids = {}
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
    return SynthSummary(rows=rows_written, columns=len(header), answered_share=answered / (respondents * len(model.value_ids)),
                        seconds=time.perf_counter() - began, faults=faults_path)


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
    n = model.respondents
    extra, _ = generate_rows(model, np.array([plan.duplicate_of, plan.missing_field_country_row]),
                             np.random.default_rng([seed, 3]))
    country = np.searchsorted(model.starts, plan.missing_field_country_row, side="right") - 1
    short_id = int(model.codes[country]) * 1_000_000 + 70_000 + int(model.sizes[country]) + 1
    extra["D_INTERVIEW"][1] = short_id
    lines = _csv_bytes(header, extra).decode().splitlines()
    out.write((lines[0] + "\n").encode())
    out.write((lines[1].rsplit(",", 1)[0] + "\n").encode())  # last field (and its comma) dropped
    duplicate_id = ids[plan.duplicate_of]
    return [
        {"row": plan.duplicate_of + 1, "d_interview": duplicate_id, "kind": "duplicate_d_interview",
         "column": "D_INTERVIEW", "raw_value": str(duplicate_id)},
        {"row": n + 1, "d_interview": duplicate_id, "kind": "duplicate_d_interview",
         "column": "D_INTERVIEW", "raw_value": str(duplicate_id)},
        {"row": n + 2, "d_interview": short_id, "kind": "missing_field", "column": header[-1], "raw_value": None},
        {"row": plan.non_numeric_row + 1, "d_interview": ids[plan.non_numeric_row], "kind": "non_numeric_code",
         "column": plan.non_numeric_column, "raw_value": NON_NUMERIC_VALUE},
        {"row": plan.out_of_range_row + 1, "d_interview": ids[plan.out_of_range_row], "kind": "out_of_range_code",
         "column": plan.out_of_range_column, "raw_value": str(plan.out_of_range_value)},
    ]


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--respondents", type=int, default=DEFAULT_RESPONDENTS, metavar="N",
                        help=f"number of respondents (default {DEFAULT_RESPONDENTS:,}, the real file's size)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--out", required=True, metavar="FILE", help="CSV file to write (parent directories are created)")
    parser.add_argument("--inject-faults", action="store_true",
                        help="add known bad rows and write FILE.faults.json listing them")


def main(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise WvbError(f"--seed must be non-negative, got {args.seed}")
    try:
        summary = write_synthetic_wvs(args.out, args.respondents, args.seed, args.inject_faults)
    except OSError as exc:
        raise WvbError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"rows: {summary.rows:,}")
    print(f"columns: {summary.columns}")
    print(f"answered value-question cells: {summary.answered_share:.2%}")
    print(f"time: {summary.seconds:.1f} s")
    print(f"wrote {args.out}" + (f" and {summary.faults}" if summary.faults else ""))
    return 0
