"""The legacy ``Variable`` wrapper: since PyTorch 0.4 a Variable is simply a Tensor."""


class _VariableMeta(type):
    def __instancecheck__(cls, obj):
        from .._tensor import Tensor

        return isinstance(obj, Tensor)

    def __call__(cls, data, requires_grad=False, volatile=False):
        """``Variable(tensor, requires_grad=...)`` returns a tensor sharing ``data``'s storage."""
        t = data.detach()
        if requires_grad:
            t.requires_grad_(True)
        return t


class Variable(metaclass=_VariableMeta):
    """``Variable(tensor, requires_grad=False)``: kept so that pre-0.4 code (and the seeds) runs;
    returns a plain Tensor."""
