"""Seed tutorial (004, and the MNIST MLP of 003): a hand-written MLP on MNIST, trained first by
manual gradient descent under ``torch.no_grad()``, then with ``optim.Adam``.

    python examples/mnist_mlp_manual.py --data data --download [--epochs 2000] [--limit N]

The network is two weight matrices and a ReLU (``relu(x @ w1) @ w2``, 784 -> 200 -> 10, weights
drawn from ``randn`` as in the seed), the loss ``nn.CrossEntropyLoss``. Each step draws a random
mini-batch of ``--batch-size`` training images (the seed calls these steps "epochs" and runs
2000), flattens them to 784-vectors and scales them to [0, 1] by the batch maximum. Phase 1
updates ``w -= lr * w.grad`` by hand under ``torch.no_grad()`` and zeroes the gradients; phase 2
starts from fresh weights and lets ``optim.Adam`` do the update. Both loss curves are saved in one
PNG (``--out``); the test accuracy of each phase is printed.
"""

import argparse
import os

import numpy as np

import dtorch as torch
from dtorch.vision.datasets import MNIST

INPUT, HIDDEN, CLASSES = 784, 200, 10


def nn(x, w1, w2):
    """The seed's network: ``relu(x @ w1) @ w2``."""
    l1 = x @ w1  # matrix multiplication
    l1 = torch.relu(l1)  # non-linear activation
    return l1 @ w2


def init_weights():
    """Fresh ``randn`` weight matrices that track gradients."""
    w1 = torch.randn(INPUT, HIDDEN, requires_grad=True)
    w2 = torch.randn(HIDDEN, CLASSES, requires_grad=True)
    return w1, w2


def prepare(images):
    """Flatten uint8 images (N, 28, 28) to (N, 784) floats scaled to [0, 1] by their maximum."""
    x = images.float().flatten(start_dim=1)
    x /= x.max()
    return x


def train(images, labels, w1, w2, update, args, rng, name):
    """Run ``args.epochs`` steps on random mini-batches; ``update(w1, w2)`` changes the weights
    after each backward. Returns the loss of every step."""
    lossfn = torch.nn.CrossEntropyLoss()
    res = []
    for i in range(args.epochs):
        rid = torch.tensor(rng.integers(0, images.shape[0], size=args.batch_size))
        pred = nn(prepare(images[rid]), w1, w2)
        loss = lossfn(pred, labels[rid])
        loss.backward()
        update(w1, w2)
        res.append(loss.item())
        if args.print_every and (i + 1) % args.print_every == 0:
            print(f"{name}: step {i + 1:5d}/{args.epochs}  loss {res[-1]:.4f}")
    return res


def accuracy(test_set, w1, w2):
    """Fraction of ``test_set`` classified correctly."""
    with torch.no_grad():
        pred = nn(prepare(test_set.data), w1, w2).argmax(1)
    return (pred == test_set.targets).float().mean().item()


def report(name, res, acc):
    k = max(1, len(res) // 10)
    first, last = float(np.mean(res[:k])), float(np.mean(res[-k:]))
    print(f"{name}: mean loss of the first {k} steps {first:.4f}, of the last {k} steps "
          f"{last:.4f}; test accuracy {acc:.4f}")


def draw(curves, path):
    """Plot each loss curve against the step number and save the figure at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, res in curves.items():
        ax.plot(np.arange(len(res)), res, label=name)
    ax.set_title("Classifying MNIST using a neural network", fontsize=10)
    ax.set_xlabel("time (step)")
    ax.set_ylabel("Loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data", help="MNIST root (holds MNIST/raw/)")
    p.add_argument("--download", action="store_true", help="fetch MNIST if it is missing")
    p.add_argument("--epochs", type=int, default=2000,
                   help="random mini-batch steps per phase (the seed's 'epochs')")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training images (short runs)")
    p.add_argument("--out", default="mnist_mlp_loss.png", help="where the loss plot goes")
    p.add_argument("--print-every", type=int, default=200, help="0: no per-step lines")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    mnist_data = MNIST(args.data, train=True, download=args.download)
    test_set = MNIST(args.data, train=False, download=args.download)
    images, labels = mnist_data.data, mnist_data.targets
    if args.limit is not None:
        images, labels = images[:args.limit], labels[:args.limit]
    print(f"MNIST: {len(images)} training images, {len(test_set)} test images; "
          f"{args.epochs} steps of {args.batch_size} per phase")

    # Phase 1: gradient descent by hand. The update must not be recorded by autograd, and the
    # gradients must be zeroed afterwards or the next backward adds to them.
    def manual_sgd(w1, w2):
        with torch.no_grad():
            w1 -= args.lr * w1.grad
            w2 -= args.lr * w2.grad
        w1.grad.zero_()
        w2.grad.zero_()

    w1, w2 = init_weights()
    sgd_res = train(images, labels, w1, w2, manual_sgd, args, rng, "manual SGD")
    report("manual SGD", sgd_res, accuracy(test_set, w1, w2))

    # Phase 2: the same network from fresh weights, updated by Adam.
    w1, w2 = init_weights()
    optim = torch.optim.Adam(params=[w1, w2], lr=args.lr)

    def adam(*_weights):
        optim.step()
        optim.zero_grad()

    adam_res = train(images, labels, w1, w2, adam, args, rng, "Adam")
    report("Adam", adam_res, accuracy(test_set, w1, w2))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    draw({"manual SGD": sgd_res, "Adam": adam_res}, args.out)
    print(f"loss curves: {args.out}")


if __name__ == "__main__":
    main()
