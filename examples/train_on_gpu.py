"""Seed tutorial (001 "training on GPU"): the same training loop on whichever device there is.

    python examples/train_on_gpu.py [--device cpu|cuda|cuda:1] [--epochs 5]

Picks ``cuda:0`` when ``dtorch.cuda.is_available()`` (CuPy and a visible GPU) and the CPU
otherwise, and says which; ``--device`` forces one. ``net.to(device)`` moves every parameter and
buffer, and each mini-batch is moved with ``.to(device)`` before the forward pass -- nothing else
in the loop changes. The data are scikit-learn's bundled 8x8 digits (no download); the script
prints the training loss per epoch and the test accuracy.
"""

import argparse

import dtorch as torch
import dtorch.nn as nn
import dtorch.nn.functional as F
import dtorch.optim as optim
from dtorch.utils.data import DataLoader
from dtorch.vision import datasets, transforms


class Net(nn.Module):
    """A small CNN for 1x8x8 digits: conv 3x3 (1->16, padded), 2x2 max-pool, FC 256->64->10."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


def pick_device(requested=None):
    """``requested`` if given, else ``cuda:0`` when a GPU is usable, else the CPU; prints why."""
    if requested:
        device = torch.device(requested)
        print(f"device: {device} (forced with --device)")
    elif torch.cuda.is_available():
        device = torch.device("cuda:0")
        print(f"device: {device} (dtorch.cuda.is_available() is True)")
    else:
        device = torch.device("cpu")
        print(f"device: {device} (dtorch.cuda.is_available() is False: no CuPy or no GPU)")
    return device


def accuracy(net, loader, device):
    """Fraction of ``loader``'s samples that ``net`` classifies correctly."""
    correct, total = 0, 0
    net.eval()
    with torch.no_grad():
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            correct += int((net(inputs).argmax(1) == labels).sum().item())
            total += labels.size(0)
    net.train()
    return correct / total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None, help="force a device (default: cuda:0 if usable)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    device = pick_device(args.device)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    trainloader = DataLoader(datasets.Digits(train=True, transform=transform),
                             batch_size=args.batch_size, shuffle=True)
    testloader = DataLoader(datasets.Digits(train=False, transform=transform), batch_size=256)

    net = Net()
    net.to(device)  # parameters and buffers now live on `device`
    print(f"parameters on {next(net.parameters()).device}")
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    for epoch in range(args.epochs):
        running_loss, batches = 0.0, 0
        for inputs, labels in trainloader:
            inputs, labels = inputs.to(device), labels.to(device)  # every step, too
            optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            batches += 1
        print(f"epoch {epoch + 1}/{args.epochs}  train loss {running_loss / batches:.4f}")
    print(f"test accuracy {accuracy(net, testloader, device):.4f} on {device}")


if __name__ == "__main__":
    main()
