"""Dropout family: scaling, mask shapes, eval identity, reproducibility, alpha dropout."""

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F


def test_dropout_scaling_and_gradient():
    dtorch.manual_seed(0)
    x = dtorch.ones(200, 100, requires_grad=True)
    y = F.dropout(x, 0.3)
    vals = np.unique(y.detach().numpy())
    np.testing.assert_allclose(vals, [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((y.detach().numpy() == 0).mean() - 0.3) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())


def test_dropout_eval_identity_and_p_bounds():
    m = nn.Dropout(0.5)
    x = dtorch.randn(4, 4)
    m.eval()
    assert m(x) is x
    assert F.dropout(x, 0.0) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout_reproducible_with_seed():
    dtorch.manual_seed(3)
    a = F.dropout(dtorch.ones(50), 0.5).numpy()
    dtorch.manual_seed(3)
    b = F.dropout(dtorch.ones(50), 0.5).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls,shape", [(nn.Dropout1d, (8, 16, 5)),
                                       (nn.Dropout2d, (8, 16, 3, 3)),
                                       (nn.Dropout3d, (8, 16, 2, 2, 2))])
def test_channel_dropout_zeroes_whole_channels(cls, shape):
    dtorch.manual_seed(1)
    y = cls(0.5)(dtorch.ones(*shape)).numpy().reshape(8, 16, -1)
    assert ((y == 0).all(-1) | (y == 2).all(-1)).all()
    assert (y == 0).any() and (y == 2).any()


def test_alpha_dropout_keeps_moments():
    dtorch.manual_seed(0)
    x = dtorch.randn(400, 500)
    y = nn.AlphaDropout(0.2)(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    m = nn.AlphaDropout(0.2).eval()
    assert m(x) is x


def test_inplace_dropout():
    dtorch.manual_seed(0)
    x = dtorch.ones(10, 10)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x and set(np.unique(x.numpy())) <= {0.0, 2.0}
