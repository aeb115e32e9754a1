"""wvb report: numbers straight from `summary`, valid PNGs of the documented sizes, and an
HTML file that a real browser (headless Chromium) renders with every image loaded."""

from __future__ import annotations

import csv
import datetime
import json
import re
import shutil
import subprocess

import pandas as pd
import pyspark
import pytest
from PIL import Image

from wvb_spark import cli
from wvb_spark.core import schemas
from wvb_spark.core.schemas import BUILD_RUNS, DISTANCES, SUMMARY
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages.report import order_models, order_values, question_order

CONFIG = {"storage": {"writer": "offline"}}
NAN = float("nan")
THRESHOLDS = [0.0, 0.1, 0.2, 0.3, 0.4]
MODELS = ["sim-biased", "group-prior", "uniform"]
REPORT_ORDER = ["sim-biased", "uniform", "group-prior"]  # models, then baselines in their fixed order
QUESTIONS = [
    ("Q1", "Ethical Values"),
    ("Q2", "Ethical Values"),
    ("Q10", "Ethical Values"),
    ("Q3", "Religious Values"),
    ("Q4", "Religious Values"),
    ("Q5", "Happiness and Wellbeing"),
]
GROUPS = [
    ("overall", "all"),
    ("continent", "Europe"),
    ("continent", "Asia"),
    ("continent", "(missing)"),
    ("urban_rural", "Urban"),
    ("urban_rural", "Rural"),
    ("education_level", "Tertiary"),
    ("education_level", "Lower Secondary"),
    ("education_level", "Primary or No Education"),
    ("education_level", "(missing)"),
    ("country", "Germany"),
    ("country", "Japan"),
    ("country", "Nigeria"),
]

# The headline rows (overall, τ = 0.2) the report must show, chosen so that their
# rounding is unambiguous; uniform has no interval (bootstrap 0 would give nulls).
HEADLINE = {
    "sim-biased": dict(
        pct_questions_below=50.0, ci_low=100 / 3, ci_high=200 / 3, mean_w1=0.183, invalid_rate=0.025, n_questions=6
    ),
    "group-prior": dict(
        pct_questions_below=500 / 6, ci_low=200 / 3, ci_high=100.0, mean_w1=0.09, invalid_rate=0.0, n_questions=6
    ),
    "uniform": dict(
        pct_questions_below=100 / 6, ci_low=None, ci_high=None, mean_w1=0.301, invalid_rate=0.0, n_questions=6
    ),
}
# Noise floor per question of the overall group; None = question not scored (w1 null).
NOISE_FLOORS = {
    "sim-biased": [0.1, 0.3, 0.15, 0.25, 0.05, 0.35],  # mean 0.2, 3 of 6 below 0.2 -> 50.0
    "group-prior": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # mean 0.1, 6 of 6 -> 100.0
    "uniform": [0.12, 0.32, None, 0.08, 0.4, 0.28],  # 5 scored: mean 0.24, 2 of 5 -> 40.0
}
EXPECTED_NOISE = {"sim-biased": ("0.200", "50.0"), "group-prior": ("0.100", "100.0"), "uniform": ("0.240", "40.0")}

SETTINGS = {
    "operation": "wvb evaluate",
    "protocol": "default",
    "population": "paired",
    "split": None,
    "weights": False,
    "bootstrap": 200,
    "seed": 3,
    "group_by": ["overall", "continent", "urban_rural", "education_level", "country"],
    "models": MODELS,
    "thresholds": THRESHOLDS,
    "noise_floor_draws": 200,
    "confidence": 0.9,
}


def summary_rows(offset: float = 0.0) -> list[tuple]:
    rows = []
    for m, model in enumerate(MODELS):
        for g, (group_by, group_value) in enumerate(GROUPS):
            for t, threshold in enumerate(THRESHOLDS):
                if group_by == "overall" and threshold == 0.2 and offset == 0.0:
                    h = HEADLINE[model]
                    rows.append(
                        (
                            model,
                            group_by,
                            group_value,
                            threshold,
                            h["pct_questions_below"],
                            h["ci_low"],
                            h["ci_high"],
                            h["mean_w1"],
                            h["invalid_rate"],
                            h["n_questions"],
                        )
                    )
                    continue
                pct = min(100.0, 25.0 * t + 5.0 * m + g + offset)
                rows.append(
                    (
                        model,
                        group_by,
                        group_value,
                        threshold,
                        pct,
                        max(pct - 10, 0.0),
                        min(pct + 10, 100.0),
                        0.1 + 0.02 * g + 0.05 * m,
                        0.01 * m,
                        6,
                    )
                )
    return rows


def distance_rows() -> list[tuple]:
    rows = []
    for model in MODELS:
        for (question, _), floor in zip(QUESTIONS, NOISE_FLOORS[model]):
            w1 = None if floor is None else 0.05 + 0.04 * len(question)
            rows.append(
                (
                    model,
                    question,
                    "overall",
                    "all",
                    100,
                    100,
                    100,
                    0,
                    w1,
                    None,
                    None,
                    None,
                    None,
                    None if w1 is None else 1 - w1,
                    floor,
                    None if w1 is None else w1 <= floor,
                    0.0,
                    {},
                )
            )
    return rows


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("report-warehouse"))
    # version 0 of summary holds other numbers: the report must read the latest (version 1)
    tables = Warehouse(spark, root, CONFIG)
    tables.write(
        "summary",
        spark.createDataFrame(summary_rows(offset=1.0), SUMMARY),
        stage="wvb evaluate",
        options={"stale": True},
    )
    tables.write("summary", spark.createDataFrame(summary_rows(), SUMMARY), stage="wvb evaluate", options=SETTINGS)
    tables.write("distances", spark.createDataFrame(distance_rows(), DISTANCES), stage="wvb evaluate", options=SETTINGS)
    questions = [(q, f"text of {q}", category, "value", 1, 4, "ordinal", None, True) for q, category in QUESTIONS]
    tables.write("questions", spark.createDataFrame(questions, schemas.QUESTIONS), stage="wvb build")
    run = (
        1,
        datetime.datetime(2024, 5, 1, 12, 0),
        "wvs.csv",
        "paper",
        1000,
        990,
        10,
        {"duplicate_id": 4, "unknown_country": 6},
        7,
        {"code_-1": 120, "code_-2": 30},
        20000,
        {"train": 14000, "test": 3000, "valid": 3000},
        {"questions": 0},
        12.5,
        "0.1.0",
        "4.2.0",
    )
    tables.write("build_runs", spark.createDataFrame([run], BUILD_RUNS), stage="wvb build")
    return root


@pytest.fixture(scope="module")
def report(warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-out")
    code = cli.main(["report", "--warehouse", warehouse, "--out", str(out), "--set", "storage.writer=offline"])
    assert code == 0
    return out


def markdown_table(text: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The first pipe table after a Markdown heading: header cells and row cells."""
    section = text.split(heading + "\n", 1)[1]
    block = []
    for line in section.splitlines():
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block]
    return cells[0], cells[2:]


def test_headline_table_holds_the_summary_numbers(report):
    header, rows = markdown_table((report / "report.md").read_text(), "## Headline")
    assert header == [
        "model",
        "type",
        "elicited",
        "% questions W1 < 0.2",
        "90% CI",
        "mean W1",
        "invalid",
        "questions",
        "mean noise floor",
        "% noise floor < 0.2",
    ]
    assert [row[0] for row in rows] == REPORT_ORDER
    expected = {
        "sim-biased": ["sim-biased", "model", "50.0", "[33.3, 66.7]", "0.183", "2.5%", "6"],
        "group-prior": ["group-prior", "baseline", "83.3", "[66.7, 100.0]", "0.090", "0.0%", "6"],
        "uniform": ["uniform", "baseline", "16.7", "–", "0.301", "0.0%", "6"],
    }
    for row in rows:
        assert row[2] == "–"  # this warehouse has no predictions table to say how
        assert row[:2] + row[3:8] == expected[row[0]]
        assert tuple(row[8:]) == EXPECTED_NOISE[row[0]]


def test_elicitation_from_parse_methods():
    from wvb_spark.stages.report import elicitation

    assert elicitation({"chat_logprobs": 900, "none": 3}) == "option log-probs"
    assert elicitation({"json": 50, "json_repaired": 30, "number_in_text": 25, "none": 5}) == "free text"
    assert elicitation({"none": 7}) == "none"
    # free text from a batch service names the service; rows where nothing was read do not count
    assert elicitation({"anthropic_json": 5, "anthropic_number_in_text": 4, "anthropic_none": 9}) == (
        "free text (Anthropic batch)"
    )
    assert elicitation({"openai_json": 3, "bedrock_json_repaired": 4}) == (
        "free text (Bedrock batch) + free text (OpenAI-format batch)"
    )
    assert elicitation({"openai_none": 2}) == "free text (OpenAI-format batch)"
    assert elicitation({"samples": 10, "score_column": 40}) == "point scores + sampled answers"
    assert elicitation({"baseline": 1}) == "baseline" and elicitation({"lm_eval": 2}) == "lm-eval log-likelihoods"


def test_printed_headline_stays_aligned_with_long_model_names():
    """The headline wvb report prints: the model column as wide as the longest name, every
    other column right-aligned under its header, so a long name does not shift the rest."""
    from wvb_spark.stages.report import headline_cells, headline_header, text_table

    def row(model, elicited, pct, n_questions):
        return {
            "model": model,
            "kind": "model",
            "elicited": elicited,
            "pct_questions_below": pct,
            "ci_low": 38.9,
            "ci_high": 47.2,
            "mean_w1": 0.236,
            "invalid_rate": 0.029,
            "n_questions": n_questions,
            "mean_noise_floor": 0.1,
            "pct_noise_floor_below": 50.0,
        }

    long_name = "meta-llama--Llama-3.1-70B-Instruct-logprobs-wd"
    table = pd.DataFrame([row("a", "free text", 41.7, 36), row(long_name, "free text (OpenAI-format batch)", 5.0, 4)])
    header = headline_header(0.2, 0.95)
    cells = headline_cells(table)
    lines = text_table(header, cells).splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1  # every line as wide
    widths = [max(len(value) for value in column) for column in zip(header, *cells)]
    assert widths[0] == len(long_name)
    assert len(lines[0]) == sum(widths) + 2 * (len(widths) - 1)  # two spaces between columns
    for line, values in zip(lines, [header, *cells]):
        assert line[: widths[0]] == values[0].ljust(widths[0])
        end = widths[0]
        for width, value in zip(widths[1:], values[1:]):
            end += 2 + width
            assert line[end - width : end] == value.rjust(width), (line, value)


def test_headline_csv_has_the_summary_values_at_full_precision(report):
    with open(report / "headline.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == sorted(MODELS)
    for model, values in HEADLINE.items():
        for column, value in values.items():
            written = rows[model][column]
            if value is None:
                assert written == ""
            else:
                assert float(written) == value, (model, column)
        assert rows[model]["threshold"] == "0.2"


def test_data_card(report):
    text = (report / "report.md").read_text()
    _, build = markdown_table(text, "### Build reconciliation")
    build = dict((k, v) for k, v in build)
    assert build["rows read"] == "1,000" and build["participants"] == "990"
    assert build["quarantined: duplicate_id"] == "4" and build["quarantined: unknown_country"] == "6"
    assert build["examples: train"] == "14,000" and build["missing cells: code_-2"] == "30"
    assert build["reconciled"].startswith("yes")
    _, settings = markdown_table(text, "### Evaluation settings")
    settings = dict(settings)
    assert settings["protocol"] == "default" and settings["bootstrap"] == "200" and settings["seed"] == "3"
    assert settings["weights"] == "False" and settings["confidence"] == "0.9"
    assert settings["thresholds"] == "0, 0.1, 0.2, 0.3, 0.4"
    _, tables = markdown_table(text, "### Tables read")
    assert dict(tables) == {"build_runs": "0", "distances": "0", "questions": "0", "summary": "1"}
    _, software = markdown_table(text, "### Software")
    software = dict(software)
    assert software["Spark (runtime)"] == pyspark.__version__
    assert "matplotlib" in software and "deltalake" in software
    assert "WARNING" not in text  # summary and distances carry the same settings


PNG_SIZES = {  # documented in README: report (figure size in inches x 100 dpi)
    "headline_curve.png": (900, 600),
    "curve_by_continent.png": (1420, 410),  # 3 panels in a row
    "curve_by_urban_rural.png": (1020, 410),
    "curve_by_education_level.png": (1020, 730),  # 4 panels: 2 x 2
    "w1_heatmap.png": (1400, 700),
    "w1_by_country.png": (1400, 400),  # one panel: sim-biased, the only non-baseline model
}


def test_every_png_is_a_valid_image_of_the_documented_size(report):
    assert sorted(p.name for p in report.glob("*.png")) == sorted(PNG_SIZES)
    for name, size in PNG_SIZES.items():
        with Image.open(report / name) as image:
            image.verify()
        with Image.open(report / name) as image:
            assert image.format == "PNG" and image.size == size, name
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 20, f"{name} looks blank"


def test_report_is_reproducible(warehouse, report, tmp_path):
    again = tmp_path / "again"
    assert cli.main(["report", "--warehouse", warehouse, "--out", str(again)]) == 0
    for name in ["report.md", "report.html", "headline.csv", *PNG_SIZES]:
        assert (again / name).read_bytes() == (report / name).read_bytes(), name


def test_html_is_self_contained(report):
    text = (report / "report.html").read_text()
    assert "<script" not in text
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert len([s for s in sources if s.startswith("data:image/png;base64,")]) == len(PNG_SIZES)
    assert all(s.startswith("data:") for s in sources)
    assert "url(" not in text and "@import" not in text


def test_models_option_and_errors(warehouse, tmp_path, capsys):
    out = tmp_path / "one"
    assert (
        cli.main(["report", "--warehouse", warehouse, "--out", str(out), "--models", "uniform", "--threshold", "0.4"])
        == 0
    )
    header, rows = markdown_table((out / "report.md").read_text(), "## Headline")
    assert header[3] == "% questions W1 < 0.4" and [r[0] for r in rows] == ["uniform"]
    expected = min(100.0, 25.0 * 4 + 5.0 * 2 + 0)  # uniform (m=2), overall (g=0), τ index 4
    assert rows[0][3] == f"{expected:.1f}"
    # no non-baseline model: the country chart shows the baseline
    with Image.open(out / "w1_by_country.png") as image:
        assert image.size == (1400, 400)
    capsys.readouterr()
    assert cli.main(["report", "--warehouse", warehouse, "--out", str(out), "--models", "gpt-9"]) == 2
    assert "unknown model(s) gpt-9" in capsys.readouterr().err
    assert cli.main(["report", "--warehouse", warehouse, "--out", str(out), "--threshold", "0.25"]) == 2
    error = capsys.readouterr().err
    assert "0.25 is not one of the thresholds" in error and len(error.strip().splitlines()) == 1
    empty = tmp_path / "empty-warehouse"
    empty.mkdir()
    assert cli.main(["report", "--warehouse", str(empty), "--out", str(out)]) == 2
    assert "no summary table" in capsys.readouterr().err


def test_display_orders():
    assert order_models(["uniform", "zeta", "group-prior", "alpha", "majority-leaky"]) == [
        "alpha",
        "zeta",
        "uniform",
        "majority-leaky",
        "group-prior",
    ]
    assert order_values("continent", ["(missing)", "Oceania", "Asia", "Atlantis"]) == [
        "Asia",
        "Oceania",
        "Atlantis",
        "(missing)",
    ]
    assert order_values("urban_rural", ["Rural", "Urban"]) == ["Urban", "Rural"]
    questions = pd.DataFrame({"question_id": ["Q10", "Q2", "Q1", "Q7"], "category": ["B", "B", "B", "A"]})
    order = question_order(["Q10", "Q2", "Q1", "Q7", "Q99"], questions)
    assert list(order["question_id"]) == ["Q7", "Q1", "Q2", "Q10", "Q99"]
    assert list(order["category"]) == ["A", "B", "B", "B", "(unknown category)"]


# --------------------------------------------------------------------------- browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({file: i.dataset.file, complete: i.complete,
                                                  width: i.naturalWidth, height: i.naturalHeight}));
  const rows = [...document.querySelectorAll("#headline tbody tr")].map(r => [...r.cells].map(c => c.textContent));
  const fetched = performance.getEntriesByType("resource").map(e => e.name);
  const out = document.createElement("pre");
  out.id = "wvb-check";
  out.textContent = JSON.stringify({images, rows, fetched});
  document.body.appendChild(out);
});
</script>
</body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium; .ci/run does it)")
def test_html_renders_in_headless_chromium(report, tmp_path):
    # The report has no script; a copy gets one that writes what the browser loaded into the DOM.
    page = tmp_path / "check.html"
    page.write_text((report / "report.html").read_text().replace("</body>", CHECK, 1))
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    match = re.search(r'<pre id="wvb-check">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no check output from Chromium (exit {result.returncode}): {result.stderr[-2000:]}"
    import html

    check = json.loads(html.unescape(match.group(1)))
    loaded = {image["file"]: (image["width"], image["height"]) for image in check["images"] if image["complete"]}
    assert loaded == PNG_SIZES
    assert [row[0] for row in check["rows"]] == REPORT_ORDER
    assert check["rows"][0][3:5] == ["50.0", "[33.3, 66.7]"]
    assert check["fetched"] == []
