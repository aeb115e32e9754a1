"""`wvb bench`'s pieces that are not timings: the DuckDB yardstick's rows and the ratio line."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
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


def test_fitted_exponent_is_the_log_log_slope():
    from scipy import stats

    from wvb_spark.stages.bench import fitted_exponent

    sizes = [1_000.0, 2_000.0, 4_000.0, 8_000.0]
    assert fitted_exponent(sizes, [3 * s**1.2 for s in sizes]) == pytest.approx(1.2)
    with_start_up = [20 + s / 100 for s in sizes]  # a fixed cost flattens the small sizes
    expected = stats.linregress(np.log(sizes), np.log(with_start_up)).slope
    assert fitted_exponent(sizes, with_start_up) == pytest.approx(expected)
    assert expected < 0.9


def test_build_bench_times_each_scale_and_writer_and_fits_the_exponent(tmp_path, monkeypatch):
    from wvb_spark.stages import bench

    commands = []

    def fake_run(command):
        commands.append(command)
        if "synth" in command:
            respondents = int(command[command.index("--respondents") + 1])
            (tmp_path / f"wvs-{respondents}.csv").write_text("x")
            return Run(1.0, "", 10.0)
        respondents = int(command[command.index("--raw") + 1].split("-")[-1].split(".")[0])
        examples = respondents * 200
        seconds = 10 + examples / 1e5  # 10 s of start-up plus 100,000 examples a second
        return Run(seconds, f"examples             {examples:>12,}\n", 1000.0)

    monkeypatch.setattr(bench, "_run", fake_run)
    args = argparse.Namespace(
        respondents=1000,
        scales=[0.5, 1.0, 2.0, 4.0],
        writers=["native", "offline"],
        repeats=2,
        compare="none",
        spark_args=[],
    )
    lines = list(bench.bench_build(args, tmp_path))
    builds = [c for c in commands if "build" in c]
    assert len(builds) == 4 * 2 * 2
    assert {c[c.index("--set") + 1] for c in builds} == {"storage.writer=native", "storage.writer=offline"}
    assert [line.split(" respondents")[0] for line in lines if "respondents" in line] == [
        f"build {writer}, {scale:g}x, {round(1000 * scale):,}"
        for writer in ("native", "offline")
        for scale in (0.5, 1.0, 2.0, 4.0)
    ]
    # 4x: 800,000 examples in 18 s, 44,444 a second
    assert "800,000 examples, 44,444 examples/s" in lines[3]
    sizes = [100_000, 200_000, 400_000, 800_000]
    seconds = [10 + s / 1e5 for s in sizes]
    slope = np.polyfit(np.log(sizes), np.log(seconds), 1)[0]
    upper = np.polyfit(np.log(sizes[2:]), np.log(seconds[2:]), 1)[0]
    assert lines[4] == (
        f"build native scaling: seconds ~ examples^b, b = {slope:.2f} over 100,000-800,000 examples; "
        f"b = {upper:.2f} from 400,000 up"
    )
