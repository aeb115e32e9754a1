"""`wvb bench`: wall time and peak memory of whole stages, as a user runs them.

Each repeat runs the stage's real command in a fresh process (so Spark start-up is
included) and reports the median over repeats and the peak resident memory of the
process tree (driver JVM included). Figures, not pass/fail: speed goals are checked
by reading them, not by timed tests.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from wvb_spark.core.errors import InputError, RunError, WvbError
from wvb_spark.core.stage import Result

log = logging.getLogger(__name__)


class Run(NamedTuple):
    seconds: float
    stdout: str
    peak_mb: float  # peak resident memory of the whole process tree (Spark's JVM included)


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, from /proc (Linux; 0 elsewhere)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields.get("PPid", "0").strip() or 0)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1024


def _run(command: list[str]) -> Run:
    """Run a command, polling its process tree's memory twice a second."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        peak = 0.0
        while True:
            peak = max(peak, _tree_rss_mb(process.pid))
            try:
                process.wait(timeout=0.5)  # returns as soon as the command ends: exact wall time
                break
            except subprocess.TimeoutExpired:
                continue
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RunError(f"benchmark step failed ({' '.join(command[3:5])} ...): {tail[0]}")
    return Run(seconds, stdout, peak)


def _wvb(*args: str) -> list[str]:
    return [sys.executable, "-m", "wvb_spark.cli", *args]


def _report(name: str, seconds: list[float], extra: str = "") -> str:
    runs = ", ".join(f"{s:.1f}" for s in seconds)
    return f"{name:<34} median {statistics.median(seconds):7.1f} s   runs [{runs}]  {extra}"


def bench_synth(args, workdir: Path) -> list[str]:
    raw = workdir / f"wvs-{args.respondents}.csv"
    times = [
        _run(_wvb("synth", "--respondents", str(args.respondents), "--seed", "7", "--out", str(raw)))[0]
        for _ in range(args.repeats)
    ]
    return [_report(f"synth {args.respondents:,} respondents", times, f"{raw.stat().st_size / 1e6:.0f} MB")]


def _ensure_raw(args, workdir: Path) -> Path:
    raw = workdir / f"wvs-{args.respondents}.csv"
    if not raw.exists():
        _run(_wvb("synth", "--respondents", str(args.respondents), "--seed", "7", "--out", str(raw)))
    return raw


def bench_build(args, workdir: Path) -> Iterator[str]:
    """One line per (writer, scale) as each is measured; then the fitted exponent per writer."""
    for writer in args.writers:
        sizes, medians = [], []
        for scale in args.scales:
            scaled = argparse.Namespace(**{**vars(args), "respondents": max(1, round(args.respondents * scale))})
            runs, lines = _bench_one_build(scaled, workdir, _writer_args(writer))
            if len(args.scales) > 1 or len(args.writers) > 1:
                lines[0] = lines[0].replace("build ", f"build {_label(writer, scale)}", 1)
            yield from lines
            examples = _examples(runs[-1])
            if examples:
                sizes.append(examples)
                medians.append(statistics.median(r.seconds for r in runs))
        if len(sizes) > 1:
            yield _exponent_line(f"build{' ' + writer if writer else ''}", sizes, medians, "examples")


def _bench_one_build(args, workdir: Path, writer_args: list[str]) -> tuple[list[Run], list[str]]:
    raw = _ensure_raw(args, workdir)
    warehouse = workdir / "warehouse-build"
    build = _wvb("build", "--raw", str(raw), "--warehouse", str(warehouse), *args.spark_args, *writer_args)
    yardstick = [
        sys.executable,
        "-m",
        "wvb_spark.benchmarks.duckdb_explode",
        "--raw",
        str(raw),
        "--out",
        str(workdir / "duckdb-explode"),
    ]
    runs, compared = [], []
    for _ in range(args.repeats):  # alternated, so both see the same spell of the machine
        runs.append(_run(build))
        if args.compare == "duckdb":
            try:
                compared.append(_run(yardstick))
            except RunError as error:
                return runs, [*_build_lines(args, runs), f"duckdb explode: not measured ({error})"]
    return runs, _build_lines(args, runs) + (_comparison_lines(runs, compared) if compared else [])


def _writer_args(writer: str) -> list[str]:
    return ["--set", f"storage.writer={writer}"] if writer else []


def _label(writer: str, scale: float) -> str:
    return f"{writer + ', ' if writer else ''}{scale:g}x, "


def _examples(run: Run) -> int:
    """The examples count the build printed (0 when it printed none)."""
    for line in run.stdout.splitlines():
        if line.startswith("examples ") and line.split()[-1].replace(",", "").isdigit():
            return int(line.split()[-1].replace(",", ""))
    return 0


def fitted_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """b in seconds ~ a * size**b: the least-squares slope of log(seconds) on log(size).
    b = 1 is linear; below 1, fixed costs (start-up) still weigh."""
    import numpy as np

    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def _exponent_line(name: str, sizes: list[int], seconds: list[float], unit: str) -> str:
    """The exponent over all sizes, and over the sizes from the smallest at or above the
    middle one (where start-up no longer dominates)."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    sizes, seconds = [sizes[i] for i in order], [seconds[i] for i in order]
    line = (
        f"{name} scaling: seconds ~ {unit}^b, b = {fitted_exponent(sizes, seconds):.2f} "
        f"over {sizes[0]:,}-{sizes[-1]:,} {unit}"
    )
    upper = len(sizes) // 2
    if len(sizes) - upper >= 2 and upper > 0:
        line += f"; b = {fitted_exponent(sizes[upper:], seconds[upper:]):.2f} from {sizes[upper]:,} up"
    return line


def _build_lines(args, runs: list[Run]) -> list[str]:
    examples = _examples(runs[-1])
    rate = f", {examples / statistics.median(r.seconds for r in runs):,.0f} examples/s" if examples else ""
    return [
        _report(
            f"build {args.respondents:,} respondents",
            [r.seconds for r in runs],
            f"{examples:,} examples{rate}; peak memory (driver JVM + Python) {max(r.peak_mb for r in runs):,.0f} MB",
        )
    ]


def _comparison_lines(runs: list[Run], compared: list[Run]) -> list[str]:
    rows = compared[-1].stdout.split()[2] if compared[-1].stdout.startswith("duckdb explode:") else "?"
    build, duckdb = [r.seconds for r in runs], [r.seconds for r in compared]
    pairs = ", ".join(f"{b / d:.1f}" for b, d in zip(build, duckdb))
    return [
        _report(
            "duckdb explode, same CSV -> Parquet",
            duckdb,
            f"{int(rows):,} rows; peak memory {max(r.peak_mb for r in compared):,.0f} MB" if rows.isdigit() else "",
        ),
        f"build / duckdb explode: {statistics.median(build) / statistics.median(duckdb):.1f}x "
        f"(ratio of medians; run by run [{pairs}])",
    ]


def _prediction_rows(warehouse: Path) -> dict[str, int]:
    """Rows per model of the predictions table, from the Delta log (no Spark)."""
    from wvb_spark.core.warehouse import Warehouse

    return Warehouse(None, str(warehouse), {}).partition_rows("predictions", "model") or {}


def _ensure_evaluate_warehouse(args, workdir: Path) -> Path:
    """A warehouse with 8 probe-size and 10 test-split-size generated models (built once)."""
    from wvb_spark.core.warehouse import Warehouse

    warehouse = workdir / "warehouse-evaluate"
    tables = Warehouse(None, str(warehouse), {})
    if not tables.exists("examples"):
        _run(_wvb("build", "--raw", str(_ensure_raw(args, workdir)), "--warehouse", str(warehouse), *args.spark_args))
    if not tables.exists("probe"):
        _run(_wvb("probe", "--warehouse", str(warehouse), *args.spark_args))
    if not tables.exists("predictions"):
        _run(
            [
                sys.executable,
                "-m",
                "wvb_spark.benchmarks.data",
                "--warehouse",
                str(warehouse),
                "--probe-models",
                "8",
                "--full-models",
                str(max(args.evaluate_full_models, default=0)),
                *args.spark_args,
            ]
        )
    return warehouse


def bench_evaluate(args, workdir: Path) -> Iterator[str]:
    """One line per (writer, case), as each is measured (the cases take minutes); then the
    fitted exponent of time against predictions over the test-split cases."""
    warehouse = _ensure_evaluate_warehouse(args, workdir)
    rows = _prediction_rows(warehouse)
    cases = [("8 models x probe", [f"probe-{i:02d}" for i in range(8)])]
    cases += [(f"{k} x test split", [f"full-{i:02d}" for i in range(k)]) for k in args.evaluate_full_models]
    for writer in args.writers:
        sizes, medians = [], []
        for name, models in cases:
            missing = [m for m in models if m not in rows]
            if missing:
                raise InputError(
                    f"bench warehouse {warehouse} lacks model(s) {', '.join(missing)}; delete it to regenerate"
                )
            n = sum(rows[m] for m in models)
            command = _wvb("evaluate", "--warehouse", str(warehouse), "--models", ",".join(models), *args.spark_args)
            runs = [_run([*command, *_writer_args(writer)]) for _ in range(args.repeats)]
            times = [r.seconds for r in runs]
            if "test split" in name:
                sizes.append(n)
                medians.append(statistics.median(times))
            yield (
                _report(
                    f"evaluate {writer + ', ' if writer else ''}{name}",
                    times,
                    f"{n:,} predictions, {n / statistics.median(times):,.0f} rows/s (incl. Spark start-up); "
                    f"peak memory {max(r.peak_mb for r in runs):,.0f} MB",
                )
            )
        if len(sizes) > 1:
            yield _exponent_line(f"evaluate{' ' + writer if writer else ''}", sizes, medians, "predictions")


def _scales(value: str) -> list[float]:
    try:
        scales = [float(x) for x in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated multiples like 0.5,1,2, got {value!r}") from None
    if any(not scale > 0 for scale in scales):
        raise argparse.ArgumentTypeError("scales must be positive")
    return scales


def _writers(value: str) -> list[str]:
    writers = [w.strip() for w in value.split(",") if w.strip()]
    unknown = [w for w in writers if w not in ("native", "offline")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown writer(s) {', '.join(unknown)}: choose from native, offline")
    return writers or [""]


def _model_counts(value: str) -> list[int]:
    if value.strip().lower() in ("", "none"):
        return []
    try:
        counts = [int(x) for x in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated model counts or none, got {value!r}") from None
    if any(k < 1 for k in counts):
        raise argparse.ArgumentTypeError("model counts must be at least 1")
    return counts


def bench_commits(args, workdir: Path) -> list[str]:
    """Commit cost against history: 200 small writes per writer, first vs last."""
    lines = []
    for writer in ("offline", "native"):
        try:
            run = _run([sys.executable, "-m", "wvb_spark.benchmarks.commits", "--writer", writer, "--writes", "200"])
        except WvbError as error:
            lines.append(f"{writer}: not measured ({error})")
            continue
        lines += [line for line in run.stdout.splitlines() if line.startswith(writer)]
    return lines


STAGES = {"synth": bench_synth, "build": bench_build, "evaluate": bench_evaluate, "commits": bench_commits}


SETTINGS = None
OPTIONS = ()


def add_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument(
        "--stages",
        default="synth,build",
        help=f"comma-separated stages to time, from: {', '.join(STAGES)} (default: %(default)s; "
        "commits: 200 small writes per writer, first against last)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per stage; the median is reported (default: %(default)s)"
    )
    parser.add_argument("--respondents", type=int, help="synthetic file size (default: the setting synth.respondents)")
    parser.add_argument("--workdir", default="data/bench", help="where inputs and warehouses go (default: %(default)s)")
    parser.add_argument(
        "--compare",
        choices=("none", "duckdb"),
        default="none",
        help="build stage: also time DuckDB's explode of the same CSV to Parquet, run by run "
        "after each build, and print the ratio (needs the `bench` extra: duckdb)",
    )
    parser.add_argument(
        "--scales",
        default="1",
        type=_scales,
        help="build stage: sizes to time, as multiples of --respondents (e.g. 0.25,0.5,1,2,4,10), "
        "then the fitted exponent of time against examples (default: %(default)s)",
    )
    parser.add_argument(
        "--writers",
        default="",
        type=_writers,
        help="build and evaluate stages: time each case under these storage writers, side by side "
        "(e.g. native,offline; default: the configured writer)",
    )
    parser.add_argument(
        "--evaluate-full-models",
        default="1,2,4,10",
        type=_model_counts,
        help="evaluate stage: numbers of test-split-size models to time (default: %(default)s; "
        "none: only the probe case)",
    )


def run(args: argparse.Namespace, config: dict) -> Result:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise InputError(f"unknown bench stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if args.repeats < 1:
        raise InputError("--repeats must be at least 1")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args.spark_args = [x for o in args.overrides for x in ("--set", o)] + (["--conf", args.conf] if args.conf else [])
    if args.respondents is None:
        args.respondents = int(config["synth"]["respondents"])
    result = Result(lines=[f"wvb bench on {os.cpu_count()} cores, {args.repeats} run(s) per stage"])
    for stage in stages:
        for line in STAGES[stage](args, workdir):
            log.info(line)  # as it comes: a bench runs for minutes
            result.say(line)
    return result
