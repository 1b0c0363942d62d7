"""Module: registration, iteration, state_dict, modes, device/dtype moves, hooks, lookup,
printing, deepcopy and Parameter."""

import copy
import pickle

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(dtorch.ones(1))
        self.register_buffer("steps", dtorch.zeros(1))
        self.register_buffer("cache", dtorch.zeros(2), persistent=False)

    def forward(self, x):
        return self.bn(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 2)
        self.shared = self.head  # registered twice: iterators deduplicate

    def forward(self, x):
        return self.head(self.block(x))


def test_registration_and_iteration():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "block.bn.weight",
                     "block.bn.bias", "head.weight", "head.bias"]
    assert len(list(net.named_parameters(remove_duplicate=False))) == 9
    assert [n for n, _ in net.named_buffers()] == [
        "block.steps", "block.cache", "block.bn.running_mean", "block.bn.running_var",
        "block.bn.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.bn", "head"]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert [n for n, _ in net.block.named_parameters(prefix="b", recurse=False)] == ["b.scale"]
    assert len(list(net.modules())) == 5


def test_state_dict_keys_and_round_trip():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["block.scale", "block.steps", "block.fc.weight", "block.fc.bias",
                        "block.bn.weight", "block.bn.bias", "block.bn.running_mean",
                        "block.bn.running_var", "block.bn.num_batches_tracked", "head.weight",
                        "head.bias", "shared.weight", "shared.bias"]
    assert not sd["head.weight"].requires_grad
    assert sd["head.weight"].data_ptr() == net.head.weight.data_ptr()  # shares storage
    other = Net()
    res = other.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"
    for (n1, p1), (_, p2) in zip(net.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(p1.numpy(), p2.numpy(), err_msg=n1)
    assert other.head.weight is other.shared.weight


def test_load_state_dict_strict_errors():
    net = Net()
    sd = net.state_dict()
    del sd["head.bias"]
    sd["extra.w"] = dtorch.zeros(1)
    sd["block.fc.weight"] = dtorch.zeros(5, 3)
    with pytest.raises(RuntimeError) as err:
        Net().load_state_dict(sd)
    msg = str(err.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:\n\t")
    assert 'Missing key(s) in state_dict: "head.bias". ' in msg
    assert 'Unexpected key(s) in state_dict: "extra.w". ' in msg
    assert ("size mismatch for block.fc.weight: copying a param with shape "
            "dtorch.Size([5, 3]) from checkpoint, the shape in current model is "
            "dtorch.Size([4, 3]).") in msg
    sd["block.fc.weight"] = dtorch.zeros(4, 3)
    res = Net().load_state_dict(sd, strict=False)
    assert res.missing_keys == ["head.bias"] and res.unexpected_keys == ["extra.w"]


def test_load_state_dict_non_strict_reports_keys():
    sd = {"fc.weight": dtorch.zeros(4, 3)}
    res = Block().load_state_dict(sd, strict=False)
    assert res.missing_keys == ["scale", "steps", "fc.bias", "bn.weight", "bn.bias",
                                "bn.running_mean", "bn.running_var"]
    # (a plain dict has no version metadata: BatchNorm fills num_batches_tracked, as PyTorch)


def test_setattr_rules_and_errors():
    m = nn.Module()
    m.w = nn.Parameter(dtorch.zeros(2))
    assert "w" in m._parameters
    with pytest.raises(TypeError, match=r"cannot assign 'dtorch.FloatTensor' as parameter 'w'"):
        m.w = dtorch.zeros(2)
    m.w = None
    assert m.w is None and list(m.parameters()) == []
    m.register_buffer("b", dtorch.ones(1))
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'b'"):
        m.b = 3
    m.b = dtorch.zeros(3)
    assert m.b.shape == (3,)
    with pytest.raises(KeyError, match="attribute 'b' already exists"):
        m.register_parameter("b", None)
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", None)
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(ValueError, match="Cannot assign non-leaf Tensor"):
        m.register_parameter("nl", _nonleaf())
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        getattr(m, "nope")  # noqa: B009
    m.sub = nn.Linear(1, 1)
    del m.sub
    assert "sub" not in m._modules
    with pytest.raises(AttributeError, match="cannot assign parameters before Module"):
        class Early(nn.Module):
            def __init__(self):
                self.p = nn.Parameter(dtorch.zeros(1))

        Early()


def _nonleaf():
    p = nn.Parameter(dtorch.zeros(1))
    q = nn.Parameter.__new__(nn.Parameter)
    q._data, q._vbox, q._requires_grad = p._data, [0], True
    q._grad_fn = (p * 2).grad_fn
    return q


def test_train_eval_requires_grad_zero_grad():
    net = Net()
    assert net.training and net.block.bn.training
    net.eval()
    assert not net.training and not net.block.bn.training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train(1)
    net.train()
    net(dtorch.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all((p.grad.numpy() == 0).all() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_double_half_keeps_identity():
    net = Net()
    w = net.head.weight
    net(dtorch.randn(5, 3)).sum().backward()
    assert net.double() is net
    assert net.head.weight is w and w.dtype is dtorch.float64
    assert w.grad.dtype is dtorch.float64
    assert net.block.bn.num_batches_tracked.dtype is dtorch.int64  # ints untouched
    assert net.block.bn.running_mean.dtype is dtorch.float64
    net.to(dtorch.float32)
    assert w.dtype is dtorch.float32
    net.half()
    assert w.dtype is dtorch.float16
    net.float().to("cpu")
    assert w.dtype is dtorch.float32 and w.device.type == "cpu"
    with pytest.raises(TypeError, match="floating point"):
        net.to(dtorch.int64)


def test_to_device(device):
    net = Net().to(device)
    x = dtorch.randn(5, 3, device=device)
    assert net(x).device.type == device
    assert net.block.bn.running_mean.device.type == device


def test_apply_and_lookup():
    net = Net()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "BatchNorm1d", "Block", "Linear", "Net"]
    assert net.get_submodule("block.fc") is net.block.fc
    assert net.get_parameter("block.fc.bias") is net.block.fc.bias
    assert net.get_buffer("block.bn.running_var") is net.block.bn.running_var
    with pytest.raises(AttributeError, match="Block has no attribute `conv`"):
        net.get_submodule("block.conv")
    with pytest.raises(AttributeError, match="`scale` is not an nn.Module"):
        net.get_submodule("block.scale")
    with pytest.raises(AttributeError, match="`steps` is not an nn.Parameter"):
        net.get_parameter("block.steps")
    net.set_submodule("block.fc", nn.Linear(3, 4, bias=False))
    assert net.block.fc.bias is None


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out) or out + 1)
    out = lin(dtorch.ones(1, 2))
    np.testing.assert_allclose(out.detach().numpy(), lin.bias.detach().numpy()[None] + 1,
                               rtol=1e-6)
    assert len(calls) == 1
    h1.remove()
    h2.remove()
    assert not lin._forward_hooks and not lin._forward_pre_hooks
    h = lin.register_forward_pre_hook(lambda m, a, kw: (a, {"input": a[0] * 2}) if False else
                                      None, with_kwargs=True)
    lin(dtorch.ones(1, 2))
    h.remove()
    kw_seen = []
    with lin.register_forward_hook(lambda m, a, kw, o: kw_seen.append(kw), with_kwargs=True):
        lin(input=dtorch.ones(1, 2))
    assert kw_seen == [{"input": kw_seen[0]["input"]}]
    assert not lin._forward_hooks
    order = []
    lin.register_forward_hook(lambda *a: order.append(1))
    lin.register_forward_hook(lambda *a: order.append(0), prepend=True)
    lin(dtorch.ones(1, 2))
    assert order == [0, 1]


def test_global_forward_hook():
    seen = []
    h = nn.modules.module.register_module_forward_hook(lambda m, a, o: seen.append(type(m)))
    nn.Sequential(nn.Linear(1, 1))(dtorch.ones(1, 1))
    h.remove()
    assert seen == [nn.Linear, nn.Sequential]


def test_full_backward_hook():
    lin = nn.Linear(3, 2).double()
    got = []

    def hook(module, grad_input, grad_output):
        got.append((grad_input, grad_output))
        return (grad_input[0] * 10,)

    h = lin.register_full_backward_hook(hook)
    x = dtorch.randn(4, 3, dtype=dtorch.float64, requires_grad=True)
    g = dtorch.randn(4, 2, dtype=dtorch.float64)
    lin(x).backward(g)
    (gin, gout), = got
    np.testing.assert_allclose(gout[0].numpy(), g.numpy())
    np.testing.assert_allclose(gin[0].numpy(), g.numpy() @ lin.weight.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), 10 * gin[0].numpy())
    np.testing.assert_allclose(lin.weight.grad.numpy(), g.numpy().T @ x.detach().numpy())
    h.remove()
    pre = []
    lin.register_full_backward_pre_hook(lambda m, go: pre.append(go) or (go[0] * 0,))
    x.grad = None
    lin(x).backward(g)
    assert len(pre) == 1 and (x.grad.numpy() == 0).all()
    # inputs that need no grad: the hook still runs, with grad_input None
    lin2 = nn.Linear(3, 2)
    seen = []
    lin2.register_full_backward_hook(lambda m, gi, go: seen.append(gi))
    lin2(dtorch.randn(2, 3)).sum().backward()
    assert seen == [(None,)]


def test_grad_fn_hooks():
    x = dtorch.randn(3, requires_grad=True)
    y = (x * 2).sum()
    seen = []
    y.grad_fn.register_prehook(lambda go: seen.append("pre"))
    y.grad_fn.register_hook(lambda gi, go: seen.append("post"))
    y.backward()
    assert seen == ["pre", "post"]


def test_repr_extra_repr_and_nesting():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, bias=False))

        def extra_repr(self):
            return "k=3"

    assert repr(Custom()) == (
        "Custom(\n  k=3\n  (inner): Sequential(\n"
        "    (0): Linear(in_features=2, out_features=2, bias=True)\n"
        "    (1): Linear(in_features=2, out_features=2, bias=False)\n  )\n)")
    assert repr(nn.Module()) == "Module()"


def test_deepcopy_and_pickle():
    net = Net()
    net(dtorch.randn(4, 3)).sum().backward()
    clone = copy.deepcopy(net)
    assert clone.head.weight is not net.head.weight
    assert isinstance(clone.head.weight, nn.Parameter)
    assert clone.shared is clone.head
    np.testing.assert_array_equal(clone.head.weight.detach().numpy(),
                                  net.head.weight.detach().numpy())
    clone.head.weight.data.fill_(0)
    assert net.head.weight.detach().numpy().any()
    restored = pickle.loads(pickle.dumps(net))
    assert isinstance(restored.head.weight, nn.Parameter)
    np.testing.assert_array_equal(restored.block.bn.running_var.numpy(),
                                  net.block.bn.running_var.numpy())


def test_parameter_basics():
    data = dtorch.tensor([1.0, 2.0])
    p = nn.Parameter(data)
    assert p.requires_grad and p.is_leaf and isinstance(p, dtorch.Tensor)
    data[0] = 5.0
    assert p[0].item() == 5.0  # shares the array
    assert repr(p) == "Parameter containing:\ntensor([5., 2.], requires_grad=True)"
    assert not nn.Parameter(dtorch.zeros(1), requires_grad=False).requires_grad
    assert type(p * 2) is dtorch.Tensor
    assert nn.Parameter().shape == (0,)


def test_buffer_marker():
    m = nn.Module()
    m.stat = nn.Buffer(dtorch.zeros(2), persistent=False)
    assert "stat" in m._buffers and "stat" not in m.state_dict()
    assert type(m.stat) is dtorch.Tensor


def test_module_call_without_forward():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)
