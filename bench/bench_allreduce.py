"""Bus bandwidth and latency of dtorch.distributed.all_reduce against raw mpi4py Allreduce.

Both run on the same float32 NumPy buffers, sizes 4 KB .. 64 MB, in one job; each size alternates
raw and dtorch rounds so that machine noise hits both alike, and reports the best round's time per
call (on a shared machine the minimum estimates the intrinsic cost; the median mostly measures
the neighbours).
Bus bandwidth is NCCL's definition, ``2 (n - 1) / n * bytes / time``.

Run::

    OMP_NUM_THREADS=1 mpiexec -n 2 python bench/bench_allreduce.py [--tensor]

``--tensor`` passes a dtorch Tensor instead of a NumPy array (adds the Tensor unwrapping).
Targets: at least 95% of raw bandwidth from 1 MB up, at most 20 us added latency at 4 KB.
"""

import argparse
import time

import numpy as np

import dtorch.distributed as dist

SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]


def _time(fn, reps):
    """Seconds per call of ``fn`` over ``reps`` calls, ranks started together."""
    dist.barrier()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensor", action="store_true", help="pass dtorch Tensors")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds per size")
    args = parser.parse_args()
    dist.init_process_group(backend="mpi")
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, n = dist.get_rank(), dist.get_world_size()
    rows = []
    for nbytes in SIZES:
        buf = np.ones(nbytes // 4, np.float32)
        target = buf
        if args.tensor:
            import dtorch

            target = dtorch.Tensor._wrap(buf)
        reps = max(1, min(500, int(2e7 // nbytes)))
        rounds = args.rounds * (4 if reps == 1 else 1)  # single calls: more samples

        def raw(buf=buf):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

        def ours(target=target):
            dist.all_reduce(target)

        for fn in (raw, ours):  # warm-up
            _time(fn, max(1, reps // 10))
        t_raw, t_ours = [], []
        for _ in range(rounds):
            t_raw.append(_time(raw, reps))
            t_ours.append(_time(ours, reps))
        # the slowest rank decides: each rank's best round, then the maximum over ranks
        r_raw = comm.allreduce(min(t_raw), op=MPI.MAX)
        r_ours = comm.allreduce(min(t_ours), op=MPI.MAX)
        rows.append((nbytes, r_raw, r_ours))
    if rank == 0:
        factor = 2 * (n - 1) / n
        print(f"all_reduce float32 SUM, {n} ranks, {MPI.Get_library_version().splitlines()[0]}"
              f"{', Tensor inputs' if args.tensor else ''}")
        print(f"{'size':>8} {'raw us':>10} {'dtorch us':>10} {'added us':>9} "
              f"{'raw GB/s':>9} {'dtorch GB/s':>11} {'bw ratio':>8}")
        for nbytes, t_raw, t_ours in rows:
            bw_raw = factor * nbytes / t_raw / 1e9
            bw_ours = factor * nbytes / t_ours / 1e9
            size = f"{nbytes >> 20} MB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KB"
            print(f"{size:>8} {t_raw * 1e6:>10.1f} {t_ours * 1e6:>10.1f} "
                  f"{(t_ours - t_raw) * 1e6:>9.1f} {bw_raw:>9.2f} {bw_ours:>11.2f} "
                  f"{bw_ours / bw_raw:>8.1%}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
