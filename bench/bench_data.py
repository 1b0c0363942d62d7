"""Data benchmark: DataLoader throughput and checkpoint save/load speed, beside PyTorch.

1. DataLoader over an in-memory dataset of 60,000 28x28 float32 images with int64 labels
   (TensorDataset, batch_size 64, shuffled), one full epoch with 0 and with 2 worker processes;
   reported as images/s (best of the repeats).
2. save/load of a ~100 MB state dict (25 float32 tensors of 1M elements plus small ones) to a
   file in a temporary directory, reported as MB/s (best of the repeats; the page cache is warm,
   so this measures serialisation, not the disk).

PyTorch (CPU) runs the same workloads when it is importable.

    python bench/bench_data.py [--repeat N]
"""

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

import dtorch
from dtorch.utils.data import DataLoader, TensorDataset

try:
    import torch
except ImportError:
    torch = None

N, BATCH = 60_000, 64


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def epoch(loader):
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    assert n == N


def loader_rows(repeat):
    rng = np.random.default_rng(0)
    images = rng.random((N, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, N)
    rows = []
    for workers in (0, 2):
        ds = TensorDataset(dtorch.from_numpy(images), dtorch.from_numpy(labels))
        dl = DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers)
        t_d = best(lambda dl=dl: epoch(dl), repeat)
        t_t = None
        if torch is not None:
            tds = torch.utils.data.TensorDataset(torch.from_numpy(images),
                                                 torch.from_numpy(labels))
            tdl = torch.utils.data.DataLoader(tds, batch_size=BATCH, shuffle=True,
                                              num_workers=workers)
            t_t = best(lambda tdl=tdl: epoch(tdl), repeat)
        rows.append((f"DataLoader, {workers} workers (images/s)", N / t_d,
                     None if t_t is None else N / t_t))
    return rows


def state_dict(lib):
    rng = np.random.default_rng(1)
    out = {}
    for i in range(25):
        out[f"layer{i}.weight"] = rng.standard_normal(1_000_000, dtype=np.float32)
        out[f"layer{i}.bias"] = rng.standard_normal(1000, dtype=np.float32)
    if lib == "dtorch":
        return {k: dtorch.from_numpy(v) for k, v in out.items()}
    return {k: torch.from_numpy(v) for k, v in out.items()}


def save_load_rows(repeat):
    tmp = tempfile.mkdtemp(prefix="dtorch_bench_")
    rows = []
    try:
        libs = [("dtorch", dtorch.save, lambda p: dtorch.load(p))]
        if torch is not None:
            libs.append(("torch", torch.save, lambda p: torch.load(p, weights_only=True)))
        results = {}
        for name, save, load in libs:
            sd = state_dict(name)
            mb = sum(t.numel() * 4 for t in sd.values()) / 1e6
            path = os.path.join(tmp, f"{name}.pt")
            t_save = best(lambda s=save, d=sd, p=path: s(d, p), repeat)
            t_load = best(lambda f=load, p=path: f(p), repeat)
            results[name] = (mb / t_save, mb / t_load)
        rows.append(("save 100 MB state dict (MB/s)", results["dtorch"][0],
                     results.get("torch", (None,))[0]))
        rows.append(("load 100 MB state dict (MB/s)", results["dtorch"][1],
                     results.get("torch", (None, None))[1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = loader_rows(args.repeat) + save_load_rows(args.repeat)
    print(f"{'workload':<42} {'dtorch':>12} {'torch':>12} {'dtorch/torch':>13}")
    for name, d, t in rows:
        ts = f"{t:12.0f}" if t else f"{'-':>12}"
        ratio = f"{d / t:13.2f}" if t else f"{'-':>13}"
        print(f"{name:<42} {d:12.0f} {ts} {ratio}")


if __name__ == "__main__":
    main()
