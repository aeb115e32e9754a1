"""Real processes: commands writing the same tables at once, and commands killed
(SIGKILL, the whole process group) after a write task has finished. Under both writers.

Each case runs `python -m wvb_spark.cli ...` as a user would and checks the tables
against an uninterrupted run on the same input (row counts and sorted contents).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


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
        assert run(wvb("probe", "--warehouse", root, writer=writer)).returncode == 0
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


def _kill_after_a_task_finished(process: subprocess.Popen, table: Path, writer: str) -> None:
    """SIGKILL the command's process group as soon as a write task of `table` has finished:
    offline, a committed task directory of its run; native, a closed data file (Hadoop
    writes the checksum file when the data file is closed)."""
    before = _files_under(table)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if table.exists():
            new = [p for p in _files_under(table) if p not in before]
            if writer == "offline" and any("task_" in str(p) and p.suffix == ".parquet" for p in new):
                break
            if writer == "native" and any(p.name.endswith(".parquet.crc") for p in new):
                break
        time.sleep(0.005)
    if process.poll() is not None:
        pytest.fail(f"the command ended before a write task of {table.name} finished: {process.stderr.read()}")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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
    assert (
        run(wvb("baselines", "--warehouse", warehouse, "--models", "uniform,global-prior", writer=writer)).returncode
        == 0
    )
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
    assert run(command).returncode == 0
    pd.testing.assert_frame_equal(raced, contents(warehouse, "distances", writer, spark))


@pytest.mark.parametrize("table", ["examples"])
def test_a_build_killed_after_a_write_task_leaves_the_last_build_and_a_rerun_equals_it(
    spark, built, writer, raw_file, tmp_path, table
):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    names = ("questions", "participants", "examples", "quarantine")
    baseline = {name: contents(built[writer], name, writer, spark) for name in names}

    process = start(wvb("build", "--raw", raw_file, "--warehouse", warehouse, writer=writer))
    _kill_after_a_task_finished(process, Path(warehouse) / table, writer)

    for name in names:  # readers still see the previous, complete build
        pd.testing.assert_frame_equal(contents(warehouse, name, writer, spark), baseline[name])
    rerun = run(wvb("build", "--raw", raw_file, "--warehouse", warehouse, writer=writer))
    assert rerun.returncode == 0, rerun.stderr
    for name in names:
        pd.testing.assert_frame_equal(contents(warehouse, name, writer, spark), baseline[name])


def test_an_import_killed_after_a_write_task_changes_nothing_and_a_rerun_imports_once(spark, built, writer, tmp_path):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    probe = Warehouse(spark, warehouse, settings(writer)).read("probe").toPandas()
    first, first_rows = model_file(tmp_path, "first", probe, 0)
    assert (
        run(
            wvb("predictions", "import", "--warehouse", warehouse, "--model", "m", "--file", str(first), writer=writer)
        ).returncode
        == 0
    )
    before = contents(warehouse, "predictions", writer, spark)
    big = pd.concat([probe] * 20)  # more rows: more write tasks
    second, second_rows = model_file(tmp_path, "second", big, 1)

    process = start(
        wvb("predictions", "import", "--warehouse", warehouse, "--model", "m", "--file", str(second), writer=writer)
    )
    _kill_after_a_task_finished(process, Path(warehouse) / "predictions", writer)

    pd.testing.assert_frame_equal(contents(warehouse, "predictions", writer, spark), before)
    rerun = run(
        wvb("predictions", "import", "--warehouse", warehouse, "--model", "m", "--file", str(second), writer=writer)
    )
    assert rerun.returncode == 0, rerun.stderr
    assert Warehouse(spark, warehouse, settings(writer)).partition_rows("predictions", "model") == {"m": second_rows}
    assert len(before) == first_rows
    after = contents(warehouse, "predictions", writer, spark)
    # what the file says, read with pandas: every line once, the killed run's rows not added
    lines = pd.read_csv(second, sep="\t", dtype=str)
    from_file = sorted(zip(lines["QUESTION_ID"], lines["PARTICIPANT_ID"].astype(int), lines["SCORE"]))
    assert sorted(zip(after["question_id"], after["d_interview"], after["raw_score"])) == from_file
    # and the whole rows equal an uninterrupted import of the same file into a copy of the same warehouse
    fresh = _copy(built[writer], tmp_path / "fresh")
    once = ["predictions", "import", "--warehouse", fresh, "--model", "m", "--file", str(second)]
    assert cli.main([*once, "--set", f"storage.writer={writer}"]) == 0  # in this process: no second JVM
    pd.testing.assert_frame_equal(after, contents(fresh, "predictions", writer, spark))


def test_an_evaluate_killed_after_a_write_task_changes_nothing_and_a_rerun_equals_an_uninterrupted_run(
    spark, built, writer, tmp_path
):
    if writer not in built:
        pytest.skip("native Delta is not available")
    warehouse = _copy(built[writer], tmp_path / "wh")
    assert (
        run(wvb("baselines", "--warehouse", warehouse, "--models", "uniform,global-prior", writer=writer)).returncode
        == 0
    )
    command = wvb("evaluate", "--warehouse", warehouse, "--bootstrap", "20", writer=writer)
    assert run(command).returncode == 0
    baseline = {name: contents(warehouse, name, writer, spark) for name in ("histograms", "distances", "summary")}
    first_run = _one_run_id(warehouse, writer, spark)

    process = start(command)
    _kill_after_a_task_finished(process, Path(warehouse) / "distances", writer)

    for name, frame in baseline.items():
        pd.testing.assert_frame_equal(contents(warehouse, name, writer, spark), frame)
    # killed while writing distances: distances and summary are still the first run's
    # (histograms, committed first, may be the killed run's, with the same rows)
    tables = Warehouse(spark, warehouse, settings(writer))
    assert {tables.commit_info(name)["run_id"] for name in ("distances", "summary")} == {first_run}
    rerun = run(command)
    assert rerun.returncode == 0, rerun.stderr
    for name, frame in baseline.items():
        pd.testing.assert_frame_equal(contents(warehouse, name, writer, spark), frame)
    assert _one_run_id(warehouse, writer, spark) != first_run  # the rerun committed all three
