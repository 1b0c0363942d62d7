"""Learning-rate schedulers against their closed-form sequences."""

import math
import pickle
import warnings

import pytest

import dtorch
from dtorch import optim
from dtorch.optim import lr_scheduler as S


def _opt(lr=0.1, cls=optim.SGD, groups=1, **kwargs):
    params = [dtorch.zeros(1, requires_grad=True) for _ in range(groups)]
    return cls([{"params": [p]} for p in params], lr=lr, **kwargs)


def _lrs(sched, steps, group=0):
    """The lr in effect at epochs 0 .. steps-1 (stepping after each, as a training loop does)."""
    out = []
    for _ in range(steps):
        out.append(sched.optimizer.param_groups[group]["lr"])
        sched.optimizer.step()
        sched.step()
    return out


def _close(actual, expected):
    assert actual == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_lambda_lr_per_group():
    opt = _opt(lr=1.0, groups=2)
    sched = S.LambdaLR(opt, [lambda e: 0.5 ** e, lambda e: 1.0 / (e + 1)])
    _close(_lrs(sched, 5, 0), [0.5 ** e for e in range(5)])
    assert sched.get_last_lr() == [0.5 ** 5, 1 / 6]
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(opt, [lambda e: 1.0])


def test_multiplicative_lr():
    sched = S.MultiplicativeLR(_opt(lr=1.0), lambda e: 0.9)
    _close(_lrs(sched, 6), [0.9 ** e for e in range(6)])
    with pytest.raises(TypeError, match="lr_lambda should be a function, but got int"):
        S.MultiplicativeLR(_opt(), 3)


def test_step_lr():
    sched = S.StepLR(_opt(lr=1.0), step_size=3, gamma=0.5)
    _close(_lrs(sched, 10), [0.5 ** (e // 3) for e in range(10)])


def test_multistep_lr_with_repeated_milestone():
    sched = S.MultiStepLR(_opt(lr=1.0), milestones=[2, 5, 5], gamma=0.1)
    _close(_lrs(sched, 8), [1, 1, 0.1, 0.1, 0.1, 0.001, 0.001, 0.001])


def test_constant_lr():
    sched = S.ConstantLR(_opt(lr=0.3), factor=0.5, total_iters=3)
    _close(_lrs(sched, 6), [0.15, 0.15, 0.15, 0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="between 0 and 1"):
        S.ConstantLR(_opt(), factor=2.0)


def test_linear_lr():
    start, end, total = 0.25, 1.0, 4
    sched = S.LinearLR(_opt(lr=0.2), start_factor=start, end_factor=end, total_iters=total)
    expected = [0.2 * (start + (end - start) * min(e, total) / total) for e in range(7)]
    _close(_lrs(sched, 7), expected)
    with pytest.raises(ValueError, match="greater than 0"):
        S.LinearLR(_opt(), start_factor=0)


def test_exponential_lr():
    sched = S.ExponentialLR(_opt(lr=0.5), gamma=0.8)
    _close(_lrs(sched, 8), [0.5 * 0.8 ** e for e in range(8)])


def test_polynomial_lr():
    sched = S.PolynomialLR(_opt(lr=1.0), total_iters=4, power=2.0)
    _close(_lrs(sched, 7), [(1 - min(e, 4) / 4) ** 2 for e in range(7)])


def test_cosine_annealing_matches_closed_form_including_the_rise_after_t_max():
    lr, eta_min, t_max = 0.1, 0.001, 10
    sched = S.CosineAnnealingLR(_opt(lr=lr), T_max=t_max, eta_min=eta_min)
    expected = [eta_min + (lr - eta_min) * (1 + math.cos(math.pi * e / t_max)) / 2
                for e in range(35)]
    assert _lrs(sched, 35) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_cosine_annealing_warm_restarts():
    lr, t0, mult = 1.0, 3, 2
    sched = S.CosineAnnealingWarmRestarts(_opt(lr=lr), T_0=t0, T_mult=mult, eta_min=0.0)
    expected, t_cur, t_i = [], 0, t0
    for _ in range(20):
        expected.append((1 + math.cos(math.pi * t_cur / t_i)) / 2)
        t_cur += 1
        if t_cur >= t_i:
            t_cur, t_i = 0, t_i * mult
    _close(_lrs(sched, 20), expected)
    # fractional epochs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched.step(1.5)
    _close(sched.get_last_lr()[0], (1 + math.cos(math.pi * 1.5 / 3)) / 2)
    sched.step(10.0)  # T_i = 12 from epoch 9: T_cur = 1
    _close(sched.get_last_lr()[0], (1 + math.cos(math.pi * 1 / 12)) / 2)
    with pytest.raises(ValueError, match="Expected positive integer T_0, but got 0"):
        S.CosineAnnealingWarmRestarts(_opt(), T_0=0)


def _triangle(it, up, down):
    cycle = math.floor(1 + it / (up + down))
    x = 1.0 + it / (up + down) - cycle
    ratio = up / (up + down)
    return cycle, (x / ratio if x <= ratio else (x - 1) / (ratio - 1))


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_lr_and_momentum(mode):
    opt = _opt(lr=5.0, momentum=0.9)
    gamma = 0.9
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=4, step_size_down=2,
                       mode=mode, gamma=gamma, base_momentum=0.8, max_momentum=0.95)
    lrs, moms = [], []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    exp_lr, exp_mom = [], []
    for it in range(20):
        cycle, h = _triangle(it, 4, 2)
        scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1),
                 "exp_range": gamma ** it}[mode]
        exp_lr.append(0.1 + 0.9 * h * scale)
        exp_mom.append(0.95 - 0.15 * h * scale)
    _close(lrs, exp_lr)
    _close(moms, exp_mom)


def test_cyclic_lr_cycles_adam_beta1_and_checks_momentum_support():
    opt = _opt(lr=0.1, cls=optim.Adam)
    S.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)
    opt.step()
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.CyclicLR(_opt(cls=optim.Adagrad), base_lr=0.01, max_lr=0.1)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_two_phases(anneal):
    total, pct, max_lr, div, final_div = 20, 0.3, 1.0, 25.0, 1e4
    opt = _opt(lr=0.5, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=max_lr, total_steps=total, pct_start=pct,
                         anneal_strategy=anneal, div_factor=div, final_div_factor=final_div)
    initial, low = max_lr / div, max_lr / div / final_div

    def ann(a, b, t):
        if anneal == "cos":
            return b + (a - b) / 2 * (math.cos(math.pi * t) + 1)
        return a + (b - a) * t

    end_up = pct * total - 1
    exp_lr, exp_mom = [], []
    for s in range(total):
        if s <= end_up:
            t = s / end_up
            exp_lr.append(ann(initial, max_lr, t))
            exp_mom.append(ann(0.95, 0.85, t))
        else:
            t = (s - end_up) / (total - 1 - end_up)
            exp_lr.append(ann(max_lr, low, t))
            exp_mom.append(ann(0.85, 0.95, t))
    lrs, moms = [], []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx(exp_lr, rel=1e-12)
    assert moms == pytest.approx(exp_mom, rel=1e-12)
    with pytest.raises(ValueError, match="Tried to step 21 times"):
        sched.step()


def test_one_cycle_three_phase_returns_to_initial_lr():
    opt = _opt(lr=0.5, cls=optim.Adam)
    sched = S.OneCycleLR(opt, max_lr=1.0, epochs=2, steps_per_epoch=10, three_phase=True,
                         anneal_strategy="linear")
    lrs = _lrs(sched, 20)
    assert lrs[0] == pytest.approx(0.04) and lrs[5] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(0.04) and lrs[19] == pytest.approx(0.04 / 1e4)
    assert opt.param_groups[0]["betas"][0] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        S.OneCycleLR(opt, max_lr=1.0)


def test_reduce_lr_on_plateau_patience_cooldown_min_lr():
    opt = _opt(lr=1.0)
    sched = S.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, cooldown=1,
                                min_lr=0.2)
    metrics = [10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    # bad epochs at 2,3,4 -> reduce at epoch 4 (index 4); cooldown 1 epoch, then 3 more bad
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25][:len(lrs)]
    for _ in range(10):
        sched.step(9)
    assert opt.param_groups[0]["lr"] == 0.2
    assert sched.get_last_lr() == [0.2]


@pytest.mark.parametrize("mode, threshold_mode, values, improves", [
    ("min", "rel", (100.0, 99.995), False), ("min", "rel", (100.0, 99.98), True),
    ("min", "abs", (100.0, 99.99995), False), ("max", "rel", (100.0, 100.02), True),
    ("max", "abs", (100.0, 100.00005), False),
])
def test_reduce_lr_on_plateau_threshold_modes(mode, threshold_mode, values, improves):
    sched = S.ReduceLROnPlateau(_opt(), mode=mode, threshold_mode=threshold_mode,
                                threshold=1e-4, patience=5)
    sched.step(values[0])
    sched.step(dtorch.tensor(values[1]))
    assert sched.num_bad_epochs == (0 if improves else 1)
    assert sched.best == pytest.approx(values[1] if improves else values[0])


def test_reduce_lr_on_plateau_argument_checks():
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        S.ReduceLROnPlateau(_opt(), factor=1.0)
    with pytest.raises(ValueError, match="mode sideways is unknown!"):
        S.ReduceLROnPlateau(_opt(), mode="sideways")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        S.ReduceLROnPlateau(_opt(groups=2), min_lr=[0.1])


def test_sequential_lr_warmup_then_decay():
    opt = _opt(lr=1.0)
    warm = S.LinearLR(opt, start_factor=0.1, total_iters=3)
    decay = S.ExponentialLR(opt, gamma=0.5)
    sched = S.SequentialLR(opt, schedulers=[warm, decay], milestones=[3])
    expected = [0.1, 0.4, 0.7, 1.0, 0.5, 0.25, 0.125]
    _close(_lrs(sched, 7), expected)
    with pytest.raises(ValueError, match="number of milestones to be equal to 0"):
        S.SequentialLR(opt, schedulers=[warm, decay], milestones=[])


def test_chained_scheduler_multiplies_effects():
    opt = _opt(lr=1.0)
    sched = S.ChainedScheduler([S.ConstantLR(opt, factor=0.1, total_iters=2),
                                S.ExponentialLR(opt, gamma=0.9)])
    expected = [0.1 * 0.9 ** 0 * 1, 0.1 * 0.9, 0.9 ** 2, 0.9 ** 3]
    _close(_lrs(sched, 4), expected)
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        S.ChainedScheduler([S.ReduceLROnPlateau(opt)])


def test_base_lrs_initial_lr_and_resume_checks():
    opt = _opt(lr=0.3)
    sched = S.StepLR(opt, step_size=2)
    assert sched.base_lrs == [0.3] and opt.param_groups[0]["initial_lr"] == 0.3
    assert sched.last_epoch == 0
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_opt(), step_size=2, last_epoch=3)
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        S.StepLR([], step_size=2)


def test_state_dict_round_trip():
    opt = _opt(lr=1.0)
    sched = S.StepLR(opt, step_size=2, gamma=0.5)
    _lrs(sched, 5)
    saved = pickle.loads(pickle.dumps(sched.state_dict()))
    assert "optimizer" not in saved and saved["last_epoch"] == 5
    opt2 = _opt(lr=1.0)
    sched2 = S.StepLR(opt2, step_size=2, gamma=0.5)
    sched2.load_state_dict(saved)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    assert _lrs(sched2, 4) == _lrs(sched, 4)


def test_sequential_state_dict_contains_children():
    opt = _opt()
    sched = S.SequentialLR(opt, [S.ConstantLR(opt), S.ExponentialLR(opt, 0.9)], [2])
    sd = sched.state_dict()
    assert len(sd["_schedulers"]) == 2 and "optimizer" not in sd["_schedulers"][0]


def test_warns_when_scheduler_steps_before_optimizer():
    opt = _opt()
    sched = S.StepLR(opt, step_size=1)
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)` before "
                                         r"`optimizer.step\(\)`"):
        sched.step()
    opt2 = _opt()
    sched2 = S.StepLR(opt2, step_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt2.step()
        sched2.step()
        sched2.get_last_lr()


def test_warns_when_optimizer_step_is_replaced_after_construction():
    opt = _opt()
    sched = S.StepLR(opt, step_size=1)
    opt.step = lambda closure=None: None
    opt.step()
    with pytest.warns(UserWarning, match="has been overridden after learning rate scheduler"):
        sched.step()


def test_get_lr_outside_step_hints_get_last_lr():
    sched = S.ExponentialLR(_opt(), gamma=0.5)
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        sched.get_lr()


def test_step_with_epoch_uses_closed_form_and_warns():
    sched = S.ExponentialLR(_opt(lr=1.0), gamma=0.5)
    sched.optimizer.step()
    with pytest.warns(UserWarning, match="The epoch parameter"):
        sched.step(4)
    assert sched.get_last_lr() == [0.0625]
