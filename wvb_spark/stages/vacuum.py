"""`wvb vacuum`: delete the files no table version inside the retention needs.

Every overwrite leaves the previous version's files behind (time travel reads
them), and a killed run leaves files nobody committed. Delta's rule decides what
may go: a file removed from the table longer ago than the retention, or one never
committed and older than the retention. The versions of the last completed build
are always kept, so readers of a warehouse whose build was interrupted still work.
"""

from __future__ import annotations

import argparse

from wvb_spark.core.errors import InputError
from wvb_spark.core.stage import Result

MINIMUM_HOURS_WITHOUT_FORCE = 7 * 24


SETTINGS = None
OPTIONS = ()


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument("--warehouse", required=True, metavar="DIR", help="warehouse root (tables at DIR/<table>)")
    parser.add_argument(
        "--retain-hours",
        type=float,
        default=MINIMUM_HOURS_WITHOUT_FORCE,
        metavar="H",
        help="keep every file a version of the last H hours needs (default: %(default)s = 7 days)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow --retain-hours below 168 (a run still reading an old version may fail)",
    )


def run(args: argparse.Namespace, config: dict) -> Result:
    from wvb_spark.core.warehouse import Warehouse

    if args.retain_hours < 0:
        raise InputError(f"--retain-hours must not be negative, got {args.retain_hours:g}")
    if args.retain_hours < MINIMUM_HOURS_WITHOUT_FORCE and not args.force:
        raise InputError(
            f"--retain-hours {args.retain_hours:g} is below Delta's default of "
            f"{MINIMUM_HOURS_WITHOUT_FORCE} hours: a reader of an older version could lose "
            f"its files; add --force if no other run uses this warehouse"
        )
    warehouse = Warehouse(None, args.warehouse, config)
    results = warehouse.vacuum(retain_hours=args.retain_hours, dry_run=args.dry_run)
    if not results:
        raise InputError(f"no Delta tables in {args.warehouse}")
    verb = "would delete" if args.dry_run else "deleted"
    lines = [f"{table.table:<13} {verb} {table.files:>6} files {_size(table.bytes):>10}" for table in results]
    total_files = sum(r.files for r in results)
    total_bytes = sum(r.bytes for r in results)
    lines.append(
        f"{'all tables':<13} {verb} {total_files:>6} files {_size(total_bytes):>10} "
        f"(kept: every version of the last {args.retain_hours:g} hours and the last completed build)"
    )
    return Result(lines=lines, counts={"files": total_files, "bytes": total_bytes})


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
