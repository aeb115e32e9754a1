"""The SparkSession: reuse the active one (spark-submit, Databricks), else build a local one."""

from __future__ import annotations

import os
import sys
from importlib import resources

from pyspark.sql import SparkSession


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
    if spark_conf.get("delta_pip", False):
        # Delta's jars from Maven (needs network); the extension and catalog make
        # format("delta") and the native writer available.
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(
            builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
            .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(spark_conf.get("log_level", "ERROR"))
    return spark
