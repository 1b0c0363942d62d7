"""A small SLURM test job: form the world with init_process_group(), check an all_reduce.

Accepts the options the batch scripts pass to the training script (--out, --device,
--no-progress, --resume); --fail-rank R makes rank R raise after the world is formed.
"""

import argparse
import os
import time

import dtorch
import dtorch.distributed as dist

p = argparse.ArgumentParser()
p.add_argument("--out")
p.add_argument("--device", default="cpu")
p.add_argument("--no-progress", action="store_true")
p.add_argument("--resume", action="store_true")
p.add_argument("--fail-rank", type=int, default=-1)
args = p.parse_args()

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
if rank == args.fail_rank:
    time.sleep(0.3)
    raise RuntimeError(f"rank {rank} fails on purpose")
t = dtorch.ones(3, dtype=dtorch.float64) * (rank + 1)
dist.all_reduce(t)
assert t.tolist() == [world * (world + 1) / 2] * 3, t.tolist()
print(f"check ok rank {rank} of {world} backend {dist.get_backend()} local rank "
      f"{dist.get_local_rank()} DTORCH_BACKEND={os.environ.get('DTORCH_BACKEND')}", flush=True)
dist.destroy_process_group()
