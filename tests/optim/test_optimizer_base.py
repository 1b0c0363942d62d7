"""The Optimizer base: parameter groups, state, zero_grad, closures, hooks, state_dict."""

import copy
import pickle
import warnings

import numpy as np
import pytest

import dtorch
from dtorch import optim


def _param(values):
    return dtorch.tensor(np.asarray(values, dtype=np.float32), requires_grad=True)


def _set_grad(p, values):
    p.grad = dtorch.tensor(np.asarray(values, dtype=np.float32))


def test_param_groups_take_defaults_and_per_group_options():
    a, b = _param([1.0]), _param([2.0])
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.9}], lr=0.1)
    g0, g1 = opt.param_groups
    assert g0["lr"] == 0.1 and g0["momentum"] == 0 and g0["params"][0] is a
    assert g1["lr"] == 0.5 and g1["momentum"] == 0.9 and g1["params"] == [b]
    assert set(g0) == set(opt.defaults) | {"params"}


def test_per_group_lr_is_used():
    a, b = _param([1.0]), _param([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    _set_grad(a, [1.0])
    _set_grad(b, [1.0])
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.5)


def test_add_param_group_checks():
    a, b = _param([1.0]), _param([2.0])
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([b])
    with pytest.raises(TypeError, match="ordered collections"):
        opt.add_param_group({"params": {b}})
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the "
                                        "params is builtins.int|int"):
        opt.add_param_group({"params": [3]})
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        opt.add_param_group({"params": [b * 2]})
    opt.add_param_group({"params": [b], "lr": 0.3})
    assert opt.param_groups[1]["lr"] == 0.3 and opt.param_groups[1]["momentum"] == 0
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([b, b], lr=0.1)


def test_constructor_checks():
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got "):
        optim.SGD(_param([1.0]), lr=0.1)


@pytest.mark.parametrize("cls, kwargs, message", [
    (optim.SGD, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (optim.SGD, dict(lr=0.1, momentum=-1), "Invalid momentum value: -1"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero "
                                             "dampening"),
    (optim.Adam, dict(lr=-1.0), "Invalid learning rate: -1.0"),
    (optim.Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.AdamW, dict(weight_decay=-0.5), "Invalid weight_decay value: -0.5"),
    (optim.RMSprop, dict(alpha=-0.5), "Invalid alpha value: -0.5"),
    (optim.RMSprop, dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (optim.Adagrad, dict(lr_decay=-1), "Invalid lr_decay value: -1"),
    (optim.Adagrad, dict(initial_accumulator_value=-1),
     "Invalid initial_accumulator_value value: -1"),
    (optim.Adadelta, dict(rho=1.5), "Invalid rho value: 1.5"),
    (optim.Adamax, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (optim.NAdam, dict(momentum_decay=-1.0), "Invalid momentum_decay value: -1.0"),
    (optim.RAdam, dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    (optim.LBFGS, dict(lr=-2), "Invalid learning rate: -2"),
    (optim.LBFGS, dict(line_search_fn="armijo"), "only 'strong_wolfe' is supported"),
])
def test_hyperparameters_are_validated(cls, kwargs, message):
    with pytest.raises(ValueError) as info:
        cls([_param([1.0])], **kwargs)
    assert message in str(info.value)


def test_lbfgs_rejects_several_groups():
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        optim.LBFGS([{"params": [_param([1.0])]}, {"params": [_param([1.0])]}])


def test_zero_grad_set_to_none_and_to_zero():
    p = _param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1)
    _set_grad(p, [3.0, 4.0])
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and np.array_equal(p.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_parameters_without_grad_are_skipped():
    a, b = _param([1.0]), _param([1.0])
    opt = optim.Adam([a, b], lr=0.1)
    _set_grad(a, [1.0])
    opt.step()
    assert b.item() == 1.0 and b not in opt.state and len(opt.state) == 1


def test_step_returns_closure_loss_and_runs_it_with_grad_enabled():
    p = _param([3.0])
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with dtorch.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0
    assert p.item() == pytest.approx(3.0 - 0.1 * 6.0)
    assert opt.step() is None


def test_step_bumps_the_version_counter():
    p = _param([1.0])
    opt = optim.SGD([p], lr=0.1)
    _set_grad(p, [1.0])
    before = p._version
    opt.step()
    assert p._version > before


def test_step_hooks_run_in_order_and_can_be_removed():
    p = _param([1.0])
    opt = optim.SGD([p], lr=0.1)
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, args, kw: calls.append(("pre", o is opt)))
    h2 = opt.register_step_post_hook(lambda o, args, kw: calls.append(("post", p.item())))
    g1 = optim.register_optimizer_step_pre_hook(lambda o, args, kw: calls.append("global"))
    _set_grad(p, [1.0])
    opt.step()
    assert calls == ["global", ("pre", True), ("post", pytest.approx(0.9))]
    for h in (h1, h2, g1):
        h.remove()
    opt.step()
    assert len(calls) == 3


def test_pre_hook_can_replace_arguments():
    p = _param([2.0])
    opt = optim.SGD([p], lr=0.1)

    def closure():
        return 42.0

    opt.register_step_pre_hook(lambda o, args, kw: ((closure,), {}))
    assert opt.step() == 42.0


def test_state_is_keyed_by_parameter_and_holds_tensors():
    p = _param([1.0, 2.0])
    opt = optim.Adam([p], lr=0.1)
    _set_grad(p, [1.0, 1.0])
    opt.step()
    state = opt.state[p]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
    assert all(isinstance(v, dtorch.Tensor) for v in state.values())
    assert state["step"].item() == 1.0 and state["step"].dtype == dtorch.float32
    assert repr(state["exp_avg"]).startswith("tensor([")


def test_state_dict_format_matches_pytorch():
    a, b, c = _param([1.0]), _param([2.0]), _param([3.0])
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in (a, b, c):
        _set_grad(p, [1.0])
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert set(sd["state"]) == {0, 1, 2}
    assert set(sd["state"][2]) == {"momentum_buffer"}
    assert "params" in opt.param_groups[0] and opt.param_groups[0]["params"][0] is a


def _train(opt_factory, steps, p0=(1.0, -2.0, 3.0), opt=None, p=None):
    if p is None:
        p = _param(p0)
    if opt is None:
        opt = opt_factory([p])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((p - 0.5) ** 2).sum() + 0.1 * (p ** 4).sum()
        loss.backward()
        opt.step()
    return p, opt


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.05),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: optim.Adagrad(ps, lr=0.1),
    lambda ps: optim.Adadelta(ps),
    lambda ps: optim.Adamax(ps),
    lambda ps: optim.NAdam(ps),
    lambda ps: optim.RAdam(ps),
], ids=["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"])
def test_state_dict_round_trip_resumes_exactly(factory):
    reference, _ = _train(factory, 10)
    p, opt = _train(factory, 5)
    saved = pickle.loads(pickle.dumps(opt.state_dict()))  # as a checkpoint would be
    q = _param(p.detach().numpy())
    fresh = factory([q])
    fresh.load_state_dict(saved)
    _train(factory, 5, opt=fresh, p=q)
    assert np.array_equal(q.detach().numpy(), reference.detach().numpy())
    # loading copies the state: no buffer is shared with the saved optimizer
    mine = {id(v) for v in fresh.state[q].values()}
    assert mine.isdisjoint(id(v) for v in opt.state[p].values())


def test_load_state_dict_restores_group_options_and_checks_sizes():
    a, b = _param([1.0]), _param([2.0])
    opt = optim.SGD([a], lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.7
    opt2 = optim.SGD([b], lr=0.1)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.7 and opt2.param_groups[0]["params"][0] is b
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.SGD([a, b], lr=0.1).load_state_dict(sd)


def test_load_casts_state_to_the_parameter_dtype():
    p = _param([1.0])
    opt = optim.Adam([p], lr=0.1)
    _set_grad(p, [1.0])
    opt.step()
    q = dtorch.tensor([1.0], dtype=dtorch.float64, requires_grad=True)
    opt2 = optim.Adam([q], lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.state[q]["exp_avg"].dtype == dtorch.float64
    assert opt2.state[q]["step"].dtype == dtorch.float32


def test_pickle_and_deepcopy_of_an_optimizer():
    p = _param([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    _set_grad(p, [1.0])
    opt.step()
    clone = copy.deepcopy(opt)
    assert clone.param_groups[0]["lr"] == 0.1
    again = pickle.loads(pickle.dumps(opt))
    assert again.param_groups[0]["momentum"] == 0.9


def test_repr_lists_groups():
    opt = optim.SGD([_param([1.0])], lr=0.1)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1\n" in text


def test_no_warnings_in_a_plain_step():
    p = _param([1.0])
    opt = optim.Adam([p])
    _set_grad(p, [1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
