"""The warehouse: one registry, reads checked against it, builds read as a unit,
commits that lose a race, vacuum - under both writers where the writer matters."""

from __future__ import annotations

import json
import os

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from warehouse_helpers import conform, settings, write_build

from wvb_spark import __version__
from wvb_spark.core import schemas, storage, tables
from wvb_spark.core.errors import WvbError
from wvb_spark.core.warehouse import Warehouse

PREDICTION_COLUMNS = "model string, question_id string, d_interview long, score double"


def predictions(spark, model: str, count: int, score: float = 1.0):
    rows = [(model, f"Q{i % 7}", 1000 + i, score) for i in range(count)]
    frame = spark.createDataFrame(rows, PREDICTION_COLUMNS).withColumn("status", F.lit("valid"))
    return conform(frame, "predictions").select(*schemas.PREDICTIONS.names)


def test_every_table_is_declared_once_with_the_command_that_writes_it():
    assert set(tables.TABLES) == {
        "questions",
        "participants",
        "examples",
        "quarantine",
        "build_runs",
        "probe",
        "probe_groups",
        "predictions",
        "histograms",
        "distances",
        "summary",
    }
    assert {t.written_by for t in tables.TABLES.values() if t.from_build} == {"wvb build"}
    assert tables.table("predictions").partition_by == ("model",)
    assert tables.table("summary").partition_by == ("model",)
    with pytest.raises(WvbError, match="unknown table 'nope'"):
        tables.table("nope")


def test_a_table_without_a_declared_column_is_a_typed_error_naming_the_command(spark, tmp_path):
    root = str(tmp_path)
    frame = predictions(spark, "m", 3).drop("status")
    storage.write(
        spark,
        frame,
        storage.table_path(root, "predictions"),
        native=False,
        layout=storage.Layout(partition_by=("model",)),
    )
    with pytest.raises(
        tables.ColumnMismatch,
        match="table predictions has no column 'status'.*rerun wvb predictions import or wvb baselines",
    ):
        Warehouse(spark, root, settings()).read("predictions")
    retyped = predictions(spark, "m", 3).withColumn("score", F.col("score").cast("string"))
    storage.write(
        spark,
        retyped,
        storage.table_path(root, "predictions"),
        native=False,
        layout=storage.Layout(partition_by=("model",)),
    )
    with pytest.raises(tables.ColumnMismatch, match="column 'score' is string, expected double"):
        Warehouse(spark, root, settings()).read("predictions")


def test_the_standard_commit_info(spark, tmp_path, writer):
    warehouse = Warehouse(spark, str(tmp_path), settings(writer))
    version = warehouse.write(
        "predictions",
        predictions(spark, "m", 4),
        stage="wvb test",
        options={"model": "m"},
        counts={"rows_read": 4},
        replace={"model": "m"},
        expected_rows=4,
    )
    info = warehouse.commit_info("predictions", version)
    assert {k: info[k] for k in ("stage", "table", "wvb_version", "options", "counts", "replaced")} == {
        "stage": "wvb test",
        "table": "predictions",
        "wvb_version": __version__,
        "options": {"model": "m"},
        "counts": {"rows_read": 4},
        "replaced": {"model": ["m"]},
    }
    assert len(info["run_id"]) > 20
    assert warehouse.partition_rows("predictions", "model") == {"m": 4}


def test_readers_see_the_last_completed_build_not_a_killed_one(spark, tmp_path, writer):
    root, config = str(tmp_path), settings(writer)
    people = spark.createDataFrame(
        [(1, "train", 4), (2, "test", 4)], "d_interview long, split string, country_code int"
    )
    write_build(spark, root, config, participants=people)
    warehouse = Warehouse(spark, root, config)
    # a later build killed after its participants commit, before build_runs
    newer = spark.createDataFrame([(9, "train", 4)], "d_interview long, split string, country_code int")
    assert warehouse.write("participants", conform(newer, "participants"), stage="wvb build") == 1

    reader = Warehouse(spark, root, config)
    assert reader.version("participants") == 0
    assert sorted(r["d_interview"] for r in reader.read("participants").collect()) == [1, 2]
    # a table written by a build that never completed is not there for readers
    reader.write(
        "examples",
        conform(
            spark.createDataFrame(
                [(1, "Q1", 2, "train")], "d_interview long, question_id string, answer int, split string"
            ),
            "examples",
        ),
        stage="wvb build",
    )
    with pytest.raises(WvbError, match=r"no examples table in .* \(run wvb build first\)"):
        Warehouse(spark, root, config).require("examples")


def _race(monkeypatch, winner):
    """Run `winner()` (another writer's whole commit) once, just before this write commits."""
    original = storage._check_adds
    calls = {"n": 0}

    def check_then_let_the_other_writer_commit(*args, **kwargs):
        original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            winner()

    monkeypatch.setattr(storage, "_check_adds", check_then_let_the_other_writer_commit)


def test_an_offline_commit_that_lost_to_another_partition_is_retried(spark, tmp_path, monkeypatch):
    warehouse = Warehouse(spark, str(tmp_path), settings("offline"))
    warehouse.write("predictions", predictions(spark, "a", 2), stage="t", replace={"model": "a"})
    _race(
        monkeypatch,
        lambda: warehouse.write("predictions", predictions(spark, "b", 5), stage="t", replace={"model": "b"}),
    )

    version = warehouse.write(
        "predictions", predictions(spark, "c", 3), stage="t", replace={"model": "c"}, expected_rows=3
    )

    assert version == 2  # after b's version 1
    assert warehouse.partition_rows("predictions", "model") == {"a": 2, "b": 5, "c": 3}
    got = warehouse.read("predictions").groupBy("model").count().collect()
    assert {r["model"]: r["count"] for r in got} == {"a": 2, "b": 5, "c": 3}


@pytest.mark.parametrize("replace", [{"model": "a"}, None])
def test_an_offline_commit_that_lost_on_its_own_rows_is_refused_and_leaves_nothing(
    spark, tmp_path, monkeypatch, replace
):
    warehouse = Warehouse(spark, str(tmp_path), settings("offline"))
    warehouse.write("predictions", predictions(spark, "a", 2), stage="t", replace={"model": "a"})
    _race(
        monkeypatch,
        lambda: warehouse.write("predictions", predictions(spark, "a", 5), stage="other", replace={"model": "a"}),
    )

    with pytest.raises(
        WvbError,
        match=r"changed by another writer \(version 1 \(other, run .*; "
        r"nothing was committed",
    ) as error:
        warehouse.write("predictions", predictions(spark, "a", 3), stage="t", replace=replace)

    assert error.value.exit_code == 1 and "\n" not in str(error.value)
    assert warehouse.partition_rows("predictions", "model") == {"a": 5}
    committed = {
        json.loads(line).get("add", {}).get("path", "").split("/")[0]
        for v in (0, 1)
        for line in open(tmp_path / "predictions" / "_delta_log" / f"{v:020d}.json")
    }
    on_disk = {name for name in os.listdir(tmp_path / "predictions") if name.startswith("run-")}
    assert on_disk == committed - {""}  # the refused run's directory is gone


def _files_on_disk(location: str) -> dict[str, int]:
    """Every file of the table but its log, with its size."""
    found = {}
    for folder, _, names in os.walk(location):
        if "_delta_log" not in folder:
            found.update({os.path.join(folder, n): os.path.getsize(os.path.join(folder, n)) for n in names})
    return found


def _version_files(location: str) -> dict[int, set[str]]:
    from deltalake import DeltaTable

    latest = DeltaTable(location).version()
    return {v: set(DeltaTable(location, version=v).file_uris()) for v in range(latest + 1)}


def test_vacuum_deletes_what_no_kept_version_needs_and_counts_it(spark, tmp_path, writer):
    root, config = str(tmp_path), settings(writer)
    warehouse = Warehouse(spark, root, config)
    for count in (3, 4, 5):
        warehouse.write("predictions", predictions(spark, "m", count), stage="t")
    location = storage.table_path(root, "predictions")
    files = _version_files(location)
    # an uncommitted leftover of a killed offline run
    os.makedirs(os.path.join(location, "run-killed", "model=m"))
    with open(os.path.join(location, "run-killed", "model=m", "part-0.parquet"), "wb") as handle:
        handle.write(b"x" * 10)
    old = (files[0] | files[1]) - files[2]
    before = _files_on_disk(location)

    dry = {r.table: r for r in warehouse.vacuum(retain_hours=0, dry_run=True)}
    assert _files_on_disk(location) == before

    done = {r.table: r for r in warehouse.vacuum(retain_hours=0)}
    after = _files_on_disk(location)
    gone = {path: size for path, size in before.items() if path not in after}
    # what it printed is what left the disk, and the dry run said the same
    assert (done["predictions"].files, done["predictions"].bytes) == (len(gone), sum(gone.values()))
    assert (dry["predictions"].files, dry["predictions"].bytes) == (len(gone), sum(gone.values()))
    assert old <= set(gone) and not files[2] & set(gone)
    assert not any(path.endswith(".parquet") for path in set(after) - files[2])
    assert not os.path.exists(os.path.join(location, "run-killed"))
    assert warehouse.read("predictions").count() == 5
    # a long retention keeps everything
    assert all(r.files == 0 for r in warehouse.vacuum(retain_hours=168))


def _printed_size(count: int) -> str:
    return f"{count} B" if count < 1024 else f"{count / 1024:.1f} KB"


def test_wvb_vacuum_refuses_a_short_retention_without_force_and_prints_what_left_the_disk(
    spark, tmp_path, writer, capsys
):
    """The command: below 7 days only with --force; a dry run deletes nothing; the counts
    and sizes printed are those of the files that left the disk."""
    from wvb_spark import cli

    root = str(tmp_path)
    warehouse = Warehouse(spark, root, settings(writer))
    for count in (3, 4, 5):
        warehouse.write("predictions", predictions(spark, "m", count), stage="t")
    location = storage.table_path(root, "predictions")
    before = _files_on_disk(location)
    command = ["vacuum", "--warehouse", root, "--retain-hours", "0", "--set", f"storage.writer={writer}"]

    assert cli.main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wvb vacuum: error: --retain-hours 0 is below") and "--force" in err[0]
    assert _files_on_disk(location) == before

    assert cli.main([*command, "--dry-run", "--force"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert _files_on_disk(location) == before

    assert cli.main([*command, "--force"]) == 0
    done = capsys.readouterr().out.splitlines()
    gone = {path: size for path, size in before.items() if path not in _files_on_disk(location)}
    assert len(gone) >= 2  # the files of versions 0 and 1
    expected = f"{len(gone)} files {_printed_size(sum(gone.values()))}"
    for verb, lines in (("would delete", dry), ("deleted", done)):
        said = [" ".join(line.split()) for line in lines if line.startswith(("predictions ", "all tables "))]
        assert len(said) == 2 and said[0] == f"predictions {verb} {expected}", lines
        assert said[1].startswith(f"all tables {verb} {expected} (kept"), lines
    assert warehouse.read("predictions").count() == 5


def test_vacuum_keeps_the_last_completed_build(spark, tmp_path):
    root, config = str(tmp_path), settings("offline")
    people = spark.createDataFrame([(1, "train", 4)], "d_interview long, split string, country_code int")
    write_build(spark, root, config, participants=people)
    warehouse = Warehouse(spark, root, config)
    warehouse.write("participants", conform(people, "participants"), stage="killed build")  # never completed
    warehouse.vacuum(retain_hours=0)
    assertDataFrameEqual(
        Warehouse(spark, root, config).read("participants").select("d_interview"), people.select("d_interview")
    )


def test_an_offline_first_commit_that_lost_the_creation_race_to_another_partition_is_retried(
    spark, tmp_path, monkeypatch
):
    warehouse = Warehouse(spark, str(tmp_path), settings("offline"))
    _race(
        monkeypatch,
        lambda: warehouse.write("predictions", predictions(spark, "b", 5), stage="t", replace={"model": "b"}),
    )

    assert warehouse.write("predictions", predictions(spark, "a", 2), stage="t", replace={"model": "a"}) == 1
    assert warehouse.partition_rows("predictions", "model") == {"a": 2, "b": 5}
