"""autocast: per-op output dtypes on the CPU (pasted from PyTorch 2.13), the CUDA op table
(applied to tensors reported as CUDA), nesting, the decorator, thread-locality, what is never
cast, gradients of float32 parameters, the cast cache, and the state queries."""

import threading
import warnings

import numpy as np
import pytest

import dtorch
import dtorch.nn.functional as F
from dtorch import _backend
from dtorch.amp import autocast_mode, policy

f16, f32, f64 = dtorch.float16, dtorch.float32, dtorch.float64


def cpu_fp16():
    return dtorch.autocast("cpu", dtype=f16)


def r(*shape, dtype=f32, seed=0):
    rng = np.random.default_rng(seed + len(shape))
    return dtorch.tensor(rng.uniform(0.1, 1.0, shape)).to(dtype)


def cases(dt):
    """Op calls on inputs of dtype ``dt`` (the same calls gave the pasted PyTorch dtypes)."""
    x = lambda *s: r(*s, dtype=dt)  # noqa: E731
    lab = dtorch.tensor([0, 1, 2, 1])
    sgn = lambda: dtorch.tensor([1.0, -1, 1, -1]).to(dt)  # noqa: E731
    return {
        "matmul": lambda: dtorch.matmul(x(3, 4), x(4, 2)),
        "operator @": lambda: x(3, 4) @ x(4, 2),
        "mm": lambda: dtorch.mm(x(3, 4), x(4, 2)),
        "mv": lambda: dtorch.mv(x(3, 4), x(4)),
        "bmm": lambda: dtorch.bmm(x(2, 3, 4), x(2, 4, 2)),
        "dot": lambda: dtorch.dot(x(4), x(4)),
        "outer": lambda: dtorch.outer(x(4), x(4)),
        "einsum": lambda: dtorch.einsum("ij,jk->ik", x(3, 4), x(4, 2)),
        "linear": lambda: F.linear(x(3, 4), x(2, 4)),
        "bilinear": lambda: F.bilinear(x(3, 4), x(3, 4), x(2, 4, 4)),
        "conv1d": lambda: F.conv1d(x(1, 2, 5), x(3, 2, 2)),
        "conv2d": lambda: F.conv2d(x(1, 2, 5, 5), x(3, 2, 2, 2)),
        "conv3d": lambda: F.conv3d(x(1, 2, 4, 4, 4), x(3, 2, 2, 2, 2)),
        "conv_transpose1d": lambda: F.conv_transpose1d(x(1, 2, 5), x(2, 3, 2)),
        "conv_transpose2d": lambda: F.conv_transpose2d(x(1, 2, 5, 5), x(2, 3, 2, 2)),
        "prelu": lambda: F.prelu(x(3, 4), x(1)),
        "sdpa": lambda: F.scaled_dot_product_attention(x(1, 3, 4), x(1, 3, 4), x(1, 3, 4)),
        "exp": lambda: x(4).exp(),
        "log": lambda: x(4).log(),
        "pow": lambda: x(4) ** 2,
        "acos": lambda: x(4).acos(),
        "sum": lambda: x(4).sum(),
        "prod": lambda: x(4).prod(),
        "cumsum": lambda: x(4).cumsum(0),
        "cumprod": lambda: x(4).cumprod(0),
        "norm": lambda: x(4).norm(),
        "mean": lambda: x(4).mean(),
        "softmax": lambda: F.softmax(x(4), 0),
        "log_softmax": lambda: F.log_softmax(x(4), 0),
        "softplus": lambda: F.softplus(x(4)),
        "layer_norm": lambda: F.layer_norm(x(3, 4), (4,)),
        "group_norm": lambda: F.group_norm(x(2, 4, 3), 2),
        "batch_norm": lambda: F.batch_norm(x(3, 4), None, None, training=True),
        "normalize": lambda: F.normalize(x(3, 4)),
        "cosine_similarity": lambda: F.cosine_similarity(x(3, 4), x(3, 4)),
        "pairwise_distance": lambda: F.pairwise_distance(x(3, 4), x(3, 4)),
        "avg_pool2d": lambda: F.avg_pool2d(x(1, 1, 4, 4), 2),
        "avg_pool3d": lambda: F.avg_pool3d(x(1, 1, 4, 4, 4), 2),
        "max_pool3d": lambda: F.max_pool3d(x(1, 1, 4, 4, 4), 2),
        "adaptive_avg_pool3d": lambda: F.adaptive_avg_pool3d(x(1, 1, 4, 4, 4), 2),
        "interpolate": lambda: F.interpolate(x(1, 1, 4), scale_factor=2.0),
        "mse_loss": lambda: F.mse_loss(x(4), x(4)),
        "l1_loss": lambda: F.l1_loss(x(4), x(4)),
        "smooth_l1_loss": lambda: F.smooth_l1_loss(x(4), x(4)),
        "huber_loss": lambda: F.huber_loss(x(4), x(4)),
        "cross_entropy": lambda: F.cross_entropy(x(4, 3), lab),
        "nll_loss": lambda: F.nll_loss(x(4, 3), lab),
        "binary_cross_entropy": lambda: F.binary_cross_entropy(x(4) * 0.5, x(4)),
        "binary_cross_entropy_with_logits": lambda: F.binary_cross_entropy_with_logits(
            x(4), x(4)),
        "kl_div": lambda: F.kl_div(x(4), x(4), reduction="batchmean"),
        "poisson_nll_loss": lambda: F.poisson_nll_loss(x(4), x(4)),
        "gaussian_nll_loss": lambda: F.gaussian_nll_loss(x(4), x(4), x(4)),
        "hinge_embedding_loss": lambda: F.hinge_embedding_loss(x(4), sgn()),
        "soft_margin_loss": lambda: F.soft_margin_loss(x(4), sgn()),
        "margin_ranking_loss": lambda: F.margin_ranking_loss(x(4), x(4), sgn()),
        "cosine_embedding_loss": lambda: F.cosine_embedding_loss(x(4, 3), x(4, 3), sgn()),
        "triplet_margin_loss": lambda: F.triplet_margin_loss(x(4, 3), x(4, 3), x(4, 3)),
        "multi_margin_loss": lambda: F.multi_margin_loss(x(4, 3), lab),
        "multilabel_margin_loss": lambda: F.multilabel_margin_loss(
            x(4, 3), dtorch.tensor([[0, 1, -1]] * 4)),
        "multilabel_soft_margin_loss": lambda: F.multilabel_soft_margin_loss(
            x(4, 3), dtorch.ones(4, 3).to(dt)),
        "cat (mixed)": lambda: dtorch.cat([x(2), r(2)]),
        "stack (mixed)": lambda: dtorch.stack([x(2), r(2)]),
        "atan2 (mixed)": lambda: dtorch.atan2(x(2), r(2)),
    }


# Output dtypes under torch.autocast("cpu", dtype=torch.float16), PyTorch 2.13, for float16
# inputs and for float32 inputs: (op, from float16, from float32). "16" = float16.
CPU_TORCH = [
    ("matmul", 16, 16), ("operator @", 16, 16), ("mm", 16, 16), ("mv", 16, 32),
    ("bmm", 16, 16), ("dot", 16, 32), ("outer", 16, 32), ("einsum", 16, 16),
    ("linear", 16, 16), ("bilinear", 16, 32), ("conv1d", 16, 16), ("conv2d", 16, 16),
    ("conv3d", 16, 16), ("conv_transpose1d", 16, 16), ("conv_transpose2d", 16, 16),
    ("prelu", 16, 16), ("sdpa", 16, 16), ("exp", 16, 32), ("log", 16, 32), ("pow", 16, 32),
    ("acos", 16, 32), ("sum", 16, 32), ("prod", 32, 32), ("cumsum", 16, 32),
    ("cumprod", 16, 32), ("norm", 16, 32), ("mean", 16, 32), ("softmax", 16, 32),
    ("log_softmax", 16, 32), ("softplus", 16, 32), ("layer_norm", 16, 32),
    ("group_norm", 16, 32), ("batch_norm", 16, 32), ("normalize", 16, 32),
    ("cosine_similarity", 16, 32), ("pairwise_distance", 16, 32), ("avg_pool2d", 16, 32),
    ("avg_pool3d", 32, 32), ("max_pool3d", 32, 32), ("adaptive_avg_pool3d", 32, 32),
    ("interpolate", 16, 32), ("mse_loss", 32, 32), ("l1_loss", 32, 32),
    ("smooth_l1_loss", 32, 32), ("huber_loss", 32, 32), ("cross_entropy", 32, 32),
    ("nll_loss", 32, 32), ("binary_cross_entropy", 32, 32),
    ("binary_cross_entropy_with_logits", 32, 32), ("kl_div", 32, 32),
    ("poisson_nll_loss", 32, 32), ("gaussian_nll_loss", 16, 32),
    ("hinge_embedding_loss", 32, 32), ("soft_margin_loss", 32, 32),
    ("margin_ranking_loss", 32, 32), ("cosine_embedding_loss", 32, 32),
    ("triplet_margin_loss", 32, 32), ("multi_margin_loss", 32, 32),
    ("multilabel_margin_loss", 32, 32), ("multilabel_soft_margin_loss", 16, 32),
    ("cat (mixed)", 32, 32), ("stack (mixed)", 32, 32), ("atan2 (mixed)", 32, 32),
]
_DT = {16: f16, 32: f32}


@pytest.mark.parametrize("name,from16,from32", CPU_TORCH, ids=[c[0] for c in CPU_TORCH])
def test_cpu_output_dtypes_match_pytorch(name, from16, from32):
    with cpu_fp16():
        assert cases(f16)[name]().dtype is _DT[from16]
        assert cases(f32)[name]().dtype is _DT[from32]


def test_pasted_table_covers_every_cpu_policy():
    listed = {c[0] for c in CPU_TORCH} | {"scaled_dot_product_attention"}
    unprobed = {"max_unpool2d", "max_unpool3d", "conv_transpose3d"}  # from the AMP docs' list
    assert set(policy.POLICIES["cpu"]) - listed == unprobed


def test_every_listed_op_is_hooked():
    # Every name in a policy table decorates an op where it is defined (catches typos).
    assert set(policy.all_names()) == autocast_mode._WRAPPED


def test_without_autocast_nothing_is_cast():
    for name, *_ in CPU_TORCH:
        if "mixed" not in name:
            assert cases(f32)[name]().dtype is f32, name


def test_float64_and_integer_inputs_are_never_cast():
    a, b = r(3, 4, dtype=f64), r(4, 2, dtype=f64)
    i = dtorch.arange(12).reshape(3, 4)
    with cpu_fp16():
        assert (a @ b).dtype is f64
        assert F.mse_loss(a, a).dtype is f64
        assert F.linear(a, r(2, 4, dtype=f64)).dtype is f64
        assert (i @ dtorch.arange(8).reshape(4, 2)).dtype is dtorch.int64
        assert i.prod().dtype is dtorch.int64
        # float32 is cast, float64 is not: the mixed matmul fails as in PyTorch
        with pytest.raises(RuntimeError, match="same dtype"):
            dtorch.mm(a, r(4, 2))


def test_explicit_dtype_is_respected():
    x = r(4, dtype=f16)
    with cpu_fp16():
        assert x.prod(dtype=f16).dtype is f16
        assert x.prod().dtype is f32


def test_nesting_and_disabled_region():
    x, w = r(3, 4), r(2, 4)
    with cpu_fp16():
        assert F.linear(x, w).dtype is f16
        with dtorch.autocast("cpu", enabled=False):
            assert not dtorch.is_autocast_enabled("cpu")
            assert F.linear(x, w).dtype is f32
            with dtorch.autocast("cpu"):  # the dtype in force (float16) is the default
                assert F.linear(x, w).dtype is f16
        assert dtorch.is_autocast_enabled("cpu")
        assert F.linear(x, w).dtype is f16
    assert not dtorch.is_autocast_enabled("cpu")
    assert F.linear(x, w).dtype is f32


def test_state_restored_after_exception():
    with pytest.raises(ValueError, match="boom"), cpu_fp16():
        raise ValueError("boom")
    assert not dtorch.is_autocast_enabled("cpu")
    assert not autocast_mode._state.active and autocast_mode._state.nesting == 0
    assert autocast_mode._threads_active == [0]  # the hooked ops' fast path is back


def test_decorator_form():
    calls = []

    @dtorch.autocast("cpu", dtype=f16)
    def forward(x, depth):
        calls.append(dtorch.is_autocast_enabled("cpu"))
        if depth:
            forward(x, depth - 1)  # re-entering the same decorator is safe
        return x @ x.t()

    assert forward.__name__ == "forward"
    assert forward(r(2, 2), 2).dtype is f16
    assert calls == [True, True, True]
    assert not dtorch.is_autocast_enabled("cpu")


def test_state_is_thread_local():
    entered, checked = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with cpu_fp16():
            entered.set()
            checked.wait(30)
            seen["thread"] = (r(2, 3) @ r(3, 2)).dtype

    th = threading.Thread(target=worker)
    th.start()
    assert entered.wait(30)
    seen["main"] = (r(2, 3) @ r(3, 2)).dtype, dtorch.is_autocast_enabled("cpu")
    checked.set()
    th.join(30)
    assert seen == {"main": (f32, False), "thread": f16}
    assert autocast_mode._threads_active == [0]


def test_gradients_reach_float32_params_in_float32_and_match_full_precision():
    dtorch.manual_seed(0)
    net = dtorch.nn.Sequential(
        dtorch.nn.Conv2d(2, 4, 3), dtorch.nn.ReLU(), dtorch.nn.Flatten(),
        dtorch.nn.Linear(4 * 4 * 4, 8), dtorch.nn.Tanh(), dtorch.nn.Linear(8, 3))
    x = dtorch.randn(5, 2, 6, 6)
    y = dtorch.tensor([0, 1, 2, 1, 0])

    def grads(amp):
        net.zero_grad()
        with dtorch.autocast("cpu", dtype=f16, enabled=amp):
            out = net(x)
            loss = F.cross_entropy(out, y)
        assert out.dtype is (f16 if amp else f32) and loss.dtype is f32
        loss.backward()
        return [p.grad.clone() for p in net.parameters()]

    full, mixed = grads(False), grads(True)
    for g32, g16 in zip(full, mixed):
        assert g16.dtype is f32
        scale = float(g32.abs().max())
        np.testing.assert_allclose(g16.numpy(), g32.numpy(), atol=1e-2 * scale + 1e-4)
    assert any(float((a - b).abs().max()) > 0 for a, b in zip(full, mixed))  # really fp16


def test_input_gradient_keeps_its_dtype():
    x = r(3, 4).requires_grad_()
    w = r(2, 4, dtype=f16).requires_grad_()
    with cpu_fp16():
        out = F.linear(x, w)
    out.float().sum().backward()
    assert x.grad.dtype is f32 and w.grad.dtype is f16
    np.testing.assert_allclose(x.grad.numpy(), w.detach().sum(0).float().expand(3, 4).numpy(),
                               rtol=1e-3)


def test_parameter_casts_are_cached_in_the_region_and_track_in_place_updates():
    lin = dtorch.nn.Linear(4, 2)
    x = r(3, 4)
    cache = autocast_mode._state.cache
    with cpu_fp16():
        a = lin(x)
        assert id(lin.weight) in cache
        cast = cache[id(lin.weight)][2]
        b = lin(x)
        assert cache[id(lin.weight)][2] is cast  # one cast for both uses
        with dtorch.no_grad():
            lin.weight.mul_(2)  # bumps the version: the cached cast is stale
        c = lin(x)
        assert cache[id(lin.weight)][2] is not cast
    assert not cache  # cleared on leaving the outermost region
    (a.float().sum() + b.float().sum()).backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(),
                               2 * x.sum(0, keepdim=True).expand(2, 4).numpy(), rtol=1e-3)
    with dtorch.no_grad():  # c was computed with the doubled weight
        bias = lin.bias.half()
        np.testing.assert_allclose((c - bias).float().numpy(), 2 * (a - bias).float().numpy(),
                                   atol=5e-3)
    with dtorch.autocast("cpu", dtype=f16, cache_enabled=False):
        lin(x)
        assert not cache


def test_cast_under_no_grad_is_not_cached():
    lin = dtorch.nn.Linear(4, 2)
    with cpu_fp16():
        with dtorch.no_grad():
            lin(r(3, 4))
        out = lin(r(3, 4))
    out.float().sum().backward()
    assert lin.weight.grad is not None


def test_in_place_variants_are_not_autocast():
    x = r(4, dtype=f16)
    with cpu_fp16():
        y = dtorch.tensor([1.0, 2.0], dtype=f16)
        y.exp_()
        assert y.dtype is f16
        np.testing.assert_allclose(y.numpy(), np.exp([1.0, 2.0]), rtol=1e-3)
        assert x.prod().dtype is f32


def test_queries_and_defaults():
    assert not dtorch.is_autocast_enabled() and not dtorch.is_autocast_enabled("cuda")
    assert dtorch.get_autocast_dtype("cuda") is f16
    with pytest.raises(RuntimeError, match="bfloat16.*dtype=torch.float16"):
        dtorch.get_autocast_dtype("cpu")
    with cpu_fp16():
        assert dtorch.get_autocast_dtype("cpu") is f16
        assert dtorch.is_autocast_enabled("cpu") and not dtorch.is_autocast_enabled()
    assert dtorch.amp.autocast is dtorch.autocast
    assert dtorch.amp.is_autocast_enabled is dtorch.is_autocast_enabled


def test_cpu_bfloat16_default_is_declined_with_advice():
    assert not hasattr(np, "bfloat16")
    with pytest.raises(RuntimeError, match=r"bfloat16.*dtype=torch\.float16"):
        dtorch.autocast("cpu")
    with dtorch.autocast("cpu", enabled=False):  # a disabled region needs no dtype
        pass


def test_bad_arguments():
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        dtorch.autocast(0)
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'xpu'"):
        dtorch.autocast("xpu")
    with pytest.raises(RuntimeError, match="'tpu'"):
        dtorch.is_autocast_enabled("tpu")
    with pytest.warns(UserWarning, match="target dtype is not supported. Disabling"):
        region = dtorch.autocast("cpu", dtype=f64)
    with region:
        assert not dtorch.is_autocast_enabled("cpu")
        assert (r(2, 2) @ r(2, 2)).dtype is f32


@pytest.mark.skipif(dtorch.cuda.is_available(), reason="checks the CPU-only machine")
def test_cuda_autocast_without_cuda_disables_itself():
    with pytest.warns(UserWarning, match="CUDA is not available"):
        region = dtorch.autocast("cuda")
    with region:
        assert not dtorch.is_autocast_enabled("cuda")
    with pytest.warns(FutureWarning, match="torch.cuda.amp.autocast"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            region = dtorch.cuda.amp.autocast()
    assert isinstance(region, dtorch.autocast) and region.device == "cuda"


# ----------------------------------------------------------------- the CUDA table, on the CPU
@pytest.fixture
def as_cuda(monkeypatch):
    """Report every array as a CUDA array to autocast (and CUDA as available), so the CUDA op
    table is exercised on a machine without a GPU."""
    monkeypatch.setattr(_backend, "cuda_available", lambda: True)
    monkeypatch.setattr(autocast_mode, "_array_device_type", lambda array: "cuda")
    with dtorch.autocast("cuda"):
        yield


def test_cuda_table(as_cuda):
    x16, x32 = r(4, dtype=f16), r(4)
    assert dtorch.is_autocast_enabled() and not dtorch.is_autocast_enabled("cpu")
    assert dtorch.mv(r(3, 4), x32).dtype is f16  # lower on CUDA, untouched on CPU
    assert F.linear(r(3, 4), r(2, 4)).dtype is f16
    for out in (x16.exp(), x16 ** 2, x16.sum(), x16.cumsum(0), F.softmax(x16, 0),
                F.log_softmax(x16, 0), F.layer_norm(r(3, 4, dtype=f16), (4,)), x16.norm(),
                x16.rsqrt(), x16.log10(), F.normalize(r(3, 4, dtype=f16))):
        assert out.dtype is f32
    assert x16.sum(dtype=f16).dtype is f16
    assert F.softmax(x16, 0, dtype=f16).dtype is f16
    assert x16.mean().dtype is f16 and x16.sin().dtype is f16  # not listed
    assert dtorch.dot(x16, x32).dtype is f32  # promote: the widest input type
    assert dtorch.dot(x16, x16).dtype is f16
    assert dtorch.scatter_add(r(3, dtype=f16), 0, dtorch.tensor([0, 1]),
                              r(2)).dtype is f32


def test_binary_cross_entropy_is_banned_under_cuda_autocast(as_cuda):
    p = r(4).sigmoid()
    with pytest.raises(RuntimeError) as err:
        F.binary_cross_entropy(p, dtorch.ones(4))
    assert str(err.value) == policy.BCE_BANNED_MSG
    assert str(err.value).startswith("torch.nn.functional.binary_cross_entropy and "
                                     "torch.nn.BCELoss are unsafe to autocast.\n")
    with pytest.raises(RuntimeError, match="unsafe to autocast"):
        dtorch.nn.BCELoss()(p, dtorch.ones(4))
    assert F.binary_cross_entropy_with_logits(r(4, dtype=f16), dtorch.ones(4)).dtype is f32


def test_cuda_region_leaves_cpu_tensors_alone(monkeypatch):
    monkeypatch.setattr(_backend, "cuda_available", lambda: True)
    with dtorch.autocast("cuda"):
        assert (r(2, 2) @ r(2, 2)).dtype is f32


def test_cuda_device(device):
    if device == "cpu":
        pytest.skip("the CUDA region needs a GPU; the CPU region is tested above")
    lin = dtorch.nn.Linear(4, 2).to(device)
    x = r(3, 4).to(device)
    with dtorch.autocast(device):
        out = lin(x)
        loss = F.mse_loss(out, dtorch.zeros(3, 2, device=device))
    assert out.dtype is f16 and loss.dtype is f32
    loss.backward()
    assert lin.weight.grad.dtype is f32 and lin.weight.grad.is_cuda


def test_hooked_ops_still_warn_at_the_callers_line():
    x = r(2, 3)
    for call in (lambda: F.softmax(x), lambda: F.mse_loss(x, r(3)),
                 lambda: F.kl_div(x, x)):
        with pytest.warns(UserWarning) as rec:
            call()
        assert rec[0].filename == __file__
