"""Choosing rows: which value questions a spec names, which columns may group
respondents, and the null rule for group keys. Used by probe, prompts, export,
baselines and evaluate, so each says the same thing the same way."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from wvb_spark.core.config import split_list
from wvb_spark.core.errors import InputError


def check_group_columns(
    participants: DataFrame, group_by: list[str], reserved: tuple[str, ...], also: tuple[str, ...] = ()
) -> None:
    """Every name of `group_by` is one of `also` (e.g. evaluate's `overall`) or a
    participants column that the stage does not keep for itself (`reserved`)."""
    available = [c for c in participants.columns if c not in reserved]
    extra = "".join(f"{name}, " for name in also)
    for name in group_by:
        if name in also:
            continue
        if name in reserved:
            raise InputError(f"--group-by cannot use {name} (a column of the stage's own table)")
        if name not in participants.columns:
            raise InputError(f"--group-by: no participants column {name}; choose from {extra}{', '.join(available)}")


def resolve_questions(questions: DataFrame, spec: str) -> list[str]:
    """The value questions a spec names: `probe`, `all`, a category (case-insensitive), or ids.

    The questions table is small (a few hundred rows), so it is read on the driver.
    """
    rows = questions.select("question_id", "category", "use_case", "is_probe").collect()
    value_rows = [r for r in rows if r["use_case"] == "value"]
    order = {r["question_id"]: i for i, r in enumerate(rows)}
    keyword = spec.strip()
    if keyword.lower() == "probe":
        chosen = [r["question_id"] for r in value_rows if r["is_probe"]]
    elif keyword.lower() == "all":
        chosen = [r["question_id"] for r in value_rows]
    elif keyword.lower() in {r["category"].lower() for r in value_rows}:
        chosen = [r["question_id"] for r in value_rows if r["category"].lower() == keyword.lower()]
    else:
        wanted = split_list(keyword)
        value_ids = {r["question_id"] for r in value_rows}
        unknown = [q for q in wanted if q not in order]
        if unknown:
            raise InputError(
                f"--questions: {', '.join(unknown[:10])} is neither a question id, a category, 'probe' nor 'all'"
            )
        not_value = [q for q in wanted if q not in value_ids]
        if not_value:
            raise InputError(f"--questions: {', '.join(not_value[:10])} are demographic variables, not value questions")
        chosen = list(dict.fromkeys(wanted))
    if not chosen:
        raise InputError(f"--questions {spec!r} selects no value question")
    return sorted(chosen, key=order.__getitem__)


def all_not_null(columns: list[str]) -> Column:
    """True where every one of `columns` has a value (a row with a null group key is in no group)."""
    return reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in columns], F.lit(True))


def selected_rows(rows: DataFrame, questions: DataFrame, split: str | None, spec: str | None) -> DataFrame:
    """(question_id, d_interview) of a probe or examples table, kept to one split and to the
    questions a spec names (see resolve_questions); None keeps all. `wvb prompts` and
    `wvb export` choose their rows this way."""
    if split:
        rows = rows.where(F.col("split") == split)
    if spec:
        rows = rows.where(F.col("question_id").isin(resolve_questions(questions, spec)))
    return rows.select("question_id", "d_interview")
