"""The pipeline on a real Spark standalone cluster (master + 2 workers on 127.0.0.1).

What a new user does, end to end: `make dist`, then `jobs/pipeline.sh` (the script the
docker compose file runs) submits build -> probe -> baselines -> simulate-model ->
predictions -> evaluate -> report with `--py-files dist/wvb_spark-<v>.zip`. The driver and the
executors run a Python that has the dependencies but not wvb_spark (tests/standalone.py),
so the package can only come from the zip. Run twice: native Delta (Delta's jars with
--jars) with the node's Python, and the offline commit with the packed environment of
`make dist-env` (--archives ...#env). Each run's tables must equal a local[*] run of
`wvb` on the same input, read back with deltalake (not with the code under test).

Then faults: a driver SIGKILLed in the middle of a build's writes leaves every previous
version readable and the readers' view unchanged; the rerun, during which one worker is
SIGKILLed, completes on the other worker with the same tables. For both writers.

Slow by nature (minutes): one cluster for the session, a 300-respondent file. `make test`
runs the unmarked part: the whole pipeline with native Delta and the node's Python, its
tables against the local run, quiet logs, the old wheel recipe refused, and the native
fault test. The `cluster`-marked rest (the packed-environment run and its fault test,
timings) runs with `make test-cluster`, which runs all of it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from standalone import StandaloneCluster, alive, descendants, die_with_parent, executor_python, stop_pid

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "jobs" / "pipeline.sh"
STAGES = ("build", "probe", "baselines", "simulate-model", "predictions", "evaluate", "report")
BUILD_TABLES = ("questions", "participants", "examples", "quarantine")
RESPONDENTS = 300
SEED = 7
MODEL = "biased-model"
# The small input does not need conf/cluster.yaml's 200 shuffle partitions (compose too).
SUBMIT_SETTINGS = "spark.conf.spark.sql.shuffle.partitions=8"
# What a run of jobs/pipeline.sh is given besides where its tools are (docker/compose.yaml
# gives the same; tests/test_docker.py checks).
PIPELINE_VARIABLES = ("SPARK_MASTER", "WVB_RAW", "WVB_WAREHOUSE", "WVB_MODEL", "WVB_MODEL_FILE", "WVB_OUT", "WVB_SET")
SUBMIT_TIMEOUT_SECONDS = 900
# Spark prints a few INFO lines of its own start-up before spark.log.level takes effect.
QUIET_INFO_LINES = 5
# Compared in full, every column, with the local run.
BUILD_AND_PROBE_TABLES = ("questions", "participants", "examples", "quarantine", "probe", "probe_groups")


# --------------------------------------------------------------------------- helpers


def _bin(name: str) -> str:
    return str(Path(sys.prefix) / "bin" / name)


def _run(
    command: list[str], env: dict | None = None, timeout: float = SUBMIT_TIMEOUT_SECONDS, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd or ROOT, preexec_fn=die_with_parent
    )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1)


def _make(target: str, dist: Path) -> None:
    """`make <target>` with this test run's environment as the Makefile's VENV."""
    done = _run(["make", "-s", "-C", str(ROOT), target, f"VENV={sys.prefix}", f"DIST={dist}"], timeout=1200)
    assert done.returncode == 0, f"make {target} failed:\n{_tail(done.stdout + done.stderr)}"


class Submitter:
    """Runs jobs/pipeline.sh against the cluster with one run's settings, stage by stage,
    keeping each stage's wall time and output."""

    def __init__(self, cluster: StandaloneCluster, env: dict, name: str):
        self.cluster, self.env, self.name = cluster, env, name
        # Submitted from outside the repository: its folder holds the package.
        self.cwd = Path(env["WVB_WAREHOUSE"]).parent
        self.seconds: dict[str, float] = {}
        self.stderr: dict[str, str] = {}

    def command(self, stage: str, extra_env: dict | None = None) -> list[str]:
        """The exact spark-submit command of the script for `stage`."""
        done = _run(["bash", str(PIPELINE), "--print", stage], env={**self.env, **(extra_env or {})}, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    def run(self, stage: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        env = {**self.env, **(extra_env or {})}
        started = time.monotonic()
        done = _run(["bash", str(PIPELINE), stage], env=env, cwd=self.cwd)
        self.seconds[stage] = time.monotonic() - started
        self.stderr[stage] = done.stderr
        assert done.returncode == 0, (
            f"{self.name}: stage {stage} failed (exit {done.returncode}):\n{_tail(done.stderr, 60)}\n"
            f"cluster logs:\n{self.cluster.logs()}"
        )
        return done


def _parquet_files(directory: Path) -> set[str]:
    return {str(path) for path in directory.rglob("*.parquet")} if directory.exists() else set()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, request):
    """Master + 2 workers (1 core, 2 GB each). On a failing test its logs and the
    executors' stderr go to the terminal; the workers' directories are removed."""
    root = tmp_path_factory.mktemp("standalone")
    cluster = StandaloneCluster(root, worker_cores=1, worker_memory="2g")
    failed_before = request.session.testsfailed
    try:
        cluster.start(workers=2)
    except Exception:
        cluster.stop()
        raise
    yield cluster
    if request.session.testsfailed > failed_before:
        print(f"\n=== standalone cluster logs ({root}/logs) ===\n{cluster.logs()}", file=sys.__stderr__)
    cluster.stop()


@pytest.fixture(scope="session")
def node_python(cluster) -> Path:
    return executor_python(cluster.root)


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """`make dist` into a fresh directory: the wheel and the zip for --py-files."""
    directory = tmp_path_factory.mktemp("dist")
    _make("dist", directory)
    return directory


@pytest.fixture(scope="session")
def env_archive() -> Path:
    """`make dist-env` into the repository's dist/ (rebuilt only when pyproject.toml
    changes: it takes minutes and is the same for every run)."""
    _make("dist-env", ROOT / "dist")
    return ROOT / "dist" / "env.tar.gz"


@pytest.fixture(scope="session")
def delta_jars() -> list[str]:
    from wvb_spark.core import delta_jars as jars

    found = jars.cached({})
    if not found:
        pytest.skip(
            "native Delta on the cluster: Delta's jars are not cached (run `wvb delta-jars` "
            "where Maven Central is reachable)"
        )
    return found


@pytest.fixture(scope="session")
def raw_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("input") / "wvs.csv"
    done = _run([_bin("wvb"), "synth", "--respondents", str(RESPONDENTS), "--seed", str(SEED), "--out", str(out)])
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def local_run(tmp_path_factory, raw_file):
    """The reference: the same stages with `wvb` in local[*] (one process per stage, as
    `make demo` runs them), plus the model file both runs import."""
    root = tmp_path_factory.mktemp("local")
    warehouse, model_file = root / "warehouse", root / f"{MODEL}.tsv"
    wvb = _bin("wvb")
    commands = {
        "build": [wvb, "build", "--raw", str(raw_file), "--warehouse", str(warehouse)],
        "probe": [wvb, "probe", "--warehouse", str(warehouse)],
        "baselines": [wvb, "baselines", "--warehouse", str(warehouse)],
        "simulate-model": [
            wvb,
            "simulate-model",
            "--warehouse",
            str(warehouse),
            "--out",
            str(model_file),
            "--shift",
            "1",
            "--seed",
            str(SEED),
        ],
        "predictions": [
            wvb,
            "predictions",
            "import",
            "--warehouse",
            str(warehouse),
            "--model",
            MODEL,
            "--file",
            str(model_file),
        ],
        "evaluate": [wvb, "evaluate", "--warehouse", str(warehouse)],
        "report": [wvb, "report", "--warehouse", str(warehouse), "--out", str(root / "report")],
    }
    seconds = {}
    for stage, command in commands.items():
        started = time.monotonic()
        done = _run(command + ["--set", "spark.master=local[*]"])
        seconds[stage] = time.monotonic() - started
        assert done.returncode == 0, f"local {stage} failed:\n{_tail(done.stderr)}"
    return {"warehouse": warehouse, "model_file": model_file, "seconds": seconds}


def _submit_env(cluster, node_python, dist, raw_file, warehouse: Path, **extra) -> dict:
    """The environment of a pipeline run: the submitting machine has no PYTHONPATH and no
    wvb_spark; driver and executors run the node's Python unless an archive says otherwise."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYSPARK_", "SPARK_", "WVB_")) and key != "PYTHONPATH"
    }
    env.update(
        {
            "SPARK_SUBMIT": _bin("spark-submit"),
            "SPARK_MASTER": cluster.url,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": str(node_python),
            "PYSPARK_DRIVER_PYTHON": str(node_python),
            "WVB_PY_FILES": str(dist / f"wvb_spark-{_version()}.zip"),
            "WVB_RAW": str(raw_file),
            "WVB_WAREHOUSE": str(warehouse),
            "WVB_MODEL": MODEL,
            "WVB_MODEL_FILE": str(warehouse.parent / f"{MODEL}.tsv"),
            "WVB_OUT": str(warehouse.parent / "report"),
            "WVB_SET": SUBMIT_SETTINGS,
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


@pytest.fixture(scope="session")
def native_run(cluster, node_python, dist, raw_file, delta_jars, tmp_path_factory):
    """The whole pipeline with native Delta (the jars of `wvb delta-jars` with --jars),
    executors on the node's Python."""
    warehouse = tmp_path_factory.mktemp("cluster-native") / "warehouse"
    env = _submit_env(cluster, node_python, dist, raw_file, warehouse, WVB_DELTA_JARS_DIR=Path(delta_jars[0]).parent)
    submitter = Submitter(cluster, env, "native")
    for stage in STAGES:
        submitter.run(stage)
    return {"warehouse": warehouse, "submitter": submitter}


@pytest.fixture(scope="session")
def packed_run(cluster, node_python, dist, env_archive, raw_file, tmp_path_factory):
    """The whole pipeline again with the offline commit, the dependencies shipped to the
    executors as the packed environment (--archives dist/env.tar.gz#env)."""
    warehouse = tmp_path_factory.mktemp("cluster-packed") / "warehouse"
    env = _submit_env(cluster, node_python, dist, raw_file, warehouse, WVB_ENV_ARCHIVE=env_archive)
    env["WVB_SET"] += " storage.writer=offline"
    submitter = Submitter(cluster, env, "packed")
    for stage in STAGES:
        submitter.run(stage)
    return {"warehouse": warehouse, "submitter": submitter}


@pytest.fixture(params=["native", pytest.param("packed", marks=pytest.mark.cluster)])
def cluster_run(request):
    return request.getfixturevalue(f"{request.param}_run")


# --------------------------------------------------------------------------- reading tables


def _table(warehouse: Path, name: str, version: int | None = None) -> pd.DataFrame:
    """A table through deltalake (the log's snapshot), not through wvb_spark's reader."""
    from deltalake import DeltaTable

    return DeltaTable(str(warehouse / name), version=version).to_pandas()


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = sorted(frame.columns)
    plain = frame[columns].copy()
    for column in columns:  # maps and arrays compare as text
        if plain[column].map(lambda v: isinstance(v, (list, dict, np.ndarray))).any():
            plain[column] = plain[column].map(
                lambda v: json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, sort_keys=True, default=str)
            )
    return plain.sort_values(keys).reset_index(drop=True)


def _tables(warehouse: Path) -> list[str]:
    return sorted(path.parent.name for path in warehouse.glob("*/_delta_log"))


# --------------------------------------------------------------------------- the runs


def test_node_python_has_the_dependencies_but_not_wvb_spark(node_python):
    """The premise of every cluster test: the package reaches executors only by --py-files."""
    elsewhere = node_python.parents[2]  # not the repository, whose folder holds the package
    has = _run([str(node_python), "-c", "import pandas, pyarrow, numpy, scipy, yaml, deltalake"], cwd=elsewhere)
    lacks = _run([str(node_python), "-c", "import wvb_spark"], cwd=elsewhere)
    assert has.returncode == 0, has.stderr
    assert lacks.returncode != 0 and "No module named 'wvb_spark'" in lacks.stderr


def test_dist_holds_the_zip_and_the_wheel(dist):
    from zipfile import ZipFile

    version = _version()
    archive = dist / f"wvb_spark-{version}.zip"
    assert (dist / f"wvb_spark-{version}-py3-none-any.whl").is_file()
    names = set(ZipFile(archive).namelist())
    assert {"wvb_spark/cli.py", "wvb_spark/resources/defaults.yaml", "wvb_spark/resources/codebook.json"} <= names


def test_a_submitted_build_and_probe_equal_the_local_ones(native_run, local_run, capsys):
    """Executors that get wvb_spark only from the zip write the build's and the probe's
    tables a local run writes, every row and column; Delta's own writer made the commits."""
    from deltalake import DeltaTable

    warehouse, local_warehouse = native_run["warehouse"], local_run["warehouse"]
    for name in BUILD_AND_PROBE_TABLES:
        cluster, local = _table(warehouse, name), _table(local_warehouse, name)
        assert len(cluster) == len(local), name
        every_column = sorted(local.columns)
        pd.testing.assert_frame_equal(_sorted(cluster, every_column), _sorted(local, every_column), obj=name)
    assert len(_table(warehouse, "participants")) == RESPONDENTS
    operation = DeltaTable(str(warehouse / "examples")).history(1)[0]["operation"]
    assert operation in {"WRITE", "CREATE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT"}, operation
    submitted = native_run["submitter"].seconds
    with capsys.disabled():  # to the terminal, past pytest's capture
        print(
            "\ncluster timings (wall, one run each, start-up included), local[*] / 2 workers native: "
            + ", ".join(f"{stage} {local_run['seconds'][stage]:.0f} / {submitted[stage]:.0f} s" for stage in STAGES)
        )


def test_cluster_tables_equal_the_local_run(cluster_run, local_run):
    cluster, local = cluster_run["warehouse"], local_run["warehouse"]
    assert _tables(cluster) == _tables(local)
    assert len(_tables(cluster)) == 11
    for name in _tables(local):
        assert len(_table(cluster, name)) == len(_table(local, name)), name
    participants = _table(cluster, "participants")
    assert len(participants) == RESPONDENTS
    pd.testing.assert_frame_equal(
        _sorted(participants, ["d_interview"]), _sorted(_table(local, "participants"), ["d_interview"])
    )


def test_cluster_examples_equal_the_local_run(cluster_run, local_run):
    """A sample of examples: every row of six questions (two of each split's order)."""
    from deltalake import DeltaTable

    wanted = ["Q1", "Q27", "Q57", "Q106", "Q199", "Q253"]
    frames = [
        DeltaTable(str(run / "examples")).to_pandas(filters=[("question_id", "in", wanted)])
        for run in (cluster_run["warehouse"], local_run["warehouse"])
    ]
    assert len(frames[0]) > 1000
    keys = ["question_id", "d_interview"]
    pd.testing.assert_frame_equal(_sorted(frames[0], keys), _sorted(frames[1], keys))


def test_cluster_distances_equal_the_local_run(cluster_run, local_run):
    """Every W1 to 1e-12, the same keys, and the same predictions and summary."""
    keys = ["model", "question_id", "group_by", "group_value"]
    cluster = _table(cluster_run["warehouse"], "distances").set_index(keys).sort_index()
    local = _table(local_run["warehouse"], "distances").set_index(keys).sort_index()
    assert list(cluster.index) == list(local.index)
    assert set(cluster.index.get_level_values("model")) >= {MODEL, "uniform", "group-prior"}
    np.testing.assert_allclose(cluster["w1"].to_numpy(), local["w1"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        cluster["w1_ci_high"].to_numpy(dtype=float), local["w1_ci_high"].to_numpy(dtype=float), rtol=0, atol=1e-12
    )
    for name, table_keys in (
        ("predictions", ["model", "question_id", "d_interview"]),
        ("summary", ["model", "group_by", "group_value", "threshold"]),
    ):
        pd.testing.assert_frame_equal(
            _sorted(_table(cluster_run["warehouse"], name), table_keys),
            _sorted(_table(local_run["warehouse"], name), table_keys),
            check_exact=False,
            rtol=0,
            atol=1e-12,
        )


def test_cluster_model_file_and_report(cluster_run, local_run):
    """simulate-model on the cluster wrote the very file the local run wrote."""
    cluster_file = cluster_run["warehouse"].parent / f"{MODEL}.tsv"
    assert cluster_file.read_bytes() == local_run["model_file"].read_bytes()
    report = cluster_run["warehouse"].parent / "report"
    assert (report / "report.html").is_file() and (report / "report.md").is_file()


def test_spark_logs_are_quiet_under_spark_submit(native_run):
    """Spark's INFO start-up lines stop once the context starts (spark.log.level)."""
    for stage, stderr in native_run["submitter"].stderr.items():
        info = [line for line in stderr.splitlines() if " INFO " in line]
        assert len(info) <= QUIET_INFO_LINES, (stage, info[:20])


@pytest.mark.cluster
def test_packed_run_used_the_archive(packed_run):
    """The packed run's executors ran ./env/bin/python from the archive (the command says
    so, and the archive holds the dependencies but not wvb_spark)."""
    import tarfile

    command = packed_run["submitter"].command("evaluate")
    assert "spark.pyspark.python=./env/bin/python" in command
    assert any(word.endswith("env.tar.gz#env") for word in command)
    with tarfile.open(ROOT / "dist" / "env.tar.gz") as archive:
        names = archive.getnames()
    assert any("/site-packages/pandas/" in name for name in names)
    assert not any("/site-packages/wvb_spark/" in name for name in names)


def test_a_wheel_in_py_files_fails_in_one_line(native_run, dist, cluster):
    """The old recipe (--py-files of the wheel): the driver imports it, the executors do
    not (Spark puts only .zip/.egg on their path); one line says so, no traceback."""
    submitter = native_run["submitter"]
    command = submitter.command("probe", {"WVB_PY_FILES": str(dist / f"wvb_spark-{_version()}-py3-none-any.whl")})
    done = _run(command, env=submitter.env, cwd=submitter.cwd)
    # spark-submit runs the driver's Python with its stderr merged into stdout
    # (PythonRunner), so the line may arrive on either
    output = done.stdout + done.stderr
    assert done.returncode == 2, _tail(output)
    assert "wvb probe: error: the executors' Python cannot import wvb_spark" in output
    assert "Traceback" not in output


@pytest.mark.cluster
def test_timings(native_run, packed_run, local_run, cluster, capsys):
    """Wall times of the same stages: 2-worker submits vs local[*] (kept in timings.json)."""
    local = sum(seconds for stage, seconds in local_run["seconds"].items() if stage in STAGES)
    native = sum(native_run["submitter"].seconds.values())
    packed = sum(packed_run["submitter"].seconds.values())
    timings = {
        "local": local_run["seconds"],
        "native": native_run["submitter"].seconds,
        "packed": packed_run["submitter"].seconds,
        "totals": {"local": local, "cluster_native": native, "cluster_packed": packed},
    }
    (cluster.root / "timings.json").write_text(json.dumps(timings, indent=2))
    with capsys.disabled():  # to the terminal, past pytest's capture
        print(
            f"\ncluster timings: local[*] {local:.1f} s, 2 workers native {native:.1f} s, "
            f"packed {packed:.1f} s ({cluster.root / 'timings.json'})"
        )
    assert local > 0 and native > 0 and packed > 0


# --------------------------------------------------------------------------- faults


def _snapshot(warehouse: Path) -> dict:
    """Latest version and content of every table."""
    from deltalake import DeltaTable

    return {name: (DeltaTable(str(warehouse / name)).version(), _table(warehouse, name)) for name in _tables(warehouse)}


def _pinned_versions(warehouse: Path) -> dict:
    from wvb_spark.core.warehouse import Warehouse

    return Warehouse(None, str(warehouse), {}).build_versions()


def _wait_for_new_file(
    directory: Path, before: set[str], process: subprocess.Popen, timeout: float = SUBMIT_TIMEOUT_SECONDS
) -> bool:
    """Poll until a data file that was not there before appears (a write is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _parquet_files(directory) - before:
            return True
        time.sleep(0.02)
    return False


def _kill_driver(process: subprocess.Popen) -> None:
    """SIGKILL the driver: spark-submit's JVM (the PID we started) and its Python."""
    below = descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    for pid in below:
        stop_pid(pid, signal.SIGKILL, timeout=5)
    process.wait(timeout=30)


def _executor_pids(worker) -> list[int]:
    found = []
    for pid in descendants(worker.pid):
        try:
            if b"CoarseGrainedExecutorBackend" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


@pytest.mark.parametrize("writer", ["native", pytest.param("packed", marks=pytest.mark.cluster)])
def test_faults_driver_killed_mid_write_then_worker_killed_in_rerun(writer, request, cluster, local_run):
    """1. a build's driver is SIGKILLed while it writes `examples`: every version stays
    readable, readers still see the previous build; 2. the rerun completes although one
    worker is SIGKILLed in the middle of it (Spark reruns its tasks on the other), with
    the same tables as the local run."""
    run = request.getfixturevalue(f"{writer}_run")
    warehouse, submitter = run["warehouse"], run["submitter"]
    before = _snapshot(warehouse)
    pinned_before = _pinned_versions(warehouse)

    # 1. the driver dies in the middle of writing examples
    command = submitter.command("build")
    log = cluster.root / "logs" / f"killed-driver-{writer}.log"
    with open(log, "w") as handle:
        driver = subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=submitter.env,
            cwd=submitter.cwd,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    examples_before = _parquet_files(warehouse / "examples")
    writing = _wait_for_new_file(warehouse / "examples", examples_before, driver)
    assert writing, f"the build ended before writing examples:\n{_tail(log.read_text())}"
    _kill_driver(driver)
    assert _pinned_versions(warehouse) == pinned_before
    from deltalake import DeltaTable

    for name, (version, content) in before.items():
        table = DeltaTable(str(warehouse / name))
        for old in range(table.version() + 1):  # every version, the killed run's commits too
            DeltaTable(str(warehouse / name), version=old).to_pyarrow_table()
        pd.testing.assert_frame_equal(_table(warehouse, name, version), content)
    # the examples the killed run had written are not part of any version readers see
    assert DeltaTable(str(warehouse / "examples")).version() == before["examples"][0]
    assert _parquet_files(warehouse / "examples") - examples_before

    # 2. rerun (with Spark's own logging: spark.quiet_logs=false restores it); one worker is
    # SIGKILLed once the build has executors and writes its first table
    loud = submitter.command("build", {"WVB_SET": f"{submitter.env['WVB_SET']} spark.quiet_logs=false"})
    rerun_log = cluster.root / "logs" / f"rerun-{writer}.log"
    with open(rerun_log, "w") as handle:
        rerun = subprocess.Popen(
            loud,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=submitter.env,
            cwd=submitter.cwd,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    victim = cluster.workers[0]
    deadline = time.monotonic() + SUBMIT_TIMEOUT_SECONDS
    while not _executor_pids(victim) and rerun.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    questions_before = _parquet_files(warehouse / "questions")
    assert _wait_for_new_file(warehouse / "questions", questions_before, rerun), "rerun ended early"
    orphans = cluster.kill_worker(victim)
    try:
        assert rerun.wait(timeout=SUBMIT_TIMEOUT_SECONDS) == 0, (
            f"the rerun failed after losing a worker:\n{_tail(rerun_log.read_text(), 60)}"
        )
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in orphans) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [pid for pid in orphans if alive(pid)], "the lost worker's executor outlived it"
    finally:
        for pid in orphans:
            stop_pid(pid, signal.SIGKILL, timeout=5)
        cluster.add_worker()
    assert sum(" INFO " in line for line in rerun_log.read_text().splitlines()) > 10 * QUIET_INFO_LINES
    pinned_after = _pinned_versions(warehouse)
    assert all(pinned_after[name] > pinned_before[name] for name in BUILD_TABLES)
    local = local_run["warehouse"]
    for name, keys in (
        ("participants", ["d_interview"]),
        ("examples", ["question_id", "d_interview"]),
        ("questions", ["question_id"]),
    ):
        pd.testing.assert_frame_equal(
            _sorted(_table(warehouse, name, pinned_after[name]), keys), _sorted(_table(local, name), keys)
        )
