"""Delta's JVM jars for a local session: found in a cache folder, or fetched once.

`delta-spark` on PyPI holds only Python; the writer itself is a jar on Maven
Central (`io.delta:delta-spark_<spark major.minor>_2.13:<delta-spark version>`, the
artifact `configure_spark_with_delta_pip` names). We resolve it once with the Ivy
that ships inside pyspark (or Maven, if Ivy cannot), keep only the jars Spark does
not already ship (a second, older Jackson or Hadoop on the class path breaks
Spark), and list them in `jars.txt`; a session then adds them with `spark.jars`.
No network is needed after that.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from wvb_spark.core.errors import InputError, WvbError

log = logging.getLogger(__name__)

SCALA = "2.13"
FETCH_TIMEOUT_SECONDS = 600
RETRY_FAILED_FETCH_AFTER_SECONDS = 24 * 3600  # `auto` does not retry a failed fetch sooner
MARKER = "jars.txt"  # written last: a folder without it is incomplete


def coordinates() -> tuple[str, str, str]:
    """(group, artifact, version) of the Delta jar matching the installed pyspark and delta-spark."""
    import pyspark

    spark_major_minor = ".".join(pyspark.__version__.split(".")[:2])
    try:
        delta_version = importlib.metadata.version("delta-spark")
    except importlib.metadata.PackageNotFoundError:
        raise InputError(
            "delta-spark is not installed: pip install delta-spark, or use --set storage.writer=offline"
        ) from None
    return "io.delta", f"delta-spark_{spark_major_minor}_{SCALA}", delta_version


def cache_root(settings: dict) -> Path:
    """storage.jars_dir, else $WVB_JARS_DIR, else ~/.cache/wvb_spark/jars."""
    configured = (settings.get("storage") or {}).get("jars_dir") or os.environ.get("WVB_JARS_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "wvb_spark" / "jars"


def _folder(settings: dict) -> Path:
    _, artifact, version = coordinates()
    return cache_root(settings) / f"{artifact}-{version}"


def cached(settings: dict) -> list[str] | None:
    """The cached jars' paths, or None when they have not been fetched (completely)."""
    folder = _folder(settings)
    marker = folder / MARKER
    if not marker.is_file():
        return None
    jars = [str(folder / name) for name in marker.read_text().split() if name]
    return jars if jars and all(os.path.isfile(jar) for jar in jars) else None


def recently_failed(settings: dict) -> bool:
    failed = _folder(settings).with_suffix(".failed")
    return failed.is_file() and time.time() - failed.stat().st_mtime < RETRY_FAILED_FETCH_AFTER_SECONDS


def fetch(settings: dict) -> list[str]:
    """Resolve the jars from Maven Central into the cache; raise WvbError saying why not."""
    folder = _folder(settings)
    staging = folder.parent / f"{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    reasons = []
    try:
        for resolver in (_retrieve_with_ivy, _retrieve_with_maven):
            reason = resolver(staging, folder.parent)
            if reason is None:
                kept = _without_spark_jars(staging)
                (staging / MARKER).write_text("\n".join(kept) + "\n")
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(staging, folder)
                folder.with_suffix(".failed").unlink(missing_ok=True)
                return [str(folder / name) for name in kept]
            reasons.append(reason)
            for leftover in staging.iterdir():
                leftover.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.with_suffix(".failed").write_text("; ".join(reasons) + "\n")
    group, artifact, version = coordinates()
    raise InputError(f"cannot fetch {group}:{artifact}:{version} from Maven Central ({'; '.join(reasons)})")


def _spark_jars_folder() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _retrieve_with_ivy(target: Path, cache: Path) -> str | None:
    """Ivy's command line (the jar inside pyspark) retrieves the artifact with its dependencies."""
    java = shutil.which("java")
    ivy = sorted(_spark_jars_folder().glob("ivy-*.jar"))
    if java is None or not ivy:
        return "no java or no Ivy jar in pyspark"
    group, artifact, version = coordinates()
    command = [
        java,
        "-jar",
        str(ivy[-1]),
        "-dependency",
        group,
        artifact,
        version,
        "-confs",
        "default",
        "-types",
        "jar",
        "-cache",
        str(cache / "ivy-cache"),
        "-retrieve",
        str(target / "[organisation]_[artifact]-[revision](-[classifier]).[ext]"),
    ]
    return _run(command, "Ivy")


POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>wvb-delta-jars</artifactId><version>1</version>
  <dependencies><dependency>
    <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>
  </dependency></dependencies>
</project>
"""


def _retrieve_with_maven(target: Path, cache: Path) -> str | None:
    """`mvn dependency:copy-dependencies` of a one-dependency POM: for machines where Ivy
    cannot reach the registry but Maven (with its settings.xml mirror) can."""
    mvn = shutil.which("mvn")
    if mvn is None:
        return "no mvn on PATH"
    group, artifact, version = coordinates()
    pom = target.parent / f"{target.name}-pom.xml"
    pom.write_text(POM.format(group=group, artifact=artifact, version=version))
    try:
        return _run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={target}",
                "-DincludeScope=runtime",
            ],
            "Maven",
        )
    finally:
        pom.unlink(missing_ok=True)


def _run(command: list[str], name: str) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return f"{name} timed out after {FETCH_TIMEOUT_SECONDS} s"
    if done.returncode != 0:
        lines = [
            line.strip()
            for line in (done.stdout + done.stderr).splitlines()
            if "not found" in line or "ERROR" in line or "unresolved" in line.lower()
        ]
        return f"{name} failed: {lines[0] if lines else 'exit ' + str(done.returncode)}"
    return None


def _base_name(jar_name: str) -> str:
    """'jackson-core-2.13.5.jar' -> 'jackson-core' (Ivy prefixes the group: 'org.x_name-1.jar')."""
    name = jar_name.split("_", 1)[1] if re.match(r"^[a-z][\w.-]*\.[\w.-]+_", jar_name) else jar_name
    return re.sub(r"-\d[\w.+-]*\.jar$", "", name)


def _without_spark_jars(folder: Path) -> list[str]:
    """Delete the retrieved jars Spark already ships (by artifact name); keep the rest."""
    shipped = {_base_name(jar.name) for jar in _spark_jars_folder().glob("*.jar")}
    kept = []
    for jar in sorted(folder.glob("*.jar")):
        if _base_name(jar.name) in shipped:
            jar.unlink()
        else:
            kept.append(jar.name)
    if not any(name.startswith("io.delta_delta-spark") or name.startswith("delta-spark") for name in kept):
        raise InputError(f"the Delta jar was not among the retrieved files in {folder}")
    return kept


def delta_spark_installed() -> bool:
    """Without delta-spark (it comes with the `local` extra) there is no version to name the jar by."""
    try:
        coordinates()
    except InputError:
        return False
    return True


def why_unavailable(settings: dict) -> str:
    """Why `resolve` found no jars, for a one-line message."""
    if not delta_spark_installed():
        return "delta-spark is not installed: pip install delta-spark"
    return "not fetched, and the last fetch failed" if recently_failed(settings) else "no jars"


def resolve(settings: dict, *, may_fetch: bool = True) -> list[str] | None:
    """The jars to add to a local session, fetching them once if allowed; None if they
    cannot be had, delta-spark not installed included (the caller then falls back to
    the offline commit)."""
    if not delta_spark_installed():
        return None
    jars = cached(settings)
    if jars is not None or not may_fetch or recently_failed(settings):
        return jars
    group, artifact, version = coordinates()
    log.info(f"fetching Delta's jars ({group}:{artifact}:{version}) once into {cache_root(settings)}")
    try:
        return fetch(settings)
    except WvbError as error:
        log.warning(str(error))
        return None


# --------------------------------------------------------------------------- `wvb delta-jars`
