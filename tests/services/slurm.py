"""A single-node SLURM cluster on loopback, started from the Debian packages for the tests.

MariaDB (accounting database) -> munged (authentication) -> slurmdbd (accounting, which submitit
needs to learn the state of a cancelled or requeued job) -> slurmctld -> slurmd. Everything lives
in one folder: configs, sockets, state, logs; every daemon listens on 127.0.0.1 on a free port.
The config suits a container: no cgroups (proctrack/linuxproc, task/none), memory per CPU set.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

EXECUTABLES = (
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "munged",
    "slurmdbd",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sacct",
    "scontrol",
)
PARTITION = "local"
CLUSTER = "asvatest"
DB_USER = "slurm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, timeout: float, logs: list[Path], poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(poll)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-2000:]}" for log in logs if log.exists())
    raise RuntimeError(f"SLURM test cluster: {what} not ready after {timeout:.0f} s\n{tails}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class SlurmCluster:
    root: Path
    node: str
    partition: str = PARTITION
    started_in_s: float = 0.0
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def command(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(list(args), env=self.env(), capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def job_states(self, job_id: str) -> list[str]:
        """The accounting record of `job_id`: one state per attempt of its batch step and job."""
        return self.command("sacct", "-n", "-P", "-D", "-X", "-o", "State", "-j", job_id).split()

    def logs(self) -> list[Path]:
        return sorted((self.root / "log").glob("*.log"))


def node_memory_mb() -> int:
    """What the node offers jobs: 4 GB, or less on a smaller machine (slurmd refuses to overstate it)."""
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return min(4096, total_kb // 1024 - 256)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configs(cluster: SlurmCluster, ports: dict[str, int], password: str) -> None:
    root = cluster.root
    auth = f"AuthType=auth/munge\nAuthInfo=socket={root / 'run' / 'munge.socket'}\n"
    _write(
        root / "etc" / "slurm.conf",
        f"""ClusterName={CLUSTER}
SlurmctldHost={cluster.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
{auth}CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "run" / "slurmctld.pid"}
SlurmdPidFile={root / "run" / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=512
KillWait=5
MinJobAge=600
ReturnToService=2
JobRequeue=1
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["slurmdbd"]}
AccountingStoragePass={root / "run" / "munge.socket"}
PlugStackConfig={root / "etc" / "plugstack.conf"}
NodeName={cluster.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={node_memory_mb()} State=UNKNOWN
PartitionName={cluster.partition} Nodes={cluster.node} Default=YES MaxTime=INFINITE State=UP
""",
    )
    _write(root / "etc" / "plugstack.conf", "")
    _write(
        root / "etc" / "slurmdbd.conf",
        f"""{auth}DbdAddr=127.0.0.1
DbdHost={cluster.node}
DbdPort={ports["slurmdbd"]}
SlurmUser=root
LogFile={root / "log" / "slurmdbd.log"}
PidFile={root / "run" / "slurmdbd.pid"}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser={DB_USER}
StoragePass={password}
StorageLoc=slurm_acct_db
""",
        mode=0o600,  # slurmdbd refuses a config others can read (it holds the password)
    )


def _start(cluster: SlurmCluster, name: str, args: list[str]) -> subprocess.Popen:
    log = open(cluster.root / "log" / f"{name}.out", "w")
    process = subprocess.Popen(args, env=cluster.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.processes.append(process)
    return process


def _start_database(cluster: SlurmCluster, port: int, password: str) -> None:
    root = cluster.root
    data, sock = root / "mysql", root / "run" / "mysqld.sock"
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    _start(
        cluster,
        "mariadb",
        [
            shutil.which("mariadbd"),
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--pid-file={root / 'run' / 'mysqld.pid'}",
            f"--log-error={root / 'log' / 'mariadb.log'}",
            "--innodb-buffer-pool-size=32M",
            "--innodb-lock-wait-timeout=900",
            "--skip-log-bin",
        ],
    )
    wait_for(lambda: port_open(port), "MariaDB", 60, cluster.logs())
    sql = (
        f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
        f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';"
    )
    subprocess.run(
        ["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-e", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _start_munge(cluster: SlurmCluster) -> None:
    run = cluster.root / "run"
    key = cluster.root / "etc" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    _start(
        cluster,
        "munged",
        [
            "munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={run / 'munge.socket'}",
            f"--pid-file={run / 'munged.pid'}",
            f"--log-file={cluster.root / 'log' / 'munged.log'}",
            f"--seed-file={run / 'munged.seed'}",
        ],
    )
    wait_for(lambda: (run / "munge.socket").exists(), "munged", 30, cluster.logs())


def _node_idle(cluster: SlurmCluster) -> bool:
    result = subprocess.run(["sinfo", "-h", "-o", "%t"], env=cluster.env(), capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "idle"


def stop(cluster: SlurmCluster) -> None:
    for process in reversed(cluster.processes):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def slurm_cluster(root: Path) -> Iterator[SlurmCluster]:
    """Start the cluster in `root` (daemons in the foreground, children of this process); stop it after."""
    started = time.monotonic()
    cluster = SlurmCluster(root=root, node=socket.gethostname().split(".")[0])
    for folder in ("etc", "run", "log", "state", "spool"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("mariadb", "slurmdbd", "slurmctld", "slurmd")}
    password = secrets.token_hex(12)
    _configs(cluster, ports, password)
    try:
        _start_database(cluster, ports["mariadb"], password)
        _start_munge(cluster)
        _start(cluster, "slurmdbd", ["slurmdbd", "-D"])
        wait_for(lambda: port_open(ports["slurmdbd"]), "slurmdbd", 90, cluster.logs())
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i"])
        wait_for(lambda: port_open(ports["slurmctld"]), "slurmctld", 60, cluster.logs())
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", cluster.node])
        wait_for(lambda: _node_idle(cluster), "slurmd (node idle)", 90, cluster.logs(), poll=0.5)
        cluster.started_in_s = time.monotonic() - started
        yield cluster
    finally:
        stop(cluster)
