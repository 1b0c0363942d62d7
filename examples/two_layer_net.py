"""Seed tutorial: the same sigmoid network trained by hand-written backpropagation, once in NumPy
and once in dtorch, from the same initial weights: the two predictions agree.

    python examples/two_layer_net.py [--epochs 5000]
"""

import argparse

import numpy as np

import dtorch as torch


def sigmoid_np(x):
    return 1 / (1 + np.exp(-x))


def sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def derivatives_sigmoid(x):
    return x * (1 - x)


def train_numpy(X, y, wh, bh, wout, bout, epochs, lr):
    for _ in range(epochs):
        hidden = sigmoid_np(X @ wh + bh)
        output = sigmoid_np(hidden @ wout + bout)
        d_output = (y - output) * derivatives_sigmoid(output)
        d_hidden = (d_output @ wout.T) * derivatives_sigmoid(hidden)
        wout += hidden.T @ d_output * lr
        bout += d_output.sum(axis=0, keepdims=True) * lr
        wh += X.T @ d_hidden * lr
        bh += d_hidden.sum(axis=0, keepdims=True) * lr
    return output


def train_dtorch(X, y, wh, bh, wout, bout, epochs, lr):
    for _ in range(epochs):
        hidden = sigmoid(torch.mm(X, wh) + bh)
        output = sigmoid(torch.mm(hidden, wout) + bout)
        d_output = (y - output) * derivatives_sigmoid(output)
        d_hidden = torch.mm(d_output, wout.t()) * derivatives_sigmoid(hidden)
        wout += torch.mm(hidden.t(), d_output) * lr
        bout += d_output.sum(0, keepdim=True) * lr
        wh += torch.mm(X.t(), d_hidden) * lr
        bh += d_hidden.sum(0, keepdim=True) * lr
    return output


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5000)
    args = p.parse_args(argv)
    X = np.array([[1, 0, 1, 0], [1, 0, 1, 1], [0, 1, 0, 1]], dtype=np.float32)
    y = np.array([[1], [1], [0]], dtype=np.float32)
    rng = np.random.default_rng(0)
    init = [rng.uniform(size=s).astype(np.float32) for s in [(4, 3), (1, 3), (3, 1), (1, 1)]]
    out_np = train_numpy(X, y, *[w.copy() for w in init], args.epochs, 0.1)
    out_dt = train_dtorch(torch.tensor(X), torch.tensor(y),
                          *[torch.tensor(w) for w in init], args.epochs, 0.1)
    print("actual :\n", torch.tensor(y), "\n")
    print("predicted (dtorch):\n", out_dt)
    print("max |numpy - dtorch| =", float(np.abs(out_np - out_dt.numpy()).max()))


if __name__ == "__main__":
    main()
