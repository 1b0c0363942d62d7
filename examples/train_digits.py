"""Train a small CNN on scikit-learn's 8x8 digits with DistributedDataParallel.

The same script runs as a single process or across processes:

    python examples/train_digits.py
    mpiexec -n 2 python examples/train_digits.py
    python examples/train_digits.py --device cuda        # on a GPU, through CuPy

Each rank trains on its shard of every epoch (DistributedSampler); gradients are averaged by
DDP during backward; loss and accuracy are aggregated over ranks exactly (padding excluded).
Rank 0 shows a tqdm progress bar and, at the end, writes a loss/accuracy plot.

Checkpoints (``--out``/checkpoint.pt) are collectives
(:mod:`dtorch.distributed.replicated_checkpoint`): rank 0 writes one atomically after every
epoch while the others wait, and ``--resume`` reads it on rank 0 and broadcasts it, so the ranks
need no shared file system. It holds the model,
optimizer, scheduler and history and the position in the epoch, so a resumed run continues the
same training (at another world size, an interrupted epoch restarts: its order depends on the
number of ranks).

Preemption: on SIGTERM (what SLURM, ``mpiexec`` and ``python -m launch`` send before killing a
job) every rank finishes its step, the ranks agree, a final checkpoint is written, and the job
exits with status 143 (128 + SIGTERM), as a terminated job does -- run it again with
``--resume`` (or requeue it) to continue where it stopped.
"""

import argparse
import itertools
import os
import sys
import time

import numpy as np

import dtorch as torch
import dtorch.distributed as dist
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.distributed import replicated_checkpoint as rcp
from dtorch.nn.parallel import DistributedDataParallel as DDP
from dtorch.utils.data import DataLoader, TensorDataset
from dtorch.utils.data.distributed import DistributedSampler, distributed_evaluate


class DigitsNet(nn.Module):
    """conv 3x3 (1->16), ReLU, conv 3x3 (16->32), ReLU, 2x2 max-pool, FC 512->64, FC 64->10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


def load_digits_split():
    """The digits as float tensors (N, 1, 8, 8) scaled to [0, 1]; a fixed 80/20 split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    cut = int(0.8 * len(y))
    return (TensorDataset(torch.tensor(x[:cut]), torch.tensor(y[:cut])),
            TensorDataset(torch.tensor(x[cut:]), torch.tensor(y[cut:])))


def evaluate(model, dataset, device, world):
    """Exact loss and accuracy over ``dataset``, sharded over the ranks."""
    sampler = DistributedSampler(dataset, shuffle=False) if world > 1 else None
    loader = DataLoader(dataset, batch_size=256, sampler=sampler)
    losses, correct = [], []
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            losses.append(F.cross_entropy(out, y, reduction="none").cpu())
            correct.append((out.argmax(1) == y).float().cpu())
    model.train()
    losses, correct = torch.cat(losses), torch.cat(correct)
    if sampler is None:
        return losses.mean().item(), correct.mean().item()
    loss_sum, n = distributed_evaluate(losses, sampler)
    acc_sum, _ = distributed_evaluate(correct, sampler)
    return loss_sum / n, acc_sum / n


def save_plot(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(epochs, [h["train_loss"] for h in history], label="train")
    ax[0].plot(epochs, [h["test_loss"] for h in history], label="test")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("cross-entropy")
    ax[0].legend()
    ax[1].plot(epochs, [h["test_acc"] for h in history])
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def stop(signum, epoch, step, state, ckpt_path, rank):
    """Preempted: save the final checkpoint (every rank), then exit with 128 + signum."""
    rcp.save(state, ckpt_path)
    if rank == 0:
        print(f"preempted by signal {signum} in epoch {epoch + 1} after step {step}: "
              f"checkpoint saved to {ckpt_path}; exiting with {128 + signum} (continue with "
              "--resume)", flush=True)
    dist.destroy_process_group()
    sys.exit(128 + signum)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/digits", help="checkpoints and plot go here")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(dist.get_local_rank() % torch.cuda.device_count())
    torch.manual_seed(args.seed)

    train_set, test_set = load_digits_split()
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, seed=args.seed)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    model = DDP(DigitsNet().to(device))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)

    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
    history, start, skip = [], 0, 0
    if args.resume:
        try:
            ckpt = rcp.load(ckpt_path, map_location=device)
        except FileNotFoundError:  # raised on every rank alike: all start afresh together
            ckpt = None
            if rank == 0:
                print(f"no checkpoint at {ckpt_path}: starting afresh")
        if ckpt is not None:
            model.module.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            history, start = ckpt["history"], ckpt["epoch"]
            skip = ckpt["step"] if ckpt["world_size"] == world else 0
            if rank == 0:
                print(f"resumed from {ckpt_path} at epoch {start + 1} step {skip}")
    if rank == 0:
        print(f"training DigitsNet on {len(train_set)} digits, {world} rank(s), "
              f"{args.batch_size} per rank, device {device}")

    def state(epoch, step):
        """Everything needed to continue: ``step`` batches of epoch ``epoch`` are done."""
        return dict(model=model.module.state_dict(), optimizer=opt.state_dict(),
                    scheduler=sched.state_dict(), history=history, epoch=epoch, step=step,
                    world_size=world)

    progress = None
    if rank == 0 and not args.no_progress:
        from tqdm import tqdm

        progress = tqdm(total=(args.epochs - start) * len(loader) - skip, unit="step",
                        file=sys.stdout)
    t0 = time.perf_counter()
    with rcp.PreemptionHandler() as preemption:
        for epoch in range(start, args.epochs):
            sampler.set_epoch(epoch)
            for step, (x, y) in enumerate(itertools.islice(loader, skip, None), start=skip + 1):
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss.item():.3f}")
                if preemption.should_stop():  # a collective: every rank, every step
                    if progress is not None:
                        progress.close()
                    stop(preemption.signum, epoch, step, state(epoch, step), ckpt_path, rank)
            skip = 0
            sched.step()
            train_loss, _ = evaluate(model, train_set, device, world)
            test_loss, test_acc = evaluate(model, test_set, device, world)
            history.append(dict(epoch=epoch, train_loss=train_loss, test_loss=test_loss,
                                test_acc=test_acc))
            if rank == 0:
                msg = (f"epoch {epoch + 1:2d}/{args.epochs}  train loss {train_loss:.4f}  "
                       f"test loss {test_loss:.4f}  test acc {test_acc:.4f}")
                (progress.write if progress is not None else print)(msg)
            rcp.save(state(epoch + 1, 0), ckpt_path)
    if progress is not None:
        progress.close()
    if rank == 0:
        final = history[-1]["test_acc"] if history else float("nan")
        save_plot(history, os.path.join(args.out, "digits.png"))
        print(f"final test accuracy {final:.4f} ({time.perf_counter() - t0:.1f} s); "
              f"plot: {os.path.join(args.out, 'digits.png')}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
