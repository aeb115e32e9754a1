"""The single-node yardstick of `wvb bench --stages build --compare duckdb`.

DuckDB reads the same raw CSV, unpivots its value-question columns into one row per
answered cell (d_interview, question_id, answer >= 0: the WVS codes missing answers as
negative numbers) and writes them as Parquet, on all cores. That is the explode at the
heart of `wvb build`, without what the build adds (quarantine, codebook checks, answer
adjustment, the split, statistics, Delta commits): the ratio is an upper bound on what
Spark costs for the same core work. duckdb is a bench-only dependency (extra `bench`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from wvb_spark.core import metadata

    parser = argparse.ArgumentParser(prog="python -m wvb_spark.benchmarks.duckdb_explode")
    parser.add_argument("--raw", required=True)
    parser.add_argument("--out", required=True, help="Parquet folder (replaced)")
    args = parser.parse_args(argv)
    try:
        import duckdb
    except ImportError:
        print("duckdb is not installed (pip install 'wvb_spark[bench]')", file=sys.stderr)
        return 2
    started = time.perf_counter()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    questions = ", ".join(f'"{q}"' for q in metadata.value_question_ids())
    connection = duckdb.connect()
    connection.execute(
        f"""
        COPY (
            SELECT d_interview, question_id, code AS answer
            FROM (
                SELECT CAST("D_INTERVIEW" AS BIGINT) AS d_interview, question_id, TRY_CAST(answer AS INTEGER) AS code
                FROM (
                    UNPIVOT (SELECT "D_INTERVIEW", {questions} FROM read_csv(?, header = true, all_varchar = true))
                    ON {questions} INTO NAME question_id VALUE answer
                )
            )
            WHERE code >= 0
        ) TO '{out}' (FORMAT parquet, PER_THREAD_OUTPUT true)
        """,
        [args.raw],
    )
    seconds = time.perf_counter() - started
    (rows,) = connection.execute(f"SELECT count(*) FROM read_parquet('{out}/*.parquet')").fetchall()[0]
    print(f"duckdb explode: {rows} rows in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
