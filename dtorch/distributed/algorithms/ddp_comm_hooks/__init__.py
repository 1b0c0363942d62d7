"""DDP communication hooks: :mod:`.default_hooks` and :class:`DDPCommHookType`.

Example::

    >>> from dtorch.distributed.algorithms.ddp_comm_hooks import default_hooks
    >>> ddp_model.register_comm_hook(None, default_hooks.fp16_compress_hook)
"""

import enum
from functools import partial

from . import default_hooks
from . import default_hooks as default

__all__ = ["DDPCommHookType", "default_hooks", "register_ddp_comm_hook"]


def _ddp_comm_hook_wrapper(comm_hook, model, state):
    model.register_comm_hook(state, comm_hook)


# NOTE: a partial is an enum member only when marked so from Python 3.13 on (enum.member, 3.11+).
_member = getattr(enum, "member", lambda value: value)


class DDPCommHookType(enum.Enum):
    """The built-in hooks by name: ``DDPCommHookType.ALLREDUCE.value(model=m, state=None)``
    registers :func:`~.default_hooks.allreduce_hook` on DDP model ``m``."""

    ALLREDUCE = _member(partial(_ddp_comm_hook_wrapper, comm_hook=default.allreduce_hook))
    FP16_COMPRESS = _member(partial(_ddp_comm_hook_wrapper,
                                    comm_hook=default.fp16_compress_hook))


def register_ddp_comm_hook(comm_hook_type, model, state=None):
    """Register the built-in hook ``comm_hook_type`` (a :class:`DDPCommHookType`) on ``model``.

    Args:
        comm_hook_type (DDPCommHookType): which hook.
        model (DistributedDataParallel): the model.
        state: the hook's state, the process group for the default hooks (None: default group).

    Example::

        >>> register_ddp_comm_hook(DDPCommHookType.FP16_COMPRESS, ddp_model)
    """
    if not isinstance(comm_hook_type, DDPCommHookType):
        raise TypeError(f"register_ddp_comm_hook: comm_hook_type must be a DDPCommHookType, got "
                        f"{comm_hook_type!r}")
    comm_hook_type.value(model=model, state=state)
