"""The tensor and autograd snippets of the seed tutorials (../shared/seeds), with the values
PyTorch gives for them."""

import numpy as np
import pytest

import dtorch as torch
from dtorch.autograd import Variable


def test_legacy_constructor_size_and_range():
    test3 = torch.Tensor([[1, 2, 3], [2, 3, 4]])
    assert test3.size() == torch.Size([2, 3])
    assert test3.dtype == torch.float32
    assert test3[1].tolist() == [2.0, 3.0, 4.0]
    x_range = torch.range(1, 5)
    assert x_range.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert x_range.dtype == torch.float32
    assert torch.zeros(3, 3).tolist() == [[0.0] * 3] * 3
    assert torch.randn(2, 3).shape == (2, 3)


def test_cat_rows_and_columns():
    a, b = torch.ones([2, 3]), torch.ones([2, 3])
    assert torch.cat([a, b], 1).shape == (2, 6)
    assert torch.cat([a, b], 0).shape == (4, 3)
    assert torch.cat([a, b]).shape == (4, 3)


def test_mm_with_transpose():
    x = torch.rand(3, 4)
    y = torch.ones(3, 4)
    result = x.mm(y.t())
    expected = x.numpy().sum(axis=1, keepdims=True).repeat(3, axis=1)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-6)


def test_numpy_bridge_shares_memory():
    one = torch.ones(3, 3)
    arr = one.numpy()
    arr[0, 0] = 5
    assert one[0, 0].item() == 5
    two = np.ones((3, 3))
    t = torch.from_numpy(two)
    assert t.dtype == torch.float64
    t.add_(1)
    assert two[0, 0] == 2


def test_variable_mean_of_square():
    x = Variable(torch.ones(2, 2), requires_grad=True)
    y = x + 2
    z = torch.mean(y * y)
    assert y.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert z.item() == 9.0
    assert y.grad_fn.name() == "AddBackward0"
    assert z.grad_fn.name() == "MeanBackward0"
    assert x.grad_fn is None
    assert z.data.requires_grad is False and z.data.item() == 9.0


def test_fifteen_fold_mm_chain():
    x = Variable(torch.ones(2, 2), requires_grad=True)
    s = Variable(torch.FloatTensor([[0.01, 0.02]]), requires_grad=True)
    for _ in range(15):
        s = s.mm(x)
    z = torch.mean(s)
    z.backward()
    assert z.item() == pytest.approx(491.52, rel=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [[1802.24, 1802.24], [1884.16, 1884.16]],
                               rtol=1e-6)
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert s.grad is None


def test_square_plus_three():
    x = Variable(torch.Tensor([2]), requires_grad=True)
    y = x + 2
    z = y ** 2 + 3
    z.backward()
    assert z.tolist() == [19.0]
    assert z.grad_fn.name() == "AddBackward0"
    assert x.grad.tolist() == [8.0]


def test_uniform_legacy_tensor_and_broadcasting():
    x = torch.Tensor(5, 3).uniform_(-1, 1)
    assert x.shape == (5, 3) and bool((x >= -1).all()) and bool((x < 1).all())
    y = torch.FloatTensor(5, 3).fill_(2)
    assert (x + y).shape == (5, 3)
    assert (torch.ones(5, 1) + torch.ones(1, 3)).shape == (5, 3)


def test_autograd_grad_function():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x ** 2).sum()
    (g,) = torch.autograd.grad(y, x)
    assert g.tolist() == [2.0, 4.0, 6.0]
    assert x.grad is None


def test_manual_sgd_under_no_grad_reduces_loss():
    torch.manual_seed(0)
    x = torch.randn(64, 10)
    w_true = torch.randn(10, 1)
    y = x @ w_true
    w = torch.zeros(10, 1, requires_grad=True)
    losses = []
    for _ in range(50):
        loss = ((x @ w - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
            w.grad.zero_()
    assert losses[-1] < 1e-3 * losses[0]
