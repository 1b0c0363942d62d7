"""User-defined autograd.Function, Variable and gradcheck."""

import numpy as np
import pytest

import dtorch as torch
from dtorch.autograd import Function, Variable, gradcheck


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class ScaleAndArgmax(Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        idx = x.argmax()
        ctx.mark_non_differentiable(idx)
        return x * factor, idx

    @staticmethod
    def backward(ctx, grad, grad_idx):
        assert ctx.needs_input_grad == (True, False)
        return grad * ctx.factor, None


def test_custom_function_forward_backward():
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    y = Exp.apply(x)
    assert y.grad_fn.name() == "ExpBackward0" and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.0, 1.0]), rtol=1e-6)


def test_custom_function_multiple_outputs_and_non_differentiable():
    x = torch.tensor([1.0, 5.0, 2.0], requires_grad=True)
    y, idx = ScaleAndArgmax.apply(x, 3.0)
    assert idx.item() == 1 and not idx.requires_grad
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0, 3.0]


def test_custom_function_saved_tensor_version_check():
    x = torch.tensor([1.0], requires_grad=True)
    y = Exp.apply(x * 1)
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_gradcheck_passes_and_fails():
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: Exp.apply(t).sum(), (x,))

    class Wrong(Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        gradcheck(Wrong.apply, (x,))
    assert not gradcheck(Wrong.apply, (x,), raise_exception=False)


def test_variable_is_a_tensor():
    v = Variable(torch.ones(2), requires_grad=True)
    assert isinstance(v, Variable) and isinstance(v, torch.Tensor) and v.requires_grad
    assert isinstance(torch.ones(1), Variable)
