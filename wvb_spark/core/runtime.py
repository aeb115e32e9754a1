"""The Spark runtime wvb_spark runs on: provided, not installed.

On a cluster or Databricks the runtime ships pyspark (and Delta); installing the wheel
must leave it alone, so pyspark is only in the `local` extra. This module says which
pyspark versions the jobs support and turns a missing pyspark into one line.
"""

from __future__ import annotations

import logging
import re

from wvb_spark.core.errors import InputError, WvbError

log = logging.getLogger(__name__)

# pyspark >= SUPPORTED[0] and < SUPPORTED[1]. The ends tested: 4.0.1 (what Databricks
# Runtime 17.x ships; tests/test_packaging.py) and 4.2.0 (the `local` extra).
SUPPORTED = ("4.0.0", "4.3.0")
SUPPORTED_TEXT = f">={SUPPORTED[0]},<{SUPPORTED[1]}"
MISSING = (
    "pyspark is not installed: on a Spark cluster or Databricks the runtime provides it; "
    f'for local runs pip install "wvb_spark[local]" (supported pyspark {SUPPORTED_TEXT})'
)


def version_tuple(version: str) -> tuple[int, ...]:
    """'4.0.1' -> (4, 0, 1); runtime builds add suffixes ('4.0.0.dev1', '4.1.0+db') that
    do not change the release."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", str(version))
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def supported(version: str) -> bool:
    """Whether a pyspark (or Apache Spark) version is in the supported range."""
    release = version_tuple(version)
    return version_tuple(SUPPORTED[0]) <= release < version_tuple(SUPPORTED[1])


def is_missing_pyspark(error: ModuleNotFoundError) -> bool:
    """The import failed because pyspark itself is absent (not some other module)."""
    return (error.name or "").split(".")[0] == "pyspark"


def missing_pyspark_error() -> WvbError:
    """The one-line error for a Spark command run where pyspark is absent."""
    return InputError(MISSING)


def warn_if_unsupported(version: str) -> bool:
    """A warning when the runtime's pyspark is outside the supported range (the job still
    runs: a newer runtime may well work). True when it warned."""
    if supported(version):
        return False
    log.warning(f"pyspark {version} is outside the supported range {SUPPORTED_TEXT}; results are not tested on it")
    return True
