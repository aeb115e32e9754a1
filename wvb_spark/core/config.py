"""Settings: built-in defaults, then a YAML file, then `--set key=value` overrides."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from wvb_spark.core.errors import InputError


def _merge(base: dict, overlay: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def defaults() -> dict:
    text = resources.files("wvb_spark").joinpath("resources", "defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def apply_override(config: dict, assignment: str) -> dict:
    """Apply one `a.b.c=value` (value parsed as YAML). Keys of spark.conf contain dots, so
    everything after `spark.conf.` is one key."""
    if "=" not in assignment:
        raise InputError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    if key.startswith("spark.conf."):
        path = ["spark", "conf", key[len("spark.conf.") :]]
    else:
        path = key.split(".")
    value = yaml.safe_load(raw) if raw != "" else ""
    overlay: Any = value  # the YAML value, then wrapped in one dict per key part
    for part in reversed(path):
        overlay = {part: overlay}
    return _merge(config, overlay)


def load(path: str | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults, overlaid with the YAML file at `path` (if given), then the overrides."""
    config = defaults()
    if path:
        file = Path(path)
        if not file.is_file():
            raise InputError(f"config file not found: {path}")
        try:
            overlay = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from None
        config = _merge(config, overlay)
    for assignment in overrides or []:
        config = apply_override(config, assignment)
    return config


def split_list(value) -> list[str]:
    """A comma string or a YAML list -> list of non-empty names."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def with_options(config: dict, block: str, args, keys) -> dict:
    """The settings with the command-line options that were given (not None) laid over
    their `block:`; the one precedence rule of every stage (the runner calls it)."""
    merged = copy.deepcopy(config)
    merged[block] = dict(merged.get(block) or {})
    for key in keys:
        value = getattr(args, key, None)
        if value is not None:
            merged[block][key] = value
    return merged
