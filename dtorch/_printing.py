"""Tensor printing, character for character as PyTorch 2.x prints.

``repr(t)`` is ``tensor(<data>, <suffixes>)``. The data part follows PyTorch's algorithm:

* One formatter per tensor decides how every element is written, from the nonzero finite values
  (only the printed ones when the tensor is summarised): integer-valued floats print as ``1.``;
  scientific notation (``1.0000e+05``) is used when max/min of the absolute values exceeds 1000,
  the largest exceeds 1e8 or the smallest is below 1e-4; otherwise fixed ``precision`` digits.
  Every element is right-aligned to the widest one.
* Rows of a 1-d slice wrap so a line holds ``(linewidth - indent) // (width + 2)`` elements;
  nested dimensions are separated by ``ndim - 1`` newlines and indented under their bracket.
* A tensor with more than ``threshold`` elements is summarised: each dimension keeps
  ``edgeitems`` entries at each end, with ``...`` in between.

Suffixes follow in PyTorch's order: ``device=``, ``size=`` (empty or fully elided tensors),
``dtype=`` (unless the default float dtype, int64 or bool; always for empty non-default tensors),
then ``grad_fn=<...>`` or ``requires_grad=True``. A suffix that would overflow ``linewidth``
starts a new line.
"""

import contextlib
import math

import numpy as np

from . import _backend
from . import _dtype as D

__all__ = ["get_printoptions", "parameter_repr", "printoptions", "set_printoptions",
           "tensor_repr"]

_DEFAULTS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80}
_PROFILES = {
    "default": _DEFAULTS,
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}
_OPTS = dict(_DEFAULTS, sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """Set the options that tensor printing uses (PyTorch's ``torch.set_printoptions``).

    Args:
        precision: digits after the decimal point for floats (default 4).
        threshold: element count above which a tensor is summarised with ``...`` (default 1000).
        edgeitems: items kept at each end of each summarised dimension (default 3).
        linewidth: characters per line before 1-d rows and suffixes wrap (default 80).
        profile: ``'default'``, ``'short'`` (precision 2, edgeitems 2) or ``'full'`` (never
            summarise); applied first, the explicit arguments then override it. Other names are
            ignored, as in PyTorch.
        sci_mode: True or False forces or forbids scientific notation; None (the default) lets
            the formatter choose. As in PyTorch, every call resets it to the value passed.

    Example::

        >>> dtorch.set_printoptions(precision=2)
        >>> dtorch.tensor([1.12345])
        tensor([1.12])
        >>> dtorch.set_printoptions(profile='default')
    """
    if profile in _PROFILES:
        _OPTS.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold),
                        ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if value is not None:
            _OPTS[name] = value
    _OPTS["sci_mode"] = sci_mode


def get_printoptions():
    """The current print options, as a dict that ``set_printoptions(**d)`` accepts."""
    return dict(_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """Context manager that sets print options (as :func:`set_printoptions`) and restores them."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


# --------------------------------------------------------------------------- element formatting
class _Formatter:
    """Decides, once per tensor, how each element is written and how wide the widest one is."""

    def __init__(self, arr, floating):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        precision = _OPTS["precision"]
        if not floating:
            for value in set(arr.ravel().tolist()):
                self.max_width = max(self.max_width, len(f"{value}"))
            return
        vals = arr.ravel().astype(np.float64)
        vals = vals[np.isfinite(vals) & (vals != 0)]
        if vals.size == 0:
            return
        absvals = np.abs(vals)
        lo, hi = absvals.min(), absvals.max()
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        if _OPTS["sci_mode"] is None:
            self.sci_mode = bool(hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4)
        else:
            self.sci_mode = bool(_OPTS["sci_mode"])
        if self.sci_mode:
            spec, extra = f".{precision}e", 0
        elif self.int_mode:
            spec, extra = ".0f", 1  # room for the trailing "."
        else:
            spec, extra = f".{precision}f", 0
        for value in set(vals.tolist()):
            self.max_width = max(self.max_width, len(format(value, spec)) + extra)

    def format(self, value):
        """``value`` (a Python number) right-aligned to the common width."""
        if not self.floating:
            s = f"{value}"
        elif self.sci_mode:
            s = format(value, f".{_OPTS['precision']}e")
        elif self.int_mode:
            s = f"{value:.0f}"
            if math.isfinite(value):
                s += "."
        else:
            s = format(value, f".{_OPTS['precision']}f")
        return s.rjust(self.max_width)


def _summarized(arr):
    """The elements a summarised print shows (edge items of every dimension), for the formatter."""
    edge = _OPTS["edgeitems"]
    if arr.ndim == 0:
        return arr
    if arr.ndim == 1:
        if arr.shape[0] > 2 * edge:
            # NOTE: arr[-0:] is the whole array, as PyTorch's self[-0:] is: keep that quirk.
            return np.concatenate((arr[:edge], arr[-edge:]))
        return arr
    if not edge:
        return arr[(slice(0, 0),) * arr.ndim]
    n = arr.shape[0]
    rows = list(range(edge)) + list(range(n - edge, n)) if n > 2 * edge else range(n)
    return np.stack([_summarized(arr[i]) for i in rows])


def _vector_str(arr, indent, summarize, fmt):
    edge, linewidth = _OPTS["edgeitems"], _OPTS["linewidth"]
    per_line = max(1, math.floor((linewidth - indent) / (fmt.max_width + 2)))
    if summarize and not edge:
        data = ["..."]
    elif summarize and arr.shape[0] > 2 * edge:
        data = ([fmt.format(v) for v in arr[:edge].tolist()] + [" ..."]
                + [fmt.format(v) for v in arr[-edge:].tolist()])
    else:
        data = [fmt.format(v) for v in arr.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(arr, indent, summarize, fmt):
    if arr.ndim == 0:
        return fmt.format(arr.item())
    if arr.ndim == 1:
        return _vector_str(arr, indent, summarize, fmt)
    edge, n = _OPTS["edgeitems"], arr.shape[0]
    if summarize and n > 2 * edge:
        slices = ([_nested_str(arr[i], indent + 1, summarize, fmt) for i in range(edge)]
                  + ["..."]
                  + [_nested_str(arr[i], indent + 1, summarize, fmt) for i in range(n - edge, n)])
    else:
        slices = [_nested_str(arr[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _data_str(arr, indent, floating):
    """The bracketed data of a host array, its rows indented for a prefix of ``indent`` chars."""
    if arr.size == 0:
        return "[]"
    summarize = arr.size > _OPTS["threshold"]
    fmt = _Formatter(_summarized(arr) if summarize else arr, floating)
    return _nested_str(arr, indent, summarize, fmt)


def _add_suffixes(text, suffixes, indent):
    linewidth = _OPTS["linewidth"]
    parts = [text]
    last_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_len + len(suffix) + 2 > linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


# --------------------------------------------------------------------------- tensors
def _parameter_class(cls):
    """dtorch's ``nn.Parameter`` if ``cls`` is it or derives from it, else None (found by name so
    that printing does not import ``nn``)."""
    for c in cls.__mro__:
        if c.__name__ == "Parameter" and c.__module__.startswith("dtorch."):
            return c
    return None


def tensor_repr(t, *, tensor_contents=None):
    """``repr`` of a dtorch Tensor, identical to PyTorch's (with ``dtorch.`` dtype names).

    Args:
        t: the tensor.
        tensor_contents: a string printed instead of the data (PyTorch's keyword of the same
            name, used by subclasses that show something else); suffixes are still added.
    """
    from ._tensor import Tensor

    cls = type(t)
    param_cls = _parameter_class(cls)
    is_plain = cls is Tensor or (param_cls is not None and cls is param_cls)
    prefix = "tensor(" if is_plain else f"{cls.__name__}("
    indent = len(prefix)
    arr = np.asarray(_backend.to_device(t._data, None))
    dtype = t.dtype
    default = D.get_default_dtype()

    suffixes = []
    device = t.device
    if device.type != "cpu":
        suffixes.append(f"device='{device}'")
    if arr.size == 0:
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        if dtype is not default:
            suffixes.append(f"dtype={dtype}")
        data = "[]"
    else:
        if not _OPTS["edgeitems"]:
            suffixes.append(f"size={tuple(arr.shape)}")
        if dtype not in (default, D.int64, D.bool_):
            suffixes.append(f"dtype={dtype}")
        data = None
    if tensor_contents is not None:
        data = tensor_contents
    elif data is None:
        data = _data_str(arr, indent, dtype.is_floating_point)

    grad_fn = t.grad_fn
    if grad_fn is not None:
        name = grad_fn.name() if hasattr(grad_fn, "name") else type(grad_fn).__name__
        suffixes.append(f"grad_fn=<{name}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")

    text = _add_suffixes(prefix + data, suffixes, indent)
    if param_cls is not None and not is_plain:
        text = f"Parameter({text})"
    return text


def parameter_repr(p):
    """``repr`` of an ``nn.Parameter``: ``Parameter containing:`` then the tensor's repr."""
    return "Parameter containing:\n" + tensor_repr(p)
