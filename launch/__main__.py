"""dtorchrun / ``python -m launch``: start and supervise the processes of a distributed job.

Usage::

    python -m launch [options] script.py [script args...]
    python -m launch [options] -m package.module [module args...]
    dtorchrun [options] script.py [script args...]          # the same, installed as a command

Examples::

    python -m launch --nproc-per-node 4 train.py --epochs 3         # 4 ranks on this machine
    python -m launch --standalone --nproc-per-node 2 train.py       # same, explicit one node
    python -m launch --debug-world 4 train.py                       # 4 ranks as threads
    # two machines, one launcher each (node 0 hosts the rendezvous at 10.0.0.1:29500):
    python -m launch --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --nproc-per-node 8 t.py
    python -m launch --nnodes 2 --node-rank 1 --master-addr 10.0.0.1 --nproc-per-node 8 t.py
    # inside a SLURM allocation (one launcher per node; nodes, rank, master from SLURM):
    srun --ntasks-per-node=1 python -m launch --nproc-per-node 4 train.py

The script needs nothing launcher-specific: ``dtorch.distributed.init_process_group()`` with no
arguments forms the world (it is the same script you run with ``python`` or ``mpiexec``).

How the world is formed
    The launcher is its workers' MPI process manager, as ``mpiexec`` would be: node 0's
    launcher serves MPICH's PMI-1 protocol (dtorch's PMI server, in a thread of the launcher)
    and every worker starts with ``PMI_PORT``/``PMI_ID``, so ``MPI_Init`` -- called by
    ``init_process_group()`` -- yields one genuine ``COMM_WORLD`` across all nodes. The
    launcher binds its sockets itself (port 0 unless told otherwise) and hands the bound
    address on, so there is no "find a free port, release it, hope" race. With several nodes
    the launchers first meet in a rendezvous store that node 0 hosts at
    ``--master-addr:--master-port`` (or a ``file://`` store), agree on the world, and node 0
    publishes the PMI server's address there.

Variables every worker gets
    ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK`` (node rank),
    ``GROUP_WORLD_SIZE``, ``ROLE_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` (the launcher's
    rendezvous socket: node 0's store with several nodes, else the PMI server),
    ``DTORCH_RDZV_ENDPOINT`` (the same as a URL), ``DTORCH_RESTART_COUNT`` /
    ``TORCHELASTIC_RESTART_COUNT`` (0 on the first attempt), ``DTORCH_MAX_RESTARTS``,
    ``PMI_PORT``/``PMI_ID``/``PMI_RANK``/``PMI_SIZE``, ``PYTHONUNBUFFERED=1`` (unless set),
    ``DTORCH_BACKEND`` when ``--backend`` is given. Inherited MPI launcher variables
    (``PMI_*``, ``HYDRA_*``, ``OMPI_*``, ...) are removed, so a launcher started by ``srun`` or
    ``mpiexec`` does not hand its own process manager to the workers. With several workers per
    node, ``OMP_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` are set to the cores per worker
    (the launcher's CPU affinity divided by ``--nproc-per-node``, at least 1) unless you set
    them; the launcher says which it set or kept. (Oversubscribed BLAS threads made 4 ranks on
    2 cores about 10x slower.)

Output
    Every line a worker prints is shown prefixed ``[rank3]: `` on the launcher's stdout or
    stderr (progress bars that redraw with ``\\r`` stay intact). ``--log-dir DIR`` also writes
    each rank's raw output to ``DIR/rank<N>.stdout`` and ``DIR/rank<N>.stderr`` (with
    ``--max-restarts``, under ``DIR/attempt<K>/``). Launcher messages start with ``launch:``.

Failures
    When a worker exits non-zero (or is killed), or the MPI process manager reports an abort,
    or another node reports a failure, the launcher stops every worker of the group -- SIGTERM
    to each worker's process group, ``--grace-period`` seconds, then SIGKILL -- and prints a
    summary: the root-cause rank (the first to fail on its own), its exit code or signal, and
    the last Python traceback from its stderr. It exits with that rank's exit code (128+N for
    signal N, 1 when the cause is elsewhere). With ``--max-restarts K`` the whole group is
    started again, up to K times, with ``DTORCH_RESTART_COUNT`` incremented; workers are
    expected to resume from their own checkpoints (e.g. ``train.py --resume``).

Signals
    SIGINT (Ctrl-C), SIGTERM and SIGHUP sent to the launcher are forwarded to every worker's
    process group; after the grace period the rest is killed, and the launcher exits with
    128+signal. A second signal kills at once. Workers run in their own sessions and, on
    Linux, die with the launcher even if it is killed with SIGKILL (``PR_SET_PDEATHSIG``), so
    nothing is left behind.

SLURM
    Inside an allocation (``SLURM_JOB_ID`` set) and a job step, with none of ``--nnodes``,
    ``--node-rank``, ``--master-addr``, ``--rdzv-endpoint`` given: ``nnodes`` is
    ``SLURM_STEP_NUM_NODES``, the node rank ``SLURM_NODEID``, the master the first host of
    the expanded ``SLURM_STEP_NODELIST`` (``node[01-03]`` -> ``node01``), and the port
    ``29500 + SLURM_JOB_ID % 1000`` unless ``--master-port``. Started in the batch script
    itself (no ``srun``), it is a one-node job. See ``slurm/README.md``.

Debug world
    ``--debug-world N`` runs the script as N ranks in threads of this one process with
    dtorch's thread backend: ``init_process_group()`` (whatever backend it names) forms the
    thread world, each thread sees its own ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in
    ``os.environ``, output is prefixed per rank, and ``breakpoint()`` works. Collectives are
    exact and every call is checked against the other ranks'. No processes, no MPI.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The launcher's command line (its help text is this module's docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m launch", description=__doc__.split("\n")[0],
        epilog="The full manual: python -c 'import launch.__main__ as m; print(m.__doc__)'")
    p.add_argument("--nproc-per-node", "--nproc_per_node", type=int, default=1,
                   help="workers (ranks) on this node (default 1)")
    p.add_argument("--nnodes", type=int, default=None,
                   help="number of nodes (default 1, or SLURM's)")
    p.add_argument("--node-rank", "--node_rank", type=int, default=None,
                   help="this node's rank in [0, nnodes) (default 0, or SLURM's)")
    p.add_argument("--master-addr", "--master_addr", default=None,
                   help="node 0's address (default 127.0.0.1, or SLURM's first node)")
    p.add_argument("--master-port", "--master_port", type=int, default=None,
                   help="port of node 0's rendezvous store (several nodes; default 29500); "
                        "with one node, the port of the PMI server (default: a free port "
                        "the launcher binds)")
    p.add_argument("--rdzv-endpoint", "--rdzv_endpoint", default=None,
                   help="tcp://host:port (as --master-addr/--master-port) or "
                        "file:///shared/path (a file every node sees)")
    p.add_argument("--standalone", action="store_true",
                   help="one node; the rendezvous on a free port that the launcher binds")
    p.add_argument("--max-restarts", "--max_restarts", type=int, default=0,
                   help="restart the whole worker group up to K times on a failure")
    p.add_argument("--log-dir", "--log_dir", default=None,
                   help="also write each rank's stdout/stderr to files in this directory")
    p.add_argument("--debug-world", type=int, default=None, metavar="N",
                   help="run the script as N rank threads of this process (thread backend)")
    p.add_argument("--backend", choices=("auto", "mpi", "nccl"), default="auto",
                   help="exported to the workers as DTORCH_BACKEND (the world is an MPI world "
                        "either way; nccl: GPU arrays travel over NCCL)")
    p.add_argument("--grace-period", type=float, default=5.0,
                   help="seconds between SIGTERM and SIGKILL when stopping workers")
    p.add_argument("--rdzv-timeout", type=float, default=900.0,
                   help="seconds to wait for the other nodes / for all ranks to reach MPI_Init")
    p.add_argument("-m", "--module", action="store_true",
                   help="run the target as a module (python -m), not a script path")
    p.add_argument("script", help="the training script (or module with -m)")
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments for the script")
    return p


def main(argv=None) -> int:
    """Entry point of ``python -m launch`` and ``dtorchrun``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.debug_world is not None:
        from .debug_world import run_debug_world

        return run_debug_world(args.script, args.script_args, args.debug_world, args.module)
    from .agent import Agent
    from .config import resolve
    from .workers import OutputSink

    try:
        cfg = resolve(args)
    except ValueError as e:
        build_parser().error(str(e))
    return Agent(cfg, OutputSink()).run()


if __name__ == "__main__":
    sys.exit(main())
