"""One SparkSession for the whole test run: local[2], UI off, few shuffle partitions.

When Delta's jars are cached (`make setup` fetches them with `wvb delta-jars`) the
session also carries Delta's extension, so the same session serves both writers:
`storage.writer=native` uses Delta's own Spark writer, `offline` the deltalake commit.
Tests of the native writer skip, saying why, where the jars cannot be had; the run's
header (under `-q`, its last line) says which writers it covers.
"""

from __future__ import annotations

import functools
import os
import sys

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
WRITERS = ("native", "offline")


def _may_fetch() -> bool:
    return os.environ.get("WVB_TEST_FETCH_JARS", "1") == "1"


@functools.cache
def _delta_jars() -> list[str] | None:
    """Resolved once per run: the report header and the session share the answer."""
    from wvb_spark.core import delta_jars

    return delta_jars.resolve({}, may_fetch=_may_fetch())


def _why_no_native() -> str:
    from wvb_spark.core import delta_jars

    if _delta_jars():
        return "Delta's jars are cached but the session's Delta extension is not active"
    why = delta_jars.why_unavailable({})
    if why == "no jars" and not _may_fetch():
        return "Delta's jars are not cached and WVB_TEST_FETCH_JARS=0 forbids fetching them"
    return f"Delta's jars cannot be had: {why}"


def _writers_line() -> str:
    jars = _delta_jars()
    if jars:
        return f"storage writers: native (Delta jars at {os.path.dirname(jars[0])}) and offline"
    return f"storage writers: offline only: the native half skips ({_why_no_native()})"


def pytest_report_header(config) -> str:
    """Say at the top of every run whether the native half of the writer tests runs."""
    return _writers_line()


def pytest_terminal_summary(terminalreporter) -> None:
    """The same line at the end when `-q` (the default addopts) hides the header."""
    if terminalreporter.verbosity < 0:
        terminalreporter.write_line(_writers_line())


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from wvb_spark.core.session import DELTA_SETTINGS

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("wvb_spark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        # Delta's fast local test settings (delta-io/delta python/delta/testing/utils.py)
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.databricks.delta.delta.log.cacheSize", "3")
        .config("spark.databricks.delta.snapshotCache.storageLevel", "DISK_ONLY")
    )
    jars = _delta_jars()
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
        for key, value in DELTA_SETTINGS.items():
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def native_available(spark) -> bool:
    from wvb_spark.core.storage import native_delta_active

    return native_delta_active(spark)


@pytest.fixture(params=WRITERS)
def writer(request, native_available) -> str:
    """Each test using it runs once per writer; native skips where Delta's jars are missing."""
    if request.param == "native" and not native_available:
        pytest.skip(f"native Delta: {_why_no_native()} (run `wvb delta-jars` where Maven Central is reachable)")
    return request.param


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES
