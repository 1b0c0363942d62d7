"""Seed tutorial: tensors, the NumPy bridge and moving data to a GPU.

    python examples/tensor_basics.py
"""

import numpy as np

import dtorch as torch


def main():
    test1 = torch.randn(2, 3)
    test2 = torch.zeros(3, 3)
    test3 = torch.Tensor([[1, 2, 3], [2, 3, 4]])
    print("test1:", test1)
    print("test2:", test2)
    print("test3:", test3)
    print(test3.size())
    print("test3[0]:", test3[0])
    print("X_range:", torch.range(1, 5))

    a, b = torch.ones([2, 3]), torch.ones([2, 3])
    print("cat1_A_B:", torch.cat([a, b], 1))
    print("cat0_A_B:", torch.cat([a, b], 0))

    x, y = torch.rand(3, 4), torch.ones(3, 4)
    print("result:", x.mm(y.t()))

    one = torch.ones(3, 3)
    arr = one.numpy()  # shares memory with the tensor
    arr[0, 0] = 7
    print("arr", arr)
    print("tensor", torch.from_numpy(np.ones((3, 3))))
    print("one[0, 0] after writing through the NumPy view:", one[0, 0].item())

    if torch.cuda.is_available():
        print(x.cuda() + y.cuda())
    else:
        print("no GPU: the CUDA part is skipped")


if __name__ == "__main__":
    main()
