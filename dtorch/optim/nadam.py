"""NAdam, PyTorch's ``torch.optim.NAdam``: Adam with Nesterov momentum."""

import numpy as np

from .._tensor import Tensor
from .adam import _check_adam_args, _decay_and_moments
from .optimizer import Optimizer, _bump, _check_differentiable, _scalar_step, _updated, _zeros_like

__all__ = ["NAdam"]


def _nadam_update(param, grad, exp_avg, exp_avg_sq, mu_product, step, *, lr, beta1, beta2,
                  eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    """One NAdam step on raw arrays, in place (``step`` counts this step; ``mu_product`` is a
    float32 0-d array holding the product of the momentum schedule, updated here).

    mu_t = beta1 (1 - 0.5 * 0.96^(t psi)); m, v as in Adam; denom = sqrt(v / (1 - beta2^t)) + eps;
    param -= lr (1 - mu_t) / (1 - prod mu) g / denom
             + lr mu_{t+1} / (1 - prod mu mu_{t+1}) m / denom.
    """
    xp, grad, tmp = _decay_and_moments(
        param, grad, exp_avg, exp_avg_sq, lr=lr, beta1=beta1, beta2=beta2,
        weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
        maximize=maximize)
    bias_correction2 = 1 - beta2 ** step
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    mu_product *= mu
    prod = float(mu_product)
    denom = exp_avg_sq / bias_correction2
    xp.sqrt(denom, out=denom)
    denom += eps
    xp.multiply(grad, -lr * (1.0 - mu) / (1.0 - prod), out=tmp)
    tmp /= denom
    param += tmp
    xp.multiply(exp_avg, (-lr * mu_next) / (1.0 - prod * mu_next), out=tmp)
    tmp /= denom
    param += tmp


def _nadam_init(p, state):
    """NAdam's state, in PyTorch's key order: the step, the product of the momentum schedule
    (starting at 1), and the two moments."""
    state["step"] = _scalar_step()
    state["mu_product"] = Tensor._wrap(np.ones((), dtype=np.float32))
    state["exp_avg"] = _zeros_like(p)
    state["exp_avg_sq"] = _zeros_like(p)


class NAdam(Optimizer):
    r"""NAdam: Adam with Nesterov momentum (Dozat, 2016) and its momentum-decay schedule.

    .. math::
        \mu_t = \beta_1\left(1 - \tfrac12 0.96^{t\psi}\right),\quad
        \theta_t = \theta_{t-1} - \gamma\frac{\mu_{t+1} m_t / (1 - \prod_{i\le t+1}\mu_i)
        + (1-\mu_t) g_t / (1 - \prod_{i\le t}\mu_i)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): learning rate (default: 2e-3).
        betas (tuple[float, float]): coefficients (default: (0.9, 0.999)).
        eps (float): denominator term (default: 1e-8).
        weight_decay (float): weight decay (default: 0).
        momentum_decay (float): momentum decay :math:`\psi` (default: 4e-3).
        decoupled_weight_decay (bool): AdamW-style decay, i.e. NAdamW (default: False).
        maximize (bool): maximize the objective (default: False).
        foreach, capturable: accepted for PyTorch compatibility.

    Example:
        >>> opt = dtorch.optim.NAdam(model.parameters())
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            kw = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"],
                      momentum_decay=group["momentum_decay"],
                      decoupled_weight_decay=group["decoupled_weight_decay"],
                      maximize=group["maximize"])
            for p, g, state in self._params_with_grad(group, _nadam_init):
                step = _bump(state["step"])
                m, v, mp = state["exp_avg"], state["exp_avg_sq"], state["mu_product"]
                _nadam_update(p._data, g._data, m._data, v._data, mp._data, step, **kw)
                _updated(m, v, mp, p)
        return loss
