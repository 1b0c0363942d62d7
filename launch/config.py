"""The launcher's settings: command-line options resolved against SLURM and the machine.

:func:`resolve` turns the parsed options into a :class:`LaunchConfig` -- the node layout
(number of nodes, this node's rank, the master address), the rendezvous endpoint, and the worker
command line -- so that the agent never looks at ``argparse`` or SLURM itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from urllib.parse import urlparse

from .hostlist import expand_hostlist

__all__ = ["LaunchConfig", "resolve", "DEFAULT_MASTER_PORT", "cores_available"]

DEFAULT_MASTER_PORT = 29500


@dataclass
class LaunchConfig:
    """Everything the agent needs, resolved (see :func:`resolve`)."""

    cmd: list[str]                       # the worker command line (python, -u, script, args)
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None       # None: a port the launcher binds itself (free one)
    rdzv_file: str | None = None         # file:// rendezvous path (multi-node)
    max_restarts: int = 0
    log_dir: str | None = None
    backend: str = "auto"
    grace_period: float = 5.0
    rdzv_timeout: float = 900.0
    env: dict[str, str] = field(default_factory=dict)  # extra variables for every worker
    notes: list[str] = field(default_factory=list)     # what was resolved, for --verbose/log
    from_slurm: bool = False


def cores_available() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _slurm_layout(environ) -> tuple[int, int, str] | None:
    """(nnodes, node_rank, master host) from SLURM's variables, or None outside SLURM.

    Inside a job step (``srun``) the step's nodes count; in the batch script itself (no step)
    only this one node runs the launcher, so it is a one-node job.
    """
    if "SLURM_JOB_ID" not in environ:
        return None
    in_step = "SLURM_STEP_ID" in environ and environ.get("SLURM_STEP_ID") not in ("", "batch")
    if not in_step:
        return 1, 0, "127.0.0.1"
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST", "")
    hosts = expand_hostlist(nodelist) if nodelist else []
    nnodes = int(environ.get("SLURM_STEP_NUM_NODES") or environ.get("SLURM_NNODES")
                 or len(hosts) or 1)
    node_rank = int(environ.get("SLURM_NODEID", "0"))
    if nnodes == 1:
        return 1, 0, "127.0.0.1"
    if not hosts:
        raise ValueError("launch: inside a SLURM step of "
                         f"{nnodes} nodes but SLURM_STEP_NODELIST/SLURM_JOB_NODELIST is empty")
    return nnodes, node_rank, hosts[0]


def resolve(args, environ=None) -> LaunchConfig:
    """Build the :class:`LaunchConfig` from parsed options (``launch.__main__`` defines them).

    Node layout: explicit ``--nnodes/--node-rank/--master-addr`` win; inside a SLURM step with
    none of them given, SLURM's variables decide (master: the first host of the expanded node
    list, port: ``29500 + SLURM_JOB_ID % 1000`` unless ``--master-port``).
    """
    environ = os.environ if environ is None else environ
    if args.module:
        cmd = [sys.executable, "-u", "-m", args.script, *args.script_args]
    else:
        cmd = [sys.executable, "-u", args.script, *args.script_args]
    cfg = LaunchConfig(cmd=cmd, max_restarts=args.max_restarts, log_dir=args.log_dir,
                       backend=args.backend, grace_period=args.grace_period,
                       rdzv_timeout=args.rdzv_timeout)
    if args.nproc_per_node < 1:
        raise ValueError(f"--nproc-per-node must be >= 1, got {args.nproc_per_node}")
    if args.max_restarts < 0:
        raise ValueError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    cfg.nproc_per_node = args.nproc_per_node

    explicit = any(v is not None for v in (args.nnodes, args.node_rank, args.master_addr,
                                           args.rdzv_endpoint))
    slurm = None if (explicit or args.standalone) else _slurm_layout(environ)
    if args.standalone:
        if args.nnodes not in (None, 1) or args.rdzv_endpoint is not None:
            raise ValueError("--standalone is a one-node job: it cannot be combined with "
                             f"--nnodes={args.nnodes} or --rdzv-endpoint")
        cfg.notes.append("standalone: one node, rendezvous on a port the launcher binds")
    elif slurm is not None:
        cfg.nnodes, cfg.node_rank, cfg.master_addr = slurm
        cfg.from_slurm = True
        if cfg.nnodes > 1 and args.master_port is None:
            cfg.master_port = DEFAULT_MASTER_PORT + int(environ["SLURM_JOB_ID"]) % 1000
        cfg.notes.append(f"from SLURM job {environ['SLURM_JOB_ID']}: nnodes={cfg.nnodes}, "
                         f"node_rank={cfg.node_rank}, master_addr={cfg.master_addr}")
    else:
        cfg.nnodes = 1 if args.nnodes is None else args.nnodes
        cfg.node_rank = 0 if args.node_rank is None else args.node_rank
        if args.master_addr is not None:
            cfg.master_addr = args.master_addr
    if args.master_port is not None:
        cfg.master_port = args.master_port
    if args.rdzv_endpoint is not None:
        url = urlparse(args.rdzv_endpoint)
        if url.scheme == "tcp":
            if not url.hostname or url.port is None:
                raise ValueError(f"--rdzv-endpoint needs tcp://host:port, got "
                                 f"{args.rdzv_endpoint!r}")
            cfg.master_addr, cfg.master_port = url.hostname, url.port
        elif url.scheme == "file":
            if url.netloc or not url.path:
                raise ValueError(f"--rdzv-endpoint needs file:///absolute/path, got "
                                 f"{args.rdzv_endpoint!r}")
            cfg.rdzv_file = url.path
        else:
            raise ValueError(f"--rdzv-endpoint must be tcp://host:port or file:///path, got "
                             f"{args.rdzv_endpoint!r}")
    if cfg.nnodes < 1:
        raise ValueError(f"--nnodes must be >= 1, got {cfg.nnodes}")
    if not 0 <= cfg.node_rank < cfg.nnodes:
        raise ValueError(f"--node-rank {cfg.node_rank} is outside [0, nnodes={cfg.nnodes})")
    if cfg.nnodes > 1 and cfg.rdzv_file is None and cfg.master_port is None:
        cfg.master_port = DEFAULT_MASTER_PORT
    if cfg.master_port is not None and not 0 < cfg.master_port < 65536:
        raise ValueError(f"--master-port {cfg.master_port} is outside [1, 65535]")
    return cfg
