"""``parameters_to_vector`` and ``vector_to_parameters``: flatten parameters into one vector
and back (e.g. for second-order or evolutionary optimizers)."""

from ..._tensor import Tensor
from ...autograd import grad_mode

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_same_device(param, old):
    dev = param.get_device()
    if old is not None and dev != old:
        raise TypeError("Found two parameters on different devices, this is currently not "
                        "supported.")
    return dev


def parameters_to_vector(parameters):
    """One 1-D tensor holding all ``parameters`` flattened, in order (differentiable)."""
    from ... import cat

    device = None
    vec = []
    for param in parameters:
        device = _check_same_device(param, device)
        vec.append(param.reshape(-1))
    return cat(vec)


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D ``vec`` into ``parameters`` (in place, in order)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    device = None
    pointer = 0
    with grad_mode.no_grad():
        for param in parameters:
            device = _check_same_device(param, device)
            n = param.numel()
            if pointer + n > vec.numel():
                raise RuntimeError(f"vector of {vec.numel()} elements is too short for the "
                                   "parameters")
            param._data = vec._data[pointer:pointer + n].reshape(param._data.shape).astype(
                param._data.dtype, copy=True)
            param._vbox[0] += 1
            pointer += n
