"""A real single-node SLURM cluster on this machine, for tests: munged, slurmctld and slurmd, all in one folder.

    with slurm_cluster(Path(tempfile.mkdtemp())) as cluster:
        subprocess.run(["sbatch", "job.sh"], env=cluster.env)   # SLURM_CONF points at the cluster

Everything lives in the given folder: slurm.conf, the munge key and socket, state and spool directories,
daemon logs and pid files. The daemons run in the foreground as children of the test process, on free
ports, with their own munge socket, so they touch no system configuration and can coexist with another
cluster on the same host. On exit (also after a failure) every job is cancelled and each daemon is stopped
by its process id.

Requirements: root (slurmd starts job steps as the submitting user; munged checks file ownership) and
Debian's `slurm-wlm` and `munge` packages; `ensure_slurm()` installs them with apt-get when missing.
Job accounting is off (no slurmdbd), so `sacct` fails and submitit logs that it cannot read job states; it
still learns that a job ended from the result file the job writes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo")


def missing_tools() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=f"{os.environ['PATH']}:/usr/sbin") is None]


def ensure_slurm() -> str | None:
    """Install slurm-wlm and munge if needed; returns why a cluster cannot run here, or None if it can."""
    if os.geteuid() != 0:
        return "starting slurmd and munged needs root (they check file ownership and run jobs as any user)"
    if missing_tools():
        if shutil.which("apt-get") is None:
            return f"SLURM is not installed ({', '.join(missing_tools())} missing) and apt-get is not available"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]):
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                return f"`{' '.join(command)}` failed: {result.stderr.strip().splitlines()[-1:]}"
    if missing_tools():
        return f"{', '.join(missing_tools())} still missing after installing slurm-wlm and munge"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_memory_mb() -> int:
    """Half of the machine's memory: slurmd drains a node that has less than its configured RealMemory."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 // 2
    return 1024


def write_config(root: Path, host: str) -> Path:
    """slurm.conf for one node `host` with all of this machine's CPUs in one default partition, `debug`."""
    config = {
        "ClusterName": "pytest",
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmctldPort": free_port(),
        "SlurmdPort": free_port(),
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "AuthInfo": f"socket={root / 'munge' / 'munge.socket'}",
        "CredType": "cred/munge",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "slurmctld.log",
        "SlurmdLogFile": root / "slurmd.log",
        # No cgroups (containers rarely allow them): track job processes through /proc, bind no CPUs.
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU",
        "SchedulerType": "sched/backfill",
        "MpiDefault": "none",
        "ReturnToService": 2,
        "AccountingStorageType": "accounting_storage/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "JobCompType": "jobcomp/none",
        "NodeName": f"{host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={node_memory_mb()} State=UNKNOWN",
        "PartitionName": f"debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
    }
    for name in ("state", "spool"):
        (root / name).mkdir()
    path = root / "slurm.conf"
    path.write_text("".join(f"{key}={value}\n" for key, value in config.items()))
    return path


@dataclass
class SlurmCluster:
    """A running cluster: `env` is os.environ plus SLURM_CONF, for every SLURM command and job submission."""

    root: Path
    host: str
    env: dict[str, str]
    daemons: list[subprocess.Popen] = field(default_factory=list)

    def command(self, *args: str, timeout: float = 60) -> str:
        """stdout of a SLURM client command (squeue, scontrol, ...) run against this cluster."""
        result = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def jobs(self) -> dict[str, str]:
        """{job id: state} of every job the controller still knows (e.g. {"4_0": "RUNNING"})."""
        lines = self.command("squeue", "--noheader", "--format=%i %T").split()
        return dict(zip(lines[::2], lines[1::2], strict=True))

    def logs(self) -> str:
        """The daemons' logs, for a failure message."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in (self.root / "slurmctld.log", self.root / "slurmd.log", self.root / "munge" / "munged.log")
            if path.exists()
        )

    def wait_until(self, predicate: Callable[[], object], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM test cluster: {what} did not happen within {timeout:.0f} s\n{self.logs()}")
            time.sleep(0.25)

    def start(self) -> None:
        munge = self.root / "munge"
        munge.mkdir(mode=0o755)  # munged wants its socket's folder searchable by all, writable only by root
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn(
            "munged",
            "--foreground",
            f"--socket={munge / 'munge.socket'}",
            f"--key-file={key}",
            f"--log-file={munge / 'munged.log'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
        )
        self.wait_until((munge / "munge.socket").exists, "munged creating its socket")
        conf = self.env["SLURM_CONF"]
        self._spawn("slurmctld", "-D", "-i", "-f", conf)
        self._spawn("slurmd", "-D", "-N", self.host, "-f", conf)
        self.wait_until(self._node_idle, f"node {self.host} becoming idle")

    def _spawn(self, daemon: str, *args: str) -> None:
        path = shutil.which(daemon, path=f"{os.environ['PATH']}:/usr/sbin")
        with open(self.root / f"{daemon}.out", "wb") as output:  # the daemon keeps its own copy of the descriptor
            process = subprocess.Popen([str(path), *args], env=self.env, stdout=output, stderr=subprocess.STDOUT)
        self.daemons.append(process)

    def _node_idle(self) -> bool:
        for process in self.daemons:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited with {process.returncode}\n{self.logs()}")
        try:
            return self.command("sinfo", "--noheader", "--format=%T", timeout=10).strip() == "idle"
        except (RuntimeError, subprocess.TimeoutExpired):
            return False  # slurmctld not listening yet

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged by their process ids."""
        with contextlib.suppress(Exception):
            self.command("scancel", "--full", "--partition=debug", timeout=20)
            self.wait_until(lambda: not self.jobs(), "every job ending after scancel", timeout=40)
        for process in reversed(self.daemons):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.daemons.clear()


@contextlib.contextmanager
def slurm_cluster(root: Path) -> Iterator[SlurmCluster]:
    """Start a one-node cluster in the folder `root` (made world-searchable for munged); always stop it."""
    root.chmod(0o755)
    host = socket.gethostname().split(".")[0]
    conf = write_config(root, host)
    cluster = SlurmCluster(root, host, {**os.environ, "SLURM_CONF": str(conf)})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
