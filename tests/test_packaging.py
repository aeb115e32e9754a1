"""Packaging that respects the runtime: the wheel never installs or replaces pyspark or
delta-spark (a cluster or Databricks runtime provides them), a missing pyspark is one
line, the supported pyspark range is stated and its lower end tested in a fresh venv,
and only local sessions point the executors at the driver's own interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from email.parser import Parser
from pathlib import Path
from zipfile import ZipFile

import pytest

from wvb_spark.core import runtime, session

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PYSPARK = "4.0.1"  # what Databricks Runtime 17.x ships: the low end of the range


def _version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "dist", f"VENV={sys.prefix}", f"DIST={dist}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dist / f"wvb_spark-{_version()}-py3-none-any.whl"


def test_wheel_requires_spark_only_in_the_local_extra(wheel):
    with ZipFile(wheel) as archive:
        metadata = archive.read(f"wvb_spark-{_version()}.dist-info/METADATA").decode()
    requires = Parser().parsestr(metadata).get_all("Requires-Dist")
    spark = [r for r in requires if re.match(r"(pyspark|delta-spark)\b", r)]
    assert spark and all('extra == "local"' in r for r in spark), spark
    plain = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert plain == {"deltalake", "pyarrow", "numpy", "scipy", "pandas", "pyyaml", "matplotlib"}


def test_supported_range():
    assert runtime.SUPPORTED_TEXT == ">=4.0.0,<4.3.0"
    for inside in ("4.0.0", "4.0.1", "4.1.1", "4.2.0", "4.2.0.dev1", "4.0.0+db17"):
        assert runtime.supported(inside), inside
    for outside in ("3.5.4", "4.3.0", "5.0.0"):
        assert not runtime.supported(outside), outside


def test_unsupported_pyspark_warns_in_one_line(capsys):
    from wvb_spark.core import logs

    logs.setup("probe")  # as the runner does
    assert runtime.warn_if_unsupported("3.5.1") is True
    assert not runtime.warn_if_unsupported("4.2.0")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "wvb probe: pyspark 3.5.1 is outside the supported range >=4.0.0,<4.3.0; results are not tested on it"
    ]


def _without_pyspark(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Run `code` where `import pyspark` fails as it does when pyspark is not installed."""
    prelude = "import sys; sys.modules['pyspark'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


def test_missing_pyspark_is_one_line_and_help_and_synth_still_work(tmp_path):
    done = _without_pyspark(
        "from wvb_spark.cli import main; sys.exit(main(['build', '--raw', 'x.csv', '--warehouse', 'w']))", tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"wvb build: error: {runtime.MISSING}"]
    helped = _without_pyspark("from wvb_spark.cli import main; main(['--help'])", tmp_path)
    assert helped.returncode == 0 and "build" in helped.stdout and "synth" in helped.stdout
    synth = _without_pyspark(
        "from wvb_spark.cli import main; sys.exit(main(['synth', '--respondents', '30', '--out', 'w.csv']))", tmp_path
    )
    assert synth.returncode == 0, synth.stderr
    assert (tmp_path / "w.csv").is_file()


def test_only_local_masters_get_the_drivers_interpreter(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.delenv("PYSPARK_DRIVER_PYTHON", raising=False)
    session._python_for_local_workers("spark://127.0.0.1:7077")
    assert "PYSPARK_PYTHON" not in os.environ
    session._python_for_local_workers("local[2]")
    assert os.environ["PYSPARK_PYTHON"] == sys.executable


def _pip(python: Path, *arguments: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_wheel_keeps_the_runtimes_pyspark(wheel, tmp_path):
    """A fresh venv holding pyspark 4.0.1, as a Databricks 17.x runtime does, gets the wheel
    installed with its dependencies: pyspark stays 4.0.1, no delta-spark comes along,
    `wvb --help` works, and a build runs on it (offline commit: no Delta jars there)."""
    environment = tmp_path / "runtime"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    runtime_installed = _pip(python, "install", "-q", f"pyspark=={RUNTIME_PYSPARK}")
    if runtime_installed.returncode != 0:
        if re.search(
            r"(Could not fetch|connection|resolve|Network|No matching distribution)",
            runtime_installed.stderr,
            re.IGNORECASE,
        ):
            pytest.skip(
                f"pyspark {RUNTIME_PYSPARK} could not be had from the package index "
                f"(offline?): {runtime_installed.stderr.strip().splitlines()[-1]}"
            )
        raise AssertionError(runtime_installed.stderr)
    installed = _pip(python, "install", str(wheel))
    assert installed.returncode == 0, installed.stderr
    assert "pyspark" not in installed.stdout.lower().split("successfully installed")[-1]
    assert "Uninstalling pyspark" not in installed.stdout
    frozen = _pip(python, "freeze").stdout.lower().splitlines()
    assert f"pyspark=={RUNTIME_PYSPARK}" in frozen
    assert not [line for line in frozen if line.startswith(("delta-spark", "delta_spark"))]
    wvb = environment / "bin" / "wvb"
    helped = subprocess.run([str(wvb), "--help"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert helped.returncode == 0 and "evaluate" in helped.stdout, helped.stderr
    raw, warehouse = tmp_path / "wvs.csv", tmp_path / "warehouse"
    steps = [
        [str(wvb), "synth", "--respondents", "80", "--out", str(raw)],
        [
            str(wvb),
            "build",
            "--raw",
            str(raw),
            "--warehouse",
            str(warehouse),
            "--set",
            "storage.writer=offline",
            "--set",
            "spark.master=local[2]",
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^participants\s+80$", done.stdout, re.MULTILINE), done.stdout
    assert "outside the supported range" not in done.stderr
