"""`wvb delta-jars`: fetch Delta's JVM jars once (Maven Central) so local runs write
native Delta; without them every command still works, with the offline commit."""

from __future__ import annotations

from pathlib import Path

from wvb_spark.core import config as wvb_config
from wvb_spark.core import delta_jars
from wvb_spark.core.errors import WvbError


def add_arguments(parser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="only say whether the jars are cached (exit 1 if not); fetch nothing")


def main(args) -> int:
    """Fetch the jars now (or say where they are): `make setup` runs this once."""
    settings = wvb_config.load(args.conf, args.overrides)
    group, artifact, version = delta_jars.coordinates()
    jars = delta_jars.cached(settings)
    if jars is None and not args.check:
        try:
            jars = delta_jars.fetch(settings)
        except WvbError as error:
            print(f"wvb delta-jars: {error}; tables will be written with the offline commit")
            return 0
    if jars is None:
        print(f"wvb delta-jars: {group}:{artifact}:{version} is not cached in {delta_jars.cache_root(settings)}")
        return 1
    print(f"wvb delta-jars: {group}:{artifact}:{version} ready ({len(jars)} jars in "
          f"{Path(jars[0]).parent}); local sessions write with native Delta")
    return 0
