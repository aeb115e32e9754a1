"""The SparkSession: reuse the active one (spark-submit, Databricks), else build a local one."""

from __future__ import annotations

import os
import sys
from importlib import resources

from pyspark.sql import SparkSession

from wvb_spark.errors import WvbError

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

    Python workers must run the driver's interpreter, or pandas UDFs fail to
    import pandas when the job runs from a virtual environment. `extra_java_options`
    go to a new session's driver JVM (a stage may know its run is short).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark_conf = config.get("spark", {})
    builder = SparkSession.builder.appName(spark_conf.get("app_name", "wvb_spark"))
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if spark_conf.get("master") and not launched_by_spark_submit:
        builder = builder.master(spark_conf["master"])
    conf = dict(spark_conf.get("conf") or {})
    if "spark.driver.extraJavaOptions" not in conf:
        options = [str(spark_conf.get("java_options") or ""), extra_java_options]
        if spark_conf.get("quiet_logs", True):
            # Spark's INFO/WARN chatter would bury the job's own report on the console.
            log_config = resources.files("wvb_spark").joinpath("resources", "log4j2.properties")
            options.append(f"-Dlog4j2.configurationFile=file:{log_config}")
        conf["spark.driver.extraJavaOptions"] = " ".join(o for o in options if o)
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    builder = _with_delta(builder, config)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(spark_conf.get("log_level", "ERROR"))
    return spark


def _with_delta(builder, config: dict):
    """Add Delta's jars and extension unless the offline commit was asked for; `auto` falls
    back to it with one line on stderr when the jars cannot be had."""
    from wvb_spark.core import delta_jars

    writer = (config.get("storage") or {}).get("writer", "auto")
    if writer == "offline":
        return builder
    jars = delta_jars.resolve(config, may_fetch=True)
    if jars is None:
        why = "not fetched, and the last fetch failed" if delta_jars.recently_failed(config) else "no jars"
        if writer == "native":
            raise WvbError(NATIVE_UNAVAILABLE.format(why=why))
        print("wvb: Delta's jars are not available; tables are written with the offline commit "
              "(`wvb delta-jars` fetches them)", file=sys.stderr)
        return builder
    builder = builder.config("spark.jars", ",".join(jars))
    for key, value in DELTA_SETTINGS.items():
        builder = builder.config(key, value)
    return builder
