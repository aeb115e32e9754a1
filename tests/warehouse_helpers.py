"""Test helpers: build tables written as one completed build, frames filled to the registry."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wvb_spark.core import schemas
from wvb_spark.core import tables as registry
from wvb_spark.core.warehouse import Warehouse


def settings(writer: str = "offline") -> dict:
    from wvb_spark.core import config as wvb_config

    return wvb_config.load(None, [f"storage.writer={writer}"])


def conform(frame: DataFrame, name: str) -> DataFrame:
    """`frame` with every registry column of table `name` it lacks, as nulls of the declared
    type, and the declared types cast (tests build small frames by hand)."""
    for field in registry.table(name).columns():
        if field.name in frame.columns:
            frame = frame.withColumn(field.name, F.col(field.name).cast(field.dataType))
        else:
            frame = frame.withColumn(field.name, F.lit(None).cast(field.dataType))
    return frame


def write_build(spark, root: str, config: dict, **frames: DataFrame) -> dict[str, int]:
    """Write the given build tables and a build_runs row naming their versions, as
    `wvb build` does, so readers see them as the last completed build."""
    warehouse = Warehouse(spark, root, config)
    versions = {name: warehouse.write(name, conform(frame, name), stage="test") for name, frame in frames.items()}
    run = spark.createDataFrame([(1, versions)], "run_number long, table_versions map<string,long>")
    warehouse.write("build_runs", conform(run, "build_runs").select(*schemas.BUILD_RUNS.names), stage="test")
    return versions
