"""Indexing (``t[index]``) and assignment (``t[index] = value``), the sibling of the op table.

For indices NumPy and PyTorch read alike, the reference is NumPy: the forward value is
``x[index]`` and the gradient of ``sum(w * x[index])`` is ``w`` scattered back with
``np.add.at`` (repeated indices accumulate). Assignment is checked the same way, with gradients
to both the tensor and the assigned value.
"""

import numpy as np
import pytest

import dtorch as dt

_rng = np.random.default_rng(5)
X = _rng.standard_normal((4, 5, 3))
MASK45 = _rng.random((4, 5)) < 0.5
MASK4 = np.array([True, False, True, True])

# Each index as given to dtorch (tensors built lazily) and its NumPy counterpart.
INDICES = [
    ("int", lambda: 1, 1),
    ("negative int", lambda: -1, -1),
    ("slice", lambda: slice(1, 3), slice(1, 3)),
    ("slice with step", lambda: (slice(None), slice(0, 5, 2)), (slice(None), slice(0, 5, 2))),
    ("slice beyond end", lambda: slice(2, 10), slice(2, 10)),
    ("int and slice", lambda: (2, slice(1, None)), (2, slice(1, None))),
    ("ellipsis", lambda: (Ellipsis, 0), (Ellipsis, 0)),
    ("None", lambda: (None, 1, None), (None, 1, None)),
    ("ellipsis None", lambda: (0, Ellipsis, None), (0, Ellipsis, None)),
    ("list", lambda: [0, 2, 2], [0, 2, 2]),
    ("long tensor repeats", lambda: dt.tensor([3, 0, 3]), np.array([3, 0, 3])),
    ("negative long tensor", lambda: dt.tensor([-1, 0]), np.array([-1, 0])),
    ("2-d long tensor", lambda: dt.tensor([[0, 1], [1, 1]]), np.array([[0, 1], [1, 1]])),
    ("two tensors", lambda: (dt.tensor([0, 2]), dt.tensor([1, 4])),
     (np.array([0, 2]), np.array([1, 4]))),
    ("tensor and slice", lambda: (slice(None), dt.tensor([4, 0])),
     (slice(None), np.array([4, 0]))),
    ("separated advanced", lambda: (dt.tensor([0, 1]), slice(None), dt.tensor([2, 2])),
     (np.array([0, 1]), slice(None), np.array([2, 2]))),
    ("bool mask 2-d", lambda: dt.tensor(MASK45), MASK45),
    ("bool mask 1-d", lambda: dt.tensor(MASK4), MASK4),
    ("uint8 mask", lambda: dt.tensor(MASK4.astype(np.uint8)), MASK4),
    ("mask after slice", lambda: (slice(None), dt.tensor(MASK45[0])),
     (slice(None), MASK45[0])),
    ("scalar True", lambda: True, True),
    ("0-d long tensor", lambda: dt.tensor(2), 2),
]


@pytest.mark.parametrize("what,index,np_index", INDICES, ids=[i[0] for i in INDICES])
def test_getitem_forward_and_backward(what, index, np_index, device):
    x = dt.tensor(X).to(device).requires_grad_()
    out = x[index()]
    want = X[np_index]
    np.testing.assert_array_equal(out.detach().cpu().numpy(), want)
    w = _rng.standard_normal(want.shape)
    (out * dt.tensor(w).to(device)).sum().backward()
    expected = np.zeros_like(X)
    np.add.at(expected, np_index, w)
    np.testing.assert_allclose(x.grad.cpu().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_basic_indexing_is_a_view():
    x = dt.zeros(3, 4)
    row = x[1]
    row[2] = 5.0
    assert x[1, 2].item() == 5.0
    x[:, 0] = 7.0
    assert row[0].item() == 7.0
    adv = x[[0, 1]]
    adv[0, 0] = -1.0
    assert x[0, 0].item() == 7.0  # advanced indexing copies


def test_negative_step_raises():
    x = dt.ones(5)
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[4:0:-1]


INDEX_ERRORS = [
    (lambda x: x[4], IndexError, "index 4 is out of bounds for dimension 0 with size 4"),
    (lambda x: x[0, 0, 0, 0], IndexError, "too many indices for tensor of dimension 3"),
    (lambda x: x[1.5], IndexError, "only integers, slices (`:`), ellipsis (`...`), None"),
    (lambda x: x[dt.tensor([1.0])], IndexError, "tensors used as indices must be long, int"),
    (lambda x: x[dt.ones(3, dtype=dt.bool)], IndexError,
     "The shape of the mask [3] at index 0 does not match the shape of the indexed tensor "
     "[4, 5, 3] at index 0"),
    (lambda x: x[dt.tensor([0, 9])], IndexError, "index 9 is out of bounds for dimension 0"),
]


@pytest.mark.parametrize("expr,exc,msg", INDEX_ERRORS, ids=[str(i) for i in range(6)])
def test_index_errors(expr, exc, msg):
    with pytest.raises(exc) as info:
        expr(dt.tensor(X))
    assert msg in str(info.value)


# (what, dtorch index, numpy index, value shape or None for the scalar 0.5)
SETITEMS = [
    ("column = scalar", lambda: (slice(None), 1), (slice(None), 1), None),
    ("row = tensor", lambda: 2, 2, (5, 3)),
    ("row = broadcast tensor", lambda: 2, 2, (3,)),
    ("mask = scalar", lambda: dt.tensor(MASK45), MASK45, None),
    ("mask = values", lambda: dt.tensor(MASK45), MASK45, (int(MASK45.sum()), 3)),
    ("mask = broadcast", lambda: dt.tensor(MASK45), MASK45, (3,)),
    ("long tensor = tensor", lambda: dt.tensor([3, 0]), np.array([3, 0]), (2, 5, 3)),
    ("slice step = tensor", lambda: (slice(None), slice(0, 5, 2)),
     (slice(None), slice(0, 5, 2)), (4, 3, 3)),
    ("ellipsis = tensor", lambda: (Ellipsis, 1), (Ellipsis, 1), (4, 5)),
]


@pytest.mark.parametrize("what,index,np_index,vshape", SETITEMS, ids=[s[0] for s in SETITEMS])
def test_setitem_forward_and_backward(what, index, np_index, vshape, device):
    """``y = x * 1; y[index] = v`` matches NumPy, with gradients to both ``x`` and ``v``."""
    x = dt.tensor(X).to(device).requires_grad_()
    v_np = 0.5 if vshape is None else _rng.standard_normal(vshape)
    v = v_np if vshape is None else dt.tensor(v_np).to(device).requires_grad_()
    y = x * 1.0
    y[index()] = v
    want = X.copy()
    want[np_index] = v_np
    np.testing.assert_allclose(y.detach().cpu().numpy(), want, rtol=1e-15)
    w = _rng.standard_normal(X.shape)
    (y * dt.tensor(w).to(device)).sum().backward()
    gx = w.copy()
    gx[np_index] = 0.0
    np.testing.assert_allclose(x.grad.cpu().numpy(), gx, rtol=1e-12, atol=1e-12)
    if vshape is not None:
        sel = w[np_index]
        gv = sel.reshape((-1,) + vshape).sum(0) if sel.shape != vshape else sel
        np.testing.assert_allclose(v.grad.cpu().numpy(), gv, rtol=1e-12, atol=1e-12)


def test_setitem_without_grad_writes_in_place():
    x = dt.zeros(2, 3)
    before = x._version
    x[:, 1] = 1.0
    x[x > 0.5] = 2.0
    x[0] = dt.tensor([3.0, 4.0, 5.0])
    assert x.tolist() == [[3.0, 4.0, 5.0], [0.0, 2.0, 0.0]]
    assert x._version > before


def test_setitem_on_leaf_requiring_grad_raises():
    x = dt.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x[0] = 1.0


def test_setitem_through_view_reaches_base_gradient():
    """Writing into a view of a non-leaf updates the base, and gradients flow to the value."""
    a = dt.tensor(X[:, :, 0]).requires_grad_()
    v = dt.tensor(2.0, requires_grad=True)
    b = a * 1.0
    row = b[1]
    row[2] = v
    assert b[1, 2].item() == 2.0
    b.sum().backward()
    expected = np.ones(a.shape)
    expected[1, 2] = 0.0
    np.testing.assert_array_equal(a.grad.numpy(), expected)
    assert v.grad.item() == 1.0
