"""`wvb bench`'s pieces that are not timings: the DuckDB yardstick's rows and the ratio line."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from wvb_spark.core import metadata
from wvb_spark.stages.bench import Run, _comparison_lines
from wvb_spark.stages.synth import write_synthetic_wvs


def test_duckdb_explode_writes_one_row_per_non_negative_value_answer(tmp_path):
    pytest.importorskip("duckdb")
    raw = tmp_path / "wvs.csv"
    write_synthetic_wvs(raw, 60, seed=3)
    out = tmp_path / "explode"
    done = subprocess.run(
        [sys.executable, "-m", "wvb_spark.benchmarks.duckdb_explode", "--raw", str(raw), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # expected, with pandas: every value-question cell holding a non-negative code (WVS missing codes are negative)
    wide = pd.read_csv(raw, usecols=["D_INTERVIEW", *metadata.value_question_ids()])
    long = wide.melt(id_vars="D_INTERVIEW", var_name="question_id", value_name="answer")
    expected = long[long["answer"] >= 0].rename(columns={"D_INTERVIEW": "d_interview"})
    got = pq.read_table(out).to_pandas()
    assert done.stdout.startswith(f"duckdb explode: {len(expected)} rows in ")
    keys = ["d_interview", "question_id"]
    pd.testing.assert_frame_equal(
        got.sort_values(keys)
        .reset_index(drop=True)[["d_interview", "question_id", "answer"]]
        .astype({"d_interview": "int64", "answer": "int64"}),
        expected.sort_values(keys).reset_index(drop=True).astype({"d_interview": "int64", "answer": "int64"}),
    )


def test_comparison_line_gives_the_ratio_of_medians_and_each_pair():
    build = [Run(30.0, "", 4000.0), Run(20.0, "", 4100.0), Run(25.0, "", 3900.0)]
    printed = "duckdb explode: 1234 rows in 2.4 s\n"
    duckdb = [Run(4.0, printed, 900.0), Run(5.0, printed, 800.0), Run(2.5, printed, 850.0)]
    timing, ratio = _comparison_lines(build, duckdb)
    assert "median     4.0 s" in timing and "runs [4.0, 5.0, 2.5]" in timing
    assert "1,234 rows; peak memory 900 MB" in timing
    # by hand: medians 25 / 4 = 6.25 (shown as 6.2); pairs 30/4, 20/5, 25/2.5
    assert ratio == "build / duckdb explode: 6.2x (ratio of medians; run by run [7.5, 4.0, 10.0])"
