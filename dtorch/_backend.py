"""The array backend: NumPy on the CPU, CuPy on NVIDIA GPUs.

This is the only module that imports CuPy, and it does so lazily: CPU-only use never needs CuPy
installed. Everything else asks the data for its array module (``get_array_module(array)``).
"""

import numpy as np

_cupy = None
_cupy_error = None


def cupy_module():
    """Return the ``cupy`` module, importing it on first use.

    Raises:
        RuntimeError: when CuPy is not installed (CUDA support is an optional extra).
    """
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy

            _cupy = cupy
        except Exception as exc:  # ImportError, or a broken CUDA installation
            _cupy_error = exc
    if _cupy is None:
        raise RuntimeError(
            "CUDA support needs CuPy, which could not be imported "
            f"({type(_cupy_error).__name__}: {_cupy_error}). "
            "Install it with `pip install dtorch[cuda12]` (or [cuda13])."
        )
    return _cupy


def cupy_if_loaded():
    """The ``cupy`` module if it has been imported already, else None (never imports it)."""
    return _cupy


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        cp = cupy_module()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_array_module(array):
    """numpy for NumPy arrays and scalars, cupy for CuPy arrays."""
    if isinstance(array, (np.ndarray, np.generic)) or _cupy is None:
        return np
    return _cupy.get_array_module(array)


def is_cuda_array(array):
    """True for a CuPy array."""
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def device_index(array):
    """The CUDA device index of a CuPy array, or None for a NumPy array."""
    if is_cuda_array(array):
        return array.device.id
    return None


def to_device(array, index):
    """Copy ``array`` to the CPU (``index is None``) or to GPU ``index`` (no copy if there)."""
    if index is None:
        if is_cuda_array(array):
            return array.get()
        return array
    cp = cupy_module()
    if is_cuda_array(array) and array.device.id == index:
        return array
    with cp.cuda.Device(index):
        return cp.asarray(array)


def scatter_add_at(target, index, values):
    """``target[index] += values`` with repeated indices accumulated (NumPy's ``add.at``)."""
    if is_cuda_array(target):
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def erf(array):
    """The error function to float64 accuracy: SciPy's (or CuPy's) when installed, otherwise a
    series / continued fraction (exact to ~1e-15 relative, slower)."""
    if is_cuda_array(array):
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(array)
    try:
        from scipy.special import erf as scipy_erf
    except ImportError:
        return _erf_numpy(array)
    return scipy_erf(array)


def _erf_numpy(a):
    x = np.abs(a.astype(np.float64))
    small = np.minimum(x, 3.0)
    # erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): positive terms only.
    term = small.copy()
    total = small.copy()
    for n in range(1, 90):
        term = term * (2 * small * small) / (2 * n + 1)
        total += term
    series = 2 / np.sqrt(np.pi) * np.exp(-small * small) * total
    # erfc(x) = exp(-x^2) / (sqrt(pi) (x + 1/2 / (x + 1 / (x + 3/2 / (x + ...))))) for x >= 3.
    big = np.maximum(x, 3.0)
    frac = big.copy()
    for k in range(80, 0, -1):
        frac = big + (k / 2) / frac
    tail = 1 - np.exp(-big * big) / (np.sqrt(np.pi) * frac)
    out = np.where(x < 3.0, series, tail) * np.sign(a)
    return out.astype(a.dtype, copy=False)
