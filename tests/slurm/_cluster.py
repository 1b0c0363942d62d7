"""A real single-node SLURM cluster for the tests: install, configure, start, stop (as root).

Settings follow ``shared/notes/slurm.md`` (what worked on these machines): munge started by
hand, ``proctrack/linuxproc`` and ``task/none`` (no cgroups, no systemd), state under a
temporary directory, ``MinJobAge=5`` so that ``sbatch --wait`` sees finished jobs, 4 CPUs
declared on the node (``config_overrides``) so that 4 ranks fit on a 2-core machine. Only one
such cluster can run per machine: a file lock serialises test sessions. Daemons are stopped by
their pid files, never by name.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

CONF = "/etc/slurm/slurm.conf"
LOCK = "/tmp/dtorch-slurm-test.lock"
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]

SLURM_CONF = """\
ClusterName=dtorchtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=5
FirstJobId={first_job_id}
MpiDefault=none
SlurmdParameters=config_overrides
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class Unavailable(Exception):
    """SLURM cannot be installed or started here (the reason is the message)."""


def _run(cmd, timeout=60, check=True, error=RuntimeError, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise error(f"{' '.join(cmd)} failed ({res.returncode}): "
                    f"{(res.stderr or res.stdout).strip()[-500:]}")
    return res


def _alive(pid: int) -> bool:
    """Running (not a zombie: PID 1 here may never reap daemons we stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def ensure_installed() -> None:
    """Install the SLURM and munge packages with apt if they are missing (needs root)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0:
        raise Unavailable("SLURM is not installed and installing it needs root")
    if shutil.which("apt-get") is None:
        raise Unavailable("SLURM is not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-qq"], timeout=300, env=env, error=Unavailable)
    _run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], timeout=600,
         env=env, error=Unavailable)


class Cluster:
    """Start with :meth:`start`, always :meth:`stop` (restores any previous slurm.conf)."""

    def __init__(self, cpus: int = 4):
        self.cpus = cpus
        self.dir = tempfile.mkdtemp(prefix="dtorch-slurm-")
        self.host = socket.gethostname().split(".")[0]
        self._lock = None
        self._old_conf = None
        self._started_munge = False

    # ------------------------------------------------------------------ start
    def start(self, wait: float = 120.0) -> None:
        if os.geteuid() != 0:
            raise Unavailable("starting slurmctld/slurmd/munged needs root")
        ensure_installed()
        self._lock = open(LOCK, "w")  # noqa: SIM115 -- held for the cluster's lifetime
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("another test session holds the SLURM cluster lock "
                                       f"{LOCK} for more than {wait:g} s") from None
                time.sleep(0.5)
        self._start_munge()
        for d in ("state", "spool"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        if os.path.exists(CONF):
            with open(CONF) as f:
                self._old_conf = f.read()
        os.makedirs(os.path.dirname(CONF), exist_ok=True)
        with open(CONF, "w") as f:
            # NOTE: job ids must not repeat across test runs: MPICH names its shared-memory
            # segments after the PMI job id, and an aborted job's leaked segment would be reused
            # by the next job with the same id (seen as garbage in MPI_Init).
            first = 1000 + int(time.time()) % 10_000_000 * 10
            f.write(SLURM_CONF.format(host=self.host, d=self.dir, cpus=self.cpus,
                                      first_job_id=first))
        _run(["slurmctld", "-i"], timeout=30)   # daemonises; -i: ignore stale state
        _run(["slurmd"], timeout=30)
        while True:
            res = _run(["sinfo", "-h", "-o", "%T"], check=False, timeout=10)
            if res.returncode == 0 and res.stdout.strip() in ("idle", "mixed"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the SLURM node never became idle: {res.stdout!r} "
                                  f"{res.stderr!r}; logs in {self.dir}")
            time.sleep(0.3)

    def _start_munge(self) -> None:
        if _run(["bash", "-c", "munge -n | unmunge"], check=False, timeout=10).returncode == 0:
            return
        if not os.path.exists("/etc/munge/munge.key"):
            _run(["mungekey", "--create"], timeout=30)
            shutil.chown("/etc/munge/munge.key", "munge", "munge")
            os.chmod("/etc/munge/munge.key", 0o400)
        _run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"])
        _run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], timeout=30)
        self._started_munge = True
        for _ in range(50):
            if _run(["bash", "-c", "munge -n | unmunge"], check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("munged started but munge -n | unmunge fails")

    # ------------------------------------------------------------------ stop
    @staticmethod
    def _kill_pidfile(path: str) -> None:
        try:
            with open(path) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _alive(pid):
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        self._kill_pidfile(os.path.join(self.dir, "slurmd.pid"))
        self._kill_pidfile(os.path.join(self.dir, "slurmctld.pid"))
        if self._started_munge:
            self._kill_pidfile("/run/munge/munged.pid")
        if self._old_conf is not None:
            with open(CONF, "w") as f:
                f.write(self._old_conf)
        if self._lock is not None:
            self._lock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    out.append(f"--- {name}\n" + "".join(f.readlines()[-n:]))
            except OSError:
                pass
        return "\n".join(out)
