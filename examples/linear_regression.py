"""Seed tutorial: linear regression y = 2x with nn.Linear, MSELoss and SGD.

    python examples/linear_regression.py [--epochs 500]
"""

import argparse

import dtorch as torch
from dtorch.autograd import Variable


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)  # one in and one out

    def forward(self, x):
        return self.linear(x)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=500)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    x_data = Variable(torch.Tensor([[1.0], [2.0], [3.0]]))
    y_data = Variable(torch.Tensor([[2.0], [4.0], [6.0]]))
    model = Model()
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(args.epochs):
        loss = criterion(model(x_data), y_data)
        if epoch % 100 == 0:
            print(epoch, loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    w = model.linear.weight.item()
    print(f"weight {w:.4f}, bias {model.linear.bias.item():.4f}")
    print("predict (after training) 4 ->", model(torch.Tensor([[4.0]])).item())


if __name__ == "__main__":
    main()
