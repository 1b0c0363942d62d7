"""All tensor operations, each defined once.

Every public op is a plain function registered with :func:`register`; :func:`install` then puts it
in the ``dtorch`` namespace and on ``Tensor`` (method, operators, reflected operators and the
in-place ``name_`` variant), so ``dtorch.exp(x)``, ``x.exp()`` and operators reach the same code.
"""

_REGISTRY = {}


def register(name=None, *, method=True, function=True, operators=(), reflected=(),
             inplace=False, inplace_operators=()):
    """Decorator: record an op for :func:`install` (see the module docstring)."""

    def deco(fn):
        key = name or fn.__name__
        _REGISTRY[key] = dict(fn=fn, method=method, function=function, operators=operators,
                              reflected=reflected, inplace=inplace,
                              inplace_operators=inplace_operators)
        return fn

    return deco


def _reflect(fn):
    def reflected(self, other):
        return fn(other, self)

    reflected.__name__ = "r" + fn.__name__
    return reflected


def _make_inplace(fn):
    def inplace(self, *args, **kwargs):
        return self._inplace(fn, *args, **kwargs)

    inplace.__name__ = fn.__name__ + "_"
    inplace.__doc__ = f"In-place version of :func:`{fn.__name__}`."
    return inplace


def install(namespace, Tensor):
    """Install every registered op into ``namespace`` (a module dict) and onto ``Tensor``."""
    for key, spec in _REGISTRY.items():
        fn = spec["fn"]
        if spec["function"]:
            namespace[key] = fn
        if spec["method"]:
            setattr(Tensor, key, fn)
        for op in spec["operators"]:
            setattr(Tensor, op, fn)
        for op in spec["reflected"]:
            setattr(Tensor, op, _reflect(fn))
        if spec["inplace"]:
            # NOTE: in-place variants are not autocast (PyTorch: only out-of-place ops are).
            ip = _make_inplace(getattr(fn, "__wrapped__", fn))
            setattr(Tensor, key + "_", ip)
            for op in spec["inplace_operators"]:
                setattr(Tensor, op, ip)


def registered():
    """Names of all registered ops (the op-table coverage test reads this)."""
    return sorted(_REGISTRY)


from . import arith, compare, convert, index, linalg, reduce, shape  # noqa: E402,F401
