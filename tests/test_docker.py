"""docker/: the image and the compose file, checked without Docker (no engine here).

The compose file's cluster must be the one the cluster test starts (same daemons, cores,
memory), and its submit container must run the pipeline the cluster test runs (the same
script, stages, input size and settings). The image must hold what the README promises
(Java 17, the pinned dependencies, Delta's jars, the zip for --py-files).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import standalone
import test_cluster
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_cluster_services_are_the_test_cluster(compose):
    services = compose["services"]
    master = services["master"]["command"]
    assert master[:2] == ["spark-class", standalone.MASTER_CLASS]
    workers = [name for name in services if name.startswith("worker-")]
    assert len(workers) == 2
    for name in workers:
        command = services[name]["command"]
        assert command[:2] == ["spark-class", standalone.WORKER_CLASS]
        assert command[command.index("--cores") + 1] == str(standalone.WORKER_CORES)
        assert command[command.index("--memory") + 1] == standalone.WORKER_MEMORY
        assert command[-1] == f"spark://master:{master[master.index('--port') + 1]}"
        assert "spark.worker.cleanup.enabled=true" in services[name]["environment"]["SPARK_WORKER_OPTS"]


def test_submit_runs_the_cluster_tests_pipeline(compose):
    submit = compose["services"]["submit"]
    script = submit["command"][-1]
    synth, pipeline = [part.strip() for part in script.split("&&")]
    assert pipeline == "jobs/pipeline.sh"  # every stage, in the script's order
    assert f"--respondents {test_cluster.RESPONDENTS}" in synth and f"--seed {test_cluster.SEED}" in synth
    environment = submit["environment"]
    assert environment["WVB_SET"] == test_cluster.SUBMIT_SETTINGS
    assert environment["WVB_MODEL"] == test_cluster.MODEL
    # the variables the cluster test gives the script, but for where things are
    assert set(environment) == set(test_cluster.PIPELINE_VARIABLES)


def test_the_scripts_default_stages_are_the_tested_ones():
    done = subprocess.run(
        ["bash", "-c", f"source <(sed -n '/^all_stages=/p' {ROOT / 'jobs/pipeline.sh'}); echo \"${{all_stages[@]}}\""],
        capture_output=True,
        text=True,
    )
    assert tuple(done.stdout.split()) == test_cluster.STAGES
    for stage in test_cluster.STAGES:
        assert (ROOT / "jobs" / f"{stage.replace('-', '_')}.py").is_file()


def test_script_refuses_a_missing_setting_in_one_line(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "jobs/pipeline.sh"), "--print", "build"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SPARK_MASTER": "spark://h:7077", "WVB_WAREHOUSE": "/w"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "jobs/pipeline.sh: WVB_RAW is not set (needed for build)"


def test_script_refuses_a_missing_package_in_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    # a copy of the script with no dist/ beside it, as in a fresh clone
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs/pipeline.sh").write_text((ROOT / "jobs/pipeline.sh").read_text())
    done = subprocess.run(
        ["bash", str(tmp_path / "jobs/pipeline.sh"), "--print", "probe"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SPARK_MASTER": "spark://h:7077", "WVB_WAREHOUSE": str(missing)},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "jobs/pipeline.sh: no dist/wvb_spark-<version>.zip: run make dist, or set WVB_PY_FILES"
    )


def test_image_holds_java_pinned_dependencies_jars_and_the_zip(dockerfile):
    assert re.search(r"openjdk-17-jre", dockerfile)
    assert re.search(r"FROM python:3\.11", dockerfile)
    assert 'pip install -c docker/constraints.txt ".[local]"' in dockerfile
    assert "wvb delta-jars" in dockerfile and "WVB_DELTA_JARS_DIR=" in dockerfile
    assert re.search(r"pip wheel --no-deps .* -w dist", dockerfile) and ".zip" in dockerfile
    for copied in ("jobs", "conf", "wvb_spark"):
        assert re.search(rf"^COPY {copied} {copied}$", dockerfile, re.MULTILINE)


def test_pins_satisfy_pyproject_and_cover_every_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for text in project["dependencies"] + project["optional-dependencies"]["local"]:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is not pinned in docker/constraints.txt"
        assert requirement.specifier.contains(pins[name]), (name, pins[name], str(requirement.specifier))
