"""Stochastic gradient descent with momentum, PyTorch's ``torch.optim.SGD``."""

from .._backend import get_array_module
from .._tensor import Tensor
from .optimizer import Optimizer, _check_differentiable, _updated

__all__ = ["SGD"]


def _sgd_update(param, grad, buf, *, lr, momentum, dampening, weight_decay, nesterov,
                maximize):
    """One SGD step on raw arrays; returns the momentum buffer (new on the first step).

    g = -grad if maximize; g += weight_decay * param; with momentum: buf = g on the first step,
    else buf = momentum * buf + (1 - dampening) * g, and g = g + momentum * buf (Nesterov) or
    g = buf; finally param -= lr * g.
    """
    xp = get_array_module(param)
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        if buf is None:
            buf = grad.copy()
        else:
            buf *= momentum
            if dampening == 0:
                buf += grad
            else:
                buf += (1 - dampening) * grad
        if nesterov:
            grad = grad + momentum * buf
        else:
            grad = buf
    step = xp.multiply(grad, -lr)
    param += step
    return buf


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    .. math::
        g_t = \nabla f(\theta_{t-1}) + \lambda \theta_{t-1},\quad
        b_t = \mu b_{t-1} + (1 - \tau) g_t\ (b_1 = g_1),\quad
        \theta_t = \theta_{t-1} - \gamma\,(g_t + \mu b_t \text{ if nesterov else } b_t)

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): learning rate :math:`\gamma` (default: 1e-3).
        momentum (float): momentum factor :math:`\mu` (default: 0).
        dampening (float): dampening :math:`\tau` for momentum (default: 0).
        weight_decay (float): L2 penalty :math:`\lambda` (default: 0).
        nesterov (bool): use Nesterov momentum (default: False).
        maximize (bool): maximize the objective instead of minimizing (default: False).
        foreach, fused: accepted for PyTorch compatibility; dtorch has one implementation.

    Example:
        >>> opt = dtorch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            momentum = group["momentum"]
            kw = dict(lr=lr, momentum=momentum, dampening=group["dampening"],
                      weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                      maximize=group["maximize"])
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                # NOTE: without momentum SGD keeps no state (no empty entries in state_dict).
                state = self.state[p] if momentum != 0 else {}
                buf = state.get("momentum_buffer")
                new = _sgd_update(p._data, g._data, None if buf is None else buf._data, **kw)
                if momentum != 0 and buf is None:
                    state["momentum_buffer"] = Tensor._wrap(new)
                _updated(buf, p)
        return loss
