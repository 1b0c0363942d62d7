"""Padding layers: zero, constant, reflection, replication and circular, in 1-3 d."""

from .. import functional as F
from .module import Module

__all__ = ["ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d",
           "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d",
           "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d",
           "CircularPad2d", "CircularPad3d"]


def _expand(padding, nd):
    if isinstance(padding, int):
        return (padding,) * (2 * nd)
    padding = tuple(padding)
    if len(padding) != 2 * nd:
        raise ValueError(f"expected {2 * nd} padding values, got {len(padding)}: {padding}")
    return padding


class _PadNd(Module):
    _nd = 1
    _mode = "constant"

    def __init__(self, padding):
        super().__init__()
        self.padding = _expand(padding, self._nd)

    def forward(self, input):
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = value

    def forward(self, input):
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with ``value``: ``padding`` is an int or ``(left, right)``."""

    _nd = 1


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dims with ``value``: ``(left, right, top, bottom)``."""

    _nd = 2


class ConstantPad3d(_ConstantPadNd):
    """Pad the last three dims with ``value``."""

    _nd = 3


class _ZeroPadNd(ConstantPad1d):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ZeroPad1d(_ZeroPadNd):
    """Pad the last dim with zeros."""

    _nd = 1


class ZeroPad2d(_ZeroPadNd):
    """Pad the last two dims with zeros: ``(left, right, top, bottom)``."""

    _nd = 2


class ZeroPad3d(_ZeroPadNd):
    """Pad the last three dims with zeros."""

    _nd = 3


def _mode_pad(name, nd, mode, doc):
    return type(name, (_PadNd,), {"_nd": nd, "_mode": mode, "__doc__": doc,
                                  "__module__": __name__})


ReflectionPad1d = _mode_pad("ReflectionPad1d", 1, "reflect", "Mirror-pad the last dim.")
ReflectionPad2d = _mode_pad("ReflectionPad2d", 2, "reflect", "Mirror-pad the last two dims.")
ReflectionPad3d = _mode_pad("ReflectionPad3d", 3, "reflect", "Mirror-pad the last three dims.")
ReplicationPad1d = _mode_pad("ReplicationPad1d", 1, "replicate", "Edge-pad the last dim.")
ReplicationPad2d = _mode_pad("ReplicationPad2d", 2, "replicate", "Edge-pad the last two dims.")
ReplicationPad3d = _mode_pad("ReplicationPad3d", 3, "replicate",
                             "Edge-pad the last three dims.")
CircularPad1d = _mode_pad("CircularPad1d", 1, "circular", "Wrap-pad the last dim.")
CircularPad2d = _mode_pad("CircularPad2d", 2, "circular", "Wrap-pad the last two dims.")
CircularPad3d = _mode_pad("CircularPad3d", 3, "circular", "Wrap-pad the last three dims.")
