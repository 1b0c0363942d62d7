"""Exception types of ``dtorch.distributed``, named as in ``torch.distributed``.

All derive from :class:`RuntimeError`, so code written against PyTorch that catches
``RuntimeError`` (or the specific ``torch.distributed.Dist*Error`` names) keeps working.
"""

__all__ = ["DistError", "DistStoreError", "DistNetworkError", "DistBackendError"]


class DistError(RuntimeError):
    """Base class of every error raised by the distributed package."""


class DistStoreError(DistError):
    """A key-value store operation failed or timed out (the message names the keys)."""


class DistNetworkError(DistError):
    """A network operation failed: connection refused until the timeout, port in use, EOF."""


class DistBackendError(DistError):
    """A communication backend (MPI, NCCL, the PMI process manager) reported a failure."""
