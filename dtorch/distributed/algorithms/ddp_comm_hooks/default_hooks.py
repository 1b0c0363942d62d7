"""Built-in DDP communication hooks (``torch.distributed.algorithms.ddp_comm_hooks.default_hooks``).

A hook ``hook(state, bucket) -> Future[Tensor]`` replaces DDP's own divide-and-all-reduce of a
gradient bucket; register it with ``DistributedDataParallel.register_comm_hook(state, hook)``,
where ``state`` is the process group (None: the default group).

``bf16_compress_hook`` is not provided: NumPy has no bfloat16 type.
"""

from __future__ import annotations

from ...._dtype import float16
from ...collectives import all_reduce
from ...process_group import get_world_size

__all__ = ["allreduce_hook", "fp16_compress_hook"]


def _allreduce_fut(process_group, tensor):
    """Divide ``tensor`` by the group size and all-reduce it; a future of the averaged tensor."""
    # NOTE: divide first so that the sum cannot overflow (matters for float16).
    tensor.div_(get_world_size(process_group))
    fut = all_reduce(tensor, group=process_group, async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def allreduce_hook(process_group, bucket):
    """Average the bucket over the ranks: divide by the group size, then all-reduce (sum).

    DDP gives exactly the same result with this hook as without one; it is a starting point
    for hooks that log or modify the gradients.

    Args:
        process_group (ProcessGroup or None): the group to average over (None: default group).
        bucket (GradBucket): the flattened gradients of one bucket.

    Example::

        >>> ddp_model.register_comm_hook(None, allreduce_hook)
    """
    return _allreduce_fut(process_group, bucket.buffer())


def fp16_compress_hook(process_group, bucket):
    """Compress the bucket to ``float16`` for the all-reduce: halves the bytes sent.

    ``out = float(sum_r half(g_r / n))``: each rank casts its bucket to ``float16`` and divides
    it by the group size ``n``; the ``float16`` tensors are all-reduced and the result is cast
    back into the bucket's dtype (about 3 significant decimal digits survive).

    Args:
        process_group (ProcessGroup or None): the group to average over (None: default group).
        bucket (GradBucket): the flattened gradients of one bucket.

    Example::

        >>> ddp_model.register_comm_hook(None, fp16_compress_hook)
    """
    buffer = bucket.buffer()
    compressed = buffer.to(float16).div_(get_world_size(process_group))

    def decompress(fut):
        buffer.copy_(fut.value()[0])  # in place, into the bucket: no extra full-size copy
        return buffer

    return all_reduce(compressed, group=process_group, async_op=True).get_future().then(
        decompress)
