"""GradScaler: scaling and unscaling by exact powers of two, skipped steps and back-off on
inf/NaN, growth after growth_interval clean steps, the per-optimizer stage errors, state_dict
round trips, clipping after unscale_, and float16 autocast training that converges like
float32 training."""

import warnings

import numpy as np
import pytest

import dtorch
import dtorch.nn.functional as F
from dtorch.amp import GradScaler

GRAD = np.array([[0.5, -1.25], [3.0, 0.125]], dtype=np.float32)


def setup(scale=8.0, **kw):
    """A scaler, an SGD optimizer over one 2x2 parameter and the parameter; ``backward`` puts
    ``scale * GRAD`` (or ``values``) into its gradient through the scaled loss."""
    p = dtorch.nn.Parameter(dtorch.ones(2, 2))
    opt = dtorch.optim.SGD([p], lr=1.0)
    scaler = GradScaler("cpu", init_scale=scale, **kw)

    def backward(values=GRAD):
        opt.zero_grad()
        scaler.scale((p * dtorch.tensor(values)).sum()).backward()

    return scaler, opt, p, backward


def test_scale_multiplies_tensors_and_nested_sequences():
    scaler = GradScaler("cpu", init_scale=4.0)
    a, b = dtorch.tensor([1.0, 2.0]), dtorch.tensor(3.0, dtype=dtorch.float16)
    out = scaler.scale([a, (b, [a])])
    assert isinstance(out, list) and isinstance(out[1], tuple) and isinstance(out[1][1], list)
    np.testing.assert_array_equal(out[0].numpy(), [4.0, 8.0])
    assert out[1][0].item() == 12.0 and out[1][0].dtype is dtorch.float16
    np.testing.assert_array_equal(out[1][1][0].numpy(), [4.0, 8.0])
    assert [t.item() for t in scaler.scale(iter([b]))] == [12.0]
    with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
        scaler.scale(3.0)


def test_unscale_divides_and_step_applies_the_true_gradient():
    scaler, opt, p, backward = setup(scale=8.0)
    backward()
    np.testing.assert_array_equal(p.grad.numpy(), 8 * GRAD)
    scaler.unscale_(opt)
    np.testing.assert_array_equal(p.grad.numpy(), GRAD)
    assert scaler.step(opt) is None
    np.testing.assert_array_equal(p.detach().numpy(), 1 - GRAD)
    scaler.update()
    assert scaler.get_scale() == 8.0 and scaler._get_growth_tracker() == 1


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_step_with_a_non_finite_grad_is_skipped_and_scale_backs_off(bad):
    scaler, opt, p, backward = setup(scale=1024.0)
    backward()
    scaler.step(opt)
    scaler.update()
    assert scaler._get_growth_tracker() == 1
    p_before = p.detach().numpy().copy()
    values = GRAD.copy()
    values[1, 0] = bad
    backward(values)
    assert scaler.step(opt) is None
    np.testing.assert_array_equal(p.detach().numpy(), p_before)  # untouched
    scaler.update()
    assert scaler.get_scale() == 512.0 and scaler._get_growth_tracker() == 0


def test_update_without_inf_checks_raises():
    scaler, opt, p, backward = setup()
    with pytest.raises(AssertionError, match="_scale is None"):
        scaler.step(opt)
    backward()
    with pytest.raises(AssertionError, match="No inf checks were recorded prior to update"):
        scaler.update()


def test_growth_after_growth_interval_clean_steps():
    scaler, opt, p, backward = setup(scale=2.0, growth_interval=3, growth_factor=4.0)
    scales = []
    for step in range(7):
        values = GRAD if step != 4 else GRAD * np.inf
        backward(values)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    # 3 clean steps: x4; the inf at step 4 halves and resets the count; 2 clean: no growth yet
    assert scales == [2.0, 2.0, 8.0, 8.0, 4.0, 4.0, 4.0]
    assert scaler._get_growth_tracker() == 2


def test_growth_stops_at_float32_overflow():
    scaler, opt, p, backward = setup(scale=2.0**127, growth_interval=1)
    backward(GRAD / 1024)  # scaled gradients stay finite
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0**127  # 2**128 is not a finite float32


def test_stage_errors_match_pytorch():
    scaler, opt, p, backward = setup()
    backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"^unscale_\(\) has already been called on this "
                       r"optimizer since the last update\(\)\.$"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) is being called after step\(\)\."):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"step\(\) has already been called since the last "
                       r"update\(\)\."):
        scaler.step(opt)
    scaler.update()
    backward()
    scaler.unscale_(opt)  # READY again after update()
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=lambda: 0.0)


def test_step_passes_arguments_and_returns_the_optimizer_result():
    scaler, opt, p, backward = setup()
    backward()
    assert scaler.step(opt, lambda: 42.0) == 42.0  # a positional closure is passed through


def test_float16_gradients_are_refused():
    p = dtorch.nn.Parameter(dtorch.ones(2, dtype=dtorch.float16))
    opt = dtorch.optim.SGD([p], lr=0.1)
    scaler = GradScaler("cpu")
    scaler.scale(p.sum()).backward()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients."):
        scaler.step(opt)


def test_one_inf_check_per_device_and_optimizers_are_independent():
    scaler = GradScaler("cpu", init_scale=4.0)
    ps = [dtorch.nn.Parameter(dtorch.ones(3)) for _ in range(5)]
    opt_a, opt_b = dtorch.optim.SGD(ps[:4], lr=1.0), dtorch.optim.SGD(ps[4:], lr=1.0)
    loss = sum(p.sum() for p in ps[:4]) + ps[4].sum() * float("inf")
    scaler.scale(loss).backward()
    scaler.step(opt_a)  # clean: steps
    scaler.step(opt_b)  # inf: skipped
    state = scaler._per_optimizer_states
    assert list(state[id(opt_a)]["found_inf_per_device"]) == [None]  # one entry: the CPU
    assert [t.item() for t in state[id(opt_a)]["found_inf_per_device"].values()] == [0.0]
    assert [t.item() for t in state[id(opt_b)]["found_inf_per_device"].values()] == [1.0]
    np.testing.assert_array_equal(ps[0].detach().numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ps[4].detach().numpy(), [1.0, 1.0, 1.0])
    scaler.update()  # any inf in the iteration backs off
    assert scaler.get_scale() == 2.0


def test_update_with_new_scale():
    scaler, opt, p, backward = setup()
    backward()
    scaler.update(32.0)
    assert scaler.get_scale() == 32.0
    backward()
    scaler.update(dtorch.tensor([0.25]))
    assert scaler.get_scale() == 0.25
    with pytest.raises(AssertionError, match="new_scale should be a float or a 1-element"):
        scaler.update(dtorch.ones(2))


def test_state_dict_round_trip_continues_identically():
    a, opt, p, backward = setup(scale=64.0, growth_interval=3)
    for values in (GRAD, GRAD * np.nan, GRAD):
        backward(values)
        a.step(opt)
        a.update()
    sd = a.state_dict()
    assert sd == {"scale": 32.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                  "growth_interval": 3, "_growth_tracker": 1}
    b = GradScaler("cpu", init_scale=1.0, growth_interval=100)
    b.load_state_dict(sd)
    assert b.state_dict() == sd
    q = dtorch.nn.Parameter(dtorch.ones(2, 2))
    opt_b = dtorch.optim.SGD([q], lr=1.0)
    for _ in range(2):  # two more clean steps on each: both grow at the same step
        for scaler, param, o in ((a, p, opt), (b, q, opt_b)):
            o.zero_grad()
            scaler.scale((param * dtorch.tensor(GRAD)).sum()).backward()
            scaler.step(o)
            scaler.update()
    assert a.state_dict() == b.state_dict() and a.get_scale() == 64.0
    with pytest.raises(RuntimeError, match="The source state dict is empty"):
        b.load_state_dict({})


def test_disabled_scaler_is_a_pass_through():
    scaler = GradScaler("cpu", enabled=False)
    t = dtorch.ones(2)
    assert scaler.scale(t) is t and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    assert scaler.state_dict() == {}
    p = dtorch.nn.Parameter(dtorch.ones(1))
    opt = dtorch.optim.SGD([p], lr=1.0)
    p.sum().backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    assert p.item() == 0.0


def test_constructor_checks_and_accessors():
    with pytest.raises(AssertionError, match="The growth factor must be > 1.0."):
        GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(AssertionError, match="The backoff factor must be < 1.0."):
        GradScaler("cpu", backoff_factor=1.0)
    s = GradScaler("cpu")
    assert (s.get_scale(), s.get_growth_factor(), s.get_backoff_factor(),
            s.get_growth_interval(), s.is_enabled()) == (65536.0, 2.0, 0.5, 2000, True)
    s.set_growth_factor(3.0)
    s.set_backoff_factor(0.25)
    s.set_growth_interval(10)
    assert (s.get_growth_factor(), s.get_backoff_factor(), s.get_growth_interval()) == (
        3.0, 0.25, 10)


@pytest.mark.skipif(dtorch.cuda.is_available(), reason="checks the CPU-only machine")
def test_cuda_scaler_without_cuda_disables_itself():
    with pytest.warns(UserWarning, match="CUDA is not available.  Disabling."):
        s = GradScaler()
    assert not s.is_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.warns(FutureWarning, match="torch.cuda.amp.GradScaler"):
            alias = dtorch.cuda.amp.GradScaler(init_scale=8.0)
    assert isinstance(alias, GradScaler) and not alias.is_enabled()


def test_clipping_after_unscale_sees_the_true_gradients():
    scaler, opt, p, backward = setup(scale=2.0**12)
    backward()
    scaler.unscale_(opt)
    total = dtorch.nn.utils.clip_grad_norm_([p], max_norm=1.0)
    assert total.item() == pytest.approx(np.linalg.norm(GRAD), rel=1e-6)
    np.testing.assert_allclose(p.grad.numpy(), GRAD / np.linalg.norm(GRAD), rtol=1e-5)
    scaler.step(opt)  # does not unscale again
    np.testing.assert_allclose(p.detach().numpy(), 1 - GRAD / np.linalg.norm(GRAD), rtol=1e-5)


def _train(amp, steps=150):
    rng = np.random.default_rng(0)
    x = dtorch.tensor(rng.standard_normal((64, 8)), dtype=dtorch.float32)
    y = dtorch.tensor((x.numpy() @ rng.standard_normal((8, 3))).argmax(1))  # a linear teacher
    net = dtorch.nn.Sequential(dtorch.nn.Linear(8, 32), dtorch.nn.ReLU(),
                               dtorch.nn.Linear(32, 3))
    with dtorch.no_grad():
        for prm in net.parameters():
            prm.copy_(dtorch.tensor(rng.standard_normal(prm.shape) * 0.3))
    opt = dtorch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    scaler = GradScaler("cpu", enabled=amp, growth_interval=20)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with dtorch.autocast("cpu", dtype=dtorch.float16, enabled=amp):
            out = net(x)
            loss = F.cross_entropy(out, y)
        assert out.dtype is (dtorch.float16 if amp else dtorch.float32)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    return losses, scaler


def test_float16_training_converges_like_float32():
    full, _ = _train(amp=False)
    mixed, scaler = _train(amp=True)
    assert full[-1] < 0.5 * full[0]
    assert mixed[-1] < 0.5 * mixed[0]
    assert mixed[-1] == pytest.approx(full[-1], rel=0.1, abs=0.02)
    assert scaler.get_scale() > 2.0**16  # grew: no overflow in 150 steps at this size
