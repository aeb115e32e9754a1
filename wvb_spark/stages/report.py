"""`wvb report`: the evaluation as a small table, figures and a data card (report.md,
a self-contained report.html and the PNG files).

Only small aggregates reach the driver: the `summary` table (models x groups x
thresholds), the `distances` rows of the `overall` group (models x questions), the
questions' categories and the latest `build_runs` row. Every table is read at the
Delta version recorded in the data card, so the numbers can be traced and
reproduced. Everything after reading is plain pandas and matplotlib
(`build_report`), testable without Spark.
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import os
import platform
import re
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wvb_spark import __version__
from wvb_spark.core import metadata
from wvb_spark.core.errors import InputError, MissingTableError
from wvb_spark.core.stage import Result

OVERALL = "overall"  # evaluate's group_by of "everyone"
FACET_SKIP = (OVERALL, "country")  # country gets its own bar chart
BASELINE_MODELS = ("uniform", "majority-leaky", "global-prior", "group-prior")
REQUIRED_TABLES = ("summary", "distances", "questions")
OPTIONAL_TABLES = ("build_runs", "predictions")
SOFTWARE = ("pyspark", "delta-spark", "deltalake", "pyarrow", "pandas", "numpy", "scipy", "matplotlib")
GROUPING_LABELS = {"continent": "continent", "urban_rural": "urban / rural", "education_level": "education level"}
KNOWN_ORDER = {
    "continent": metadata.CONTINENTS,
    "education_level": metadata.EDUCATION_LEVELS,
    "urban_rural": ("Urban", "Rural"),
}
MISSING_VALUE = "(missing)"
UNKNOWN_CATEGORY = "(unknown category)"  # a scored question the questions table lacks
HEADLINE_COLUMNS = [
    "model",
    "kind",
    "elicited",
    "threshold",
    "pct_questions_below",
    "ci_low",
    "ci_high",
    "mean_w1",
    "invalid_rate",
    "n_questions",
    "mean_noise_floor",
    "pct_noise_floor_below",
]


# How each parse_method of `predictions` elicited the answers, for the headline.
ELICITATION_LABELS = {
    "score_column": "point scores",
    "json": "free text",
    "json_repaired": "free text",
    "number_in_text": "free text",
    "chat_logprobs": "option log-probs",
    "completion_logprobs": "option log-probs",
    "samples": "sampled answers",
    "verbalised": "verbalised",
    "lm_eval": "lm-eval log-likelihoods",
    "probabilities": "distribution file",
    "logprobs": "distribution file",
    "baseline": "baseline",
    "inspect_text": "free text (inspect)",
    "inspect_logprobs": "option log-probs (inspect)",
}
# Free text from a batch service: parse_method is the format, then how the number was
# found (anthropic_json, openai_number_in_text); <format>_none is a row where nothing was read.
BATCH_TEXT_LABELS = {
    "openai": "free text (OpenAI-format batch)",
    "anthropic": "free text (Anthropic batch)",
    "bedrock": "free text (Bedrock batch)",
}
ELICITATION_LABELS.update(
    {
        f"{batch}_{how}": label
        for batch, label in BATCH_TEXT_LABELS.items()
        for how in ("json", "json_repaired", "number_in_text", "none")
    }
)
NOTHING_READ = {"none"} | {f"{batch}_none" for batch in BATCH_TEXT_LABELS}


def elicitation(method_counts: dict) -> str:
    """One model's parse_method counts -> how it was asked, e.g. "option log-probs"; several
    ways joined by " + ", most rows first. Rows where nothing was read (`none`) say nothing
    about the way unless there is nothing else."""
    labels: dict[str, int] = {}
    for method, count in method_counts.items():
        if method in NOTHING_READ and len(method_counts) > 1:
            continue
        label = ELICITATION_LABELS.get(method, str(method) if method else "unknown")
        labels[label] = labels.get(label, 0) + int(count)
    return " + ".join(sorted(labels, key=lambda label: (-labels[label], label))) or "–"


# --------------------------------------------------------------------------- options

SETTINGS = None
OPTIONS = ()


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument(
        "--warehouse", required=True, metavar="DIR", help="warehouse root (needs summary, distances, questions)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output directory for report.md, report.html and the PNGs"
    )
    parser.add_argument(
        "--models", metavar="A,B", help="comma list of models to show (default: every model in summary)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="TAU",
        help="headline threshold τ: one of the thresholds evaluate computed "
        "(default: the setting evaluate.headline_threshold)",
    )


# --------------------------------------------------------------------------- inputs


@dataclass
class ReportInputs:
    """Everything the report shows, already small and on the driver."""

    summary: pd.DataFrame  # the summary table's columns
    overall_distances: pd.DataFrame  # model, question_id, w1, noise_floor (group overall)
    questions: pd.DataFrame  # question_id, category
    build_run: dict | None = None  # latest build_runs row
    evaluate_settings: dict | None = None  # commit info of the summary version read
    distance_settings: dict | None = None  # commit info of the distances version read
    elicitation: dict = field(default_factory=dict)  # model -> how it was asked (from predictions)
    table_versions: dict = field(default_factory=dict)
    software: dict = field(default_factory=dict)
    warehouse: str = ""


def order_models(models) -> list[str]:
    """Imported models first (alphabetically), then the baselines in a fixed order."""
    models = set(models)
    return sorted(m for m in models if m not in BASELINE_MODELS) + [m for m in BASELINE_MODELS if m in models]


def order_values(grouping: str, values) -> list[str]:
    """Known groupings in their natural order, others alphabetically; '(missing)' last."""
    values = set(values)
    known = [v for v in KNOWN_ORDER.get(grouping, ()) if v in values]
    rest = sorted(v for v in values if v not in known and v != MISSING_VALUE)
    return known + rest + ([MISSING_VALUE] if MISSING_VALUE in values else [])


def question_order(question_ids, questions: pd.DataFrame) -> pd.DataFrame:
    """question_id, category in display order: by category (unknown last), then Q-number."""
    category = dict(zip(questions["question_id"], questions["category"]))
    frame = pd.DataFrame({"question_id": sorted(set(question_ids))})
    frame["category"] = [category.get(q) or UNKNOWN_CATEGORY for q in frame["question_id"]]
    frame["unknown"] = frame["category"] == UNKNOWN_CATEGORY
    frame["number"] = [int(m.group()) if (m := re.search(r"\d+", q)) else 0 for q in frame["question_id"]]
    ordered = frame.sort_values(["unknown", "category", "number", "question_id"])
    return ordered[["question_id", "category"]].reset_index(drop=True)


def _matches(values: pd.Series, threshold: float) -> pd.Series:
    return (values.astype(float) - threshold).abs() < 1e-9


def headline(
    summary: pd.DataFrame, overall_distances: pd.DataFrame, threshold: float, elicited: dict | None = None
) -> pd.DataFrame:
    """One row per model: the overall summary row at τ, plus the noise floor of its questions.

    mean_noise_floor: mean over the model's scored questions of the W1 between the humans
    and an independent resample of them (what a model drawing from the true distribution
    would typically get); pct_noise_floor_below: % of those questions whose noise floor is
    < τ (the same strict rule as pct_questions_below), i.e. roughly the best share reachable.
    """
    rows = summary[(summary["group_by"] == OVERALL) & _matches(summary["threshold"], threshold)]
    scored = overall_distances[overall_distances["w1"].notna()]
    out = []
    for model in order_models(rows["model"]):
        row = rows[rows["model"] == model].iloc[0]
        floors = scored.loc[scored["model"] == model, "noise_floor"].dropna().to_numpy(dtype=float)
        out.append(
            {
                "model": model,
                "kind": "baseline" if model in BASELINE_MODELS else "model",
                "elicited": (elicited or {}).get(model, "–"),
                "threshold": float(row["threshold"]),
                "pct_questions_below": row["pct_questions_below"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "mean_w1": row["mean_w1"],
                "invalid_rate": row["invalid_rate"],
                "n_questions": int(row["n_questions"]),
                "mean_noise_floor": float(floors.mean()) if len(floors) else float("nan"),
                "pct_noise_floor_below": float(100.0 * (floors < threshold).mean()) if len(floors) else float("nan"),
            }
        )
    return pd.DataFrame(out, columns=HEADLINE_COLUMNS)


def noise_floor_curve(overall_distances: pd.DataFrame, thresholds) -> pd.DataFrame:
    """% of questions whose noise floor (averaged over the models that scored it) is < τ."""
    scored = overall_distances[overall_distances["w1"].notna() & overall_distances["noise_floor"].notna()]
    floors = scored.groupby("question_id")["noise_floor"].mean().to_numpy(dtype=float)
    thresholds = np.asarray(sorted(thresholds), dtype=float)
    if not len(floors):
        return pd.DataFrame({"threshold": thresholds, "pct_below": np.nan})
    return pd.DataFrame(
        {"threshold": thresholds, "pct_below": 100.0 * (floors[:, None] < thresholds[None, :]).mean(axis=0)}
    )


# --------------------------------------------------------------------------- formatting


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_pct(value) -> str:
    return "–" if _missing(value) else f"{float(value):.1f}"


def fmt_ci(low, high) -> str:
    return "–" if _missing(low) or _missing(high) else f"[{float(low):.1f}, {float(high):.1f}]"


def fmt_w1(value) -> str:
    return "–" if _missing(value) else f"{float(value):.3f}"


def fmt_rate(value) -> str:
    return "–" if _missing(value) else f"{100.0 * float(value):.1f}%"


def headline_header(threshold: float, confidence: float) -> list[str]:
    tau = format(threshold, "g")
    return [
        "model",
        "type",
        "elicited",
        f"% questions W1 < {tau}",
        f"{round(100 * confidence):g}% CI",
        "mean W1",
        "invalid",
        "questions",
        "mean noise floor",
        f"% noise floor < {tau}",
    ]


def headline_cells(table: pd.DataFrame) -> list[list[str]]:
    return [
        [
            row.model,
            row.kind,
            row.elicited,
            fmt_pct(row.pct_questions_below),
            fmt_ci(row.ci_low, row.ci_high),
            fmt_w1(row.mean_w1),
            fmt_rate(row.invalid_rate),
            str(int(row.n_questions)),
            fmt_w1(row.mean_noise_floor),
            fmt_pct(row.pct_noise_floor_below),
        ]
        for row in table.itertuples(index=False)
    ]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Aligned plain text, for the terminal."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in [header, *rows]
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- document

# A report is a list of blocks rendered twice, to Markdown and to HTML:
# ("h1"|"h2"|"h3"|"p", text), ("table", header, rows, element_id), ("img", file, alt),
# ("code", text), ("list", items). Text may hold `code` spans.


def _inline_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "table":
            _, header, rows, _ = block
            out.append(
                "\n".join(
                    [
                        "| " + " | ".join(_md_cell(c) for c in header) + " |",
                        "|" + "|".join(" --- " for _ in header) + "|",
                        *["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows],
                    ]
                )
            )
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
        elif kind == "code":
            out.append("```\n" + block[1] + "\n```")
        elif kind == "list":
            out.append("\n".join(f"* {item}" for item in block[1]))
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1180px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 .2em; }
pre { background: #f4f4f4; padding: .6em; overflow-x: auto; }
""".strip()


def render_html(blocks: list[tuple], image_dir: Path, title: str) -> str:
    """One file, nothing external: PNGs as base64 data URIs, CSS inline, no scripts."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{CSS}\n</style>",
        "</head>",
        "<body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "table":
            _, header, rows, element_id = block
            id_attribute = f' id="{html.escape(element_id)}"' if element_id else ""
            out.append(f"<table{id_attribute}>")
            out.append("<thead><tr>" + "".join(f"<th>{_inline_html(c)}</th>" for c in header) + "</tr></thead>")
            out.append(
                "<tbody>"
                + "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in rows)
                + "</tbody>"
            )
            out.append("</table>")
        elif kind == "img":
            data = base64.b64encode((image_dir / block[1]).read_bytes()).decode("ascii")
            out.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}" '
                f'data-file="{html.escape(block[1])}"></figure>'
            )
        elif kind == "code":
            out.append(f"<pre><code>{html.escape(block[1])}</code></pre>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in block[1]) + "</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def _settings_rows(settings: dict | None) -> list[list[str]]:
    if not settings:
        return [["(none)", "the summary commit carries no settings"]]
    rows = []
    for key in (
        "protocol",
        "population",
        "split",
        "weights",
        "bootstrap",
        "seed",
        "confidence",
        "noise_floor_draws",
        "group_by",
        "models",
        "thresholds",
    ):
        if key in settings:
            value = settings[key]
            if isinstance(value, (list, tuple)):
                value = ", ".join(format(v, "g") if isinstance(v, float) else str(v) for v in value)
            rows.append([key, "–" if value is None else str(value)])
    rows += [[key, str(value)] for key, value in sorted(settings.items()) if key not in {r[0] for r in rows}]
    return rows


def _build_rows(run: dict) -> list[list[str]]:
    def count(value) -> str:
        return "–" if value is None else f"{int(value):,}"

    quarantined = run.get("quarantined_rows_by_reason") or {}
    missing = run.get("missing_cells_by_code") or {}
    by_split = run.get("examples_by_split") or {}
    finished_at: Any = run.get("finished_at")
    finished = finished_at.strftime("%Y-%m-%d %H:%M:%S") if hasattr(finished_at, "strftime") else str(finished_at)
    rows = [
        ["build run", f"#{run.get('run_number')} finished {finished} UTC"],
        ["raw file", str(run.get("raw_file"))],
        ["split method", str(run.get("split_method"))],
        ["rows read", count(run.get("rows_read"))],
        ["participants", count(run.get("participants"))],
        ["quarantined rows", count(run.get("quarantined_rows"))],
    ]
    rows += [[f"  quarantined: {reason}", count(n)] for reason, n in sorted(quarantined.items())]
    rows.append(["quarantined cells (out of range)", count(run.get("quarantined_cells"))])
    rows += [[f"  missing cells: {code}", count(n)] for code, n in sorted(missing.items())]
    rows.append(["examples", count(run.get("examples"))])
    rows += [[f"  examples: {split}", count(n)] for split, n in sorted(by_split.items())]
    reconciled = (
        run.get("rows_read") is not None
        and run.get("participants") is not None
        and run["rows_read"] == run["participants"] + sum(quarantined.values())
    )
    rows.append(
        [
            "reconciled",
            "yes: rows read = participants + quarantined rows"
            if reconciled
            else "NO: rows read ≠ participants + quarantined rows",
        ]
    )
    rows.append(["built with", f"wvb_spark {run.get('wvb_version')}, Spark {run.get('spark_version')}"])
    return rows


def _shown_models(summary: pd.DataFrame, models: list[str] | None) -> list[str]:
    """The models the report shows: --models (each must be in summary), else all, in
    report order."""
    available = order_models(summary["model"].unique())
    if not available:
        raise MissingTableError("the summary table is empty (run wvb evaluate first)")
    if not models:
        return available
    unknown = [m for m in models if m not in available]
    if unknown:
        raise InputError(f"unknown model(s) {', '.join(unknown)}; summary has: {', '.join(available)}")
    return order_models(models)


def _figures(out: Path, inputs, summary, distances, table, shown, thresholds, threshold):
    """Every PNG of the report into `out`: (file names, facet groupings, models of the
    country figure). Figures of groupings no longer in summary are removed."""
    from wvb_spark.compute import figures

    files = []

    def save(figure, name):
        figures.save(figure, out / name)
        files.append(name)

    overall = summary[summary["group_by"] == OVERALL]
    floor = noise_floor_curve(distances, thresholds)
    save(figures.headline_curve(overall, shown, floor, threshold), "headline_curve.png")

    groupings = sorted(g for g in summary["group_by"].unique() if g not in FACET_SKIP)
    for grouping in groupings:
        rows = summary[summary["group_by"] == grouping]
        save(
            figures.facet_curves(
                rows,
                shown,
                order_values(grouping, rows["group_value"].unique()),
                GROUPING_LABELS.get(grouping, grouping),
            ),
            f"curve_by_{grouping}.png",
        )

    order = question_order(distances["question_id"], inputs.questions)
    matrix = distances.pivot_table(
        index="model", columns="question_id", values="w1", aggfunc="first", dropna=False
    ).reindex(index=shown, columns=list(order["question_id"]))
    save(figures.w1_heatmap(matrix, order["category"]), "w1_heatmap.png")

    by_country = summary[(summary["group_by"] == "country") & _matches(summary["threshold"], thresholds[0])]
    country_models = [m for m in shown if m not in BASELINE_MODELS] or shown
    if len(by_country):
        overall_mean = {r.model: r.mean_w1 for r in table.itertuples(index=False)}
        save(
            figures.w1_by_country(by_country, country_models, metadata.country_continents(), overall_mean),
            "w1_by_country.png",
        )
    for stale in out.glob("curve_by_*.png"):  # a grouping of an earlier report that is gone now
        if stale.name not in files:
            stale.unlink()

    return files, groupings, country_models


def build_report(inputs: ReportInputs, out_dir, threshold: float, models: list[str] | None = None) -> dict:
    """Write report.md, report.html, headline.csv and the PNGs into out_dir.

    Returns {"headline": DataFrame, "files": [names], "html": path, "markdown": path}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shown = _shown_models(inputs.summary, models)
    summary = inputs.summary[inputs.summary["model"].isin(shown)]
    distances = inputs.overall_distances[inputs.overall_distances["model"].isin(shown)]
    if not (summary["group_by"] == OVERALL).any():
        raise InputError("summary has no 'overall' group: run wvb evaluate with --group-by including overall")
    thresholds = sorted(float(t) for t in summary["threshold"].unique())
    if not any(abs(t - threshold) < 1e-9 for t in thresholds):
        raise InputError(
            f"--threshold {threshold:g} is not one of the thresholds evaluate computed: "
            f"{', '.join(format(t, 'g') for t in thresholds)}"
        )
    settings = inputs.evaluate_settings or {}
    confidence = float(settings.get("confidence", 0.95))

    table = headline(summary, distances, threshold, inputs.elicitation)
    table.to_csv(out / "headline.csv", index=False)

    files, groupings, country_models = _figures(out, inputs, summary, distances, table, shown, thresholds, threshold)
    blocks = _document(
        inputs, table, shown if models else [], threshold, confidence, groupings, files, country_models, settings, shown
    )
    markdown_path, html_path = out / "report.md", out / "report.html"
    markdown_path.write_text(render_markdown(blocks), encoding="utf-8")
    html_path.write_text(render_html(blocks, out, "WorldValuesBench report"), encoding="utf-8")
    return {
        "headline": table,
        "files": files,
        "markdown": markdown_path,
        "html": html_path,
        "header": headline_header(threshold, confidence),
    }


def _document(
    inputs: ReportInputs,
    table: pd.DataFrame,
    chosen: list[str],
    threshold: float,
    confidence: float,
    groupings: list[str],
    files: list[str],
    country_models: list[str],
    settings: dict,
    shown: list[str],
) -> list[tuple]:
    """The report as blocks (render_markdown / render_html draw them): headline, figures,
    data card."""
    tau = format(threshold, "g")
    level = f"{round(100 * confidence):g}%"
    blocks: list[tuple] = [
        ("h1", "WorldValuesBench report"),
        (
            "p",
            f"Warehouse `{inputs.warehouse}` · models: {', '.join(shown)} · protocol "
            f"`{settings.get('protocol', '?')}`, population `{settings.get('population', '?')}`, "
            f"weights {'on' if settings.get('weights') else 'off'}.",
        ),
        (
            "p",
            "W1 is the Wasserstein-1 distance between the humans' answer distribution and the model's on a "
            "question, with the answer scale rescaled to [0, 1]: 0 = identical distributions, 1 = all mass at "
            "opposite ends. A question counts as answered like the humans when W1 < τ (strictly, as in the "
            "`summary` table).",
        ),
        ("h2", "Headline"),
        ("table", headline_header(threshold, confidence), headline_cells(table), "headline"),
        (
            "list",
            [
                f"`% questions W1 < {tau}`: share of the model's scored questions, everyone together "
                f"(group `overall`), with the {level} bootstrap interval (`summary`: pct_questions_below, "
                "ci_low, ci_high).",
                "`elicited`: how the model's answers were obtained, from the `parse_method` of its "
                "`predictions` rows: free text or point scores (one answer each), option log-probs (the "
                "probabilities of the first token over the options), sampled answers, verbalised (a "
                "distribution the model wrote), lm-eval log-likelihoods, a distribution file, or a baseline; "
                "every distribution is scored the same way, whatever its origin.",
                "`mean W1`: mean over those questions; `invalid`: share of the prediction rows that could not "
                "be used (unparsable, out of range, missing...); `questions`: questions scored.",
                "`mean noise floor`: the mean W1 between the humans and an independent resample of the same "
                "size — what a model that draws answers from the true distribution would typically get; "
                f"`% noise floor < {tau}`: the share of questions where even that reaches W1 < {tau}, "
                "roughly the best share reachable with this many respondents.",
                "`type` baseline: reference predictors from `wvb baselines`; majority-leaky has seen the "
                "answers it is scored against.",
            ],
        ),
        ("p", "Full-precision numbers: `headline.csv`."),
        ("h2", "Share of questions under a distance threshold"),
        ("img", "headline_curve.png", "Share of questions with W1 below tau for each model"),
        (
            "p",
            "Each line is a model: the higher the line, the more questions whose answers the model reproduces "
            f"within a distance τ. Bands: {level} bootstrap intervals. The wide pale blue line is the noise floor "
            "(humans against resampled humans): no model can be expected to rise much above it.",
        ),
    ]
    blocks += _figure_blocks(groupings, files, country_models)
    blocks += _data_card_blocks(inputs, chosen, tau)
    return blocks


def _figure_blocks(groupings: list[str], files: list[str], country_models: list[str]) -> list[tuple]:
    """The figures by group, per question and per country, with what each shows."""
    blocks: list[tuple] = []
    facet_files = [f"curve_by_{g}.png" for g in groupings]
    if facet_files:
        blocks.append(("h2", "By group"))
        blocks.append(
            (
                "p",
                "The same curve within each group of respondents (only the respondents of that group "
                "on both sides). A model that tracks some groups better than others shows lines that "
                "move between panels.",
            )
        )
        for grouping, name in zip(groupings, facet_files):
            blocks += [
                ("h3", GROUPING_LABELS.get(grouping, grouping).capitalize()),
                ("img", name, f"Share of questions with W1 below tau by {grouping}"),
            ]
    blocks += [
        ("h2", "Per question"),
        ("img", "w1_heatmap.png", "Heatmap of W1 per model and question, grouped by category"),
        (
            "p",
            "Rows are models, columns questions grouped by category (labels on top); darker is closer to the "
            "humans. Grey cells were not scored.",
        ),
    ]
    if "w1_by_country.png" in files:
        blocks += [
            ("h2", "Per country"),
            ("img", "w1_by_country.png", "Mean W1 per country, sorted"),
            (
                "p",
                f"Mean W1 over questions among each country's respondents, for {', '.join(country_models)} "
                "(the models that are not baselines, or every model when there are only baselines), sorted "
                "from closest to farthest and coloured by continent; the dashed line is the mean W1 over "
                "everyone.",
            ),
        ]
    return blocks


def _data_card_blocks(inputs: ReportInputs, chosen: list[str], tau: str) -> list[tuple]:
    """Where the numbers come from: the build, the evaluation settings, software and the
    table versions read, and the command that regenerates the report."""
    blocks: list[tuple] = []
    blocks.append(("h2", "Data card"))
    blocks.append(("h3", "Build reconciliation"))
    if inputs.build_run:
        blocks.append(("table", ["build", "value"], _build_rows(inputs.build_run), "build"))
    else:
        blocks.append(("p", "No `build_runs` table in the warehouse."))
    blocks.append(("h3", "Evaluation settings"))
    blocks.append(("table", ["setting", "value"], _settings_rows(inputs.evaluate_settings), "settings"))
    if (inputs.evaluate_settings or None) != (inputs.distance_settings or None):
        blocks.append(
            (
                "p",
                "WARNING: the `summary` and `distances` versions read were written by evaluate runs "
                "with different settings; re-run `wvb evaluate` before trusting this report.",
            )
        )
    blocks.append(("h3", "Software"))
    blocks.append(("table", ["package", "version"], [[k, str(v)] for k, v in inputs.software.items()], "software"))
    blocks.append(("h3", "Tables read"))
    blocks.append(
        (
            "table",
            ["table", "Delta version"],
            [[name, str(version)] for name, version in sorted(inputs.table_versions.items())],
            "tables",
        )
    )
    models_option = f" --models {','.join(chosen)}" if chosen else ""
    blocks.append(
        (
            "p",
            "Every table was read at the version above; any Delta reader reads the same snapshot "
            'again by time travel (`spark.read.format("delta").option("versionAsOf", N)`). '
            "To regenerate:",
        )
    )
    blocks.append(("code", f"wvb report --warehouse {inputs.warehouse} --out OUT{models_option} --threshold {tau}"))
    return blocks


# --------------------------------------------------------------------------- command


def software_versions(spark_version: str) -> dict:
    versions = {"wvb_spark": __version__, "python": platform.python_version(), "Spark (runtime)": spark_version}
    for name in SOFTWARE:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_inputs(spark, warehouse: str, config: dict) -> ReportInputs:
    """Collect the small aggregates (every model: --models is applied after, so unknown
    names can be listed), each table pinned at its current version."""
    from pyspark.sql import functions as F

    from wvb_spark.core.warehouse import Warehouse

    tables = Warehouse(spark, warehouse, config)
    tables.require(*REQUIRED_TABLES)
    versions = {name: tables.version(name) for name in (*REQUIRED_TABLES, *OPTIONAL_TABLES) if tables.exists(name)}

    def read(name):
        return tables.read(name, version=versions[name])

    def settings(name):
        return (tables.commit_info(name, version=versions[name]) or {}).get("options")

    summary = read("summary")
    distances = (
        read("distances").where(F.col("group_by") == OVERALL).select("model", "question_id", "w1", "noise_floor")
    )
    questions = read("questions").select("question_id", "category")
    elicited = {}
    if "predictions" in versions:  # a small aggregate: models x parse methods
        counts: dict = {}
        for row in read("predictions").groupBy("model", "parse_method").count().collect():
            counts.setdefault(row["model"], {})[row["parse_method"]] = row["count"]
        elicited = {model: elicitation(methods) for model, methods in counts.items()}
    build_run = None
    if "build_runs" in versions:
        latest = read("build_runs").orderBy(F.col("run_number").desc()).limit(1).collect()
        build_run = latest[0].asDict(recursive=True) if latest else None
    return ReportInputs(
        summary=summary.toPandas(),
        overall_distances=distances.toPandas(),
        questions=questions.toPandas(),
        build_run=build_run,
        evaluate_settings=settings("summary"),
        distance_settings=settings("distances"),
        elicitation=elicited,
        table_versions=versions,
        software=software_versions(spark.version),
        warehouse=str(warehouse),
    )


def run(args, config: dict) -> Result:
    from wvb_spark.core.config import split_list
    from wvb_spark.core.session import get_spark

    models = split_list(args.models)
    threshold = float(config["evaluate"]["headline_threshold"] if args.threshold is None else args.threshold)
    if not (0 <= threshold <= 1):
        raise InputError(f"--threshold must be between 0 and 1, got {threshold:g}")
    spark = get_spark(config)
    inputs = read_inputs(spark, args.warehouse, config)
    report = build_report(inputs, args.out, threshold=threshold, models=models)
    return Result(
        lines=[
            f"headline (everyone, W1 < {threshold:g}):",
            text_table(report["header"], headline_cells(report["headline"])),
            f"wvb report: {len(report['files'])} figures; open {os.path.abspath(report['html'])}",
        ]
    )
