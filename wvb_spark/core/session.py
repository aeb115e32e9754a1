"""The SparkSession: reuse the active one (spark-submit, Databricks), else build a local one."""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from contextlib import contextmanager
from importlib import resources

from pyspark.sql import SparkSession

from wvb_spark.core import runtime
from wvb_spark.core.errors import InputError

log = logging.getLogger(__name__)

DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
NATIVE_UNAVAILABLE = (
    "storage.writer=native but Delta's jars cannot be had here ({why}); run `wvb delta-jars` "
    "where Maven Central is reachable, or use --set storage.writer=offline"
)


def get_spark(config: dict, extra_java_options: str = "") -> SparkSession:
    """The active session if there is one, else a new one from `config['spark']`.

    Under spark-submit the master, the executors' Python and the driver JVM's options
    are spark-submit's; a local session's Python workers run the driver's interpreter
    (see `_python_for_local_workers`). `extra_java_options` go to a new local session's
    driver JVM (a stage may know its run is short).
    """
    _check_runtime()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    spark_conf = config.get("spark", {})
    builder = SparkSession.builder.appName(spark_conf.get("app_name", "wvb_spark"))
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if spark_conf.get("master") and not launched_by_spark_submit:
        builder = builder.master(spark_conf["master"])
        _python_for_local_workers(spark_conf["master"])
    conf = dict(spark_conf.get("conf") or {})
    if "spark.driver.extraJavaOptions" not in conf:
        options = [str(spark_conf.get("java_options") or ""), extra_java_options]
        if spark_conf.get("quiet_logs", True):
            # Spark's INFO/WARN chatter would bury the job's own report on the console.
            log_config = resources.files("wvb_spark").joinpath("resources", "log4j2.properties")
            options.append(f"-Dlog4j2.configurationFile=file:{log_config}")
        conf["spark.driver.extraJavaOptions"] = " ".join(o for o in options if o)
    if spark_conf.get("quiet_logs", True):
        # Under spark-submit the driver JVM already runs with Spark's INFO logging; this
        # lowers it as the context starts (the log file above does it for local sessions).
        conf.setdefault("spark.log.level", spark_conf.get("log_level", "ERROR"))
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    if not launched_by_spark_submit:
        # Under spark-submit the JVM is running: Delta's jars and extension come from the
        # submit command (--jars/--packages and --conf), as README "Running on a cluster" shows.
        builder = _with_delta(builder, config)
    spark = builder.getOrCreate()
    if not launched_by_spark_submit:
        spark.sparkContext.setLogLevel(spark_conf.get("log_level", "ERROR"))
    elif not str(spark.conf.get("spark.master", "")).startswith("local"):
        check_executors(spark)
    return spark


def _imports_on_executor(batches):
    """Runs on an executor: unpickling this function imports wvb_spark.core.session there, and
    the body imports what the stages' Python code needs."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import yaml  # noqa: F401

    yield from batches


def check_executors(spark: SparkSession) -> None:
    """One tiny task before any work: can the executors' Python import wvb_spark and its
    dependencies? If not, one line saying how to ship them, instead of a task's
    traceback minutes into the job."""
    try:
        spark.range(1).mapInArrow(_imports_on_executor, "id long").collect()
    except Exception as error:  # noqa: BLE001 - the task's error arrives wrapped by py4j/pyspark
        missing = re.search(r"No module named '([\w.]+)'", str(error))
        if missing is None:
            raise
        raise InputError(
            f"the executors' Python cannot import {missing.group(1)}: ship wvb_spark with "
            f"--py-files dist/wvb_spark-<version>.zip (make dist) and the dependencies with "
            f"--archives dist/env.tar.gz#env (make dist-env) or on the nodes; see README "
            f'"Running on a cluster"'
        ) from None


def _with_delta(builder, config: dict):
    """Add Delta's jars and extension unless the offline commit was asked for; `auto` falls
    back to it with one line on stderr when the jars cannot be had (no network, no Maven,
    or no delta-spark to name them by)."""
    from wvb_spark.core import delta_jars

    writer = (config.get("storage") or {}).get("writer", "auto")
    if writer == "offline":
        return builder
    jars = delta_jars.resolve(config, may_fetch=True)
    if jars is None:
        if writer == "native":
            raise InputError(NATIVE_UNAVAILABLE.format(why=delta_jars.why_unavailable(config)))
        log.warning(
            "Delta's jars are not available; tables are written with the offline commit (`wvb delta-jars` fetches them)"
        )
        return builder
    builder = builder.config("spark.jars", ",".join(jars))
    for key, value in DELTA_SETTINGS.items():
        builder = builder.config(key, value)
    return builder


@functools.cache
def _check_runtime() -> None:
    """Once per process: one line when the runtime's pyspark is outside the supported range."""
    import pyspark

    runtime.warn_if_unsupported(pyspark.__version__)


def _python_for_local_workers(master: str) -> None:
    """A local master's Python workers run the driver's interpreter, or pandas UDFs fail
    to import pandas when wvb runs from a virtual environment. Only for local masters:
    a cluster's executors have their own Python (PYSPARK_PYTHON or spark.pyspark.python
    of the submit command or the cluster), and this path exists only on this machine."""
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def default_parallelism(spark: SparkSession) -> int:
    """The cores a job may use (Spark's default parallelism), through the session alone:
    `spark.sparkContext` is not offered on Databricks standard-access and serverless
    compute (nor over Spark Connect). `spark.default.parallelism` when set; otherwise the
    partitions Spark splits a range into, which is that default (one tiny job)."""
    configured = spark.conf.get("spark.default.parallelism", None)
    if configured:
        return max(1, int(configured))
    from pyspark.sql import functions as F

    partitions = spark.range(0, 1 << 16).select(F.spark_partition_id().alias("partition"))
    row = partitions.agg(F.max("partition")).first()
    assert row is not None  # an aggregate without grouping always has one row
    return int(row[0]) + 1


@contextmanager
def temporary_settings(spark: SparkSession, wanted: dict[str, str]):
    """SQL settings for one piece of work, restored afterwards: a caller's session
    (spark-submit, Databricks, tests) is left as it was."""
    before = {key: spark.conf.get(key, None) for key in wanted}
    for key, value in wanted.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, previous in before.items():
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)
