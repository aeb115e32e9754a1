"""Recode: raw value-question codes -> answers on each question's ordinal scale.

Vectorised numpy over a batch of respondents (rows) x the 239 value questions
(columns, in metadata order): apply the published answer adjustments, keep
non-negative codes on the scale as answers, and classify every other cell, so
that each cell is counted exactly once. A code off the codebook (off the scale, or
negative but none of the "no answer" codes) is out of range: a quarantined cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from wvb_spark.core import metadata

MISSING_CODES = tuple(metadata.MISSING_CODES)  # -1 .. -5, the codebook's "no answer" codes
CELL_OUTCOMES = (
    "answered",
    "adjusted_to_missing",
    "out_of_range",
    *[f"code_{c}" for c in MISSING_CODES],
)


@dataclass(frozen=True)
class Scales:
    """Per value question (metadata order): scale bounds and the adjustment lookup."""

    question_ids: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    # adjustments as parallel arrays: question position, raw code, new code (-99 = missing)
    adjust_position: np.ndarray
    adjust_from: np.ndarray
    adjust_to: np.ndarray


ADJUSTED_TO_MISSING = -99


@cache
def scales() -> Scales:
    ids = metadata.value_question_ids()
    questions = [metadata.questions()[q] for q in ids]
    positions, old_codes, new_codes = [], [], []
    for position, qid in enumerate(ids):
        for old, new in metadata.answer_adjustments().get(qid, {}).items():
            positions.append(position)
            old_codes.append(old)
            new_codes.append(ADJUSTED_TO_MISSING if new is None else new)
    return Scales(
        question_ids=ids,
        low=np.array([q.scale_min for q in questions], dtype=np.int64),
        high=np.array([q.scale_max for q in questions], dtype=np.int64),
        adjust_position=np.array(positions, dtype=np.int64),
        adjust_from=np.array(old_codes, dtype=np.int64),
        adjust_to=np.array(new_codes, dtype=np.int64),
    )


def adjust(codes: np.ndarray) -> np.ndarray:
    """Raw codes (rows x questions) after the answer adjustments; a code the adjustment
    turns into "no answer" becomes ADJUSTED_TO_MISSING. Negative codes pass through."""
    s = scales()
    adjusted = codes.copy()
    for position, old, new in zip(s.adjust_position, s.adjust_from, s.adjust_to):
        column = codes[:, position]
        adjusted[column == old, position] = new
    return adjusted


def recode(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(answers, out_of_range mask, per-row counts by outcome) for raw codes.

    answers: adjusted code where it is an answer, else -1 (see the mask `answered`
    = counts source); out_of_range: non-negative adjusted codes off the scale, and
    negative codes below the "no answer" codes (-7, or a clipped 20-digit negative).
    """
    s = scales()
    adjusted = adjust(codes)
    non_negative = codes >= 0
    kept = non_negative & (adjusted != ADJUSTED_TO_MISSING)
    on_scale = (adjusted >= s.low) & (adjusted <= s.high)
    answered = kept & on_scale
    out_of_range = (kept & ~on_scale) | (codes < min(MISSING_CODES))
    counts = {
        "answered": answered.sum(axis=1),
        "adjusted_to_missing": (non_negative & ~kept).sum(axis=1),
        "out_of_range": out_of_range.sum(axis=1),
        **{f"code_{c}": (codes == c).sum(axis=1) for c in MISSING_CODES},
    }
    return np.where(answered, adjusted, -1), out_of_range, counts
