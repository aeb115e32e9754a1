"""Real processes: commands writing the same tables at once, and commands killed
(SIGKILL, the whole process group) after a write task has finished. Under both writers.

Each case runs `python -m wvb_spark.cli ...` as a user would and checks the tables
against an uninterrupted run on the same input (row counts and sorted contents).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from wvb_spark import cli
from wvb_spark.core import config as wvb_config
from wvb_spark.core.warehouse import Warehouse
from wvb_spark.stages import build
from wvb_spark.stages.synth import write_synthetic_wvs

RESPONDENTS = 400
MODELS = ("m1", "m2", "m3", "m4")
# One core and several write tasks per table: a task finishes well before the commit.
SMALL = [
    "--set",
    "spark.master=local[1]",
    "--set",
    "spark.conf.spark.sql.shuffle.partitions=4",
    "--set",
    "build.examples_files=6",
    "--set",
    "spark.conf.spark.driver.memory=1g",
]


def wvb(*args: str, writer: str) -> list[str]:
    return [sys.executable, "-m", "wvb_spark.cli", *args, "--set", f"storage.writer={writer}", *SMALL]


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("raw") / "wvs.csv"
    write_synthetic_wvs(str(path), respondents=RESPONDENTS, seed=5)
    return str(path)


def settings(writer: str) -> dict:
    return wvb_config.load(None, [f"storage.writer={writer}"])


def contents(warehouse: str, name: str, writer: str, spark) -> pd.DataFrame:
    frame = Warehouse(spark, warehouse, settings(writer)).read(name).toPandas()
    for column in frame.columns:  # arrays (histograms' points and counts) compared as tuples
        if frame[column].map(lambda v: isinstance(v, np.ndarray)).any():
            frame[column] = frame[column].map(lambda v: tuple(v.tolist()) if isinstance(v, np.ndarray) else v)
    frame = frame.drop(
        columns=[
            c
            for c in frame.columns
            if frame[c].map(lambda v: isinstance(v, (dict, list))).any()
            or hasattr(frame[c].dtype, "tz")
            or "time" in str(frame[c].dtype)
        ]
    )
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def model_file(folder: Path, model: str, probe: pd.DataFrame, shift: int) -> tuple[Path, int]:
    """A prediction TSV for every probe row, scores depending on the model."""
    path = folder / f"{model}.tsv"
    lines = ["QUESTION_ID\tPARTICIPANT_ID\tSCORE"]
    lines += [f"{q}\t{d}\t{1 + (d + shift) % 3}" for q, d in zip(probe["question_id"], probe["d_interview"])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(lines) - 1


@pytest.fixture(scope="module")
def built(spark, raw_file, tmp_path_factory):
    """An uninterrupted build + probe per writer (in this process), the baseline."""
    warehouses = {}
    for writer in ("native", "offline"):
        root = str(tmp_path_factory.mktemp(f"baseline-{writer}"))
        if writer == "native" and not Warehouse(spark, root, {}).writer == "native":
            continue
        build.run_build(spark, settings(writer), raw_file, root)
        assert cli.main(["probe", "--warehouse", root, "--set", f"storage.writer={writer}"]) == 0
        warehouses[writer] = root
    return warehouses


def _copy(source: str, target: Path) -> str:
    import shutil

    shutil.copytree(source, target)
    return str(target)


def _files_under(folder: Path) -> set[Path]:
    """Every path below `folder`, tolerating the directories Spark removes while we list."""
    found = set()
    for parent, directories, files in os.walk(folder, onerror=lambda error: None):
        found.update(Path(parent) / name for name in directories + files)
    return found


_COMMIT_FILE = re.compile(r"^\d{20}\.json$")


def _footer_written(path: Path) -> bool:
    """A Parquet file whose footer parses: its write task has closed it."""
    try:
        return path.stat().st_size > 12 and pq.read_metadata(path).num_rows >= 0
    except Exception:  # still being written, or moved away while we looked
        return False


def _reached(point: str, new: list[Path], writer: str) -> bool:
    """started: the write opened a file; task_finished: a data file is complete (offline,
    in a committed task directory of its run; native, with its footer written);
    committed: a new version of the table is in its log."""
    if point == "started":
        return any(p.suffix == ".parquet" for p in new)
    if point == "task_finished":
        if writer == "offline":
            return any("task_" in str(p) and p.suffix == ".parquet" for p in new)
        return any(p.suffix == ".parquet" and not p.name.startswith(".") and _footer_written(p) for p in new)
    if point == "committed":
        return any(p.parent.name == "_delta_log" and _COMMIT_FILE.match(p.name) for p in new)
    raise ValueError(point)


def _kill_when(process: subprocess.Popen, table: Path, point: str, writer: str) -> None:
    """SIGKILL the command's whole process group as soon as its write of `table` reached `point`."""
    before = _files_under(table)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if table.exists() and _reached(point, [p for p in _files_under(table) if p not in before], writer):
            break
        time.sleep(0.005)
    if process.poll() is not None:
        pytest.fail(f"the command ended before its write of {table.name} reached {point}: {process.stderr.read()}")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _kill_at_each_point(command: list[str], warehouse: str, points, writer: str, check) -> None:
    """Start the command and kill it at each point in turn; after each kill, `check()`
    that the readers' tables are still the previous ones."""
    for table, point in points:
        _kill_when(start(command), Path(warehouse) / table, point, writer)
        check(f"killed when its write of {table} {point}")


def _data_files_left(warehouse: str, names) -> dict[str, set[str]]:
    """Per table, the data files on disk that its latest version does not reference."""
    left = {}
    for name in names:
        location = Path(warehouse) / name
        referenced = {os.path.normpath(uri.removeprefix("file://")) for uri in DeltaTable(str(location)).file_uris()}
        on_disk = {
            os.path.normpath(p)
            for p in _files_under(location)
            if p.suffix == ".parquet" and "_delta_log" not in p.parts
        }
        left[name] = on_disk - referenced
    return left


def _one_run_id(warehouse: str, writer: str, spark) -> str:
    """The run id on the latest commits of histograms, distances and summary, which must be one."""
    tables = Warehouse(spark, warehouse, settings(writer))
    run_ids = {(tables.commit_info(name) or {}).get("run_id") for name in ("histograms", "distances", "summary")}
    assert len(run_ids) == 1 and None not in run_ids, run_ids
    return run_ids.pop()


def test_four_imports_of_different_models_at_once_keep_every_row(spark, built, writer, tmp_path):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    probe = Warehouse(spark, warehouse, settings(writer)).read("probe").toPandas()
    for round_number in range(2):
        files = {m: model_file(tmp_path, f"{m}-{round_number}", probe, i + round_number) for i, m in enumerate(MODELS)}
        processes = {
            m: start(
                wvb(
                    "predictions",
                    "import",
                    "--warehouse",
                    warehouse,
                    "--model",
                    m,
                    "--file",
                    str(files[m][0]),
                    writer=writer,
                )
            )
            for m in MODELS
        }
        outputs = {m: p.communicate(timeout=600) for m, p in processes.items()}
        for model, process in processes.items():
            assert process.returncode == 0, outputs[model][1]
            # what each command printed adds up to its file
            assert f"{files[model][1]} rows read" in outputs[model][0]
        rows = Warehouse(spark, warehouse, settings(writer)).partition_rows("predictions", "model")
        assert rows == {m: files[m][1] for m in MODELS}
        table = Warehouse(spark, warehouse, settings(writer)).read("predictions").toPandas()
        for i, model in enumerate(MODELS):
            got = table[table["model"] == model]
            expected = (got["d_interview"] + i + round_number) % 3 + 1
            assert len(got) == files[model][1] and (got["score"] == expected).all()


def test_two_evaluates_at_once_both_succeed_or_one_is_refused_in_one_line(spark, built, writer, tmp_path):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    writer_setting = ["--set", f"storage.writer={writer}"]
    assert cli.main(["baselines", "--warehouse", warehouse, "--models", "uniform,global-prior", *writer_setting]) == 0
    # --quiet: no progress lines, so a loser's stderr is its one error line
    command = wvb(
        "evaluate",
        "--warehouse",
        warehouse,
        "--bootstrap",
        "20",
        "--group-by",
        "overall,continent",
        "--quiet",
        writer=writer,
    )
    processes = [start(command), start(command)]
    results = [(p.communicate(timeout=600), p.returncode) for p in processes]
    codes = sorted(code for _, code in results)
    assert codes in ([0, 0], [0, 1]), results
    for (_out, err), code in results:
        if code == 1:
            lines = [line for line in err.splitlines() if line.startswith("wvb evaluate")]
            assert len(lines) == 1 and "changed by another writer" in lines[0], err
            assert "nothing was committed" in lines[0] or "stopped before writing" in lines[0], err
    _one_run_id(warehouse, writer, spark)  # the three tables come from one run, never from two
    raced = contents(warehouse, "distances", writer, spark)
    assert not raced.duplicated(["model", "question_id", "group_by", "group_value"]).any()
    # a rerun (in this process: no third JVM) gives the same rows
    rerun = ["evaluate", "--warehouse", warehouse, "--bootstrap", "20", "--group-by", "overall,continent"]
    assert cli.main([*rerun, *writer_setting]) == 0
    pd.testing.assert_frame_equal(raced, contents(warehouse, "distances", writer, spark))


def test_two_builds_at_once_both_succeed_or_one_is_refused_and_readers_see_one_whole_build(
    spark, built, writer, raw_file, tmp_path
):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    names = ("questions", "participants", "examples", "quarantine")
    baseline = {name: contents(built[writer], name, writer, spark) for name in names}
    command = wvb("build", "--raw", raw_file, "--warehouse", warehouse, "--quiet", writer=writer)
    processes = [start(command), start(command)]
    results = [(p.communicate(timeout=600), p.returncode) for p in processes]
    assert sorted(code for _, code in results) in ([0, 0], [0, 1]), results
    for (_out, err), code in results:
        if code == 1:
            lines = [line for line in err.splitlines() if line.startswith("wvb build")]
            assert len(lines) == 1 and "changed by another writer" in lines[0], err
    for name in names:
        pd.testing.assert_frame_equal(contents(warehouse, name, writer, spark), baseline[name], obj=name)
    # the versions readers see were all written by one build, the one build_runs names last
    tables = Warehouse(spark, warehouse, settings(writer))
    run_ids = {tables.commit_info(name, tables.version(name))["run_id"] for name in names}
    assert run_ids == {tables.commit_info("build_runs")["run_id"]}, run_ids


def test_an_import_during_an_evaluate_both_succeed_and_the_evaluate_scores_one_snapshot(spark, built, writer, tmp_path):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    writer_setting = ["--set", f"storage.writer={writer}"]
    assert cli.main(["baselines", "--warehouse", warehouse, "--models", "uniform,global-prior", *writer_setting]) == 0
    evaluate = ["evaluate", "--warehouse", warehouse, "--bootstrap", "20", "--quiet"]
    assert cli.main([*evaluate, *writer_setting]) == 0
    alone = contents(warehouse, "distances", writer, spark)
    rows_before = Warehouse(spark, warehouse, settings(writer)).partition_rows("predictions", "model")
    probe = Warehouse(spark, warehouse, settings(writer)).read("probe").toPandas()
    file, file_rows = model_file(tmp_path, "late", probe, 2)

    evaluating = start(wvb(*evaluate, writer=writer))
    importing = start(
        wvb("predictions", "import", "--warehouse", warehouse, "--model", "late", "--file", str(file), writer=writer)
    )
    for process in (evaluating, importing):  # different tables: neither may be refused
        _out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    tables = Warehouse(spark, warehouse, settings(writer))
    assert tables.partition_rows("predictions", "model") == {**rows_before, "late": file_rows}
    # the evaluate scored the models of the one predictions version it read, with or without the new one
    scored = set(contents(warehouse, "distances", writer, spark)["model"])
    assert scored == set(tables.commit_info("distances")["options"]["models"])
    assert scored in ({"uniform", "global-prior"}, {"uniform", "global-prior", "late"})
    raced = contents(warehouse, "distances", writer, spark)
    pd.testing.assert_frame_equal(raced[raced["model"] != "late"].reset_index(drop=True), alone)
    _one_run_id(warehouse, writer, spark)


BUILD_TABLES = ("questions", "participants", "examples", "quarantine")
# between tables (participants committed, examples not), in the middle of examples (a
# write task finished), after the last data table (quarantine committed, build_runs not)
BUILD_KILLS = [
    ("participants", "committed"),
    ("examples", "task_finished"),
    ("quarantine", "committed"),
]


def test_a_build_killed_at_each_point_leaves_the_last_build_and_a_rerun_equals_it(
    spark, built, writer, raw_file, tmp_path
):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    baseline = {name: contents(built[writer], name, writer, spark) for name in BUILD_TABLES}

    def readers_see_the_last_build(when: str) -> None:
        for name in BUILD_TABLES:
            got = contents(warehouse, name, writer, spark)
            assert len(got) == len(baseline[name]), f"{name}, {when}"
            pd.testing.assert_frame_equal(got, baseline[name], obj=f"{name}, {when}")

    command = wvb("build", "--raw", raw_file, "--warehouse", warehouse, writer=writer)
    _kill_at_each_point(command, warehouse, BUILD_KILLS, writer, readers_see_the_last_build)
    # the rerun (in this process: no second JVM) equals the uninterrupted build
    assert build.run_build(spark, settings(writer), raw_file, warehouse).participants == RESPONDENTS
    readers_see_the_last_build("after a rerun")
    completed = Warehouse(spark, warehouse, settings(writer))
    assert {completed.commit_info(name, completed.version(name))["run_id"] for name in BUILD_TABLES} == {
        completed.commit_info("build_runs")["run_id"]
    }
    # the killed runs' files are never read, and vacuum removes them
    assert any(_data_files_left(warehouse, BUILD_TABLES).values())
    vacuum = ["vacuum", "--warehouse", warehouse, "--retain-hours", "0", "--force"]
    assert cli.main([*vacuum, "--set", f"storage.writer={writer}"]) == 0
    assert _data_files_left(warehouse, BUILD_TABLES) == {name: set() for name in BUILD_TABLES}
    readers_see_the_last_build("after vacuum")


def test_an_import_killed_at_each_point_changes_nothing_and_a_rerun_imports_once(spark, built, writer, tmp_path):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    probe = Warehouse(spark, warehouse, settings(writer)).read("probe").toPandas()
    first, first_rows = model_file(tmp_path, "first", probe, 0)

    def imported(file: Path, into: str) -> None:  # in this process: no second JVM
        once = ["predictions", "import", "--warehouse", into, "--model", "m", "--file", str(file)]
        assert cli.main([*once, "--set", f"storage.writer={writer}"]) == 0

    imported(first, warehouse)
    before = contents(warehouse, "predictions", writer, spark)
    assert len(before) == first_rows
    big = pd.concat([probe] * 20)  # more rows: more write tasks
    second, second_rows = model_file(tmp_path, "second", big, 1)

    def unchanged(when: str) -> None:
        pd.testing.assert_frame_equal(contents(warehouse, "predictions", writer, spark), before, obj=when)

    command = wvb(
        "predictions", "import", "--warehouse", warehouse, "--model", "m", "--file", str(second), writer=writer
    )
    points = [("predictions", "started"), ("predictions", "task_finished")]
    _kill_at_each_point(command, warehouse, points, writer, unchanged)
    imported(second, warehouse)
    assert Warehouse(spark, warehouse, settings(writer)).partition_rows("predictions", "model") == {"m": second_rows}
    after = contents(warehouse, "predictions", writer, spark)
    # what the file says, read with pandas: every line once, the killed runs' rows not added
    lines = pd.read_csv(second, sep="\t", dtype=str)
    from_file = sorted(zip(lines["QUESTION_ID"], lines["PARTICIPANT_ID"].astype(int), lines["SCORE"]))
    assert sorted(zip(after["question_id"], after["d_interview"], after["raw_score"])) == from_file
    # and the whole rows equal an uninterrupted import of the same file into a copy of the same warehouse
    fresh = _copy(built[writer], tmp_path / "fresh")
    imported(second, fresh)
    pd.testing.assert_frame_equal(after, contents(fresh, "predictions", writer, spark))


EVALUATE_TABLES = ("histograms", "distances", "summary")
# after the first table's commit, in the middle of the second, between the second and the last
EVALUATE_KILLS = [("histograms", "committed"), ("distances", "task_finished"), ("distances", "committed")]


def test_an_evaluate_killed_at_each_point_changes_nothing_and_a_rerun_equals_an_uninterrupted_run(
    spark, built, writer, tmp_path
):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    writer_setting = ["--set", f"storage.writer={writer}"]
    baselines = ["baselines", "--warehouse", warehouse, "--models", "uniform,global-prior", *writer_setting]
    assert cli.main(baselines) == 0
    evaluate = ["evaluate", "--warehouse", warehouse, "--bootstrap", "20"]
    assert cli.main([*evaluate, *writer_setting]) == 0
    baseline = {name: contents(warehouse, name, writer, spark) for name in EVALUATE_TABLES}
    first_run = _one_run_id(warehouse, writer, spark)

    def unchanged(when: str) -> None:
        for name, frame in baseline.items():
            pd.testing.assert_frame_equal(contents(warehouse, name, writer, spark), frame, obj=f"{name}, {when}")
        # the killed runs committed none of summary: it is still the first run's
        assert Warehouse(spark, warehouse, settings(writer)).commit_info("summary")["run_id"] == first_run, when

    _kill_at_each_point(wvb(*evaluate, writer=writer), warehouse, EVALUATE_KILLS, writer, unchanged)
    assert cli.main([*evaluate, *writer_setting]) == 0
    for name, frame in baseline.items():
        pd.testing.assert_frame_equal(contents(warehouse, name, writer, spark), frame)
    assert _one_run_id(warehouse, writer, spark) != first_run  # the rerun committed all three
