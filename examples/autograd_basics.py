"""Seed tutorial: automatic differentiation with the values the tutorial prints.

    python examples/autograd_basics.py
"""

import dtorch as torch
from dtorch.autograd import Variable


def main():
    x = Variable(torch.ones(2, 2), requires_grad=True)
    y = x + 2
    z = torch.mean(y * y)
    print("Y:", y)
    print("Z:", z)
    print("Z.data:", z.data)
    print("Y.grad_fn:", y.grad_fn)
    print("X.grad_fn", x.grad_fn)

    x = Variable(torch.ones(2, 2), requires_grad=True)
    s = Variable(torch.FloatTensor([[0.01, 0.02]]), requires_grad=True)
    for _ in range(15):
        s = s.mm(x)  # 15 chained matrix products
    z = torch.mean(s)
    z.backward()
    print("Z:", z)
    print("X.grad:", x.grad)

    x = Variable(torch.Tensor([2]), requires_grad=True)
    z = (x + 2) ** 2 + 3
    z.backward()
    print("z:", z)
    print("x.grad:", x.grad)


if __name__ == "__main__":
    main()
