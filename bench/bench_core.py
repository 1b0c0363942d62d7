"""Core benchmark: per-op overhead and a matmul-bound training step.

Each workload runs, in one process and with one thread for all, on dtorch, on a hand-written
NumPy version of the same computation (the floor on this backend) and on PyTorch CPU when it is
installed. Times are the best of several repeats; ratios are dtorch / reference.

    python bench/bench_core.py
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

import dtorch  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:
    torch = None

CHAIN = 1000


def best(fn, repeat=7):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# ----------------------------------------------------------------------------- small-op chain
def chain_forward(lib, x):
    for _ in range(CHAIN):
        x = x * 1.0001
    return x


def chain_numpy_fwd_bwd():
    x = np.ones(16, dtype=np.float32)
    for _ in range(CHAIN):
        x = x * np.float32(1.0001)
    g = np.ones(16, dtype=np.float32)
    for _ in range(CHAIN):
        g = g * np.float32(1.0001)
    return g


def chain_lib_fwd_bwd(lib):
    x = lib.ones(16, requires_grad=True)
    chain_forward(lib, x).sum().backward()
    return x.grad


# ----------------------------------------------------------------------------- MLP step
BATCH, WIDTH, DEPTH, OUT = 256, 1024, 3, 16


def mlp_numpy(params, x, y, lr=1e-3):
    acts = [x]
    h = x
    for i, w in enumerate(params):
        h = h @ w
        if i < len(params) - 1:
            h = np.maximum(h, 0)
        acts.append(h)
    diff = h - y
    g = (2.0 / diff.size) * diff
    for i in range(len(params) - 1, -1, -1):
        gw = acts[i].T @ g
        if i:
            g = (g @ params[i].T) * (acts[i] > 0)
        params[i] -= lr * gw


def mlp_lib(lib, params, x, y, lr=1e-3):
    h = x
    for i, w in enumerate(params):
        h = h @ w
        if i < len(params) - 1:
            h = h.relu()
    loss = ((h - y) ** 2).mean()
    loss.backward()
    with lib.no_grad():
        for w in params:
            w -= lr * w.grad
            w.grad = None


def mlp_setup():
    rng = np.random.default_rng(0)
    dims = [WIDTH] * DEPTH + [OUT]
    ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
          for a, b in zip([WIDTH] + dims[:-1], dims)]
    x = rng.standard_normal((BATCH, WIDTH)).astype(np.float32)
    y = rng.standard_normal((BATCH, OUT)).astype(np.float32)
    return ws, x, y


def main():
    rows = []
    # forward-only chain
    xn = np.ones(16, dtype=np.float32)
    t_np = best(lambda: chain_forward(np, xn))
    t_dt = best(lambda: chain_forward(dtorch, dtorch.ones(16)))
    t_pt = best(lambda: chain_forward(torch, torch.ones(16))) if torch else None
    rows.append(("1000 small ops, forward", t_dt, t_np, t_pt))
    t_np = best(chain_numpy_fwd_bwd)
    t_dt = best(lambda: chain_lib_fwd_bwd(dtorch))
    t_pt = best(lambda: chain_lib_fwd_bwd(torch)) if torch else None
    rows.append(("1000 small ops, fwd+bwd", t_dt, t_np, t_pt))

    ws, x, y = mlp_setup()
    np_params = [w.copy() for w in ws]
    t_np = best(lambda: mlp_numpy(np_params, x, y), repeat=5)
    dt_params = [dtorch.tensor(w, requires_grad=True) for w in ws]
    xd, yd = dtorch.from_numpy(x), dtorch.from_numpy(y)
    t_dt = best(lambda: mlp_lib(dtorch, dt_params, xd, yd), repeat=5)
    t_pt = None
    if torch:
        pt_params = [torch.tensor(w, requires_grad=True) for w in ws]
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        t_pt = best(lambda: mlp_lib(torch, pt_params, xt, yt), repeat=5)
    rows.append((f"MLP step {BATCH}x{WIDTH}x{DEPTH} (matmul-bound)", t_dt, t_np, t_pt))

    print(f"dtorch core benchmark, numpy {np.__version__}, 1 thread"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    print(f"{'workload':42s} {'dtorch':>10s} {'numpy':>10s} {'torch':>10s} "
          f"{'dt/np':>7s} {'dt/torch':>8s}")
    for name, dt, nt, pt in rows:
        pts = f"{pt * 1e3:9.2f}ms" if pt else f"{'-':>10s}"
        ratio_pt = f"{dt / pt:8.2f}" if pt else f"{'-':>8s}"
        print(f"{name:42s} {dt * 1e3:8.2f}ms {nt * 1e3:8.2f}ms {pts} {dt / nt:7.2f} {ratio_pt}")
    per_op = rows[0][1] / CHAIN * 1e6
    per_op_bwd = rows[1][1] / CHAIN * 1e6
    print(f"per small op: {per_op:.2f} us forward, {per_op_bwd:.2f} us forward+backward")


if __name__ == "__main__":
    main()
