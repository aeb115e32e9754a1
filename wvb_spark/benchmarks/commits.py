"""Small writes, one after another: does a commit's cost grow with the table's history?

`wvb bench --stages commits` runs this in its own process, once per writer: N
one-model replacements of `predictions` (a few rows each) into a fresh warehouse,
timing each whole `Warehouse.write` (Spark's write and the Delta commit).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    from pyspark.sql import functions as F

    from wvb_spark.core import config as wvb_config
    from wvb_spark.core import schemas
    from wvb_spark.core.session import get_spark
    from wvb_spark.core.warehouse import Warehouse

    parser = argparse.ArgumentParser(prog="python -m wvb_spark.benchmarks.commits")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--writer", choices=("native", "offline"), default="offline")
    args = parser.parse_args(argv)
    settings = wvb_config.load(None, [f"storage.writer={args.writer}", "spark.master=local[2]"])
    spark = get_spark(settings)
    warehouse = Warehouse(spark, tempfile.mkdtemp(prefix="wvb-commits-"), settings)
    seconds = []
    for index in range(args.writes):
        model = f"m{index % 10}"
        rows = spark.createDataFrame(
            [(model, "Q1", 1000 + i, 2.0) for i in range(5)],
            "model string, question_id string, d_interview long, score double",
        )
        frame = rows.select(
            *[
                F.col(f.name).cast(f.dataType) if f.name in rows.columns else F.lit(None).cast(f.dataType).alias(f.name)
                for f in schemas.PREDICTIONS.fields
                if f.name != "status"
            ],
            F.lit("valid").alias("status"),
        ).select(*schemas.PREDICTIONS.names)
        started = time.perf_counter()
        warehouse.write("predictions", frame, stage="bench", replace={"model": model}, expected_rows=5)
        seconds.append(time.perf_counter() - started)
    first, last = seconds[1:11], seconds[-10:]  # the very first write also warms the JVM up
    print(
        f"{args.writer}: write 1 {seconds[0]:.3f} s; writes 2-11 median {statistics.median(first):.3f} s; "
        f"writes {args.writes - 9}-{args.writes} median {statistics.median(last):.3f} s "
        f"(ratio {statistics.median(last) / statistics.median(first):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
