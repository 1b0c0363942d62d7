"""Training-step benchmark of dtorch.nn against PyTorch (CPU) and a hand-written NumPy version.

Workloads (one thread everywhere):

* MLP 784-500-10, batch 128, Adam;
* the seed LeNet (1x32x32 input), batch 64, SGD with momentum;
* the seed CIFAR-10 CNN (3x32x32), batch 4 and batch 64, SGD with momentum;
* activation checkpointing: 8 blocks Linear(256, 2048)-ReLU-Linear(2048, 256)-Tanh, batch 512,
  with and without ``dtorch.utils.checkpoint`` per block (traced NumPy memory held after the
  forward pass, and the step's peak).

Every (framework, workload) pair runs in its own subprocess, so the peak-memory column (growth
of the peak resident set size over the process's size before the model is built) is not
polluted by the others. Run: ``python bench/bench_nn.py [--quick]``.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
           "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

WORKLOADS = {
    "mlp": dict(label="MLP 784-500-10 b128 Adam", batch=128, steps=60),
    "lenet": dict(label="LeNet b64 SGD-momentum", batch=64, steps=30),
    "cifar4": dict(label="CIFAR CNN b4 SGD-momentum", batch=4, steps=150),
    "cifar64": dict(label="CIFAR CNN b64 SGD-momentum", batch=64, steps=25),
}


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(kind, batch):
    rng = np.random.default_rng(0)
    if kind == "mlp":
        x = rng.standard_normal((batch, 784)).astype(np.float32)
    elif kind == "lenet":
        x = rng.standard_normal((batch, 1, 32, 32)).astype(np.float32)
    else:
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    return x, y


# ----------------------------------------------------------------------------- frameworks
def _torch_like_step(torch, kind, batch):
    nn, F = torch.nn, torch.nn.functional

    class LeNet(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.view(-1, 16 * 5 * 5)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    torch.manual_seed(0)
    if kind == "mlp":
        net = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    else:
        net = LeNet(1 if kind == "lenet" else 3)
        opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    xn, yn = _data(kind, batch)
    x, y = torch.tensor(xn), torch.tensor(yn)

    def step():
        opt.zero_grad()
        loss = crit(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _numpy_step(kind, batch):
    """A hand-written NumPy training step (im2col convolutions, explicit backward)."""
    from numpy.lib.stride_tricks import sliding_window_view

    rng = np.random.default_rng(0)
    xn, yn = _data(kind, batch)

    def lin(i, o):
        b = 1 / np.sqrt(i)
        return [rng.uniform(-b, b, (o, i)).astype(np.float32),
                rng.uniform(-b, b, o).astype(np.float32)]

    def conv_p(ci, co, k):
        b = 1 / np.sqrt(ci * k * k)
        return [rng.uniform(-b, b, (co, ci, k, k)).astype(np.float32),
                rng.uniform(-b, b, co).astype(np.float32)]

    def xent(logits, y):
        z = logits - logits.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y]).mean()
        p[np.arange(len(y)), y] -= 1
        return loss, p / len(y)

    if kind == "mlp":
        params = lin(784, 500) + lin(500, 10)
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        t = [0]

        def grads():
            w1, b1, w2, b2 = params
            h = xn @ w1.T + b1
            a = np.maximum(h, 0)
            out = a @ w2.T + b2
            loss, g = xent(out, yn)
            gw2, gb2 = g.T @ a, g.sum(0)
            ga = g @ w2
            ga[h <= 0] = 0
            return loss, [ga.T @ xn, ga.sum(0), gw2, gb2]

        def step():
            loss, gs = grads()
            t[0] += 1
            b1c, b2c = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
            for p, g, mi, vi in zip(params, gs, m, v):
                mi *= 0.9
                mi += 0.1 * g
                vi *= 0.999
                vi += 0.001 * g * g
                p -= 1e-3 * (mi / b1c) / (np.sqrt(vi / b2c) + 1e-8)
            return loss

        return step

    cin = 1 if kind == "lenet" else 3
    params = conv_p(cin, 6, 5) + conv_p(6, 16, 5) + lin(400, 120) + lin(120, 84) + lin(84, 10)
    mom = [np.zeros_like(p) for p in params]

    def conv_f(x, w, b):
        cols = sliding_window_view(x, (5, 5), axis=(2, 3))  # N C OH OW 5 5
        n, c, oh, ow = cols.shape[:4]
        cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * 25)
        out = (cols @ w.reshape(w.shape[0], -1).T + b).reshape(n, oh, ow, -1)
        return out.transpose(0, 3, 1, 2), cols

    def conv_b(g, cols, w, xshape):
        n, co, oh, ow = g.shape
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, co)
        gw = (g2.T @ cols).reshape(w.shape)
        gcols = (g2 @ w.reshape(co, -1)).reshape(n, oh, ow, xshape[1], 5, 5)
        gx = np.zeros(xshape, dtype=g.dtype)
        for i in range(5):
            for j in range(5):
                gx[:, :, i:i + oh, j:j + ow] += gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return gx, gw, g2.sum(0)

    def pool_f(x):
        n, c, h, w = x.shape
        r = x.reshape(n, c, h // 2, 2, w // 2, 2)
        out = r.max((3, 5))
        mask = r == out[:, :, :, None, :, None]
        return out, mask

    def pool_b(g, mask):
        n, c, h, _, w, _ = mask.shape
        return (mask * g[:, :, :, None, :, None]).reshape(n, c, h * 2, w * 2)

    def step():
        cw1, cb1, cw2, cb2, w1, b1, w2, b2, w3, b3 = params
        h1, cols1 = conv_f(xn, cw1, cb1)
        a1 = np.maximum(h1, 0)
        p1, m1 = pool_f(a1)
        h2, cols2 = conv_f(p1, cw2, cb2)
        a2 = np.maximum(h2, 0)
        p2, m2 = pool_f(a2)
        f = p2.reshape(len(xn), -1)
        z1 = f @ w1.T + b1
        r1 = np.maximum(z1, 0)
        z2 = r1 @ w2.T + b2
        r2 = np.maximum(z2, 0)
        out = r2 @ w3.T + b3
        loss, g = xent(out, yn)
        gw3, gb3 = g.T @ r2, g.sum(0)
        g = g @ w3 * (z2 > 0)
        gw2, gb2 = g.T @ r1, g.sum(0)
        g = g @ w2 * (z1 > 0)
        gw1, gb1 = g.T @ f, g.sum(0)
        g = (g @ w1).reshape(p2.shape)
        g = pool_b(g, m2) * (h2 > 0)
        gp1, gcw2, gcb2 = conv_b(g, cols2, cw2, p1.shape)
        g = pool_b(gp1, m1) * (h1 > 0)
        _, gcw1, gcb1 = conv_b(g, cols1, cw1, xn.shape)
        for p, gr, mo in zip(params, [gcw1, gcb1, gcw2, gcb2, gw1, gb1, gw2, gb2, gw3, gb3],
                             mom):
            mo *= 0.9
            mo += gr
            p -= 0.001 * mo
        return loss

    return step


def _checkpoint_step(use_ckpt):
    import dtorch
    import dtorch.nn as nn
    from dtorch.utils.checkpoint import checkpoint

    dtorch.manual_seed(0)
    blocks = nn.ModuleList([nn.Sequential(nn.Linear(256, 2048), nn.ReLU(),
                                          nn.Linear(2048, 256), nn.Tanh())
                            for _ in range(8)])
    x = dtorch.randn(512, 256)

    def step():
        import tracemalloc

        h = x
        for b in blocks:
            h = checkpoint(b, h, use_reentrant=False) if use_ckpt else b(h)
        loss = h.pow(2).mean()
        if tracemalloc.is_tracing():
            _HELD[0] = tracemalloc.get_traced_memory()[0] / 2**20
        loss.backward()
        return loss.item()

    return step


_HELD = [float("nan")]


def run_one(framework, kind):
    """Child process: time one workload; print a JSON line."""
    import tracemalloc

    if framework == "torch":
        import torch

        torch.set_num_threads(1)
    elif framework != "numpy":
        import dtorch  # noqa: F401
    base = _rss_mb()
    if framework == "torch":
        step = _torch_like_step(torch, kind, WORKLOADS[kind]["batch"])
    elif framework == "dtorch":
        step = _torch_like_step(sys.modules["dtorch"], kind, WORKLOADS[kind]["batch"])
    elif framework == "numpy":
        step = _numpy_step(kind, WORKLOADS[kind]["batch"])
    else:  # checkpoint study: framework is "ckpt" or "plain"
        step = _checkpoint_step(framework == "ckpt")
    steps = WORKLOADS.get(kind, {}).get("steps", 3)
    for _ in range(3):
        step()
    tracemalloc.start()
    step()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps(dict(ms=1000 * float(np.median(times)), peak_rss=_peak_mb() - base,
                          traced=traced, held=_HELD[0])))


def _child(framework, kind):
    out = subprocess.run([sys.executable, __file__, "--child", framework, kind],
                         capture_output=True, text=True, env=os.environ.copy())
    if out.returncode:
        return dict(error=out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(quick=False):
    import importlib.util

    # NOTE: not imported here: the children would inherit its memory in their peak RSS.
    have_torch = importlib.util.find_spec("torch") is not None
    if quick:
        for w in WORKLOADS.values():
            w["steps"] = max(3, w["steps"] // 5)
    frameworks = ["dtorch", "numpy"] + (["torch"] if have_torch else [])
    rows = []
    for kind, spec in WORKLOADS.items():
        res = {fw: _child(fw, kind) for fw in frameworks}
        rows.append((spec["label"], res))
    head = (f"{'workload':28s} {'dtorch ms':>10s} {'torch ms':>9s} {'numpy ms':>9s} "
            f"{'dt/torch':>8s} {'dt/numpy':>8s} {'dtorch MB':>9s} {'torch MB':>8s} "
            f"{'numpy MB':>8s}")
    print("one thread everywhere; median step time; MB = peak RSS growth over the process "
          "after imports (model, data, optimizer state, step temporaries)")
    print(head)
    print("-" * len(head))
    for label, res in rows:
        d, t, n = res["dtorch"], res.get("torch", {}), res["numpy"]
        if "error" in d:
            print(f"{label:28s} dtorch failed: {d['error']}")
            continue

        def ms(r):
            return f"{r['ms']:9.2f}" if "ms" in r else f"{'n/a':>9s}"

        def mb(r):
            return f"{r['peak_rss']:8.1f}" if "peak_rss" in r else f"{'n/a':>8s}"

        rt = f"{d['ms'] / t['ms']:7.2f}x" if "ms" in t else f"{'n/a':>8s}"
        rn = f"{d['ms'] / n['ms']:7.2f}x" if "ms" in n else f"{'n/a':>8s}"
        print(f"{label:28s} {d['ms']:10.2f} {ms(t)} {ms(n)} {rt} {rn} {d['peak_rss']:9.1f} "
              f"{mb(t)} {mb(n)}")
    plain, ckpt = _child("plain", "ckpt"), _child("ckpt", "ckpt")
    print()
    print("activation checkpointing (dtorch), 8 x [Linear(256,2048)-ReLU-Linear(2048,256)-Tanh],"
          " batch 512; traced NumPy memory")
    for name, r in (("without checkpoint", plain), ("checkpoint per block", ckpt)):
        if "error" in r:
            print(f"  {name:22s} failed: {r['error']}")
        else:
            print(f"  {name:22s} step {r['ms']:7.1f} ms   held after forward {r['held']:6.1f} MB"
                  f"   step peak {r['traced']:6.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_one(sys.argv[2], sys.argv[3])
    else:
        main(quick="--quick" in sys.argv)
