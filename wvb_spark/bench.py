"""`wvb bench`: wall time and peak memory of whole stages, as a user runs them.

Each repeat runs the stage's real command in a fresh process (so Spark start-up is
included) and reports the median over repeats and the peak resident memory of the
process tree (driver JVM included). Figures, not pass/fail: speed goals are checked
by reading them, not by timed tests.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from wvb_spark.errors import WvbError


def _run(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise WvbError(f"benchmark step failed ({' '.join(command[:3])} ...): {tail[0]}", exit_code=1)
    return seconds, done.stdout


def _wvb(*args: str) -> list[str]:
    return [sys.executable, "-m", "wvb_spark.cli", *args]


def _peak_children_mb() -> float:
    """Peak resident set of the largest finished child process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _report(name: str, seconds: list[float], extra: str = "") -> str:
    runs = ", ".join(f"{s:.1f}" for s in seconds)
    return f"{name:<34} median {statistics.median(seconds):7.1f} s   runs [{runs}]  {extra}"


def bench_synth(args, workdir: Path) -> list[str]:
    raw = workdir / f"wvs-{args.respondents}.csv"
    times = [_run(_wvb("synth", "--respondents", str(args.respondents), "--seed", "7", "--out", str(raw)))[0]
             for _ in range(args.repeats)]
    return [_report(f"synth {args.respondents:,} respondents", times, f"{raw.stat().st_size / 1e6:.0f} MB")]


def _ensure_raw(args, workdir: Path) -> Path:
    raw = workdir / f"wvs-{args.respondents}.csv"
    if not raw.exists():
        _run(_wvb("synth", "--respondents", str(args.respondents), "--seed", "7", "--out", str(raw)))
    return raw


def bench_build(args, workdir: Path) -> list[str]:
    raw = _ensure_raw(args, workdir)
    warehouse = workdir / "warehouse-build"
    times, examples = [], ""
    for _ in range(args.repeats):
        seconds, out = _run(_wvb("build", "--raw", str(raw), "--warehouse", str(warehouse), *args.spark_args))
        times.append(seconds)
        examples = next((line.split()[-1] for line in out.splitlines() if line.startswith("examples ")), "?")
    return [_report(f"build {args.respondents:,} respondents", times,
                    f"{examples} examples, peak memory {_peak_children_mb():,.0f} MB (incl. Spark start-up)")]


STAGES = {"synth": bench_synth, "build": bench_build}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stages", default="synth,build",
                        help=f"comma-separated stages to time, from: {', '.join(STAGES)} (default synth,build)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per stage; the median is reported (default 3)")
    parser.add_argument("--respondents", type=int, default=94_728, help="synthetic file size (default 94,728)")
    parser.add_argument("--workdir", default="data/bench", help="where inputs and warehouses go (default data/bench)")


def main(args: argparse.Namespace) -> int:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise WvbError(f"unknown bench stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if args.repeats < 1:
        raise WvbError("--repeats must be at least 1")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args.spark_args = [x for o in args.overrides for x in ("--set", o)] + (["--conf", args.conf] if args.conf else [])
    print(f"wvb bench on {os.cpu_count()} cores, {args.repeats} run(s) per stage")
    for stage in stages:
        for line in STAGES[stage](args, workdir):
            print(line, flush=True)
    return 0
