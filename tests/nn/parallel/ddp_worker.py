"""Run the DDP equivalence checks of ``_ddp_suite`` in whatever world the environment gives.

A script, not a test module: ``test_ddp_launch.py`` starts it under ``python -m launch`` (MPI
world through the launcher's PMI server, the tcp:// and file:// rendezvous, the thread world of
``--debug-world``). ``dist.init_process_group()`` with no arguments forms the world, exactly as
a user's training script would. Each check prints one line on success::

    ddp_worker: OK sgd rank 1 of 2 backend mpi

A failing check prints ``ddp_worker: FAILED <name> ...`` and re-raises, so the rank dies of an
uncaught exception: dtorch aborts the whole world and the launcher exits non-zero.

Usage::

    python -m launch --nproc-per-node 2 tests/nn/parallel/ddp_worker.py --world-size 2
    python tests/nn/parallel/ddp_worker.py --world-size 2 --checks sgd,adam   # under mpiexec
"""

import argparse
import sys
from datetime import timedelta

import _ddp_suite as suite

import dtorch.distributed as dist

CHECKS = {
    "sgd": lambda: suite.check_matches_single_process("sgd"),
    "adam": lambda: suite.check_matches_single_process("adam"),
    "small_buckets": suite.check_many_small_buckets,
    "no_sync": suite.check_no_sync_accumulation,
    "unused": suite.check_unused_parameters,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--world-size", type=int, required=True,
                   help="the world size the job must have formed (guards against a job that "
                        "silently runs as N worlds of 1, where every check passes trivially)")
    p.add_argument("--checks", default=",".join(CHECKS),
                   help=f"comma-separated subset of {list(CHECKS)} (default: all)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds bounding every blocking collective (default 60)")
    args = p.parse_args(argv)
    args.checks = args.checks.split(",")
    unknown = [c for c in args.checks if c not in CHECKS]
    if unknown:
        p.error(f"unknown check(s) {unknown}; choose from {list(CHECKS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group(timeout=timedelta(seconds=args.timeout))
    rank, world, backend = dist.get_rank(), dist.get_world_size(), dist.get_backend()
    where = f"rank {rank} of {world} backend {backend}"
    if world != args.world_size:
        raise RuntimeError(f"ddp_worker: expected a world of {args.world_size} ranks, got "
                           f"{where}")
    for name in args.checks:
        try:
            CHECKS[name]()
        except BaseException:
            print(f"ddp_worker: FAILED {name} {where}", file=sys.stderr, flush=True)
            raise
        print(f"ddp_worker: OK {name} {where}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
