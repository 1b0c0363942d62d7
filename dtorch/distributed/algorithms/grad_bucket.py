"""``GradBucket``: what a DDP communication hook receives, as ``torch.distributed.GradBucket``."""

from __future__ import annotations

__all__ = ["GradBucket"]


class GradBucket:
    """One bucket of gradients, flattened into a single 1-D tensor, handed to a DDP comm hook.

    DDP creates these; a hook reads :meth:`buffer` (and may replace it with :meth:`set_buffer`,
    e.g. by a compressed copy) and returns a future of the reduced flat tensor.

    Example::

        >>> def noop(state, bucket):
        ...     fut = dtorch.futures.Future()
        ...     fut.set_result(bucket.buffer())   # no communication: local gradients
        ...     return fut
    """

    def __init__(self, index, buffer, gradients, parameters, is_last):
        self._index = index
        self._buffer = buffer
        self._gradients = gradients
        self._parameters = parameters
        self._is_last = is_last

    def index(self):
        """The bucket's position (0 is reduced first)."""
        return self._index

    def buffer(self):
        """The flattened 1-D gradient tensor of the bucket."""
        return self._buffer

    def gradients(self):
        """The gradients of the bucket's parameters: views into :meth:`buffer`, shaped like the
        parameters."""
        return list(self._gradients)

    def parameters(self):
        """The bucket's parameters, in the order of :meth:`gradients`."""
        return list(self._parameters)

    def is_last(self):
        """True for the last bucket of the backward pass."""
        return self._is_last

    def set_buffer(self, buffer):
        """Replace the tensor :meth:`buffer` returns (e.g. by a compressed copy)."""
        self._buffer = buffer
