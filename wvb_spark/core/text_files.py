"""Text files through Hadoop's FileSystem: one file written from a sorted DataFrame, in
order (`wvb prompts`, `wvb export`, `wvb simulate-model`), and whether a file exists
(`wvb predictions import`'s error file).

The rows are written by one task after the sort and the part file renamed through
Hadoop's FileSystem, so the path can be local, HDFS, S3 or DBFS; where the session has
no JVM access the rows stream through the driver instead.
"""

from __future__ import annotations

import os
import uuid

from pyspark.sql import DataFrame, SparkSession

from wvb_spark.core.errors import RunError


def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    # no JVM (Spark Connect, Databricks serverless): None here raises, and callers fall back on that
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path, jvm


def hadoop_file_exists(spark: SparkSession, path: str) -> bool:
    """Whether `path` is a file, on any file system Spark reads (local, HDFS, S3, DBFS)."""
    try:
        fs, hadoop_path, _ = _hadoop_fs(spark, path)
        return bool(fs.exists(hadoop_path)) and bool(fs.getFileStatus(hadoop_path).isFile())
    except Exception:  # noqa: BLE001 - no JVM access (Spark Connect): the local file system
        return os.path.isfile(path)


def _drop_checksum_file(fs, path) -> None:
    """The local file system keeps a hidden .<name>.crc beside each file; the user asked for one file."""
    if fs.getClass().getName().endswith("LocalFileSystem"):
        checksum = fs.getChecksumFile(path)
        if fs.exists(checksum):
            fs.getRawFileSystem().delete(checksum, False)


def _write_through_driver(lines: DataFrame, out: str) -> None:
    """Where the session offers no Hadoop FileSystem (no `sparkContext`): stream the rows
    in order through the driver into a local path - on Databricks a /Volumes/... path,
    which is mounted on the driver. Written beside `out` and renamed when complete."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    partial = f"{out}.tmp-{uuid.uuid4().hex[:8]}"
    column = lines.columns[0]
    with open(partial, "w", encoding="utf-8") as handle:
        for row in lines.toLocalIterator():
            handle.write(row[column] + "\n")
    os.replace(partial, out)


def write_single_text_file(spark: SparkSession, lines: DataFrame, out: str) -> None:
    """Write a one-string-column DataFrame as ONE text file at `out`, keeping its order.

    coalesce(1) after a sort concatenates the sorted partitions in order, in one task,
    without pulling the data to the driver; the part file is then renamed to `out`
    through Hadoop's FileSystem, so `out` can be local, HDFS, S3 or DBFS.
    """
    try:
        fs, target, jvm = _hadoop_fs(spark, out)
    except Exception:  # noqa: BLE001 - no JVM access (Databricks standard-access/serverless, Connect)
        _write_through_driver(lines, out)
        return
    staging = jvm.org.apache.hadoop.fs.Path(f"{out}.tmp-{uuid.uuid4().hex[:8]}")
    lines.coalesce(1).write.mode("overwrite").option("compression", "none").text(staging.toString())
    try:
        parts = [s.getPath() for s in fs.listStatus(staging) if s.getPath().getName().startswith("part-")]
        if len(parts) > 1:
            raise RunError(f"expected one part file in {staging.toString()}, found {len(parts)}")
        parent = target.getParent()
        if parent is not None:
            fs.mkdirs(parent)
        if fs.exists(target):
            fs.delete(target, False)
        if parts:
            if not fs.rename(parts[0], target):
                raise RunError(f"could not move the prompts to {out}")
            _drop_checksum_file(fs, target)
        else:  # no rows: Spark may write no part file at all
            fs.create(target, True).close()
    finally:
        fs.delete(staging, True)
