"""``dtorch.cuda``: GPU queries and state, backed by CuPy (imported only when a function here
needs it, so CPU-only programs never import CuPy)."""

from .. import _backend
from .. import random as _random
from .._creation import legacy_types

_current = [0]


def is_available():
    """True when CuPy is installed and at least one GPU is visible."""
    return _backend.cuda_available()


def device_count():
    if not is_available():
        return 0
    return _backend.cupy_module().cuda.runtime.getDeviceCount()


def _require():
    cp = _backend.cupy_module()
    if not is_available():
        raise RuntimeError("Found no NVIDIA driver on your system or no GPU is visible "
                           "(CUDA_VISIBLE_DEVICES); dtorch.cuda needs one.")
    return cp


def current_device():
    """Index of the current GPU (the one ``"cuda"`` means)."""
    return _current[0]


def set_device(device):
    """Make ``device`` (an index, ``"cuda:N"`` or a ``dtorch.device``) the current GPU."""
    from .._device import as_device

    idx = device if isinstance(device, int) else as_device(device).index or 0
    cp = _require()
    if not 0 <= idx < device_count():
        raise RuntimeError(f"CUDA error: invalid device ordinal {idx} "
                           f"(device_count={device_count()})")
    cp.cuda.Device(idx).use()
    _current[0] = idx


class device:
    """Context manager that makes a GPU current inside its block."""

    def __init__(self, device):
        self.idx = device if isinstance(device, int) else (device.index or 0 if device else 0)

    def __enter__(self):
        self.prev = _current[0]
        set_device(self.idx)

    def __exit__(self, *exc):
        set_device(self.prev)


def synchronize(device=None):
    """Wait for all work queued on the GPU."""
    _require().cuda.Device(current_device() if device is None else device).synchronize()


def empty_cache():
    """Release the cached, unused blocks of CuPy's memory pool back to the driver."""
    if _backend.cupy_if_loaded() is not None:
        _backend.cupy_module().get_default_memory_pool().free_all_blocks()


def memory_allocated(device=None):
    """Bytes in use by tensors (CuPy's pool), 0 if CUDA was never used."""
    if _backend.cupy_if_loaded() is None:
        return 0
    return _backend.cupy_module().get_default_memory_pool().used_bytes()


def get_device_name(device=None):
    cp = _require()
    idx = current_device() if device is None else device
    return cp.cuda.runtime.getDeviceProperties(idx)["name"].decode()


def manual_seed(seed):
    """Seed the generator used for random tensors created on GPUs."""
    _random.cuda_generator().manual_seed(seed)


manual_seed_all = manual_seed


def seed():
    return _random.cuda_generator().seed()


def initial_seed():
    return _random.cuda_generator().initial_seed()


def get_rng_state(device="cuda"):
    return _random.cuda_generator().get_state()


def set_rng_state(new_state, device="cuda"):
    _random.cuda_generator().set_state(new_state)


globals().update(legacy_types(cuda=True))

from . import amp  # noqa: E402  (dtorch.cuda.amp: PyTorch's deprecated spellings)
