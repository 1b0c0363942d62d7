"""Each optimizer's update rule: hand-computed steps, closed forms, reference trajectories
(values computed once with PyTorch 2.13 and pasted), and convergence."""

import math

import numpy as np
import pytest

import dtorch
from dtorch import optim


def _param(values, dtype=np.float64, device="cpu"):
    return dtorch.tensor(np.asarray(values, dtype=dtype), requires_grad=True, device=device)


def _step_with_grad(opt, p, grad, steps=1):
    for _ in range(steps):
        p.grad = dtorch.tensor(np.asarray(grad, dtype=p.detach().numpy().dtype))
        opt.step()
    return p.detach().numpy()


P0 = [1.0, -2.0, 3.0]
G = [0.5, -3.0, 1e-3]


# ---------------------------------------------------------------------------- first steps
@pytest.mark.parametrize("cls, kwargs", [
    (optim.Adam, {}), (optim.Adam, {"amsgrad": True}), (optim.AdamW, {"weight_decay": 0.0}),
    (optim.Adamax, {}),
])
def test_first_step_is_lr_times_sign(cls, kwargs):
    p = _param(P0)
    out = _step_with_grad(cls([p], lr=0.1, **kwargs), p, G)
    np.testing.assert_allclose(out, np.array(P0) - 0.1 * np.sign(G), rtol=0, atol=1e-6)


def test_adam_maximize_moves_uphill():
    p = _param(P0)
    out = _step_with_grad(optim.Adam([p], lr=0.1, maximize=True), p, G)
    np.testing.assert_allclose(out, np.array(P0) + 0.1 * np.sign(G), atol=1e-6)


def test_radam_starts_as_bias_corrected_momentum_sgd():
    # rho_t <= 5 for the first steps: param -= lr * m / (1 - beta1^t); with a constant gradient
    # m / (1 - beta1^t) == g exactly, so each step is lr * g.
    p = _param(P0)
    out = _step_with_grad(optim.RAdam([p], lr=0.1), p, G, steps=3)
    np.testing.assert_allclose(out, np.array(P0) - 3 * 0.1 * np.array(G), rtol=1e-12)


def test_rmsprop_first_step():
    p = _param(P0)
    out = _step_with_grad(optim.RMSprop([p], lr=0.01, alpha=0.9, eps=1e-8), p, G)
    g = np.array(G)
    expect = np.array(P0) - 0.01 * g / (np.sqrt(0.1 * g * g) + 1e-8)
    np.testing.assert_allclose(out, expect, rtol=1e-12)


def test_rmsprop_centered_first_step():
    # v = (1-a) g^2, gbar = (1-a) g, avg = sqrt(v - gbar^2) = |g| sqrt(a (1-a))
    p = _param(P0)
    out = _step_with_grad(optim.RMSprop([p], lr=0.01, alpha=0.9, centered=True), p, G)
    g = np.array(G)
    expect = np.array(P0) - 0.01 * g / (np.abs(g) * math.sqrt(0.09) + 1e-8)
    np.testing.assert_allclose(out, expect, rtol=1e-9)


def test_adadelta_first_step():
    p = _param(P0)
    out = _step_with_grad(optim.Adadelta([p], lr=1.0, rho=0.9, eps=1e-6), p, G)
    g = np.array(G)
    delta = math.sqrt(1e-6) / np.sqrt(0.1 * g * g + 1e-6) * g
    np.testing.assert_allclose(out, np.array(P0) - delta, rtol=1e-12)


def test_nadam_first_step():
    b1, psi, lr, eps = 0.9, 4e-3, 0.01, 1e-8
    mu1 = b1 * (1 - 0.5 * 0.96 ** psi)
    mu2 = b1 * (1 - 0.5 * 0.96 ** (2 * psi))
    mu1_f32 = float(np.float32(mu1))  # PyTorch keeps the product in a float32 tensor
    g = np.array(G)
    denom = np.abs(g) + eps  # sqrt(v / (1 - b2)) == |g|
    expect = (np.array(P0) - lr * (1 - mu1) / (1 - mu1_f32) * g / denom
              - lr * mu2 / (1 - mu1_f32 * mu2) * (1 - b1) * g / denom)
    p = _param(P0)
    out = _step_with_grad(optim.NAdam([p], lr=lr), p, G)
    np.testing.assert_allclose(out, expect, rtol=1e-12)
    assert optim.NAdam([p]).defaults["momentum_decay"] == psi


# ---------------------------------------------------------------------------- recurrences
@pytest.mark.parametrize("momentum, dampening, nesterov", [
    (0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.5, False), (0.8, 0.0, True)])
def test_sgd_momentum_recurrence(momentum, dampening, nesterov):
    lr, g, steps = 0.1, np.array(G), 6
    p = _param(P0)
    opt = optim.SGD([p], lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov)
    out = _step_with_grad(opt, p, G, steps)
    expect, buf = np.array(P0), None
    for _ in range(steps):
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            d = g + momentum * buf if nesterov else buf
        else:
            d = g
        expect = expect - lr * d
    np.testing.assert_allclose(out, expect, rtol=1e-12)
    if momentum:
        np.testing.assert_allclose(opt.state[p]["momentum_buffer"].numpy(), buf, rtol=1e-12)


def test_sgd_closed_form_momentum_sum():
    # buf_t = sum_{k<t} mu^k g  =>  p_T = p_0 - lr g sum_t (1 - mu^t) / (1 - mu)
    mu, lr, steps = 0.9, 0.05, 20
    p = _param([0.0])
    out = _step_with_grad(optim.SGD([p], lr=lr, momentum=mu), p, [1.0], steps)
    expect = -lr * sum((1 - mu ** t) / (1 - mu) for t in range(1, steps + 1))
    assert out[0] == pytest.approx(expect, rel=1e-12)


def test_sgd_maximize_and_weight_decay():
    p = _param([2.0])
    out = _step_with_grad(optim.SGD([p], lr=0.1, maximize=True), p, [1.0])
    assert out[0] == pytest.approx(2.1)
    p = _param([2.0])
    out = _step_with_grad(optim.SGD([p], lr=0.1, weight_decay=0.5), p, [0.0], steps=3)
    assert out[0] == pytest.approx(2.0 * (1 - 0.05) ** 3, rel=1e-12)


@pytest.mark.parametrize("cls", [optim.AdamW, optim.NAdam, optim.RAdam])
def test_decoupled_weight_decay_shrinks_parameters(cls):
    # with a zero gradient only the decay acts: p_t = p_0 (1 - lr wd)^t
    kwargs = {} if cls is optim.AdamW else {"decoupled_weight_decay": True}
    p = _param(P0)
    out = _step_with_grad(cls([p], lr=0.1, weight_decay=0.2, **kwargs), p, [0.0] * 3, steps=4)
    np.testing.assert_allclose(out, np.array(P0) * (1 - 0.02) ** 4, rtol=1e-12)


def test_adam_l2_weight_decay_acts_through_the_gradient():
    # weight_decay adds wd * p to the gradient, so a zero gradient still moves by lr * sign(p)
    p = _param(P0)
    out = _step_with_grad(optim.Adam([p], lr=0.1, weight_decay=0.2), p, [0.0] * 3)
    np.testing.assert_allclose(out, np.array(P0) - 0.1 * np.sign(P0), atol=1e-6)


def test_adagrad_closed_form():
    lr, decay, init, eps, steps = 0.1, 0.05, 0.2, 1e-10, 5
    p = _param(P0)
    opt = optim.Adagrad([p], lr=lr, lr_decay=decay, initial_accumulator_value=init, eps=eps)
    assert np.array_equal(opt.state[p]["sum"].numpy(), [init] * 3)
    out = _step_with_grad(opt, p, G, steps)
    g = np.array(G)
    expect = np.array(P0) - sum(lr / (1 + (t - 1) * decay) * g / (np.sqrt(init + t * g * g) + eps)
                                for t in range(1, steps + 1))
    np.testing.assert_allclose(out, expect, rtol=1e-12)


def test_adamax_infinity_norm_holds_the_largest_gradient():
    p = _param([0.0])
    opt = optim.Adamax([p], lr=0.1, betas=(0.9, 0.5))
    _step_with_grad(opt, p, [4.0])
    _step_with_grad(opt, p, [1.0])
    assert opt.state[p]["exp_inf"].item() == pytest.approx(max(0.5 * (4 + 1e-8), 1 + 1e-8))


def test_amsgrad_keeps_the_maximum():
    p = _param([0.0])
    opt = optim.Adam([p], lr=0.1, amsgrad=True)
    _step_with_grad(opt, p, [10.0])
    _step_with_grad(opt, p, [0.1])
    st = opt.state[p]
    assert st["max_exp_avg_sq"].item() == pytest.approx(0.001 * 100.0)
    assert st["exp_avg_sq"].item() < st["max_exp_avg_sq"].item()


# ---------------------------------------------------------------------------- vs PyTorch
# p0 = [1, -2, 3], loss = sum(0.5 * h * (p - t)^2) + 0.1 * sum(p^4), float32, values after the
# given number of steps from torch 2.13.
H = [1.0, 4.0, 0.25]
T = [0.5, -1.0, 2.0]
REFERENCE = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, 10,
     [0.16442762315273285, -1.1872963905334473, -1.768141746520996]),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, 10,
     [0.23787888884544373, -1.0791065692901611, -1.0503326654434204]),
    ("Adam", {"lr": 0.05}, 10, [0.5405644178390503, -1.5144404172897339, 2.5104832649230957]),
    ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}, 10,
     [0.5366646647453308, -1.5141196250915527, 2.510241985321045]),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1}, 10,
     [0.5083891749382019, -1.431457281112671, 2.3786656856536865]),
    ("RMSprop", {"lr": 0.01}, 10, [0.6238956451416016, -1.5567035675048828, 2.5423243045806885]),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.01}, 10,
     [0.46310877799987793, -1.2508816719055176, 2.195215940475464]),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}, 10,
     [0.6424806118011475, -1.5726869106292725, 2.5594706535339355]),
    ("Adadelta", {"lr": 1.0, "rho": 0.9}, 10,
     [0.9670901894569397, -1.9666719436645508, 2.9665939807891846]),
    ("Adamax", {"lr": 0.05, "weight_decay": 0.01}, 10,
     [0.6232115030288696, -1.5678205490112305, 2.554917335510254]),
    ("NAdam", {"lr": 0.05}, 10, [0.6663894653320312, -1.6299128532409668, 2.6225454807281494]),
    ("NAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}, 10,
     [0.634982705116272, -1.549614667892456, 2.4945411682128906]),
    ("RAdam", {"lr": 0.05}, 10, [0.7906490564346313, -0.8187668919563293, 1.2298840284347534]),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1}, 10,
     [0.7695102691650391, -0.7911983132362366, 1.1848870515823364]),
    ("LBFGS", {"lr": 0.5, "max_iter": 4, "history_size": 3}, 3,
     [0.46202710270881653, -0.9206787943840027, 0.903712272644043]),
    ("LBFGS", {"lr": 1, "max_iter": 10, "line_search_fn": "strong_wolfe"}, 3,
     [0.460853636264801, -0.9216985702514648, 0.8862593173980713]),
]


@pytest.mark.parametrize("name, kwargs, steps, expected", REFERENCE,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REFERENCE)])
def test_matches_pytorch_trajectory(name, kwargs, steps, expected, device):
    p = _param(P0, np.float32, device)
    h = dtorch.tensor(H, device=device)
    t = dtorch.tensor(T, device=device)
    opt = getattr(optim, name)([p], **kwargs)

    def closure():
        opt.zero_grad()
        loss = (0.5 * h * (p - t) ** 2).sum() + 0.1 * (p ** 4).sum()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    assert p.dtype == dtorch.float32
    np.testing.assert_allclose(p.detach().cpu().numpy(), expected, rtol=2e-6, atol=2e-6)


# ---------------------------------------------------------------------------- convergence
CONVERGE = [
    (optim.SGD, dict(lr=0.1), 300),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True), 300),
    (optim.Adam, dict(lr=0.05), 600),
    (optim.AdamW, dict(lr=0.05, weight_decay=0.0), 600),
    (optim.RMSprop, dict(lr=0.01), 600),
    (optim.Adagrad, dict(lr=0.5), 600),
    (optim.Adadelta, dict(lr=10.0), 600),
    (optim.Adamax, dict(lr=0.05), 600),
    (optim.NAdam, dict(lr=0.05), 600),
    (optim.RAdam, dict(lr=0.05), 600),
]


@pytest.mark.parametrize("cls, kwargs, steps", CONVERGE,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CONVERGE)])
def test_converges_on_a_quadratic(cls, kwargs, steps):
    h = dtorch.tensor([1.0, 4.0, 0.25], dtype=dtorch.float64)
    target = np.array([0.5, -1.0, 2.0])
    p = _param(P0)
    opt = cls([p], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * h * (p - dtorch.tensor(target)) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), target, atol=2e-2)


@pytest.mark.parametrize("cls, kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.5)), (optim.Adam, dict(lr=0.05)),
    (optim.AdamW, dict(lr=0.05, weight_decay=1e-4)), (optim.RMSprop, dict(lr=0.01)),
])
def test_linear_regression_learns_weight_two(cls, kwargs):
    # the seeds' first example: fit y = 2x with a 1x1 weight and a bias, MSE loss
    x = dtorch.linspace(-1, 1, 32).reshape(32, 1)
    y = 2 * x
    w = dtorch.zeros(1, 1, requires_grad=True)
    b = dtorch.zeros(1, requires_grad=True)
    opt = cls([w, b], **kwargs)
    for _ in range(400):
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert w.item() == pytest.approx(2.0, abs=1e-2)
    assert abs(b.item()) < 1e-2
    assert loss.item() < 1e-4
