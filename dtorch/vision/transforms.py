"""Image transforms with torchvision's names and semantics.

Images may be dtorch tensors ``(..., C, H, W)``, NumPy arrays ``(H, W)`` or ``(H, W, C)`` (what
the datasets return) or PIL images (if Pillow is installed); a geometric transform returns the
kind it was given. Random transforms draw from dtorch's global generator, so
``dtorch.manual_seed`` (and the per-worker seeding of the DataLoader) makes them reproducible.
"""

import enum
import numbers

import numpy as np

from .. import _backend
from .. import _dtype as D
from .._tensor import Tensor
from ..random import generator_for

__all__ = ["Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Resize",
           "Lambda", "InterpolationMode"]


class InterpolationMode(enum.Enum):
    """Interpolation for :class:`Resize`."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"


def _is_pil(img):
    mod = type(img).__module__
    return mod.startswith("PIL.") and hasattr(img, "mode") and hasattr(img, "size")


def _to_hw_last(img):
    """(array, kind): an array whose axes 0 and 1 (ndarray/PIL) or -2 and -1 (tensor) are H, W."""
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"Expected a tensor image of at least 2 dimensions, got shape "
                             f"{tuple(img.shape)}")
        return img._data, "tensor"
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"Expected an image array of shape (H, W) or (H, W, C), got "
                             f"{img.shape}")
        return img, "ndarray"
    if _is_pil(img):
        return np.asarray(img), "pil"
    raise TypeError(f"img should be a Tensor, a NumPy array or a PIL Image. Got {type(img)}")


def _hw_axes(kind):
    return (-2, -1) if kind == "tensor" else (0, 1)


def _back(arr, kind, like):
    if kind == "tensor":
        return Tensor._wrap(arr)
    if kind == "pil":
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(arr))
    return arr


def _image_size(arr, kind):
    h_ax, w_ax = _hw_axes(kind)
    return arr.shape[h_ax], arr.shape[w_ax]


class Compose:
    """Apply transforms one after the other: ``Compose([RandomCrop(28, 4), ToTensor()])``."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        body = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({body}\n)"


class ToTensor:
    """A PIL image or ``(H, W[, C])`` NumPy array -> a ``(C, H, W)`` tensor; uint8 input is
    scaled to float32 ``[0, 1]`` (``x / 255``), other dtypes keep their values and dtype."""

    def __call__(self, pic):
        if _is_pil(pic):
            arr = np.asarray(pic)
            if pic.mode == "1":
                arr = arr.astype(np.uint8) * 255
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
            arr = pic
        else:
            raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        chw = np.ascontiguousarray(arr.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            return Tensor._wrap(chw.astype(D.get_default_dtype().np) / np.float32(255.0))
        D.from_numpy_dtype(chw.dtype)
        return Tensor._wrap(chw)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel of a float tensor ``(..., C, H, W)``.

    Args:
        mean: per-channel means.
        std: per-channel standard deviations (none may be zero).
        inplace: overwrite the input tensor.
    """

    def __init__(self, mean, std, inplace=False):
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"img should be Tensor Image. Got {type(tensor)}")
        if not tensor.is_floating_point():
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if tensor.ndim < 3:
            raise ValueError("Expected tensor to be a tensor image of size (..., C, H, W). Got "
                             f"tensor.size() = {tensor.size()}")
        arr = tensor._data
        xp = _backend.get_array_module(arr)
        mean = xp.asarray(np.asarray(self.mean, dtype=arr.dtype).reshape(-1, 1, 1))
        std = xp.asarray(np.asarray(self.std, dtype=arr.dtype).reshape(-1, 1, 1))
        if (std == 0).any():
            raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading "
                             "to division by zero.")
        out = (arr - mean) / std
        if self.inplace:
            tensor._data[...] = out
            tensor._vbox[0] += 1
            return tensor
        return Tensor._wrap(out.astype(arr.dtype, copy=False))

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def _pair(size, name):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    size = tuple(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise ValueError(f"Please provide only two dimensions (h, w) for {name}, got {size}")
    return int(size[0]), int(size[1])


def _pad(arr, kind, left, top, right, bottom, fill, mode):
    h_ax, w_ax = _hw_axes(kind)
    widths = [(0, 0)] * arr.ndim
    widths[h_ax % arr.ndim] = (top, bottom)
    widths[w_ax % arr.ndim] = (left, right)
    xp = _backend.get_array_module(arr)
    if mode == "constant":
        return xp.pad(arr, widths, mode="constant", constant_values=fill)
    return xp.pad(arr, widths, mode=mode)


class RandomCrop:
    """Crop a random ``size`` window, after optional padding.

    Args:
        size: ``(h, w)`` or an int for a square.
        padding: int (all sides), ``(left/right, top/bottom)`` or ``(left, top, right, bottom)``.
        pad_if_needed: pad an image smaller than ``size`` up to it.
        fill: the constant for ``padding_mode="constant"``.
        padding_mode: ``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``.
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _pair(size, "size")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
        if padding is not None:
            if isinstance(padding, numbers.Number):
                padding = (int(padding),) * 4
            elif len(padding) == 2:
                padding = (padding[0], padding[1], padding[0], padding[1])
            elif len(padding) != 4:
                raise ValueError("Padding must be an int or a 1, 2, or 4 element tuple, not a "
                                 f"{len(padding)} element tuple")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    @staticmethod
    def get_params(img, output_size):
        """Random ``(i, j, h, w)`` for a crop of ``output_size`` from ``img``."""
        arr, kind = _to_hw_last(img)
        h, w = _image_size(arr, kind)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size "
                             f"{(h, w)}")
        if h == th and w == tw:
            return 0, 0, h, w
        g = generator_for(None)
        i = int(g.integers(0, h - th + 1))
        j = int(g.integers(0, w - tw + 1))
        return i, j, th, tw

    def __call__(self, img):
        arr, kind = _to_hw_last(img)
        if self.padding is not None:
            arr = _pad(arr, kind, *self.padding, self.fill, self.padding_mode)
        h, w = _image_size(arr, kind)
        th, tw = self.size
        if self.pad_if_needed and (h < th or w < tw):
            dh, dw = max(th - h, 0), max(tw - w, 0)
            arr = _pad(arr, kind, dw, dh, dw, dh, self.fill, self.padding_mode)
        i, j, th, tw = self.get_params(_back(arr, kind, img) if kind == "tensor" else arr,
                                       self.size)
        if kind == "tensor":
            out = arr[..., i:i + th, j:j + tw].copy()
        else:
            out = arr[i:i + th, j:j + tw].copy()
        return _back(out, kind, img)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        if generator_for(None).random() >= self.p:
            return img
        arr, kind = _to_hw_last(img)
        w_ax = _hw_axes(kind)[1]
        xp = _backend.get_array_module(arr)
        return _back(xp.ascontiguousarray(xp.flip(arr, axis=w_ax)), kind, img)

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


def _resize_weights(n_in, n_out, mode, antialias):
    """The ``(n_out, n_in)`` matrix that resamples one axis.

    Bilinear uses pixel centres (``align_corners=False``) with a triangle filter; with
    ``antialias`` and downscaling the triangle is widened by the scale factor (as torchvision and
    PIL do), otherwise it spans one input pixel, which is plain bilinear interpolation with
    edge clamping. Nearest picks ``floor(i * n_in / n_out)`` (PyTorch's ``nearest``)."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), dtype=np.float64)
    if mode is InterpolationMode.NEAREST:
        src = np.minimum(np.floor(np.arange(n_out) * scale).astype(np.int64), n_in - 1)
        w[np.arange(n_out), src] = 1.0
        return w
    support = max(scale, 1.0) if antialias else 1.0
    centers = (np.arange(n_out) + 0.5) * scale
    d = ((np.arange(n_in) + 0.5)[None, :] - centers[:, None]) / support
    w = np.clip(1.0 - np.abs(d), 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


class Resize:
    """Resize to ``size``: ``(h, w)``, or an int that the smaller edge is matched to (keeping
    the aspect ratio).

    Args:
        size: target size.
        interpolation: ``InterpolationMode.BILINEAR`` (default) or ``NEAREST`` (or the strings).
        antialias: when downscaling with bilinear, low-pass filter first (torchvision's
            default); nearest never antialiases.
    """

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, antialias=True):
        if isinstance(size, numbers.Number):
            size = int(size)
        elif len(size) not in (1, 2):
            raise ValueError(f"If size is a sequence, it should have 1 or 2 values, got {size}")
        self.size = size if isinstance(size, int) else tuple(int(s) for s in size)
        self.interpolation = InterpolationMode(getattr(interpolation, "value", interpolation))
        self.antialias = antialias

    def _target(self, h, w):
        size = self.size
        if isinstance(size, tuple) and len(size) == 2:
            return size
        s = size if isinstance(size, int) else size[0]
        if h <= w:
            return s, int(s * w / h)
        return int(s * h / w), s

    def __call__(self, img):
        arr, kind = _to_hw_last(img)
        h, w = _image_size(arr, kind)
        oh, ow = self._target(h, w)
        if (oh, ow) == (h, w):
            return img
        xp = _backend.get_array_module(arr)
        work = arr if kind == "tensor" else (arr[None] if arr.ndim == 2 else
                                             arr.transpose(2, 0, 1))
        ftype = np.float64 if work.dtype == np.float64 else np.float32
        wh = xp.asarray(_resize_weights(h, oh, self.interpolation, self.antialias), dtype=ftype)
        ww = xp.asarray(_resize_weights(w, ow, self.interpolation, self.antialias), dtype=ftype)
        out = xp.matmul(xp.matmul(wh, work.astype(ftype, copy=False)), ww.T)
        if work.dtype.kind in "iub":
            info = np.iinfo(work.dtype) if work.dtype.kind != "b" else None
            out = xp.rint(out)
            if info is not None:
                out = xp.clip(out, info.min, info.max)
        out = out.astype(work.dtype, copy=False)
        if kind != "tensor":
            out = out[0] if arr.ndim == 2 else xp.ascontiguousarray(out.transpose(1, 2, 0))
        return _back(out, kind, img)

    def __repr__(self):
        return (f"{type(self).__name__}(size={self.size}, "
                f"interpolation={self.interpolation.value}, antialias={self.antialias})")


class Lambda:
    """Apply a user function: ``Lambda(lambda x: x.flatten())``."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return f"{type(self).__name__}()"
