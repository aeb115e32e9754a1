"""The Databricks Asset Bundle, checked offline (no workspace here): the YAML parses,
dev and prod write different schemas and prod has what the CLI requires, every task runs
an entry point the wheel declares with parameters the CLI accepts, the settings file
reaches every task once, and the runtime's Spark is in the supported range."""

from __future__ import annotations

import glob
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from wvb_spark import cli
from wvb_spark.core import runtime, stage
from wvb_spark.core.catalog import parse_root

ROOT = Path(__file__).resolve().parents[1]
# Databricks Runtime major version -> its Apache Spark (Databricks release notes:
# 16.x ships Spark 3.5, 17.0-17.3 LTS ship Spark 4.0.0).
RUNTIME_SPARK = {"16": "3.5.0", "17": "4.0.0"}


@pytest.fixture(scope="module")
def bundle() -> dict:
    return yaml.safe_load((ROOT / "databricks.yml").read_text())


@pytest.fixture(scope="module")
def resources(bundle) -> dict:
    merged: dict = {}
    for pattern in bundle["include"]:
        for path in sorted(glob.glob(str(ROOT / pattern))):
            for kind, items in (yaml.safe_load(Path(path).read_text())["resources"]).items():
                merged.setdefault(kind, {}).update(items)
    return merged


def _tasks(resources) -> list[dict]:
    return [task for job in resources["jobs"].values() for task in job["tasks"]]


def _resolve(text: str, variables: dict) -> str:
    """${var.x} and ${workspace.current_user.short_name} as the CLI would fill them."""

    def value(match):
        name = match.group(1)
        if name.startswith("var."):
            return _resolve(str(variables[name[4:]]), variables)
        if name == "workspace.current_user.short_name":
            return "ada_lovelace"
        if name == "workspace.file_path":
            return "/Workspace/Users/ada@example.com/.bundle/wvb_spark/dev/files"
        raise AssertionError(f"unexpected reference ${{{name}}}")

    return re.sub(r"\$\{([^}]+)\}", value, text)


def _variables(bundle, target: str) -> dict:
    values = {name: spec.get("default") for name, spec in bundle["variables"].items()}
    values.update(bundle["targets"][target].get("variables") or {})
    values.setdefault("run_as_service_principal", "00000000-0000-0000-0000-000000000000")
    return values


def test_targets_write_different_schemas_and_prod_has_root_path_and_run_as(bundle):
    dev, prod = bundle["targets"]["dev"], bundle["targets"]["prod"]
    assert dev["mode"] == "development" and prod["mode"] == "production"
    assert prod["workspace"]["root_path"].startswith("/Workspace/")
    assert prod["run_as"]
    dev_schema = _resolve(_variables(bundle, "dev")["schema"], _variables(bundle, "dev"))
    prod_schema = _resolve(_variables(bundle, "prod")["schema"], _variables(bundle, "prod"))
    assert dev_schema != prod_schema
    assert "ada_lovelace" in dev_schema  # one schema per developer
    assert "${workspace.current_user.short_name}" not in str(prod.get("variables"))


def test_every_task_runs_a_declared_entry_point(resources):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    tasks = _tasks(resources)
    assert [t["task_key"] for t in tasks] == ["build", "probe", "baselines", "evaluate", "report"]
    for task in tasks:
        wheel_task = task["python_wheel_task"]
        assert wheel_task["package_name"] == package
        assert wheel_task["entry_point"] in scripts
        module, function = scripts[wheel_task["entry_point"]].split(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_task_parameters_are_accepted_by_the_cli(bundle, resources, target):
    variables = _variables(bundle, target)
    for task in _tasks(resources):
        parameters = [_resolve(p, variables) for p in task["python_wheel_task"]["parameters"]]
        command = parameters[0]
        parser = cli.build_parser(command)
        args = parser.parse_args(parameters)  # SystemExit (a failed test) if refused
        assert args.command == command
        catalog, schema = parse_root(args.warehouse)
        assert (catalog, schema) == (variables["catalog"], _resolve(variables["schema"], variables))
        assert "--set" not in parameters and "--conf" not in parameters  # WVB_CONF does that


def test_settings_file_reaches_every_task_through_the_job_cluster(resources):
    job = next(iter(resources["jobs"].values()))
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    assert {task["job_cluster_key"] for task in job["tasks"]} <= set(clusters)
    for new_cluster in clusters.values():
        conf = new_cluster["spark_env_vars"][stage.CONF_VARIABLE]
        assert conf.startswith("${workspace.file_path}/")
        relative = conf.split("/", 1)[1]
        settings = yaml.safe_load((ROOT / relative).read_text())
        assert settings["storage"]["writer"] == "native"  # metastore tables need Delta's writer


def test_conf_variable_is_the_default_of_every_command(monkeypatch, tmp_path):
    settings = tmp_path / "s.yaml"
    settings.write_text("storage:\n  writer: native\n")
    monkeypatch.setenv(stage.CONF_VARIABLE, str(settings))
    args = cli.build_parser("probe").parse_args(["probe", "--warehouse", "w"])
    assert args.conf == str(settings)
    args = cli.build_parser("probe").parse_args(["probe", "--warehouse", "w", "--conf", "x.yaml"])
    assert args.conf == "x.yaml"


def test_runtime_spark_is_in_the_supported_range(resources):
    job = next(iter(resources["jobs"].values()))
    for job_cluster in job["job_clusters"]:
        version = job_cluster["new_cluster"]["spark_version"]
        major = re.match(r"(\d+)\.\d+\.x-", version).group(1)
        assert runtime.supported(RUNTIME_SPARK[major]), version
    assert not runtime.supported(RUNTIME_SPARK["16"])  # the check can fail


def test_wheel_artifact_is_what_the_tasks_install(bundle, resources):
    build = bundle["artifacts"]["wvb_wheel"]["build"]
    out = re.search(r"-w (\S+)", build).group(1)
    for task in _tasks(resources):
        assert task["libraries"] == [{"whl": f"../{out}/*.whl"}]
