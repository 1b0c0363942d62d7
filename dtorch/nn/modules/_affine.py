"""The per-feature affine parameters that batch, layer and group norm share."""

from ... import _creation
from .. import init
from ..parameter import Parameter


def register_affine(module, shape, affine, bias, device, dtype):
    """Register ``weight`` (and ``bias`` unless ``bias=False``) of ``shape``, or None for both
    when not ``affine``; values are set by :func:`reset_affine`."""
    def make():
        return Parameter(_creation.empty(shape, device=device, dtype=dtype))

    module.register_parameter("weight", make() if affine else None)
    module.register_parameter("bias", make() if affine and bias else None)


def reset_affine(module):
    """``weight`` to ones and ``bias`` to zeros (where they exist)."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)
