"""Seed tutorial (001 "neural networks", 002): LeNet, one forward/backward, the weight update.

    python examples/lenet.py [--steps 20] [--seed 0]

Defines the tutorial's LeNet (conv 1->6 5x5, 2x2 max-pool, conv 6->16 5x5, 2x2 max-pool, fully
connected 16*5*5 -> 120 -> 84 -> 10, flattened with ``num_flat_features``), prints it, its
parameter shapes and count, runs a random 1x1x32x32 input through it, backpropagates a random
gradient, then an MSE loss against a random target, printing ``conv1.bias.grad`` before and after
``loss.backward()``. It updates the weights once by hand (``weight -= lr * grad``) and once with
``optim.SGD``, then (``--steps``) keeps stepping SGD on the same input and target and prints the
loss going down.
"""

import argparse

import dtorch as torch
import dtorch.nn as nn
import dtorch.nn.functional as F
import dtorch.optim as optim


class Net(nn.Module):
    """The tutorial's LeNet for 1x32x32 images (61,706 parameters)."""

    def __init__(self):
        super().__init__()
        # 1 input image channel, 6 output channels, 5x5 square convolution kernel
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        # an affine operation: y = Wx + b
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        # max pooling over a (2, 2) window; a square window can be given as one number
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, self.num_flat_features(x))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def num_flat_features(self, x):
        """The number of features per sample: the product of all dimensions but the batch."""
        num_features = 1
        for s in x.size()[1:]:
            num_features *= s
        return num_features


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20,
                   help="extra SGD steps on the same input and target (0: none)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    net = Net()
    print(net)
    params = list(net.parameters())
    print(len(params))
    for param in params:
        print(param.size())
    print("number of parameters:", sum(param.numel() for param in params))

    input = torch.randn(1, 1, 32, 32)
    out = net(input)
    print(out)
    # zero the gradient buffers of all parameters and backprop with a random gradient
    net.zero_grad()
    out.backward(torch.randn(1, 10))

    output = net(input)
    target = torch.randn(10).view(1, -1)  # a dummy target, the same shape as the output
    criterion = nn.MSELoss()
    loss = criterion(output, target)
    print(loss)

    net.zero_grad()
    print("conv1.bias.grad before backward")
    print(net.conv1.bias.grad)
    loss.backward()
    print("conv1.bias.grad after backward")
    print(net.conv1.bias.grad)

    # the simplest update rule, by hand: weight = weight - learning_rate * gradient
    for f in net.parameters():
        f.data.sub_(f.grad.data * args.lr)

    # the same with torch.optim
    optimizer = optim.SGD(net.parameters(), lr=args.lr)
    optimizer.zero_grad()
    loss = criterion(net(input), target)
    loss.backward()
    optimizer.step()
    print(f"loss before the SGD step {loss.item():.6f}")

    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = criterion(net(input), target)
        loss.backward()
        optimizer.step()
        if step == 1 or step == args.steps:
            print(f"SGD step {step:3d}: loss {loss.item():.6f}")
    with torch.no_grad():
        print(f"final loss {criterion(net(input), target).item():.6f}")


if __name__ == "__main__":
    main()
