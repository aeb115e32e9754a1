"""Checks of the paths a stage reads and writes, made before any work.

A path that cannot work (a missing or unreadable input, a warehouse that is a file or
cannot be written) must cost one line and exit code 2 at once, not a JVM stack trace
after a long parse. Only local paths can be checked cheaply; URIs (s3://, abfss://,
dbfs:/ ...) are left to the storage layer, which reports its own errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from wvb_spark.core.errors import InputError


def local_path(location: str) -> Path | None:
    """The local path of `location` (a plain path or a file: URI), None for other URIs."""
    text = str(location)
    if text.startswith("file:"):
        return Path(urlparse(text).path)
    if "://" in text or text.startswith("dbfs:"):
        return None
    return Path(text)


def check_input_file(location: str, what: str) -> None:
    """`what` (e.g. "predictions file") must be a readable regular file."""
    path = local_path(location)
    if path is None:
        return
    if not path.exists():
        raise InputError(f"{what} not found: {location}")
    if path.is_dir():
        raise InputError(f"{what} {location} is a directory, not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"cannot read {what} {location}: {exc.strerror or exc}") from None


def check_warehouse(location: str, tables: tuple[str, ...] = ()) -> None:
    """The warehouse must be a writable directory, or creatable (its nearest existing
    ancestor a writable directory); each of `tables` already in it, a writable directory."""
    root = local_path(location)
    if root is None:
        return
    if not root.exists():
        ancestor = _nearest_existing(root)
        if not ancestor.is_dir():
            raise InputError(f"cannot create warehouse {location}: {ancestor} is not a directory")
        _require_writable(ancestor, f"cannot create warehouse {location}: {ancestor} is not writable")
        return
    if not root.is_dir():
        raise InputError(f"warehouse {location} is not a directory")
    _require_writable(root, f"warehouse {location} is not writable")
    for name in tables:
        table = root / name
        if table.exists() and not table.is_dir():
            raise InputError(f"warehouse {location}: {table} is not a directory (tables are directories)")
        if table.exists():
            _require_writable(table, f"warehouse {location}: table {name} is not writable")


def _nearest_existing(path: Path) -> Path:
    """The deepest existing ancestor, as the user wrote it (a relative path stays relative)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _require_writable(directory: Path, message: str) -> None:
    """The OS's own answer (os.access): root may write anywhere but a read-only mount."""
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(message)
