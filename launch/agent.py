"""The per-node agent: rendezvous with the other nodes, run the MPI process manager, supervise.

One agent (launcher process) runs per node. Per attempt it

1. agrees with the other agents on the attempt (multi-node: through a store that node 0 hosts
   at ``--master-addr:--master-port``, or a ``file://`` store);
2. on node 0, starts the PMI-1 server for the whole world in a thread of this process (the
   launcher is not a rank, so mpi4py's GIL-holding ``MPI_Init`` cannot starve it) and publishes
   its address; each worker gets ``PMI_PORT``/``PMI_ID`` and so joins one ``COMM_WORLD``;
3. starts its workers and watches them, the PMI server and the other nodes;
4. on the first failure anywhere, stops every worker (SIGTERM, grace period, SIGKILL), prints
   the root cause, and either restarts the whole group (``--max-restarts``) or exits non-zero.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import sys
import threading
import time
from datetime import timedelta

from .config import LaunchConfig, cores_available
from .workers import Worker, describe_status, stop_all

__all__ = ["Agent", "load_pmi"]

_SCRUB = ("PMI_", "PMIX_", "PMI2_", "HYDRA_", "OMPI_", "MV2_", "I_MPI_", "MPIR_")
_SCRUB_EXACT = ("MPI_LOCALNRANKS", "MPI_LOCALRANKID")
_POLL = 0.05


def _log(msg: str) -> None:
    sys.stderr.write(f"launch: {msg}\n")
    sys.stderr.flush()


def load_pmi():
    """dtorch's PMI server module, without importing dtorch (it is standard-library only)."""
    mod = sys.modules.get("dtorch.distributed._pmi")
    if mod is not None:
        return mod
    spec = importlib.util.find_spec("dtorch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("launch: the dtorch package is not importable (needed for its PMI "
                           "process manager); install it or add it to PYTHONPATH")
    path = os.path.join(list(spec.submodule_search_locations)[0], "distributed", "_pmi.py")
    mspec = importlib.util.spec_from_file_location("launch._dtorch_pmi", path)
    mod = importlib.util.module_from_spec(mspec)
    sys.modules[mspec.name] = mod
    mspec.loader.exec_module(mod)
    return mod


class _Capture:
    """A file-like that keeps what the PMI server prints (the launcher reports it itself)."""

    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.append(text)

    def flush(self):
        pass


def start_pmi_server(world_size: int, host: str, port: int, timeout: float):
    """Start the PMI server in a thread of this process; return (server, thread)."""
    pmi = load_pmi()

    class LauncherPMIServer(pmi.PMIServer):
        """Stoppable; its connect timeout starts when the first rank connects (a script that
        never uses MPI must not time out)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.stop_requested = threading.Event()
            self.first_connect = None

        def _check_progress(self, start):
            if self.stop_requested.is_set():
                self.exit_code = 0 if self.failure is None else self._code
                return
            if self._ranks and self.first_connect is None:
                self.first_connect = time.monotonic()
            super()._check_progress(self.first_connect or time.monotonic())

    server = LauncherPMIServer(world_size, host, port, timeout, log=_Capture(), linger=0.2)
    thread = threading.Thread(target=server.serve, name="launch-pmi-server", daemon=True)
    thread.start()
    return server, thread


def bind_host(cfg: LaunchConfig) -> str:
    """Where node 0 listens: the master address, except a host *name* that resolves to a
    loopback address in a multi-node job (Debian maps its own name to 127.0.1.1, which the
    other nodes cannot reach): then all interfaces. An IP address is bound as given."""
    addr = cfg.master_addr
    if cfg.nnodes == 1:
        return addr
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
        return addr
    except OSError:
        pass
    resolved = socket.gethostbyname(addr)
    if resolved.startswith("127."):
        _log(f"{addr} resolves to {resolved} here (a loopback address): listening on all "
             "interfaces so that the other nodes can connect")
        return "0.0.0.0"
    return resolved


class _LocalCoordinator:
    """One node: nothing to agree on."""

    nnodes = 1

    def __init__(self, cfg):
        self.nprocs = [cfg.nproc_per_node]

    def publish_pmi(self, attempt, address):
        pass

    def wait_pmi(self, attempt):
        raise AssertionError("single node: node 0 runs the PMI server")

    def failure(self, attempt):
        return None

    def report_failure(self, attempt, text):
        return text

    def report_stop(self, reason):
        pass

    def stop_reason(self):
        return None

    def node_done(self, attempt, interrupted):
        return None

    def finish(self):
        pass


class _StoreCoordinator:
    """Several nodes: the agents meet in a store (node 0 hosts a TCPStore, or a FileStore)."""

    def __init__(self, cfg: LaunchConfig):
        from dtorch.distributed.store import FileStore, TCPStore

        self.cfg, self.nnodes = cfg, cfg.nnodes
        self.timeout = timedelta(seconds=cfg.rdzv_timeout)
        if cfg.rdzv_file is not None:
            self.store = FileStore(cfg.rdzv_file, cfg.nnodes, timeout=self.timeout)
            where = f"file://{cfg.rdzv_file}"
        else:
            host = bind_host(cfg) if cfg.node_rank == 0 else cfg.master_addr
            self.store = TCPStore(host, cfg.master_port, cfg.nnodes,
                                  is_master=cfg.node_rank == 0, timeout=self.timeout,
                                  wait_for_workers=False)
            where = f"tcp://{cfg.master_addr}:{cfg.master_port}"
        self.where = where
        me = cfg.node_rank
        if self.store.add(f"launch/claim/{me}", 1) != 1:
            raise RuntimeError(f"launch: two launchers claim --node-rank {me} at {where}; "
                               "every node needs its own rank (or a stale rendezvous file)")
        self.store.set(f"launch/node/{me}/nproc", str(cfg.nproc_per_node))
        keys = [f"launch/node/{i}/nproc" for i in range(self.nnodes)]
        deadline = time.monotonic() + cfg.rdzv_timeout
        while not self.store.check(keys):
            if time.monotonic() > deadline:
                missing = [i for i, k in enumerate(keys) if not self.store.check([k])]
                raise TimeoutError(f"launch: rendezvous at {where} timed out after "
                                   f"{cfg.rdzv_timeout:g} s: node ranks {missing} of "
                                   f"nnodes={self.nnodes} never arrived")
            time.sleep(0.05)
        self.nprocs = [int(self.store.get(k)) for k in keys]

    def publish_pmi(self, attempt, address):
        self.store.set(f"launch/{attempt}/pmi", address)

    def wait_pmi(self, attempt):
        key = f"launch/{attempt}/pmi"
        deadline = time.monotonic() + self.cfg.rdzv_timeout
        while not self.store.check([key]):
            if self.stop_reason() is not None:
                raise RuntimeError(f"launch: stopped: {self.stop_reason()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"launch: node 0 did not start attempt {attempt} within "
                                   f"{self.cfg.rdzv_timeout:g} s ({self.where})")
            time.sleep(0.05)
        return self.store.get(key).decode()

    def failure(self, attempt):
        key = f"launch/{attempt}/failed"
        return self.store.get(key).decode() if self.store.check([key]) else None

    def report_failure(self, attempt, text):
        """Publish ``text`` as the attempt's failure unless another node was first; the winner."""
        key = f"launch/{attempt}/failed"
        return self.store.compare_set(key, "", f"node {self.cfg.node_rank}: {text}").decode()

    def report_stop(self, reason):
        self.store.compare_set("launch/stop", "", f"node {self.cfg.node_rank}: {reason}")

    def stop_reason(self):
        return self.store.get("launch/stop").decode() if self.store.check(["launch/stop"]) \
            else None

    def node_done(self, attempt, interrupted):
        """This node's workers all succeeded: wait for the other nodes; None or a failure."""
        self.store.add(f"launch/{attempt}/done", 1)
        while True:
            fail = self.failure(attempt) or self.stop_reason()
            if fail is not None:
                return fail
            if int(self.store.get(f"launch/{attempt}/done")) >= self.nnodes:
                return None
            if interrupted():
                return "this launcher was interrupted while waiting for the other nodes"
            time.sleep(0.05)

    def finish(self):
        """Leave; node 0 (the store's host) waits, briefly, until every agent has left."""
        try:
            self.store.add("launch/left", 1)
            if self.cfg.node_rank == 0 and self.cfg.rdzv_file is None:
                deadline = time.monotonic() + 10.0
                while int(self.store.get("launch/left")) < self.nnodes and \
                        time.monotonic() < deadline:
                    time.sleep(0.05)
        except Exception:  # noqa: BLE001 -- leaving; the others may already be gone
            pass


class Agent:
    """Runs the configured job on this node; :meth:`run` returns the launcher's exit code."""

    def __init__(self, cfg: LaunchConfig, sink):
        self.cfg, self.sink = cfg, sink
        self.signum = None
        self.workers: list[Worker] = []

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame):
        if self.signum is not None:  # second signal: no more grace
            for w in self.workers:
                w.signal_group(signal.SIGKILL)
        self.signum = signum

    def _install_signals(self):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, self._on_signal)

    # ------------------------------------------------------------------ environment
    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_SCRUB) and k not in _SCRUB_EXACT}
        env.setdefault("PYTHONUNBUFFERED", "1")
        nproc = self.cfg.nproc_per_node
        if nproc > 1:
            threads = max(1, cores_available() // nproc)
            set_now = [v for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if v not in env]
            for v in set_now:
                env[v] = str(threads)
            kept = [f"{v}={env[v]}" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                    if v not in set_now]
            if set_now:
                _log(f"setting {' and '.join(f'{v}={threads}' for v in set_now)} for each of "
                     f"the {nproc} workers on this node ({cores_available()} cores / {nproc} "
                     "workers); set them yourself to override")
            if kept:
                _log(f"keeping {', '.join(kept)} as set by you")
        if self.cfg.backend != "auto":
            env["DTORCH_BACKEND"] = self.cfg.backend
        env.update(self.cfg.env)
        return env

    def _worker_env(self, base, attempt, rank, local_rank, world, pmi_addr, master):
        env = dict(base)
        env.update(
            RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world),
            LOCAL_WORLD_SIZE=str(self.cfg.nproc_per_node), GROUP_RANK=str(self.cfg.node_rank),
            GROUP_WORLD_SIZE=str(self.cfg.nnodes), ROLE_RANK=str(rank),
            MASTER_ADDR=master[0], MASTER_PORT=str(master[1]),
            DTORCH_RDZV_ENDPOINT=master[2],
            DTORCH_RESTART_COUNT=str(attempt), TORCHELASTIC_RESTART_COUNT=str(attempt),
            DTORCH_MAX_RESTARTS=str(self.cfg.max_restarts),
            TORCHELASTIC_MAX_RESTARTS=str(self.cfg.max_restarts),
            PMI_PORT=pmi_addr, PMI_ID=str(rank), PMI_RANK=str(rank), PMI_SIZE=str(world))
        return env

    # ------------------------------------------------------------------ main
    def run(self) -> int:
        cfg = self.cfg
        self._install_signals()
        for note in cfg.notes:
            _log(note)
        coord = _LocalCoordinator(cfg) if cfg.nnodes == 1 else _StoreCoordinator(cfg)
        try:
            return self._run(coord)
        finally:
            coord.finish()

    def _run(self, coord) -> int:
        cfg = self.cfg
        world = sum(coord.nprocs)
        offset = sum(coord.nprocs[:cfg.node_rank])
        base = self._base_env()
        _log(f"node {cfg.node_rank} of {cfg.nnodes}: starting ranks {offset}.."
             f"{offset + cfg.nproc_per_node - 1} of world size {world}: {' '.join(cfg.cmd[2:])}")
        attempt = 0
        while True:
            outcome = self._attempt(coord, attempt, base, world, offset)
            if outcome is None:
                _log(f"all {cfg.nproc_per_node} workers on node {cfg.node_rank} finished "
                     "successfully")
                return 0
            code, summary = outcome
            if self.signum is not None or coord.stop_reason() is not None:
                sys.stderr.write(summary)
                return code
            if attempt >= cfg.max_restarts:
                sys.stderr.write(summary)
                if cfg.max_restarts:
                    _log(f"giving up after {attempt + 1} attempts (--max-restarts "
                         f"{cfg.max_restarts})")
                return code
            attempt += 1
            sys.stderr.write(summary)
            _log(f"restarting the worker group: attempt {attempt + 1} of "
                 f"{cfg.max_restarts + 1} (workers resume from their own checkpoints)")

    def _attempt(self, coord, attempt, base, world, offset):
        """Run one attempt; None on success, else (exit code, summary text)."""
        cfg = self.cfg
        server = thread = None
        if cfg.node_rank == 0:
            host = bind_host(cfg)
            port = cfg.master_port if (cfg.nnodes == 1 and cfg.master_port) else 0
            server, thread = start_pmi_server(world, host, port, cfg.rdzv_timeout)
            pmi_addr = server.address
            if host == "0.0.0.0":
                pmi_addr = f"{cfg.master_addr}:{server.port}"
            coord.publish_pmi(attempt, pmi_addr)
        else:
            pmi_addr = coord.wait_pmi(attempt)
        if cfg.nnodes == 1 or cfg.rdzv_file is not None:
            phost, _, pport = pmi_addr.rpartition(":")
            master = (phost, int(pport), f"tcp://{pmi_addr}" if cfg.rdzv_file is None
                      else f"file://{cfg.rdzv_file}")
        else:
            master = (cfg.master_addr, cfg.master_port,
                      f"tcp://{cfg.master_addr}:{cfg.master_port}")
        log_dir = cfg.log_dir
        if log_dir is not None and cfg.max_restarts:
            log_dir = os.path.join(log_dir, f"attempt{attempt}")
        self.workers = []
        try:
            for lr in range(cfg.nproc_per_node):
                if self.signum is not None:
                    break
                rank = offset + lr
                env = self._worker_env(base, attempt, rank, lr, world, pmi_addr, master)
                self.workers.append(Worker(rank, lr, cfg.cmd, env, self.sink, log_dir))
            return self._supervise(coord, attempt, server)
        finally:
            stop_all(self.workers, grace=cfg.grace_period)
            if server is not None:
                server.stop_requested.set()
                thread.join(5.0)

    def _supervise(self, coord, attempt, server):
        next_remote_check = 0.0
        while True:
            if self.signum is not None:
                return self._interrupted(coord)
            failed = [w for w in self.workers if not w.running and w.returncode != 0]
            if failed:
                return self._fail(coord, attempt, server, None)
            if server is not None and server.failure is not None and \
                    any(w.running for w in self.workers):
                return self._fail(coord, attempt, server, None)
            if all(not w.running for w in self.workers):
                if server is not None and server.failure is not None:
                    _log(f"note: the MPI process manager reported: {server.failure}")
                remote = coord.node_done(attempt, lambda: self.signum is not None)
                if remote is None:
                    return None
                return 1, self._summary(attempt, f"on another node: {remote}", [])
            now = time.monotonic()
            if coord.nnodes > 1 and now >= next_remote_check:
                next_remote_check = now + 0.2
                remote = coord.failure(attempt) or coord.stop_reason()
                if remote is not None:
                    return self._fail(coord, attempt, server, remote)
            time.sleep(_POLL)

    def _interrupted(self, coord):
        name = signal.Signals(self.signum).name
        _log(f"received {name}: forwarding it to the workers, stopping them "
             f"({self.cfg.grace_period:g} s grace period)")
        coord.report_stop(f"the launcher received {name}")
        stop_all(self.workers, sig=self.signum, grace=self.cfg.grace_period)
        return 128 + self.signum, ""

    def _fail(self, coord, attempt, server, remote):
        # Give the others a moment to end by themselves (an aborted MPI world ends quickly):
        # whoever exits on its own first is the root cause, not a rank we killed.
        deadline = time.monotonic() + min(1.0, self.cfg.grace_period)
        while time.monotonic() < deadline and any(w.running for w in self.workers):
            time.sleep(_POLL)
        stop_all(self.workers, grace=self.cfg.grace_period)
        own = sorted((w for w in self.workers
                      if w.returncode not in (0, None) and not w.signalled_by_launcher),
                     key=lambda w: w.exit_time)
        pm = server.failure if server is not None else None
        root = self._root_cause(own, pm)
        own = [root] + [w for w in own if w is not root] if root is not None else own
        if root is not None:
            text = self._describe(root)
        else:
            text = remote or (f"reported by the MPI process manager: {pm}" if pm
                              else "unknown failure")
        winner = coord.report_failure(attempt, text)
        elsewhere = coord.nnodes > 1 and winner != f"node {self.cfg.node_rank}: {text}"
        code = 1
        if root is not None and not elsewhere:
            rc = root.returncode
            code = rc if rc > 0 else 128 - rc
        return code, self._summary(attempt, winner if elsewhere else text,
                                   own if elsewhere else own[1:], pm)

    @staticmethod
    def _root_cause(own, pm):
        """The worker that failed first *on its own account*.

        Exit order alone misleads under MPI: dtorch ends the peers of a rank that raised
        (they exit at once) while that rank is still inside ``MPI_Abort``. So: the rank the
        process manager saw call ``MPI_Abort``, else the earliest with a Python traceback,
        else the earliest.
        """
        if not own:
            return None
        m = re.match(r"rank (\d+) called MPI_Abort", pm or "")
        if m is not None:
            for w in own:
                if w.rank == int(m.group(1)):
                    return w
        with_tb = [w for w in own if w.traceback()]
        return (with_tb or own)[0]

    def _describe(self, w) -> str:
        lines = [f"rank {w.rank} (local rank {w.local_rank}, node {self.cfg.node_rank}, "
                 f"pid {w.pid}): {describe_status(w.returncode)}"]
        tb = w.traceback()
        if tb:
            lines.append("last traceback on its stderr:")
            lines.extend("  " + s for s in tb.splitlines())
        elif w.stderr_tail:
            lines.append("last lines of its stderr:")
            lines.extend("  " + s for s in list(w.stderr_tail)[-10:])
        return "\n".join(lines)

    def _summary(self, attempt, cause, others, pm=None) -> str:
        cfg = self.cfg
        bar = "=" * 72
        lines = [bar, f"launch: the job failed (attempt {attempt + 1} of "
                      f"{cfg.max_restarts + 1}, node {cfg.node_rank} of {cfg.nnodes})",
                 "root cause:"]
        lines.extend("  " + s for s in cause.splitlines())
        if pm is not None and "MPI process manager" not in cause:
            lines.append(f"MPI process manager: {pm}")
        for w in others:
            lines.append(f"also failed: rank {w.rank}: {describe_status(w.returncode)}")
        stopped = [w.rank for w in self.workers if w.signalled_by_launcher]
        if stopped:
            lines.append(f"stopped by the launcher: ranks {stopped}")
        if cfg.log_dir:
            lines.append(f"per-rank logs: {cfg.log_dir}")
        lines.append(bar)
        return "\n".join(lines) + "\n"
