"""The build job on a small synthetic file with injected faults, checked against
independent pandas computations on the same raw file."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from wvb_spark import cli
from wvb_spark.core import config as wvb_config
from wvb_spark.core import metadata
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages import build
from wvb_spark.stages.synth import write_synthetic_wvs

RESPONDENTS = 1200
ROW_FAULTS = {
    "duplicate_d_interview": "duplicate_d_interview",
    "missing_field": "wrong_field_count",
    "non_numeric_code": "non_numeric_code",
}


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("raw") / "wvs.csv"
    write_synthetic_wvs(str(path), respondents=RESPONDENTS, seed=11, inject_faults=True)
    return str(path)


@pytest.fixture(scope="module")
def faults(raw_file):
    with open(raw_file + ".faults.json", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def config():
    return wvb_config.load(None, ["storage.writer=offline"])


@pytest.fixture(scope="module")
def warehouse(spark, raw_file, config, tmp_path_factory):
    location = str(tmp_path_factory.mktemp("warehouse"))
    report = build.run_build(spark, config, raw_file, location)
    return location, report


def _fault_list(faults):
    return faults["faults"] if isinstance(faults, dict) else faults


def _raw_frame(raw_file, faults):
    """The raw file in pandas, without the rows the manifest says are broken."""
    broken_rows = {f["row"] for f in _fault_list(faults) if f["kind"] in ROW_FAULTS}
    frame = pd.read_csv(raw_file, dtype=str, keep_default_na=False, on_bad_lines="skip", engine="python")
    with open(raw_file, encoding="utf-8") as handle:
        n_lines = sum(1 for line in handle if line.strip()) - 1
    frame["_row"] = np.arange(1, len(frame) + 1)
    if len(frame) != n_lines:  # pandas skipped the short line: renumber from the file itself
        rows = []
        with open(raw_file, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split(",")
            for number, line in enumerate(handle, start=1):
                if len(line.rstrip("\n").split(",")) == len(header):
                    rows.append(number)
        frame["_row"] = rows
    return frame[~frame["_row"].isin(broken_rows)].reset_index(drop=True), n_lines


def test_every_injected_fault_is_quarantined_with_its_reason(spark, warehouse, config, faults):
    location, _ = warehouse
    quarantine = Warehouse(spark, location, config).read("quarantine").toPandas()
    for fault in _fault_list(faults):
        if fault["kind"] in ROW_FAULTS:
            hit = quarantine[(quarantine.source_row == fault["row"]) & (quarantine.question_id.isna())]
            assert list(hit.reason) == [ROW_FAULTS[fault["kind"]]], fault
        else:
            hit = quarantine[(quarantine.source_row == fault["row"]) & (quarantine.question_id == fault["column"])]
            assert list(hit.reason) == ["out_of_range"], fault
            assert list(hit.raw_value) == [str(fault["raw_value"])]


def test_counts_reconcile_with_the_file(spark, warehouse, config, raw_file):
    location, report = warehouse
    with open(raw_file, encoding="utf-8") as handle:
        data_lines = sum(1 for line in handle if line.strip()) - 1
    participants = Warehouse(spark, location, config).read("participants").count()
    quarantine = Warehouse(spark, location, config).read("quarantine")
    quarantined_rows = quarantine.where("question_id is null").count()
    assert report.rows_read == data_lines
    assert report.participants == participants
    assert data_lines == participants + quarantined_rows
    assert report.reconciles()
    runs = Warehouse(spark, location, config).read("build_runs").toPandas()
    assert runs.rows_read.iloc[-1] == data_lines and runs.participants.iloc[-1] == participants


def test_missing_cells_by_code_equal_a_pandas_count(warehouse, raw_file, faults):
    _, report = warehouse
    frame, _ = _raw_frame(raw_file, faults)
    frame = frame[~frame["D_INTERVIEW"].duplicated(keep=False)]
    codes = frame[list(metadata.value_question_ids())].astype(int).to_numpy()
    for code in (-1, -2, -3, -4, -5):
        assert report.missing_cells[f"code_{code}"] == int((codes == code).sum()), code
    adjusted_away = sum(
        int((frame[q].astype(int) == old).sum())
        for q, mapping in metadata.answer_adjustments().items()
        for old, new in mapping.items()
        if new is None
    )
    assert report.missing_cells["adjusted_to_missing"] == adjusted_away > 0


def _expected_examples(frame: pd.DataFrame) -> pd.DataFrame:
    """Answered cells after adjustment, computed independently of the Spark job."""
    parts = []
    for qid in metadata.value_question_ids():
        q = metadata.questions()[qid]
        raw = frame[qid].astype(int)
        adjusted = raw.map(lambda v, m=metadata.answer_adjustments().get(qid, {}): m.get(v, v) if v in m else v)
        keep = (raw >= 0) & adjusted.notna() & adjusted.between(q.scale_min, q.scale_max)
        parts.append(
            pd.DataFrame(
                {
                    "d_interview": frame.loc[keep, "D_INTERVIEW"].astype(np.int64),
                    "question_id": qid,
                    "answer": adjusted[keep].astype(int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_examples_equal_an_independent_pandas_explode(spark, warehouse, config, raw_file, faults):
    location, report = warehouse
    frame, _ = _raw_frame(raw_file, faults)
    ids = frame["D_INTERVIEW"]
    frame = frame[~ids.duplicated(keep=False)]
    expected = _expected_examples(frame).sort_values(["d_interview", "question_id"]).reset_index(drop=True)
    got = (
        Warehouse(spark, location, config)
        .read("examples")
        .select("d_interview", "question_id", "answer")
        .toPandas()
        .sort_values(["d_interview", "question_id"])
        .reset_index(drop=True)
    )
    assert len(got) == len(expected) == report.examples
    pd.testing.assert_frame_equal(got.astype({"answer": int}), expected.astype({"answer": int}), check_dtype=False)


def test_paper_split_equals_an_independent_reimplementation(spark, warehouse, config, raw_file, faults):
    location, _ = warehouse
    frame, _ = _raw_frame(raw_file, faults)
    frame = frame[~frame["D_INTERVIEW"].duplicated(keep=False)]
    ids = frame["D_INTERVIEW"].astype(np.int64).tolist()  # file order
    order = list(range(len(ids)))
    random.Random(0).shuffle(order)
    n_train, n_test = int(0.7 * len(ids)), int(0.15 * len(ids))
    expected = {}
    for rank, position in enumerate(order):
        expected[ids[position]] = "train" if rank < n_train else "test" if rank < n_train + n_test else "valid"
    got = dict(
        Warehouse(spark, location, config)
        .read("participants")
        .select("d_interview", "split")
        .toPandas()
        .itertuples(index=False, name=None)
    )
    assert got == expected


def test_participants_carry_codebook_labels(spark, warehouse, config, raw_file, faults):
    location, _ = warehouse
    frame, _ = _raw_frame(raw_file, faults)
    frame = frame[~frame["D_INTERVIEW"].duplicated(keep=False)].set_index("D_INTERVIEW")
    participants = Warehouse(spark, location, config).read("participants").toPandas().set_index("d_interview")
    sample = participants.sample(50, random_state=1)
    for d_interview, row in sample.iterrows():
        raw = frame.loc[str(d_interview)]
        assert row["Q260"] == metadata.choices("Q260").get(raw["Q260"], raw["Q260"])
        assert row["country"] == metadata.choices("B_COUNTRY")[raw["B_COUNTRY"]]
        assert row["continent"] == metadata.country_continents()[row["country"]]
        q275 = metadata.choices("Q275").get(raw["Q275"])
        assert row["education_level"] == metadata.education_levels().get(q275)
        assert row["weight"] == pytest.approx(float(raw["W_WEIGHT"]))
        assert row["age"] == (int(raw["Q262"]) if int(raw["Q262"]) >= 0 else None) or pd.isna(row["age"])


def test_tables_are_delta_with_partitions_stats_and_versions(spark, warehouse, config, raw_file):
    location, report = warehouse
    path = os.path.join(location, "examples")
    table = DeltaTable(path)
    first_version = table.version()
    assert table.metadata().partition_columns == ["split"]
    adds = pa.table(table.get_add_actions(flatten=True)).to_pandas()
    assert set(adds["partition.split"]) == {"train", "test", "valid"}
    assert adds["num_records"].sum() == report.examples
    assert (adds["min.question_id"] <= adds["max.question_id"]).all()
    old_files = set(adds["path"])

    build.run_build(spark, config, raw_file, location)  # a rerun: new versions, old files removed
    rebuilt = DeltaTable(path)
    assert rebuilt.version() == first_version + 1
    log_file = os.path.join(path, "_delta_log", f"{rebuilt.version():020d}.json")
    with open(log_file, encoding="utf-8") as handle:
        actions = [json.loads(line) for line in handle if line.strip()]
    removed = {a["remove"]["path"] for a in actions if "remove" in a}
    assert {p.replace("%3D", "=") for p in removed} | removed >= old_files
    assert set(pa.table(rebuilt.get_add_actions(flatten=True)).to_pandas()["path"]).isdisjoint(old_files)
    old = Warehouse(spark, location, config).read("examples", version=first_version)
    assert old.count() == report.examples
    assert DeltaTable(path, version=first_version).to_pyarrow_table().num_rows == report.examples


def test_examples_files_are_sorted_and_hold_disjoint_ranges(warehouse):
    """The layout evaluate relies on: within a split, each file is sorted by (question_id,
    d_interview) and the files hold disjoint ranges of it (checked on the files, in pandas)."""
    location, _ = warehouse
    table = DeltaTable(os.path.join(location, "examples"))
    adds = pa.table(table.get_add_actions(flatten=True)).to_pandas()
    for split, files in adds.groupby("partition.split"):
        ranges = []
        for path in files["path"]:
            rows = pd.read_parquet(os.path.join(location, "examples", path.replace("%3D", "=")))
            keys = list(zip(rows["question_id"], rows["d_interview"]))
            assert keys == sorted(keys), (split, path)
            ranges.append((keys[0], keys[-1]))
        ranges.sort()
        assert all(earlier[1] < later[0] for earlier, later in zip(ranges, ranges[1:])), split
    assert len(adds) > 3  # the train split spans several files, so the ranges are tested


def test_the_one_long_order_key_sorts_as_split_question_and_id(spark):
    """Ids from 1 to 10^18 - 1 and every split: sorting the keyed rows on their one long
    gives pandas' order of (split, question_id, d_interview), and decoding restores them."""
    ids = [10**18 - 1, 5, 484070001, 36070002, 2**40 + 3, 7]
    splits_of = ["valid", "train", "test", "train", "test", "valid"]
    questions = metadata.value_question_ids()
    rng = random.Random(3)
    answers = [[rng.choice([None, 1, 2]) for _ in questions] for _ in ids]
    respondents = spark.createDataFrame(
        list(zip(ids, splits_of, answers)), "d_interview long, split string, answers array<int>"
    )
    keyed = build.keyed_examples(respondents).repartition(3)
    got = build.decoded_examples(keyed.coalesce(1).sortWithinPartitions("order")).toPandas()
    expected = pd.DataFrame(
        [(d, q, a, s) for d, s, row in zip(ids, splits_of, answers) for q, a in zip(questions, row) if a is not None],
        columns=["d_interview", "question_id", "answer", "split"],
    ).sort_values(["split", "question_id", "d_interview"], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_missing_required_column_exits_2_and_writes_nothing(tmp_path, raw_file, capsys):
    broken = tmp_path / "broken.csv"
    with open(raw_file, encoding="utf-8") as source:
        header = source.readline().rstrip("\n").split(",")
        rows = [source.readline() for _ in range(3)]
    keep = [i for i, name in enumerate(header) if name not in ("Q1", "W_WEIGHT")]
    with open(broken, "w", encoding="utf-8") as out:
        out.write(",".join(header[i] for i in keep) + "\n")
        for row in rows:
            fields = row.rstrip("\n").split(",")
            out.write(",".join(fields[i] for i in keep) + "\n")
    target = tmp_path / "warehouse"
    code = cli.main(["build", "--raw", str(broken), "--warehouse", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Q1" in err[0] and "W_WEIGHT" in err[0]
    assert not target.exists()


def test_hash_split_depends_only_on_the_id(spark):
    from wvb_spark.transforms.splits import assign_hash_split

    ids = spark.range(1, 5001).selectExpr("id + 484070000 as d_interview")
    whole = dict(assign_hash_split(ids, "wvb", [0.7, 0.15, 0.15]).toPandas().itertuples(index=False, name=None))
    part = dict(
        assign_hash_split(ids.where("d_interview % 3 = 0"), "wvb", [0.7, 0.15, 0.15])
        .toPandas()
        .itertuples(index=False, name=None)
    )
    assert all(whole[k] == v for k, v in part.items())
    shares = pd.Series(whole).value_counts(normalize=True)
    assert abs(shares["train"] - 0.7) < 0.03 and abs(shares["test"] - 0.15) < 0.03
