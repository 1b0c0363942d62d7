"""Distributed training algorithms: :class:`Join` for uneven inputs and DDP communication hooks
(:mod:`.ddp_comm_hooks`), as ``torch.distributed.algorithms``."""

from . import ddp_comm_hooks
from .join import Join, Joinable, JoinHook

__all__ = ["Join", "JoinHook", "Joinable", "ddp_comm_hooks"]
