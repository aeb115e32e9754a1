"""`wvb delta-jars`: fetch Delta's JVM jars once (Maven Central) so local runs write
native Delta; without them every command still works, with the offline commit."""

from __future__ import annotations

from pathlib import Path

from wvb_spark.core import delta_jars
from wvb_spark.core.errors import WvbError
from wvb_spark.core.stage import Result

SETTINGS = None
OPTIONS = ()


def add_arguments(parser, defaults: dict) -> None:
    parser.add_argument(
        "--check", action="store_true", help="only say whether the jars are cached (exit 1 if not); fetch nothing"
    )


def run(args, settings: dict) -> Result:
    """Fetch the jars now (or say where they are): `make setup` runs this once."""
    group, artifact, version = delta_jars.coordinates()
    jars = delta_jars.cached(settings)
    if jars is None and not args.check:
        try:
            jars = delta_jars.fetch(settings)
        except WvbError as error:
            return Result(lines=[f"wvb delta-jars: {error}; tables will be written with the offline commit"])
    if jars is None:
        return Result(
            lines=[f"wvb delta-jars: {group}:{artifact}:{version} is not cached in {delta_jars.cache_root(settings)}"],
            exit_code=1,
        )
    return Result(
        lines=[
            f"wvb delta-jars: {group}:{artifact}:{version} ready ({len(jars)} jars in "
            f"{Path(jars[0]).parent}); local sessions write with native Delta"
        ]
    )
