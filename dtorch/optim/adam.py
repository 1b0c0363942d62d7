"""Adam, PyTorch's ``torch.optim.Adam`` (AdamW is Adam with decoupled weight decay)."""

from .._backend import get_array_module
from .._tensor import Tensor
from .optimizer import Optimizer, _bump, _check_differentiable, _updated, _zero_state

__all__ = ["Adam"]


def _check_adam_args(lr, betas, eps, weight_decay):
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def _decay_and_moments(param, grad, exp_avg, exp_avg_sq, *, lr, beta1, beta2, weight_decay,
                       decoupled_weight_decay, maximize):
    """The part Adam, RAdam and NAdam share, in place: maximize, weight decay (L2 or decoupled),
    then m = lerp(m, g, 1 - beta1) and v = beta2 v + (1 - beta2) g^2. Returns (xp, grad, tmp),
    ``tmp`` a scratch array of the parameter's shape."""
    xp = get_array_module(param)
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    tmp = xp.subtract(grad, exp_avg)
    tmp *= 1 - beta1
    exp_avg += tmp
    exp_avg_sq *= beta2
    xp.multiply(grad, 1 - beta2, out=tmp)
    tmp *= grad
    exp_avg_sq += tmp
    return xp, grad, tmp


def _adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, *, lr, beta1, beta2,
                 eps, weight_decay, decoupled_weight_decay, maximize):
    """One Adam step on raw arrays, in place (``step`` already counts this step).

    m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2; (amsgrad: vmax = max(vmax, v));
    param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    """
    xp, grad, tmp = _decay_and_moments(
        param, grad, exp_avg, exp_avg_sq, lr=lr, beta1=beta1, beta2=beta2,
        weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
        maximize=maximize)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    if max_exp_avg_sq is not None:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        xp.sqrt(max_exp_avg_sq, out=tmp)
    else:
        xp.sqrt(exp_avg_sq, out=tmp)
    tmp /= bias_correction2_sqrt
    tmp += eps
    xp.divide(exp_avg, tmp, out=tmp)
    tmp *= -(lr / bias_correction1)
    param += tmp


class Adam(Optimizer):
    r"""Adam: adaptive moment estimation (Kingma & Ba, 2014).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,
        \quad \theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}
        \frac{m_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float): learning rate (default: 1e-3).
        betas (tuple[float, float]): coefficients of the running averages of the gradient and
            its square (default: (0.9, 0.999)).
        eps (float): added to the denominator for numerical stability (default: 1e-8).
        weight_decay (float): L2 penalty added to the gradient, or, with
            ``decoupled_weight_decay=True``, applied to the parameters as AdamW does
            (default: 0).
        amsgrad (bool): use the maximum of past squared-gradient averages (default: False).
        maximize (bool): maximize the objective (default: False).
        foreach, capturable, fused: accepted for PyTorch compatibility; dtorch has one
            implementation.
        decoupled_weight_decay (bool): AdamW's decoupled weight decay (default: False).

    Example:
        >>> opt = dtorch.optim.Adam(model.parameters(), lr=1e-3)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", False)

    def step(self, closure=None):
        """Perform one optimization step; returns ``closure()``'s loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            amsgrad = group["amsgrad"]
            kw = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"],
                      decoupled_weight_decay=group["decoupled_weight_decay"],
                      maximize=group["maximize"])
            init = _zero_state("exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ()))
            for p, g, state in self._params_with_grad(group, init):
                step = _bump(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                vmax = state["max_exp_avg_sq"] if amsgrad else None
                _adam_update(p._data, g._data, m._data, v._data,
                             None if vmax is None else vmax._data, step, **kw)
                _updated(m, v, vmax, p)
        return loss
