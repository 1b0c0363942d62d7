"""dtorch: a PyTorch-compatible deep-learning framework on NumPy (CPU) and CuPy (NVIDIA GPUs).

``import dtorch as torch`` runs ordinary PyTorch code: tensors, autograd, ``nn``, ``optim``,
``utils.data``, save/load and, through ``dtorch.distributed``, data-parallel training over MPI
and NCCL.
"""

import numpy as _np

# NOTE: PyTorch follows IEEE semantics silently (1/0 is inf, log(0) is -inf); NumPy would warn.
_np.seterr(all="ignore")

from ._host_memory import keep_freed_memory as _keep_freed_memory  # noqa: E402

_keep_freed_memory()

from . import _dtype, autograd, cuda, futures, return_types  # noqa: E402
from . import ops as _ops  # noqa: E402
from ._creation import (  # noqa: E402
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    logspace,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    range,  # noqa: A004
    tensor,
    zeros,
    zeros_like,
)
from ._creation import legacy_types as _legacy_types  # noqa: E402
from ._device import device  # noqa: E402
from ._dtype import bool_ as bool  # noqa: E402, A004
from ._dtype import (  # noqa: E402
    double,
    dtype,
    float,  # noqa: A004
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,  # noqa: A004
    int8,
    int16,
    int32,
    int64,
    long,
    promote_types,
    set_default_dtype,
    short,
    uint8,
)
from ._printing import set_printoptions  # noqa: E402
from ._tensor import Size, Tensor  # noqa: E402
from .autograd import enable_grad, inference_mode, no_grad, set_grad_enabled  # noqa: E402
from .autograd.grad_mode import is_grad_enabled, is_inference_mode_enabled  # noqa: E402
from .random import (  # noqa: E402
    Generator,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    seed,
    set_rng_state,
)

globals().update(_legacy_types(cuda=False))


def is_tensor(obj):
    """True if ``obj`` is a dtorch Tensor."""
    return isinstance(obj, Tensor)


def numel(input):
    return input.numel()


def is_floating_point(input):
    return input.is_floating_point()


def result_type(tensor1, tensor2):
    """The dtype PyTorch's promotion gives an op on these operands."""
    from .ops._util import result_dtype

    return result_dtype(tensor1, tensor2)


def can_cast(from_, to):
    return from_._category <= to._category


def clone(input, *, memory_format=None):
    return input.clone()


def detach(input):
    return input.detach()


__version__ = "0.1.0"

# Subpackages that build on the core (they import dtorch themselves, hence last).
from . import amp, nn, optim, utils, vision  # noqa: E402
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402
from .serialization import load, save  # noqa: E402
from .utils.dlpack import from_dlpack  # noqa: E402

# NOTE: last, so that ops registered by subpackages (softmax, log_softmax in nn.functional) are
# installed by the same loop as the core ops.
_ops.install(globals(), Tensor)
