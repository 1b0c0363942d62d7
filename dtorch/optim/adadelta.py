"""Adadelta, PyTorch's ``torch.optim.Adadelta``."""

from .._backend import get_array_module
from .._tensor import Tensor
from .optimizer import Optimizer, _bump, _check_differentiable, _updated, _zero_state

__all__ = ["Adadelta"]


def _adadelta_update(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay,
                     maximize):
    """One Adadelta step on raw arrays, in place.

    v = rho v + (1 - rho) g^2; delta = sqrt(u + eps) / sqrt(v + eps) * g;
    u = rho u + (1 - rho) delta^2; param -= lr delta.
    """
    xp = get_array_module(param)
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    tmp = xp.multiply(grad, 1 - rho)
    tmp *= grad
    square_avg *= rho
    square_avg += tmp
    xp.add(square_avg, eps, out=tmp)
    xp.sqrt(tmp, out=tmp)
    delta = acc_delta + eps
    xp.sqrt(delta, out=delta)
    delta /= tmp
    delta *= grad
    acc_delta *= rho
    xp.multiply(delta, 1 - rho, out=tmp)
    tmp *= delta
    acc_delta += tmp
    delta *= -lr
    param += delta


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012): step sizes from running averages of squared gradients and
    squared updates.

    .. math::
        v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad
        \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t,\quad
        u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2,\quad \theta_t = \theta_{t-1} - \gamma\Delta_t

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): coefficient scaling the delta (default: 1.0).
        rho (float): running-average coefficient (default: 0.9).
        eps (float): term added inside the square roots (default: 1e-6).
        weight_decay (float): L2 penalty (default: 0).
        maximize (bool): maximize the objective (default: False).
        foreach, capturable: accepted for PyTorch compatibility.

    Example:
        >>> opt = dtorch.optim.Adadelta(model.parameters())
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            kw = dict(lr=float(group["lr"]), rho=group["rho"], eps=group["eps"],
                      weight_decay=group["weight_decay"], maximize=group["maximize"])
            init = _zero_state("square_avg", "acc_delta")
            for p, g, state in self._params_with_grad(group, init):
                _bump(state["step"])
                v, u = state["square_avg"], state["acc_delta"]
                _adadelta_update(p._data, g._data, v._data, u._data, **kw)
                _updated(v, u, p)
        return loss
