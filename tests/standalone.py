"""A real Spark standalone cluster on 127.0.0.1 for the cluster tests.

One master and workers started from pyspark's own launcher (`spark-class
org.apache.spark.deploy.master.Master` / `...deploy.worker.Worker`) on free ports, each
process started and stopped by its PID, its log kept in the cluster's directory (and
printed when a test fails), the workers' directories removed at the end. Nothing here
imitates Spark: these are the daemons a cluster runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 20
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
WORKER_CORES = 1
WORKER_MEMORY = "2g"


def spark_home() -> Path:
    """pyspark's own installation: its bin/spark-class and jars are the cluster's Spark."""
    import pyspark

    return Path(pyspark.__file__).parent


def die_with_parent() -> None:
    """Run in the child before exec: the kernel sends it SIGTERM when the test process
    dies, however it dies, so no daemon outlives a killed test run (Linux only)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    """A port nobody listens on now (the OS picks it; the daemon binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first), from /proc: an executor JVM and its
    Python workers are children of the worker that launched them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Signal one process by its PID, then SIGKILL it if it outlives `timeout`."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class Daemon:
    """One started Spark daemon: its process, log and ports."""

    name: str
    process: subprocess.Popen
    log: Path
    port: int
    webui_port: int
    work_dir: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class StandaloneCluster:
    """Master + workers on 127.0.0.1 under `root` (logs/, work-<n>/, conf/)."""

    root: Path
    worker_cores: int = WORKER_CORES
    worker_memory: str = WORKER_MEMORY
    master: Daemon | None = None
    workers: list[Daemon] = field(default_factory=list)
    _started: int = 0

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master.port}"

    def environment(self) -> dict:
        """The daemons' environment: this pyspark as SPARK_HOME, an empty conf directory
        (no spark-defaults of the machine), loopback only, no inherited PYTHONPATH, small
        daemon heaps, and a worker timeout short enough to notice a killed worker."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYSPARK_", "SPARK_")) and key != "PYTHONPATH"
        }
        conf_dir = self.root / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        env.update(
            {
                "SPARK_HOME": str(spark_home()),
                "SPARK_CONF_DIR": str(conf_dir),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_LOG_DIR": str(self.root / "logs"),
                "SPARK_DAEMON_MEMORY": "384m",
                "SPARK_MASTER_OPTS": "-Dspark.worker.timeout=15 -Dspark.deploy.retainedApplications=50",
                # Finished applications' directories (an unpacked --archives copy each) are
                # removed a minute after the application ends, as README recommends.
                "SPARK_WORKER_OPTS": (
                    "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=30 "
                    "-Dspark.worker.cleanup.appDataTtl=60"
                ),
            }
        )
        return env

    def _launch(self, name: str, arguments, work_dir: Path | None = None) -> Daemon:
        """Start `spark-class <arguments(port, webui_port)>` on two free ports, logging to logs/<name>.log."""
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        port, webui = free_port(), free_port()
        command = [str(spark_home() / "bin" / "spark-class"), *arguments(port, webui)]
        with open(log, "ab") as handle:
            # spark-class execs java, so the PID we hold is the daemon's own.
            process = subprocess.Popen(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=self.root,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        return Daemon(name, process, log, port, webui, work_dir)

    def start(self, workers: int = 2) -> "StandaloneCluster":
        self.master = self._launch(
            "master",
            lambda port, webui: [MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(webui)],
        )
        self._wait_for(self.master, r"I have been elected leader|New state: ALIVE")
        for _ in range(workers):
            self.add_worker()
        return self

    def add_worker(self) -> Daemon:
        """Start one more worker and wait until the master has registered it."""
        self._started += 1
        name = f"worker-{self._started}"
        work_dir = self.root / f"work-{self._started}"
        work_dir.mkdir(parents=True, exist_ok=True)
        worker = self._launch(
            name,
            lambda port, webui: [
                WORKER_CLASS,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(webui),
                "--cores",
                str(self.worker_cores),
                "--memory",
                self.worker_memory,
                "--work-dir",
                str(work_dir),
                self.url,
            ],
            work_dir,
        )
        self._wait_for(worker, r"Successfully registered with master")
        self.workers.append(worker)
        return worker

    def _wait_for(self, daemon: Daemon, pattern: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if re.search(pattern, daemon.log_text()):
                return
            if daemon.process.poll() is not None:
                break
            time.sleep(0.25)
        raise RuntimeError(
            f"{daemon.name} did not start (exit {daemon.process.poll()}); its log:\n{daemon.log_text()[-4000:]}"
        )

    def kill_worker(self, worker: Daemon) -> list[int]:
        """SIGKILL one worker by its PID, as a machine failure would, and return the PIDs
        of what it had launched (its executor and Python workers), which lose their
        worker and exit on their own."""
        below = descendants(worker.pid)
        os.kill(worker.pid, signal.SIGKILL)
        worker.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self.workers.remove(worker)
        return below

    def executor_logs(self) -> str:
        """stderr of every executor the workers launched (the apps' directories)."""
        parts = []
        for work_dir in sorted(self.root.glob("work-*")):
            for stderr in sorted(work_dir.glob("app-*/*/stderr")):
                text = stderr.read_text(errors="replace")
                parts.append(f"--- {stderr.relative_to(self.root)}\n{text[-3000:]}")
        return "\n".join(parts)

    def logs(self) -> str:
        """Every daemon's log and the executors' stderr, for a failing test's report."""
        daemons = [d for d in [self.master, *self.workers] if d is not None]
        parts = [f"--- {d.name} (pid {d.pid}) {d.log}\n{d.log_text()[-4000:]}" for d in daemons]
        return "\n".join(parts + [self.executor_logs()])

    def stop(self) -> None:
        """Workers first (each with what it launched), then the master; by PID; then the
        workers' directories (executors' unpacked files) go."""
        for worker in list(self.workers):
            below = descendants(worker.pid)
            stop_pid(worker.pid)
            for pid in below:
                stop_pid(pid, timeout=5)
            self.workers.remove(worker)
        if self.master is not None:
            stop_pid(self.master.pid)
            self.master.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        for work_dir in self.root.glob("work-*"):
            shutil.rmtree(work_dir, ignore_errors=True)


def executor_python(root: Path) -> Path:
    """A Python for driver and executors that has the dependencies but not wvb_spark, as
    on a cluster node: a venv of this interpreter whose only addition is this
    environment's site-packages as a plain path. Python does not run the .pth files of a
    directory added that way, so the editable install of wvb_spark (a .pth hook) is not
    seen: the package must come from --py-files."""
    import sysconfig

    venv = root / "node-python"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = Path(sysconfig.get_paths()["purelib"])
    ours = next((venv / "lib").glob("python*/site-packages"))
    (ours / "cluster-node-dependencies.pth").write_text(f"{site_packages}\n")
    return venv / "bin" / "python"
