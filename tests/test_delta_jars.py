"""Delta's jars: the artifact named like Delta's own helper, the cache, Spark's own jars left out,
and `auto` falling back to the offline commit (with one line) where they cannot be had."""

from __future__ import annotations

import importlib.metadata

import pyspark
import pytest

from wvb_spark.core import delta_jars
from wvb_spark.core.errors import WvbError


def test_the_artifact_matches_the_installed_pyspark_and_delta_spark():
    group, artifact, version = delta_jars.coordinates()
    major_minor = ".".join(pyspark.__version__.split(".")[:2])
    assert (group, artifact, version) == (
        "io.delta",
        f"delta-spark_{major_minor}_2.13",
        importlib.metadata.version("delta-spark"),
    )


@pytest.mark.parametrize(
    "name,base",
    [
        ("com.fasterxml.jackson.core_jackson-core-2.13.5.jar", "jackson-core"),
        ("io.delta_delta-spark_4.2_2.13-4.4.0.jar", "delta-spark_4.2_2.13"),
        ("hadoop-client-api-3.5.0.jar", "hadoop-client-api"),
        ("org.roaringbitmap_RoaringBitmap-0.9.25.jar", "RoaringBitmap"),
    ],
)
def test_jar_base_names(name, base):
    assert delta_jars._base_name(name) == base


def test_jars_spark_ships_are_dropped_and_the_rest_listed(tmp_path):
    shipped = sorted(p.name for p in delta_jars._spark_jars_folder().glob("jackson-core-*.jar"))
    assert shipped, "pyspark ships jackson-core"
    for name in (
        "com.fasterxml.jackson.core_jackson-core-2.13.5.jar",
        "io.delta_delta-spark_4.2_2.13-4.4.0.jar",
        "io.delta_delta-storage-4.4.0.jar",
    ):
        (tmp_path / name).write_bytes(b"jar")
    assert delta_jars._without_spark_jars(tmp_path) == [
        "io.delta_delta-spark_4.2_2.13-4.4.0.jar",
        "io.delta_delta-storage-4.4.0.jar",
    ]
    assert not (tmp_path / "com.fasterxml.jackson.core_jackson-core-2.13.5.jar").exists()


def test_a_folder_without_its_list_is_not_a_cache(tmp_path):
    settings = {"storage": {"jars_dir": str(tmp_path)}}
    folder = tmp_path / "-".join(delta_jars.coordinates()[1:])
    folder.mkdir()
    (folder / "io.delta_delta-spark.jar").write_bytes(b"jar")
    assert delta_jars.cached(settings) is None  # an interrupted fetch: no jars.txt
    (folder / delta_jars.MARKER).write_text("io.delta_delta-spark.jar\n")
    assert delta_jars.cached(settings) == [str(folder / "io.delta_delta-spark.jar")]
    (folder / delta_jars.MARKER).write_text("io.delta_delta-spark.jar\nmissing.jar\n")
    assert delta_jars.cached(settings) is None


def test_without_jars_auto_falls_back_in_one_line_and_native_is_refused(tmp_path, capsys, monkeypatch):
    from pyspark.sql import SparkSession

    from wvb_spark.core import logs
    from wvb_spark.core.session import _with_delta

    logs.setup("build")  # as the runner does: the stage's warnings on stderr
    # a machine without network: both resolvers fail
    monkeypatch.setattr(delta_jars, "_retrieve_with_ivy", lambda target, cache: "Ivy failed: not found")
    monkeypatch.setattr(delta_jars, "_retrieve_with_maven", lambda target, cache: "no mvn on PATH")
    settings = {"storage": {"writer": "auto", "jars_dir": str(tmp_path)}}
    builder = SparkSession.builder
    assert _with_delta(builder, settings) is builder
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("wvb build: Delta's jars are not available; tables are written with the offline commit")
    assert "Ivy failed: not found; no mvn on PATH" in err[-2]
    assert delta_jars.recently_failed(settings)  # not tried again at every start
    assert not list(tmp_path.glob("*.tmp-*"))
    with pytest.raises(WvbError, match="storage.writer=native but Delta's jars cannot be had"):
        _with_delta(builder, {"storage": {"writer": "native", "jars_dir": str(tmp_path)}})


def test_without_delta_spark_auto_falls_back_with_the_same_line_and_native_is_refused(tmp_path, capsys, monkeypatch):
    """A plain `pip install` without the `local` extra has no delta-spark to name the jar by:
    `auto` writes offline, as when the jars cannot be fetched, instead of failing."""
    from pyspark.sql import SparkSession

    from wvb_spark.core import logs
    from wvb_spark.core.session import _with_delta

    logs.setup("build")
    version = importlib.metadata.version

    def without_delta_spark(name):
        if name == "delta-spark":
            raise importlib.metadata.PackageNotFoundError(name)
        return version(name)

    monkeypatch.setattr(importlib.metadata, "version", without_delta_spark)

    def no_fetch(target, cache):
        raise AssertionError("nothing to fetch without delta-spark")

    monkeypatch.setattr(delta_jars, "_retrieve_with_ivy", no_fetch)
    settings = {"storage": {"writer": "auto", "jars_dir": str(tmp_path)}}
    builder = SparkSession.builder
    assert _with_delta(builder, settings) is builder
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "wvb build: Delta's jars are not available; tables are written with the offline commit "
        "(`wvb delta-jars` fetches them)"
    ]
    assert not list(tmp_path.iterdir())  # no cache folder, no failed-fetch marker
    with pytest.raises(WvbError, match=r"Delta's jars cannot be had here \(delta-spark is not installed"):
        _with_delta(builder, {"storage": {"writer": "native", "jars_dir": str(tmp_path)}})
