"""RMSprop, PyTorch's ``torch.optim.RMSprop``."""

from .._backend import get_array_module
from .._tensor import Tensor
from .optimizer import Optimizer, _bump, _check_differentiable, _updated, _zero_state

__all__ = ["RMSprop"]


def _rmsprop_update(param, grad, square_avg, grad_avg, buf, *, lr, alpha, eps, weight_decay,
                    momentum, maximize):
    """One RMSprop step on raw arrays, in place.

    v = alpha v + (1 - alpha) g^2; centered: gbar = lerp(gbar, g, 1 - alpha) and
    avg = sqrt(v - gbar^2) + eps, else avg = sqrt(v) + eps; with momentum
    buf = momentum buf + g / avg and param -= lr buf, else param -= lr g / avg.
    """
    xp = get_array_module(param)
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    avg = xp.multiply(grad, 1 - alpha)
    avg *= grad
    square_avg *= alpha
    square_avg += avg
    if grad_avg is not None:
        xp.subtract(grad, grad_avg, out=avg)
        avg *= 1 - alpha
        grad_avg += avg
        xp.multiply(grad_avg, grad_avg, out=avg)
        xp.subtract(square_avg, avg, out=avg)
        xp.sqrt(avg, out=avg)
    else:
        xp.sqrt(square_avg, out=avg)
    avg += eps
    if momentum > 0:
        buf *= momentum
        xp.divide(grad, avg, out=avg)
        buf += avg
        xp.multiply(buf, -lr, out=avg)
    else:
        xp.divide(grad * -lr, avg, out=avg)
    param += avg


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), optionally centered and with momentum.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\quad
        \theta_t = \theta_{t-1} - \gamma \frac{g_t}{\sqrt{v_t} + \epsilon}

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): learning rate (default: 1e-2).
        alpha (float): smoothing constant (default: 0.99).
        eps (float): denominator term for numerical stability (default: 1e-8).
        weight_decay (float): L2 penalty (default: 0).
        momentum (float): momentum factor (default: 0).
        centered (bool): normalize by the estimated variance of the gradient (default: False).
        maximize (bool): maximize the objective (default: False).
        capturable, foreach: accepted for PyTorch compatibility.

    Example:
        >>> opt = dtorch.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            momentum, centered = group["momentum"], group["centered"]
            kw = dict(lr=float(group["lr"]), alpha=group["alpha"], eps=group["eps"],
                      weight_decay=group["weight_decay"], momentum=momentum,
                      maximize=group["maximize"])
            init = _zero_state("square_avg", *(("momentum_buffer",) if momentum > 0 else ()),
                               *(("grad_avg",) if centered else ()))
            for p, g, state in self._params_with_grad(group, init):
                _bump(state["step"])
                square_avg = state["square_avg"]
                grad_avg = state["grad_avg"] if centered else None
                buf = state["momentum_buffer"] if momentum > 0 else None
                _rmsprop_update(p._data, g._data, square_avg._data,
                                None if grad_avg is None else grad_avg._data,
                                None if buf is None else buf._data, **kw)
                _updated(square_avg, grad_avg, buf, p)
        return loss
