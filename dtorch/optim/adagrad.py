"""Adagrad, PyTorch's ``torch.optim.Adagrad``."""

from .._backend import get_array_module
from .._tensor import Tensor
from .optimizer import Optimizer, _bump, _check_differentiable, _scalar_step, _updated

__all__ = ["Adagrad"]


def _adagrad_update(param, grad, state_sum, step, *, lr, lr_decay, weight_decay, eps,
                    maximize):
    """One Adagrad step on raw arrays, in place (``step`` counts this step).

    sum += g^2; param -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps).
    """
    xp = get_array_module(param)
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    std = xp.multiply(grad, grad)
    state_sum += std
    xp.sqrt(state_sum, out=std)
    std += eps
    xp.divide(grad * -clr, std, out=std)
    param += std


class Adagrad(Optimizer):
    r"""Adagrad: per-coordinate learning rates scaled by the accumulated squared gradients.

    .. math::
        s_t = s_{t-1} + g_t^2,\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1 + (t-1)\eta}\frac{g_t}{\sqrt{s_t} + \epsilon}

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): learning rate (default: 1e-2).
        lr_decay (float): learning-rate decay :math:`\eta` (default: 0).
        weight_decay (float): L2 penalty (default: 0).
        initial_accumulator_value (float): starting value of the sums (default: 0).
        eps (float): denominator term for numerical stability (default: 1e-10).
        maximize (bool): maximize the objective (default: False).
        foreach, fused: accepted for PyTorch compatibility.

    Example:
        >>> opt = dtorch.optim.Adagrad(model.parameters(), lr=0.1)
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        # NOTE: as in PyTorch the sums exist from construction, so state_dict() before the
        # first step already carries them.
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = _scalar_step()
                xp = get_array_module(p._data)
                state["sum"] = Tensor._wrap(
                    xp.full_like(p._data, group["initial_accumulator_value"]))

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            kw = dict(lr=float(group["lr"]), lr_decay=group["lr_decay"],
                      weight_decay=group["weight_decay"], eps=group["eps"],
                      maximize=group["maximize"])
            for p, g, state in self._params_with_grad(group):
                step = _bump(state["step"])
                _adagrad_update(p._data, g._data, state["sum"]._data, step, **kw)
                _updated(state["sum"], p)
        return loss
