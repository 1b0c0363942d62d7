"""RAdam, PyTorch's ``torch.optim.RAdam``: Adam with a rectified adaptive learning rate."""

from .adam import _check_adam_args, _decay_and_moments
from .optimizer import Optimizer, _bump, _check_differentiable, _updated, _zero_state

__all__ = ["RAdam"]


def _radam_update(param, grad, exp_avg, exp_avg_sq, step, *, lr, beta1, beta2, eps,
                  weight_decay, decoupled_weight_decay, maximize):
    """One RAdam step on raw arrays, in place (``step`` counts this step).

    m, v as in Adam; rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t). While rho_t <= 5 the step is
    plain momentum, param -= lr m / (1 - beta1^t); after, it is scaled by the adaptive term
    sqrt(1 - beta2^t) / (sqrt(v) + eps) and the rectification r_t.
    """
    xp, grad, tmp = _decay_and_moments(
        param, grad, exp_avg, exp_avg_sq, lr=lr, beta1=beta1, beta2=beta2,
        weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
        maximize=maximize)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
    xp.divide(exp_avg, bias_correction1, out=tmp)
    tmp *= lr
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        adaptive = xp.sqrt(exp_avg_sq)
        adaptive += eps
        xp.divide(bias_correction2 ** 0.5, adaptive, out=adaptive)
        tmp *= adaptive
        tmp *= rect
    param -= tmp


class RAdam(Optimizer):
    r"""RAdam: Adam with variance rectification (Liu et al., 2019).

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1,\quad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t},\quad
        \theta_t = \theta_{t-1} - \gamma\,\hat m_t\,
        \begin{cases} r_t \sqrt{1-\beta_2^t} / (\sqrt{v_t} + \epsilon) & \rho_t > 5 \\
        1 & \text{otherwise}\end{cases}

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): learning rate (default: 1e-3).
        betas (tuple[float, float]): coefficients (default: (0.9, 0.999)).
        eps (float): denominator term (default: 1e-8).
        weight_decay (float): weight decay (default: 0).
        decoupled_weight_decay (bool): AdamW-style decay (default: False).
        maximize (bool): maximize the objective (default: False).
        foreach, capturable: accepted for PyTorch compatibility.

    Example:
        >>> opt = dtorch.optim.RAdam(model.parameters())
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            kw = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"],
                      decoupled_weight_decay=group["decoupled_weight_decay"],
                      maximize=group["maximize"])
            for p, g, state in self._params_with_grad(group, _zero_state("exp_avg", "exp_avg_sq")):
                step = _bump(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                _radam_update(p._data, g._data, m._data, v._data, step, **kw)
                _updated(m, v, p)
        return loss
