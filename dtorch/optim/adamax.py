"""Adamax, PyTorch's ``torch.optim.Adamax``: Adam with the infinity norm."""

from .._backend import get_array_module
from .adam import _check_adam_args
from .optimizer import Optimizer, _bump, _check_differentiable, _updated, _zero_state

__all__ = ["Adamax"]


def _adamax_update(param, grad, exp_avg, exp_inf, step, *, lr, beta1, beta2, eps, weight_decay,
                   maximize):
    """One Adamax step on raw arrays, in place (``step`` counts this step).

    m = lerp(m, g, 1 - beta1); u = max(beta2 u, |g| + eps); param -= lr / (1 - beta1^t) m / u.
    """
    xp = get_array_module(param)
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    tmp = xp.subtract(grad, exp_avg)
    tmp *= 1 - beta1
    exp_avg += tmp
    exp_inf *= beta2
    xp.abs(grad, out=tmp)
    tmp += eps
    xp.maximum(exp_inf, tmp, out=exp_inf)
    clr = lr / (1 - beta1 ** step)
    xp.multiply(exp_avg, -clr, out=tmp)
    tmp /= exp_inf
    param += tmp


class Adamax(Optimizer):
    r"""Adamax, the infinity-norm variant of Adam (Kingma & Ba, 2014, section 7.1).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon),\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\frac{m_t}{u_t}

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): learning rate (default: 2e-3).
        betas (tuple[float, float]): coefficients (default: (0.9, 0.999)).
        eps (float): term added to ``|g|`` (default: 1e-8).
        weight_decay (float): L2 penalty (default: 0).
        maximize (bool): maximize the objective (default: False).
        foreach, capturable: accepted for PyTorch compatibility.

    Example:
        >>> opt = dtorch.optim.Adamax(model.parameters())
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            kw = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"], maximize=group["maximize"])
            for p, g, state in self._params_with_grad(group, _zero_state("exp_avg", "exp_inf")):
                step = _bump(state["step"])
                m, u = state["exp_avg"], state["exp_inf"]
                _adamax_update(p._data, g._data, m._data, u._data, step, **kw)
                _updated(m, u, p)
        return loss
