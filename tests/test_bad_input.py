"""Bad input, generated here (no data files are committed).

Each raw file and prediction file below comes with its expected outcome, written by
hand from the case's own text: accepted (with its counts or values), quarantined (with
its reason and the file's text as raw_value), or refused with exit code 2 and exactly
one line. A property test then mutates cells of a valid file and checks that nothing
crashes, every line is accounted for and no table holds a value the file lacks; its
expectations come from Python's csv module, never from the code under test.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wvb_spark import cli
from wvb_spark.core import metadata, preflight
from wvb_spark.stages import build
from wvb_spark.stages.synth import write_synthetic_wvs
from wvb_spark.transforms import ingest, splits

BASE_ROWS = 60
SEED = 23
OFFLINE = ["--set", "storage.writer=offline"]


# --------------------------------------------------------------------------- the valid file


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(header, rows) of a small valid synthetic file: rows as lists of field texts."""
    path = tmp_path_factory.mktemp("base") / "wvs.csv"
    write_synthetic_wvs(str(path), respondents=BASE_ROWS, seed=SEED)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def record(fields: list[str], raw: set[int] = frozenset(), sep: str = ",") -> str:
    """One record's text: fields quoted where RFC 4180 needs it, those at positions in
    `raw` written exactly as given (so a case can hold malformed quoting)."""
    out = []
    for i, text in enumerate(fields):
        needs = any(c in text for c in (sep, '"', "\n", "\r"))
        out.append(text if i in raw or not needs else '"' + text.replace('"', '""') + '"')
    return sep.join(out)


def write_lines(
    path, header: list[str], records: list[str], newline: str = "\n", sep: str = ",", end: str = "\n"
) -> str:
    text = newline.join([sep.join(header), *records]) + end
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return str(path)


def build_cli(raw: str, warehouse: str, capsys) -> tuple[int, str, str]:
    code = cli.main(["build", "--raw", str(raw), "--warehouse", str(warehouse), *OFFLINE])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_refusal(code: int, err: str, command: str, expected: str) -> None:
    """Exit code 2 and exactly one line on stderr, naming the problem."""
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"wvb {command}: error: ") and "Traceback" not in err
    assert expected in err, err


def delta_frame(warehouse: str, table: str) -> pd.DataFrame:
    return DeltaTable(os.path.join(warehouse, table)).to_pandas()


def tree(path) -> list:
    """Every file and directory under `path` with sizes: to see that nothing changed."""
    out = []
    for root, dirs, files in os.walk(path):
        out += [(os.path.join(root, d), None) for d in dirs]
        out += [(os.path.join(root, f), os.path.getsize(os.path.join(root, f))) for f in files]
    return sorted(out)


# --------------------------------------------------------------------------- raw: one row per case


@dataclass(frozen=True)
class Row:
    """A data row of the combined raw file: `cells` written over a valid row exactly as
    given, and what must come of it. Accepted rows may name answers (None: no example)
    and participant values; refused rows a reason and raw_value; `cell` an out_of_range
    cell (question_id, raw_value) of an accepted row."""

    name: str
    cells: dict = field(default_factory=dict)
    reason: str | None = None
    raw_value: str | None = None
    cell: tuple | None = None
    answers: dict = field(default_factory=dict)
    participant: dict = field(default_factory=dict)
    shape: str | None = None  # drop_last | extra_field


WIDTH = 375  # the synthetic file's columns (the codebook's variables)
DUPLICATE_ID = "900000001"
ROWS = [
    Row("age 2^32+47 is not wrapped to 47", {"Q262": "4294967343"}, "out_of_range_demographic", "Q262=4294967343"),
    Row("sex 2^32+2 is not wrapped to Female", {"Q260": "4294967298"}, "out_of_range_demographic", "Q260=4294967298"),
    Row("value code 2^32+1 keeps its text", {"Q1": "4294967297"}, cell=("Q1", "4294967297")),
    Row("value code of 20 digits", {"Q1": "99999999999999999999"}, cell=("Q1", "99999999999999999999")),
    Row(
        "demographic of 20 digits",
        {"Q262": "99999999999999999999"},
        "out_of_range_demographic",
        "Q262=99999999999999999999",
    ),
    Row("id of 20 digits", {"D_INTERVIEW": "99999999999999999999"}, "bad_d_interview", "99999999999999999999"),
    Row("negative id", {"D_INTERVIEW": "-5"}, "bad_d_interview", "-5"),
    Row("zero id", {"D_INTERVIEW": "0"}, "bad_d_interview", "0"),
    Row("blank id", {"D_INTERVIEW": ""}, "bad_d_interview", ""),
    Row("decimal code", {"Q10": "1.5"}, "non_numeric_code", "Q10=1.5"),
    Row("signed code", {"Q10": "+3"}, "non_numeric_code", "Q10=+3"),
    Row("text code", {"Q68": "DK"}, "non_numeric_code", "Q68=DK"),
    Row("text demographic", {"Q260": "male"}, "non_numeric_code", "Q260=male"),
    Row("age below the plausible range", {"Q262": "7"}, "out_of_range_demographic", "Q262=7"),
    Row("age above the plausible range", {"Q262": "121"}, "out_of_range_demographic", "Q262=121"),
    Row("year of birth before 1890", {"Q261": "1776"}, "out_of_range_demographic", "Q261=1776"),
    Row("interview date before 2017", {"J_INTDATE": "19991231"}, "out_of_range_demographic", "J_INTDATE=19991231"),
    Row("country the codebook lacks", {"B_COUNTRY": "999"}, "out_of_range_demographic", "B_COUNTRY=999"),
    Row("sex code 3", {"Q260": "3"}, "out_of_range_demographic", "Q260=3"),
    Row("value code off the scale", {"Q1": "7"}, cell=("Q1", "7")),
    Row("off-scale code kept as written", {"Q1": " 9 "}, cell=("Q1", " 9 ")),
    Row(
        "negative code of 20 digits keeps its text",
        {"Q1": "-99999999999999999999"},
        cell=("Q1", "-99999999999999999999"),
    ),
    Row("negative code no codebook lists", {"Q1": "-7"}, cell=("Q1", "-7")),
    Row("missing code -5 is no answer", {"Q1": "-5"}, answers={"Q1": None}),
    Row("age at the top of the range", {"Q262": "120"}, participant={"age": 120}),
    Row("weight that is text", {"W_WEIGHT": "heavy"}, "non_numeric_weight", "W_WEIGHT=heavy"),
    Row("weight beyond a double", {"W_WEIGHT": "1e999"}, "non_numeric_weight", "W_WEIGHT=1e999"),
    Row("blank weight is no weight", {"W_WEIGHT": ""}, participant={"weight": None}),
    Row(
        "one field short",
        reason="wrong_field_count",
        raw_value=f"{WIDTH - 1} fields, header has {WIDTH}",
        shape="drop_last",
    ),
    Row(
        "one field too many",
        reason="wrong_field_count",
        raw_value=f"{WIDTH + 1} fields, header has {WIDTH}",
        shape="extra_field",
    ),
    Row("quoted code", {"Q1": '"3"'}, answers={"Q1": 3}),
    Row("padded code", {"Q2": " 2 "}, answers={"Q2": 2}),
    Row("leading zeros", {"Q3": "003"}, answers={"Q3": 3}),
    Row("quoted separator", {"Q223_LOCAL": '"Party A, B"', "Q4": "1"}, answers={"Q4": 1}),
    Row("doubled quotes", {"Q223_LOCAL": '"say ""hi"""', "Q4": "2"}, answers={"Q4": 2}),
    Row("line break inside quotes", {"Q223_LOCAL": '"line one\nline two"', "Q4": "3"}, answers={"Q4": 3}),
    Row("unclosed quote mid-file", {"Q223_LOCAL": '"never closed'}, "malformed_quote", "quoted field not closed: "),
    Row("blank line inside quotes", {"Q223_LOCAL": '"a\n\nb"', "Q4": "4"}, answers={"Q4": 4}),
    Row("text after a closing quote", {"Q223_LOCAL": '"ab"c'}, "malformed_quote", 'text after a closing quote: "ab"c'),
    Row("quoted id", {"D_INTERVIEW": '"900000777"'}, participant={"d_interview": 900000777}),
    Row("duplicate id, first copy", {"D_INTERVIEW": DUPLICATE_ID}, "duplicate_d_interview", DUPLICATE_ID),
    Row("duplicate id, second copy", {"D_INTERVIEW": DUPLICATE_ID}, "duplicate_d_interview", DUPLICATE_ID),
]


def case_record(case: Row, header: list[str], fields: list[str]) -> str:
    fields = list(fields)
    for name, text in case.cells.items():
        fields[header.index(name)] = text
    raw = {header.index(name) for name in case.cells}
    if case.shape == "drop_last":
        fields = fields[:-1]
    elif case.shape == "extra_field":
        fields = fields + ["1"]
    return record(fields, raw)


@pytest.fixture(scope="module")
def combined(base, tmp_path_factory, spark):
    """One raw file: each case on a row of its own (with a blank line after the first),
    the rest of the valid rows untouched; built once through the CLI."""
    header, rows = base
    assert len(header) == WIDTH
    directory = tmp_path_factory.mktemp("combined")
    texts, line, sources = [], 2, {}
    for i, fields in enumerate(rows):
        text = case_record(ROWS[i], header, fields) if i < len(ROWS) else record(fields)
        if i < len(ROWS):
            sources[ROWS[i].name] = line - 1
        texts.append(text)
        line += text.count("\n") + 1
        if i == 0:
            texts.append("")  # a blank line is not a record
            line += 1
    raw = write_lines(directory / "wvs.csv", header, texts)
    warehouse = str(directory / "warehouse")
    code = cli.main(["build", "--raw", raw, "--warehouse", warehouse, *OFFLINE])
    assert code == 0
    ids = {ROWS[i].name: int(rows[i][header.index("D_INTERVIEW")]) for i in range(len(ROWS))}
    return {
        "warehouse": warehouse,
        "sources": sources,
        "ids": ids,
        "quarantine": delta_frame(warehouse, "quarantine"),
        "participants": delta_frame(warehouse, "participants"),
        "examples": delta_frame(warehouse, "examples"),
    }


def test_combined_file_counts_reconcile(combined):
    """Every record is a participant or a quarantined row, with the reasons the cases say."""
    quarantine, participants = combined["quarantine"], combined["participants"]
    rows = quarantine[quarantine.question_id.isna()]
    expected = pd.Series([c.reason for c in ROWS if c.reason]).value_counts().sort_index()
    assert rows.reason.value_counts().sort_index().to_dict() == expected.to_dict()
    accepted_cases = sum(1 for c in ROWS if c.reason is None)
    assert len(participants) == accepted_cases + (BASE_ROWS - len(ROWS))
    assert len(participants) + len(rows) == BASE_ROWS  # records read: the blank line is none


@pytest.mark.parametrize("case", ROWS, ids=lambda c: c.name)
def test_raw_row_case(combined, case):
    source_row = combined["sources"][case.name]
    quarantine, participants = combined["quarantine"], combined["participants"]
    refused = quarantine[(quarantine.source_row == source_row) & quarantine.question_id.isna()]
    person = participants[participants.source_row == source_row]
    if case.reason:
        assert list(refused.reason) == [case.reason] and person.empty
        assert refused.raw_value.iloc[0].startswith(case.raw_value)
        return
    assert refused.empty and len(person) == 1
    d_interview = int(person.d_interview.iloc[0])
    expected_id = case.participant.get("d_interview", combined["ids"][case.name])
    assert d_interview == expected_id
    for column, value in case.participant.items():
        got = person[column].iloc[0]
        assert pd.isna(got) if value is None else got == value, column
    examples = combined["examples"]
    for question, answer in case.answers.items():
        hit = examples[(examples.d_interview == d_interview) & (examples.question_id == question)]
        assert list(hit.answer) == ([] if answer is None else [answer]), question
    cells = quarantine[(quarantine.source_row == source_row) & quarantine.question_id.notna()]
    expected_cells = [case.cell] if case.cell else []
    assert list(zip(cells.question_id, cells.raw_value)) == expected_cells
    assert (cells.reason == "out_of_range").all()


def test_record_after_a_quoted_line_break_keeps_its_own_line(combined, base):
    """The record after a two-line record starts on its own line with its own id."""
    header, rows = base
    position = [c.name for c in ROWS].index("line break inside quotes")
    next_source = combined["sources"][ROWS[position + 1].name]
    assert next_source == combined["sources"]["line break inside quotes"] + 2
    quarantine = combined["quarantine"]
    assert quarantine[quarantine.source_row == next_source].reason.tolist() == ["malformed_quote"]
    assert quarantine[quarantine.source_row == next_source].d_interview.tolist() == [
        int(rows[position + 1][header.index("D_INTERVIEW")])
    ]


# --------------------------------------------------------------------------- raw: whole files


def parse_file(spark, path: str) -> pd.DataFrame:
    """The build's parse of one file (no tables written): one row per record."""
    header, separator = ingest.read_header(path)
    ingest.check_columns(header)
    lines = ingest.read_lines(spark, path, separator)
    parsed = ingest.flag_duplicate_ids(ingest.parse_lines(lines, header, separator, os.path.basename(path)))
    return (
        parsed.select("source_row", "d_interview", "reject_reason", "reject_value")
        .toPandas()
        .sort_values("source_row")
        .reset_index(drop=True)
    )


def small(base, n=12):
    header, rows = base
    return header, [list(r) for r in rows[:n]]


def ids_of(header, rows):
    return [int(r[header.index("D_INTERVIEW")]) for r in rows]


def _gzip(path, text):
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)


def _bz2(path, text):
    with bz2.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)


def plain_text(header, rows, newline="\n", sep=","):
    return newline.join([sep.join(header), *[record(r, sep=sep) for r in rows]]) + newline


def file_plain(path, header, rows):
    path = path / "wvs.csv"
    path.write_text(plain_text(header, rows), encoding="utf-8")
    return path, rows, {}


def file_gzip(path, header, rows):
    path = path / "wvs.csv.gz"
    _gzip(path, plain_text(header, rows))
    return path, rows, {}


def file_bz2(path, header, rows):
    path = path / "wvs.csv.bz2"
    _bz2(path, plain_text(header, rows))
    return path, rows, {}


def file_crlf(path, header, rows):
    path = path / "wvs.csv"
    path.write_bytes(plain_text(header, rows, newline="\r\n").encode())
    return path, rows, {}


def file_bom(path, header, rows):
    path = path / "wvs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + plain_text(header, rows).encode())
    return path, rows, {}


def file_official_layout(path, header, rows):
    """v6-like: semicolons, quoted strings and extra quoted columns in front."""
    wide = [["version", "doi", *header]] + [["6-0-0 (2024-01-01)", "doi.org/10.14281/18241.24", *r] for r in rows]
    lines = [";".join('"' + f + '"' if not f.lstrip("-").replace(".", "").isdigit() else f for f in r) for r in wide]
    path = path / "wvs.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, rows, {}


def file_crlf_break_inside_quotes(path, header, rows):
    rows = [list(r) for r in rows]
    rows[3][header.index("Q223_LOCAL")] = "first\r\nsecond"
    path = path / "wvs.csv"
    path.write_bytes(plain_text(header, rows, newline="\r\n").encode())
    return path, rows, {}


def file_three_line_field(path, header, rows):
    rows = [list(r) for r in rows]
    rows[5][header.index("Q223_LOCAL")] = 'one\ntwo "2"\nthree'
    path = path / "wvs.csv"
    path.write_text(plain_text(header, rows), encoding="utf-8")
    return path, rows, {}


def file_unclosed_quote_last_field(path, header, rows):
    """An opening quote in the last field of the last line, never closed."""
    text = plain_text(header, rows).rstrip("\n")
    cut = text.rindex(",") + 1
    text = text[:cut] + '"' + text[cut:]
    path = path / "wvs.csv"
    path.write_text(text, encoding="utf-8")
    return path, rows, {len(rows): "malformed_quote"}


def file_truncated_last_line(path, header, rows):
    text = plain_text(header, rows).rstrip("\n")
    text = text[: text.rindex("\n") + 200]
    path = path / "wvs.csv"
    path.write_text(text, encoding="utf-8")
    return path, rows, {len(rows): "wrong_field_count"}


def file_blank_lines(path, header, rows):
    lines = plain_text(header, rows).split("\n")
    text = "\n".join(lines[:4] + ["", "   "] + lines[4:]) + "\n\n"
    path = path / "wvs.csv"
    path.write_text(text, encoding="utf-8")
    return path, rows, {}


def file_unclosed_then_line_break(path, header, rows):
    """A stray quote must not swallow the next record, nor break a later quoted line break."""
    rows = [list(r) for r in rows]
    rows[2][header.index("Q223_LOCAL")] = "MARK"
    rows[6][header.index("Q223_LOCAL")] = "a\nb"
    text = plain_text(header, rows).replace("MARK", '"stray')
    path = path / "wvs.csv"
    path.write_text(text, encoding="utf-8")
    return path, rows, {3: "malformed_quote"}


FILE_CASES = [
    file_plain,
    file_gzip,
    file_bz2,
    file_crlf,
    file_bom,
    file_official_layout,
    file_crlf_break_inside_quotes,
    file_three_line_field,
    file_unclosed_quote_last_field,
    file_truncated_last_line,
    file_blank_lines,
    file_unclosed_then_line_break,
]


@pytest.mark.parametrize("make", FILE_CASES, ids=lambda f: f.__name__)
def test_raw_file_case(spark, base, tmp_path, make):
    """One record per data row; the rows named refused with their reason (1-based data
    row -> reason), every other row a respondent with its own id."""
    header, rows = small(base)
    path, rows, refused = make(tmp_path, header, rows)
    parsed = parse_file(spark, str(path))
    assert len(parsed) == len(rows)
    reasons = {int(r.source_row): r.reject_reason for r in parsed.itertuples() if r.reject_reason}
    assert reasons == refused
    accepted = parsed[parsed.reject_reason.isna()]
    expected_ids = [i for n, i in enumerate(ids_of(header, rows), start=1) if n not in refused]
    assert sorted(accepted.d_interview.astype(int)) == sorted(expected_ids)


def test_unclosed_quote_names_its_text(spark, base, tmp_path):
    header, rows = small(base, 3)
    path, _, _ = file_unclosed_quote_last_field(tmp_path, header, rows)
    parsed = parse_file(spark, str(path))
    assert parsed.reject_value.iloc[-1] == 'quoted field not closed: "' + rows[-1][-1]
    assert parsed.d_interview.iloc[-1] == ids_of(header, rows)[-1]


# --------------------------------------------------------------------------- raw: refusals


def refuse_missing(tmp, header, rows):
    return tmp / "absent.csv", "raw file not found"


def refuse_directory(tmp, header, rows):
    (tmp / "dir.csv").mkdir()
    return tmp / "dir.csv", "is a directory, not a file"


def refuse_empty(tmp, header, rows):
    (tmp / "wvs.csv").write_text("")
    return tmp / "wvs.csv", "is empty"


def refuse_blank_first_line(tmp, header, rows):
    (tmp / "wvs.csv").write_text("\n" + plain_text(header, rows))
    return tmp / "wvs.csv", "starts with a blank line where its header should be"


def refuse_missing_column(tmp, header, rows):
    keep = [i for i, name in enumerate(header) if name != "Q1"]
    (tmp / "wvs.csv").write_text(plain_text([header[i] for i in keep], [[r[i] for i in keep] for r in rows]))
    return tmp / "wvs.csv", "raw file lacks 1 required column(s): Q1"


def refuse_repeated_column(tmp, header, rows):
    (tmp / "wvs.csv").write_text(plain_text(header + ["Q1"], [r + ["1"] for r in rows]))
    return tmp / "wvs.csv", "raw file header repeats column(s): Q1"


def refuse_bad_header_quote(tmp, header, rows):
    (tmp / "wvs.csv").write_text('"version,' + plain_text(header, rows))
    return tmp / "wvs.csv", "the header line is not valid CSV"


def refuse_gzip_named_csv(tmp, header, rows):
    _gzip(tmp / "wvs.csv", plain_text(header, rows))
    return tmp / "wvs.csv", "is gzip-compressed but its name does not end in .gz"


def refuse_zip(tmp, header, rows):
    with zipfile.ZipFile(tmp / "wvs.zip", "w") as archive:
        archive.writestr("wvs.csv", plain_text(header, rows))
    return tmp / "wvs.zip", "is zip-compressed, which the build does not read"


def refuse_xz(tmp, header, rows):
    (tmp / "wvs.csv.xz").write_bytes(lzma.compress(plain_text(header, rows).encode()))
    return tmp / "wvs.csv.xz", "is xz-compressed"


def refuse_named_gz_but_plain(tmp, header, rows):
    (tmp / "wvs.csv.gz").write_text(plain_text(header, rows))
    return tmp / "wvs.csv.gz", "is named .gz but is not gzip-compressed"


def refuse_truncated_gzip(tmp, header, rows):
    _gzip(tmp / "full.gz", plain_text(header, rows))
    whole = (tmp / "full.gz").read_bytes()
    (tmp / "wvs.csv.gz").write_bytes(whole[: len(whole) // 2])
    return tmp / "wvs.csv.gz", "is not a complete gzip stream"


RAW_REFUSALS = [
    refuse_missing,
    refuse_directory,
    refuse_empty,
    refuse_blank_first_line,
    refuse_missing_column,
    refuse_repeated_column,
    refuse_bad_header_quote,
    refuse_gzip_named_csv,
    refuse_zip,
    refuse_xz,
    refuse_named_gz_but_plain,
    refuse_truncated_gzip,
]


@pytest.fixture
def no_parse(monkeypatch):
    """Fail the test if the build gets as far as reading data lines."""

    def parse_called(*args, **kwargs):
        raise AssertionError("the refusal came after the parse started")

    monkeypatch.setattr(ingest, "read_lines", parse_called)


@pytest.mark.parametrize("make", RAW_REFUSALS, ids=lambda f: f.__name__)
def test_raw_refusal(base, tmp_path, capsys, no_parse, make):
    header, rows = small(base, 3)
    raw, expected = make(tmp_path, header, rows)
    warehouse = tmp_path / "warehouse"
    code, out, err = build_cli(raw, warehouse, capsys)
    assert_one_line_refusal(code, err, "build", expected)
    assert not warehouse.exists()


def warehouse_is_a_file(tmp):
    (tmp / "warehouse").write_text("not a directory")
    return tmp / "warehouse", "is not a directory"


def warehouse_under_a_file(tmp):
    (tmp / "parent").write_text("a file")
    return tmp / "parent" / "warehouse", "cannot create warehouse"


def warehouse_table_is_a_file(tmp):
    (tmp / "warehouse").mkdir()
    (tmp / "warehouse" / "quarantine").write_text("a file")
    return tmp / "warehouse", "quarantine is not a directory"


@pytest.mark.parametrize(
    "make", [warehouse_is_a_file, warehouse_under_a_file, warehouse_table_is_a_file], ids=lambda f: f.__name__
)
def test_warehouse_refused_before_the_parse(base, tmp_path, capsys, no_parse, make):
    header, rows = small(base, 3)
    raw, _, _ = file_plain(tmp_path, header, rows)
    warehouse, expected = make(tmp_path)
    before = tree(tmp_path)
    code, out, err = build_cli(raw, warehouse, capsys)
    assert_one_line_refusal(code, err, "build", expected)
    assert tree(tmp_path) == before


def test_unwritable_warehouse_refused_before_the_parse(base, tmp_path, capsys, no_parse, monkeypatch):
    """As root every directory is writable, so the OS's answer is simulated."""
    header, rows = small(base, 3)
    raw, _, _ = file_plain(tmp_path, header, rows)
    (tmp_path / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        preflight.os, "access", lambda p, mode: False if str(p) == str(tmp_path / "locked") else real_access(p, mode)
    )
    code, out, err = build_cli(raw, tmp_path / "locked", capsys)
    assert_one_line_refusal(code, err, "build", "is not writable")
    code, out, err = build_cli(raw, tmp_path / "locked" / "new", capsys)
    assert_one_line_refusal(code, err, "build", "cannot create warehouse")


def test_unreadable_raw_file_refused_before_the_parse(base, tmp_path, capsys, no_parse, monkeypatch):
    """As root every file is readable, so the OS's answer is simulated."""
    header, rows = small(base, 3)
    raw, _, _ = file_plain(tmp_path, header, rows)
    real_open = Path.open

    def open_unless_raw(self, *args, **kwargs):
        if str(self) == str(raw):
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_unless_raw)
    code, out, err = build_cli(raw, tmp_path / "warehouse", capsys)
    assert_one_line_refusal(code, err, "build", f"cannot read raw file {raw}: Permission denied")
    assert not (tmp_path / "warehouse").exists()


@pytest.mark.parametrize("rows_kept", [0, 2], ids=["header only", "every row refused"])
def test_no_usable_rows_is_one_line(spark, base, tmp_path, capsys, rows_kept):
    header, rows = small(base, rows_kept)
    for fields in rows:
        fields[header.index("Q1")] = "DK"
    raw, _, _ = file_plain(tmp_path, header, rows)
    code, out, err = build_cli(raw, tmp_path / "warehouse", capsys)
    assert_one_line_refusal(code, err, "build", f"no usable respondent rows in {raw} ({rows_kept} rows read")


def test_quoted_spans_pairing():
    """Hand-made (line, opens, closes) lists: opener joined with the next odd line only if
    it closes and is near enough; everything else alone."""
    assert ingest.quoted_spans([]) == []
    assert ingest.quoted_spans([(5, True, False), (6, False, True)]) == [(5, 6)]
    assert ingest.quoted_spans([(5, True, False), (9, True, False), (10, False, True)]) == [(9, 10)]
    assert ingest.quoted_spans([(5, False, True), (6, True, False)]) == []
    far = 5 + ingest.MAX_RECORD_LINES
    assert ingest.quoted_spans([(5, True, False), (far, False, True)]) == []
    assert ingest.quoted_spans([(5, True, False), (far - 1, False, True)]) == [(5, far - 1)]


def test_demographic_codes_fit_the_narrow_columns():
    """Every code a demographic check accepts fits the int columns of participants, and
    every demographic has codes or a range beyond the missing codes."""
    for name in ingest.demographic_columns():
        codes, bounds = ingest.demographic_rule(name)
        extremes = list(codes) + (list(bounds) if bounds else [])
        assert -(2**31) <= min(extremes) and max(extremes) < 2**31, name
        assert bounds is not None or (codes >= 0).any(), name


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Prediction:
    """A row of a predictions TSV for Q1 (scale 1-4): the participant id's text ({id}
    stands for an accepted respondent's id, {exp} for it in exponent form) and the score."""

    name: str
    participant: str
    score: str
    status: str


PREDICTIONS = [
    Prediction("whole number", "{id}", "3", "valid"),
    Prediction("spaces around", "{id}", " 3 ", "valid"),
    Prediction("plus sign", "{id}", "+3", "valid"),
    Prediction("zero fraction", "{id}", "3.0", "valid"),
    Prediction("exponent", "{id}", "3e0", "valid"),
    Prediction("leading dot", "{id}", ".5", "non_integer"),
    Prediction("fraction", "{id}", "2.5", "non_integer"),
    Prediction("Java double suffix", "{id}", "2d", "non_numeric"),
    Prediction("Java float suffix", "{id}", "3f", "non_numeric"),
    Prediction("hexadecimal float", "{id}", "0x1p1", "non_numeric"),
    Prediction("digit separator", "{id}", "1_0", "non_numeric"),
    Prediction("inf", "{id}", "inf", "non_numeric"),
    Prediction("Infinity", "{id}", "Infinity", "non_numeric"),
    Prediction("NaN", "{id}", "NaN", "non_numeric"),
    Prediction("overflow", "{id}", "1e999", "non_numeric"),
    Prediction("Arabic-Indic digit", "{id}", "\u0663", "non_numeric"),
    Prediction("decimal comma", "{id}", "2,5", "non_numeric"),
    Prediction("word", "{id}", "three", "non_numeric"),
    Prediction("off the scale", "{id}", "7", "out_of_range"),
    Prediction("negative", "{id}", "-1", "out_of_range"),
    Prediction("blank", "{id}", "", "missing"),
    Prediction("id with a d suffix", "{id}d", "3", "unknown_participant"),
    Prediction("id in exponent form", "{exp}", "3", "unknown_participant"),
    Prediction("id with a plus sign", "+{id}", "3", "unknown_participant"),
    Prediction("id with a minus sign", "-{id}", "3", "unknown_participant"),
    Prediction("id with a fraction", "{id}.5", "3", "unknown_participant"),
    Prediction("id of 20 digits", "99999999999999999999", "3", "unknown_participant"),
    Prediction("id with .0", "{id}.0", "3", "valid"),
    Prediction("id with spaces", " {id} ", "3", "valid"),
]


def exponent_form(number: int) -> str:
    """818070001 -> '8.18070001E8', as a float-minded spreadsheet writes it."""
    digits = str(number)
    return f"{digits[0]}.{digits[1:]}E{len(digits) - 1}"


def import_cli(warehouse: str, model: str, path, capsys, fmt: str = "auto") -> tuple[int, str, str]:
    code = cli.main(
        [
            "predictions",
            "import",
            "--warehouse",
            warehouse,
            "--model",
            model,
            "--file",
            str(path),
            "--format",
            fmt,
            *OFFLINE,
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def imported(warehouse: str, model: str) -> dict[str, pd.Series]:
    """source -> row of the model's predictions."""
    frame = delta_frame(warehouse, "predictions")
    return {r.source: r for r in frame[frame.model == model].itertuples()}


@pytest.fixture(scope="module")
def accepted_ids(combined):
    return sorted(int(i) for i in combined["participants"].d_interview)


@pytest.fixture(scope="module")
def score_import(combined, accepted_ids, tmp_path_factory):
    """All score cases in one TSV, each on its own respondent, imported once."""
    assert len(accepted_ids) >= len(PREDICTIONS)
    lines = ["QUESTION_ID\tPARTICIPANT_ID\tSCORE"]
    for case, person in zip(PREDICTIONS, accepted_ids):
        lines.append(f"Q1\t{case.participant.format(id=person, exp=exponent_form(person))}\t{case.score}")
    path = tmp_path_factory.mktemp("predictions") / "scores.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = cli.main(
        [
            "predictions",
            "import",
            "--warehouse",
            combined["warehouse"],
            "--model",
            "scores",
            "--file",
            str(path),
            *OFFLINE,
        ]
    )
    assert code == 0
    return imported(combined["warehouse"], "scores")


@pytest.mark.parametrize("number,case", list(enumerate(PREDICTIONS, start=1)), ids=[c.name for c in PREDICTIONS])
def test_prediction_score_case(score_import, number, case):
    row = score_import[f"scores.tsv:{number}"]
    assert row.status == case.status
    assert row.raw_score == (case.score or None)  # an empty cell is read as null


def test_prediction_jsonl_cases(combined, accepted_ids, tmp_path, capsys):
    """Ids in JSON: a signed string and an exponent-form number are no respondents; a
    score of 1e999 is no number."""
    first, second, third, fourth = accepted_ids[:4]
    lines = [
        {"custom_id": f"wvb-Q1-{first}-wd", "content": "3"},
        {"question_id": "Q1", "participant_id": f"+{second}", "text": "3"},
        '{"question_id": "Q1", "participant_id": ' + exponent_form(third) + ', "text": "3"}',
        {"question_id": "Q1", "participant_id": fourth, "text": '{"answer as a score": 1e999}'},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    code, out, err = import_cli(combined["warehouse"], "jsonl-cases", path, capsys)
    assert code == 0, err
    rows = imported(combined["warehouse"], "jsonl-cases")
    assert [rows[f"answers.jsonl:{n}"].status for n in (1, 2, 3, 4)] == [
        "valid",
        "unknown_participant",
        "unknown_participant",
        "non_numeric",
    ]


def test_prediction_distribution_cases(combined, accepted_ids, tmp_path, capsys):
    """Probability cells follow the same number syntax; blank cells are probability 0."""
    cells = [
        ("0.5", "0.5", "0", "0", "valid"),
        ("0.5", "2d", "0", "0", "non_numeric"),
        ("0.5", "0x1p1", "0", "0", "non_numeric"),
        ("0.5", "1_0", "0", "0", "non_numeric"),
        ("0.5", "inf", "0", "0", "non_numeric"),
        ("1", "", "", "", "valid"),
        ("", "", "", "", "missing"),
    ]
    lines = ["QUESTION_ID,PARTICIPANT_ID,P1,P2,P3,P4"]
    lines += [f"Q1,{person}," + ",".join(c[:4]) for c, person in zip(cells, accepted_ids)]
    path = tmp_path / "dists.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = import_cli(combined["warehouse"], "dist-cases", path, capsys)
    assert code == 0, err
    rows = imported(combined["warehouse"], "dist-cases")
    assert [rows[f"dists.csv:{n}"].status for n in range(1, len(cells) + 1)] == [c[4] for c in cells]


PREDICTION_REFUSALS = [
    ("null partition name", "__HIVE_DEFAULT_PARTITION__", "ok", "is the name Spark gives a null partition"),
    ("path separator", "org/model", "ok", "cannot name a partition"),
    ("partition syntax", "a=b", "ok", "cannot name a partition"),
    ("line break", "a\nb", "ok", "cannot name a partition"),
    ("blank name", "  ", "ok", "--model must not be empty"),
    ("too long", "m" * 201, "ok", "at most 200 bytes"),
    ("missing file", "fine", "absent", "predictions file not found"),
    ("file is a directory", "fine", "directory", "is a directory, not a file"),
]


@pytest.mark.parametrize("name,model,file,expected", PREDICTION_REFUSALS, ids=[c[0] for c in PREDICTION_REFUSALS])
def test_prediction_refused_before_spark(combined, tmp_path, capsys, monkeypatch, name, model, file, expected):
    """One line, exit 2, before Spark is asked for, and the warehouse left as it was."""
    from wvb_spark.core import session

    monkeypatch.setattr(session, "get_spark", lambda *a, **k: pytest.fail("Spark was started"))
    path = tmp_path / "ok.tsv"
    path.write_text("QUESTION_ID\tPARTICIPANT_ID\tSCORE\nQ1\t1\t3\n")
    if file == "directory":
        (tmp_path / "directory").mkdir()
    target = {"ok": path, "absent": tmp_path / "absent.tsv", "directory": tmp_path / "directory"}[file]
    before = tree(combined["warehouse"])
    code, out, err = import_cli(combined["warehouse"], model, target, capsys)
    assert_one_line_refusal(code, err, "predictions", expected)
    assert tree(combined["warehouse"]) == before


@pytest.mark.parametrize(
    "content,expected",
    [
        ("", "is empty"),
        ("QUESTION_ID\tPARTICIPANT_ID\n", "missing column(s) SCORE"),
        ("QUESTION_ID\tPARTICIPANT_ID\tSCORE\n", "holds no prediction rows"),
    ],
    ids=["empty file", "no SCORE column", "header only"],
)
def test_prediction_file_refused(combined, tmp_path, capsys, content, expected):
    path = tmp_path / "model.tsv"
    path.write_text(content)
    before = tree(combined["warehouse"])
    code, out, err = import_cli(combined["warehouse"], "refused", path, capsys)
    assert_one_line_refusal(code, err, "predictions", expected)
    assert tree(combined["warehouse"]) == before


@pytest.mark.parametrize("make", ["file", "no tables"])
def test_prediction_warehouse_refused(tmp_path, capsys, make):
    path = tmp_path / "model.tsv"
    path.write_text("QUESTION_ID\tPARTICIPANT_ID\tSCORE\nQ1\t1\t3\n")
    warehouse = tmp_path / "warehouse"
    if make == "file":
        warehouse.write_text("a file")
    else:
        warehouse.mkdir()
    code, out, err = import_cli(str(warehouse), "fine", path, capsys)
    expected = "is not a directory" if make == "file" else "no questions table in"
    assert_one_line_refusal(code, err, "predictions", expected)


# --------------------------------------------------------------------------- property: mutated cells

PROPERTY_ROWS = 6
MUTABLE = ["D_INTERVIEW", "B_COUNTRY", "Q260", "Q262", "Q1", "Q56", "Q111", "W_WEIGHT", "Q223_LOCAL"]
CELL_TEXTS = st.one_of(
    st.integers(-(10**21), 10**21).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "-1",
            "-4",
            "-7",
            "0",
            "3",
            " 3 ",
            "003",
            "4294967343",
            "99999999999999999999",
            "1.5",
            "+3",
            "1e999",
            "DK",
            '"',
            '""',
            '"3"',
            '"a',
            'a"b',
            "a,b",
            "x\ny",
            "a\n\nb",
        ]
    ),
    st.text(alphabet='0123456789-+.e ,"\nab', max_size=6),
)
# (row, column, new text, written raw: as given, quotes and line breaks included)
MUTATIONS = st.lists(
    st.tuples(st.integers(0, PROPERTY_ROWS - 1), st.sampled_from(MUTABLE), CELL_TEXTS, st.booleans()),
    min_size=1,
    max_size=4,
)


def mutated_file(path, header, rows, mutations) -> str:
    rows = [list(r) for r in rows[:PROPERTY_ROWS]]
    raw = [set() for _ in rows]
    for row, column, text, as_given in mutations:
        rows[row][header.index(column)] = text
        if as_given:
            raw[row].add(header.index(column))
    return write_lines(path, header, [record(fields, positions) for fields, positions in zip(rows, raw)])


def run_build_transforms(spark, path: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(records, participants, examples) as the build makes them, without writing tables."""
    header, separator = ingest.read_header(path)
    lines = ingest.read_lines(spark, path, separator)
    parsed = ingest.flag_duplicate_ids(ingest.parse_lines(lines, header, separator, "wvs.csv")).persist()
    try:
        records = parsed.select(
            "source_row", "d_interview", "reject_reason", "reject_value", "out_of_range_positions", "out_of_range_codes"
        ).toPandas()
        accepted = parsed.where(parsed.reject_reason.isNull()).drop("reject_reason", "reject_value")
        respondents = splits.assign_hash_split(accepted, "wvb", (0.7, 0.15, 0.15))
        participants = build.participants_table(respondents, build.label_maps_frame(spark)).toPandas()
        examples = build.examples_table(respondents).toPandas()
    finally:
        parsed.unpersist()
    return records, participants, examples


def record_texts(lines: list[str], sources: list[int]) -> dict[int, str]:
    """Each record's text: from its first line to the line before the next record's,
    blank lines at its end left out (file lines numbered from 1, the header being 1)."""
    starts = sorted(s + 1 for s in sources)
    out = {}
    for start, end in zip(starts, starts[1:] + [len(lines) + 1]):
        piece = lines[start - 1 : end - 1]
        while piece and not piece[-1].strip(" "):
            piece.pop()
        out[start - 1] = "\n".join(piece)
    return out


def one_record(text: str) -> list[str] | None:
    """The fields of `text` if Python's csv module (strict) reads exactly one record."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def expected_answers(fields: list[str], header: list[str]) -> dict[str, int]:
    """Answers of one accepted record, from the codebook's scales and adjustments."""
    out = {}
    for question in metadata.value_question_ids():
        code = int(fields[header.index(question)].strip())
        info = metadata.questions()[question]
        adjustment = metadata.answer_adjustments().get(question, {})
        answer = adjustment.get(code, code) if code >= 0 else None
        if answer is not None and info.scale_min <= answer <= info.scale_max:
            out[question] = answer
    return out


def check_record_invariants(path: str, header: list[str], records, participants, examples) -> None:
    lines = open(path, encoding="utf-8", newline="").read().split("\n")
    sources = sorted(int(s) for s in records.source_row)
    assert len(set(sources)) == len(sources)
    non_blank = [n for n, line in enumerate(lines[1:], start=1) if line.strip(" ")]
    assert sources[:1] == non_blank[:1]  # the first data line starts a record
    texts = record_texts(lines, sources)
    assert len(participants) == records.reject_reason.isna().sum()  # rows read = participants + quarantined
    for record_row in records.itertuples():
        text = texts[int(record_row.source_row)]
        fields = one_record(text)
        if "\n" in text:  # lines joined into one record only when they form exactly one record
            assert fields is not None and len(fields) == len(header), text
        if record_row.reject_reason is None:
            check_accepted(record_row, fields, header, participants, examples)
        else:
            check_refused(record_row, text, fields, header)


def check_accepted(record_row, fields, header, participants, examples) -> None:
    """Every value in participants and examples is the file's."""
    assert fields is not None and len(fields) == len(header)
    person = participants[participants.source_row == record_row.source_row]
    assert len(person) == 1
    person = person.iloc[0]
    assert person.d_interview == int(fields[header.index("D_INTERVIEW")].strip())
    assert person.country_code == int(fields[header.index("B_COUNTRY")].strip())
    age = int(fields[header.index("Q262")].strip())
    assert (pd.isna(person.age) and age < 0) or person.age == age
    sex = {1: "Male", 2: "Female"}.get(int(fields[header.index("Q260")].strip()))
    assert (person.sex is None and sex is None) or person.sex == sex
    weight = fields[header.index("W_WEIGHT")].strip()
    assert (pd.isna(person.weight) and weight == "") or person.weight == float(weight)
    got = examples[examples.d_interview == person.d_interview]
    assert dict(zip(got.question_id, got.answer)) == expected_answers(fields, header)
    questions = metadata.value_question_ids()
    for position, code in zip(record_row.out_of_range_positions, record_row.out_of_range_codes):
        assert code == fields[header.index(questions[position])]


def check_refused(record_row, text, fields, header) -> None:
    """The raw_value of a refused record is text of the file."""
    reason, value = record_row.reject_reason, record_row.reject_value
    if reason in ("non_numeric_code", "out_of_range_demographic", "non_numeric_weight"):
        column, cell = value.split("=", 1)
        assert fields is not None and fields[header.index(column)] == cell
    elif reason == "bad_d_interview":
        assert fields is not None and fields[header.index("D_INTERVIEW")] == value
    elif reason == "duplicate_d_interview":
        assert fields is not None and int(fields[header.index("D_INTERVIEW")].strip()) == int(value)
    elif reason == "malformed_quote":
        assert fields is None and value.split(": ", 1)[1].rstrip("…") in text
    else:
        assert reason == "wrong_field_count"
        assert value == f"{len(next(csv.reader([text])))} fields, header has {len(header)}"


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutations=MUTATIONS)
def test_mutated_cells_keep_the_invariants(spark, base, tmp_path_factory, mutations):
    """Whatever is written into a few cells (quoted properly or as given): no traceback,
    every line belongs to exactly one record, each record is a participant or a
    quarantined row, and every value in the tables or the quarantine is the file's."""
    header, rows = base
    path = mutated_file(tmp_path_factory.mktemp("mutated") / "wvs.csv", header, rows, mutations)
    records, participants, examples = run_build_transforms(spark, path)
    check_record_invariants(path, header, records, participants, examples)
