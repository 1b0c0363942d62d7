"""``dtorch.amp``: automatic mixed precision, as ``torch.amp``.

:class:`autocast` runs regions of a program with each op in an op-specific precision (float16
matmuls and convolutions, float32 reductions and losses); :class:`GradScaler` scales the loss so
float16 gradients do not underflow, and skips optimizer steps whose gradients overflowed.

Example::

    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        opt.zero_grad()
        with torch.autocast("cuda"):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
"""

from .autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype"]
