"""``gradcheck``: compare autograd's gradients with float64 central finite differences."""

import numpy as np


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def numerical_jacobians(fn, inputs, eps):
    """For each differentiable input, the Jacobian d(flattened outputs)/d(flattened input)."""
    from .._tensor import Tensor
    from .grad_mode import no_grad

    jacs = []
    with no_grad():
        for t in inputs:
            if not (isinstance(t, Tensor) and t._requires_grad):
                jacs.append(None)
                continue
            flat = t._data.reshape(-1)
            cols = []
            for k in range(flat.size):
                orig = flat[k].item()
                flat[k] = orig + eps
                plus = _flat_outputs(fn(*inputs))
                flat[k] = orig - eps
                minus = _flat_outputs(fn(*inputs))
                flat[k] = orig
                cols.append((plus - minus) / (2 * eps))
            jacs.append(np.stack(cols, axis=1) if cols else None)
    return jacs


def _flat_outputs(out):
    from .. import _backend

    return np.concatenate([_backend.to_device(o._data, None).astype(np.float64).reshape(-1)
                           for o in _as_tuple(out) if o._data.dtype.kind == "f"])


def analytical_jacobians(fn, inputs):
    from .. import _backend
    from .._tensor import Tensor
    from . import grad as autograd_grad

    outs = [o for o in _as_tuple(fn(*inputs)) if o._requires_grad]
    diff_inputs = [t for t in inputs if isinstance(t, Tensor) and t._requires_grad]
    rows = []
    for o in outs:
        for k in range(o._data.size):
            seed = _backend.get_array_module(o._data).zeros(o._data.shape, dtype=o._data.dtype)
            seed.reshape(-1)[k] = 1
            gs = autograd_grad([o], diff_inputs, [Tensor._wrap(seed)], retain_graph=True,
                               allow_unused=True)
            rows.append([np.zeros(t._data.size) if g is None else
                         _backend.to_device(g._data, None).reshape(-1) for g, t in
                         zip(gs, diff_inputs)])
    return [np.array([r[i] for r in rows]).reshape(-1, t._data.size)
            for i, t in enumerate(diff_inputs)]


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **_):
    """True if the analytical gradients of ``func`` at ``inputs`` match central differences.
    Use float64 inputs with ``requires_grad=True``; raises RuntimeError (with the worst entry)
    on a mismatch when ``raise_exception``."""
    from .._tensor import Tensor

    inputs = _as_tuple(inputs)
    for t in inputs:
        if isinstance(t, Tensor) and t._requires_grad and t._data.dtype != np.float64:
            import warnings

            warnings.warn("Input #0 requires gradient and is not a double precision floating "
                          "point. This check will likely fail if all the inputs are not of "
                          "double precision floating point.", UserWarning, stacklevel=2)
    numeric = [j for j in numerical_jacobians(func, inputs, eps) if j is not None]
    analytic = analytical_jacobians(func, inputs)
    for i, (n, a) in enumerate(zip(numeric, analytic)):
        if n.shape != a.shape or not np.allclose(a, n, rtol=rtol, atol=atol):
            if raise_exception:
                err = np.abs(a - n).max() if n.shape == a.shape else float("nan")
                raise RuntimeError(
                    f"Jacobian mismatch for output 0 with respect to input {i},\n"
                    f"numerical:{n}\nanalytical:{a}\nmax abs difference: {err}")
            return False
    return True
