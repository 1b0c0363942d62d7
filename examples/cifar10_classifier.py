"""Seed tutorial (001 "training a classifier"): a small CNN on CIFAR-10.

    python examples/cifar10_classifier.py --data data --download [--epochs 2] [--device cuda]

The tutorial's steps, in order: load CIFAR-10 (``ToTensor`` then ``Normalize`` to [-1, 1]),
define the convolutional network, cross-entropy loss and SGD with momentum, train for
``--epochs`` passes over the training set printing the running loss every ``--log-every``
mini-batches, save the weights (``--out``), reload them into a fresh network, show the
predictions for the first test batch, and report the accuracy on the test set overall and per
class. ``--limit N`` keeps the first N images of each split (short runs).
"""

import argparse
import os

import dtorch as torch
import dtorch.nn as nn
import dtorch.nn.functional as F
import dtorch.optim as optim
from dtorch.utils.data import DataLoader, Subset
from dtorch.vision import datasets, transforms

CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Net(nn.Module):
    """The tutorial's LeNet adapted to 3-channel 32x32 images: conv 3->6 5x5, 2x2 max-pool,
    conv 6->16 5x5, 2x2 max-pool, fully connected 400 -> 120 -> 84 -> 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except the batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def load_data(args):
    """The training and test loaders (batches of ``args.batch_size`` images in [-1, 1])."""
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    trainset = datasets.CIFAR10(root=args.data, train=True, download=args.download,
                                transform=transform)
    testset = datasets.CIFAR10(root=args.data, train=False, download=args.download,
                               transform=transform)
    if args.limit is not None:
        trainset = Subset(trainset, range(min(args.limit, len(trainset))))
        testset = Subset(testset, range(min(args.limit, len(testset))))
    trainloader = DataLoader(trainset, batch_size=args.batch_size, shuffle=True,
                             num_workers=args.workers)
    testloader = DataLoader(testset, batch_size=args.batch_size, shuffle=False,
                            num_workers=args.workers)
    return trainloader, testloader


def train(net, trainloader, device, args):
    """Cross-entropy and SGD with momentum; prints the mean loss of every ``args.log_every``
    mini-batches as ``[epoch, batch] loss: x``."""
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    for epoch in range(args.epochs):  # loop over the dataset multiple times
        running_loss = 0.0
        for i, (inputs, labels) in enumerate(trainloader):
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % args.log_every == args.log_every - 1:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / args.log_every:.3f}")
                running_loss = 0.0
    print("Finished Training")


def evaluate(net, testloader, device):
    """Print the accuracy over the test set, then per class (``n/a`` for a class with no test
    image, which happens with ``--limit``)."""
    correct, total = 0, 0
    class_correct, class_total = [0] * len(CLASSES), [0] * len(CLASSES)
    with torch.no_grad():  # no gradients needed for evaluation
        for images, labels in testloader:
            images, labels = images.to(device), labels.to(device)
            _, predicted = torch.max(net(images), 1)
            hits = (predicted == labels).cpu()
            total += labels.size(0)
            correct += int(hits.sum().item())
            for label, hit in zip(labels.cpu().tolist(), hits.tolist()):
                class_correct[label] += int(hit)
                class_total[label] += 1
    print(f"Accuracy of the network on the {total} test images: {100 * correct // total} %")
    for name, right, seen in zip(CLASSES, class_correct, class_total):
        if seen:
            print(f"Accuracy of {name:>5s} : {100 * right // seen:2d} % ({right}/{seen})")
        else:
            print(f"Accuracy of {name:>5s} : n/a (no test images)")
    return correct / total


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="./data", help="holds cifar-10-batches-py/")
    p.add_argument("--download", action="store_true", help="fetch CIFAR-10 if it is missing")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--log-every", type=int, default=2000, help="mini-batches per loss line")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N images of each split (short runs)")
    p.add_argument("--out", default="./cifar_net.pth", help="where the trained weights go")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    trainloader, testloader = load_data(args)
    print(f"training on {len(trainloader.dataset)} images, testing on "
          f"{len(testloader.dataset)}, device {device}")

    net = Net().to(device)
    train(net, trainloader, device, args)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    print(f"saved the weights to {args.out}")

    # reload them into a fresh network (not needed here; it shows how)
    net = Net()
    net.load_state_dict(torch.load(args.out, map_location="cpu"))
    net.to(device)

    images, labels = next(iter(testloader))
    print("GroundTruth: ", " ".join(f"{CLASSES[j]:5s}" for j in labels.tolist()))
    with torch.no_grad():
        _, predicted = torch.max(net(images.to(device)), 1)
    print("Predicted:   ", " ".join(f"{CLASSES[j]:5s}" for j in predicted.cpu().tolist()))
    evaluate(net, testloader, device)


if __name__ == "__main__":
    main()
