"""The backward engine: accumulation, graph freeing, fan-out, hooks, callbacks, ordering."""

import threading

import numpy as np
import pytest

import dtorch as torch
from dtorch.autograd import queue_callback


def test_gradients_accumulate_across_backward_calls():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]


def test_second_backward_through_freed_graph_raises():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_nonleaf_grad_is_none_with_warning_and_retain_grad():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    z = y * 3
    y.retain_grad()
    z.sum().backward()
    assert y.grad.tolist() == [3.0, 3.0]
    with pytest.warns(UserWarning, match="not a leaf"):
        assert z.grad is None


def test_inplace_modification_of_saved_tensor_is_detected():
    a = torch.ones(3, requires_grad=True)
    b = a * 2
    c = b * b  # saves b
    b.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*MulBackward0"):
        c.sum().backward()


def test_inplace_on_leaf_and_view_of_leaf_raise():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        x[0:1].add_(1)
    with torch.no_grad():
        x.add_(1)
    assert x.tolist() == [2.0, 2.0]


def test_inplace_history_rewrite_gives_right_gradients():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = torch.tensor([4.0, 5.0, 6.0], requires_grad=True)
    y = a * 1
    y.mul_(w)
    assert y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    assert a.grad.tolist() == [4.0, 5.0, 6.0] and w.grad.tolist() == [1.0, 2.0, 3.0]


def test_inplace_through_view_updates_base_history():
    p = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = p * 1
    v = b[1:]
    v.mul_(3)
    assert b.grad_fn.name() == "CopySlices"
    (b * torch.tensor([1.0, 10.0, 100.0])).sum().backward()
    assert p.grad.tolist() == [1.0, 30.0, 300.0]


def test_setitem_with_grad_through_value_and_target():
    x = torch.ones(2, 3, requires_grad=True)
    v = torch.tensor([5.0, 6.0], requires_grad=True)
    y = x * 2
    y[:, 1] = v
    y.sum().backward()
    assert x.grad.tolist() == [[2, 0, 2], [2, 0, 2]] and v.grad.tolist() == [1, 1]


def test_setitem_builds_graph_on_plain_buffer():
    w = torch.tensor([2.0, 3.0], requires_grad=True)
    out = torch.zeros(2, 2)
    out[0] = w
    out[1] = w * w
    out.sum().backward()
    assert w.grad.tolist() == [5.0, 7.0]


def test_long_chain_is_iterative():
    x = torch.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_fan_out_and_unused_inputs():
    x = torch.tensor(2.0, requires_grad=True)
    unused = torch.tensor(1.0, requires_grad=True)
    y = x * x + x * 3 + x
    y.backward()
    assert x.grad.item() == 8.0 and unused.grad is None


def test_broadcast_reduction_in_backward():
    a = torch.ones(3, 1, requires_grad=True)
    b = torch.ones(1, 4, requires_grad=True)
    (a + b).sum().backward()
    assert a.grad.tolist() == [[4.0]] * 3 and b.grad.tolist() == [[3.0] * 4]


def test_non_scalar_backward_needs_gradient():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="implicitly created only for scalar"):
        y.backward()
    y.backward(torch.tensor([1.0, 10.0]))
    assert x.grad.tolist() == [2.0, 20.0]
    with pytest.raises(RuntimeError, match="does not require grad"):
        torch.ones(1).backward()


def test_grad_api():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = torch.tensor([3.0], requires_grad=True)
    z = (x * x).sum()
    gx, gy = torch.autograd.grad(z, [x, y], allow_unused=True, retain_graph=True)
    assert gx.tolist() == [2.0, 4.0] and gy is None
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        torch.autograd.grad(z, [x, y], retain_graph=True)
    h = x * 2
    (gh,) = torch.autograd.grad((h * h).sum(), h)
    assert gh.tolist() == [4.0, 8.0]
    assert x.grad is None
    with pytest.raises(RuntimeError, match="create_graph"):
        torch.autograd.grad((x * x).sum(), x, create_graph=True)


def test_backward_inputs_limits_accumulation():
    a = torch.ones(1, requires_grad=True)
    b = torch.ones(1, requires_grad=True)
    (a * b * 2).sum().backward(inputs=[a])
    assert a.grad.tolist() == [2.0] and b.grad is None


def test_tensor_hooks_modify_gradient():
    x = torch.ones(2, requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()))
    y = x * 2
    h = y.register_hook(lambda g: g * 10)
    y.sum().backward()
    assert x.grad.tolist() == [20.0, 20.0] and seen == [[20.0, 20.0]]
    h.remove()
    x.grad = None
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_post_accumulate_grad_hooks_fire_during_backward_and_callbacks_at_end():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    events = []

    def hook(p):
        events.append(("acc", "a" if p is a else "b", p.grad.tolist()))
        if len(events) == 1:
            queue_callback(lambda: events.append(("end",)))

    a.register_post_accumulate_grad_hook(hook)
    b.register_post_accumulate_grad_hook(hook)
    loss = (a * 2).sum() + (b * 3).sum()
    loss.backward()
    assert sorted(events[:2]) == [("acc", "a", [2.0, 2.0]), ("acc", "b", [3.0, 3.0])]
    assert events[2] == ("end",)
    with pytest.raises(RuntimeError, match="during a backward"):
        queue_callback(lambda: None)


def test_leaf_gradient_is_accumulated_as_soon_as_ready():
    # The leaf used last in forward gets its gradient first, before earlier layers run.
    w1 = torch.ones(2, 2, requires_grad=True)
    w2 = torch.ones(2, 2, requires_grad=True)
    order = []
    w1.register_post_accumulate_grad_hook(lambda p: order.append("w1"))
    w2.register_post_accumulate_grad_hook(lambda p: order.append("w2"))
    x = torch.ones(1, 2)
    ((x @ w1).tanh() @ w2).sum().backward()
    assert order == ["w2", "w1"]


def test_grad_mode_is_thread_local():
    results = {}

    def worker():
        results["thread"] = torch.is_grad_enabled()

    with torch.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        results["main"] = torch.is_grad_enabled()
    assert results == {"thread": True, "main": False}


def test_grad_mode_managers_and_decorators():
    x = torch.ones(1, requires_grad=True)
    with torch.no_grad():
        assert not (x * 2).requires_grad
        with torch.enable_grad():
            assert (x * 2).requires_grad
    with torch.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    assert not torch.is_grad_enabled()
    torch.set_grad_enabled(True)

    @torch.no_grad()
    def f():
        return x * 2

    @torch.inference_mode()
    def g():
        return torch.is_inference_mode_enabled(), x * 2

    assert not f().requires_grad
    inf, out = g()
    assert inf and not out.requires_grad and not torch.is_inference_mode_enabled()


def test_detect_anomaly_names_forward_op():
    x = torch.tensor([0.0], requires_grad=True)
    with torch.autograd.detect_anomaly():
        y = x.sqrt()  # d/dx sqrt at 0 -> inf
        with pytest.raises(RuntimeError, match=r"(?s)SqrtBackward0.*inf.*x\.sqrt\(\)"):
            y.sum().backward()


def test_int_outputs_do_not_require_grad():
    x = torch.randn(3, requires_grad=True)
    assert not x.argmax().requires_grad
    assert not x.long().requires_grad
    vals, idx = x.max(0)
    assert vals.requires_grad and not idx.requires_grad
    assert np.isfinite(vals.item())
