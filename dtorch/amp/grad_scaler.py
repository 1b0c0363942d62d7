"""``GradScaler``: dynamic loss scaling for float16 training, as ``torch.amp.GradScaler``.

Float16 gradients of small magnitude underflow to zero. The scaler multiplies the loss by a
large factor before ``backward`` (so the gradients are scaled too), divides the gradients back
before the optimizer step, skips the step when a gradient overflowed (inf/NaN), and adapts the
factor: halve it after an overflow, double it after ``growth_interval`` clean steps.

The scale and the growth tracker live on the host (Python floats, rounded to float32 as
PyTorch's float32 scale tensor is). Per optimizer and device, the inf/NaN check is a device-side
reduction per gradient, combined on the device, and read back once in ``step``.
"""

import enum
import warnings
from collections import abc, defaultdict

import numpy as np

from .. import _backend
from ..ops._util import tensor_cls

__all__ = ["GradScaler", "OptState"]


class OptState(enum.Enum):
    """Where an optimizer is in the scaler's iteration: READY -> UNSCALED -> STEPPED."""

    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state():
    return {"stage": OptState.READY, "found_inf_per_device": {}}


def _f32(x):
    return float(np.float32(x))


class GradScaler:
    """Scale the loss and unscale the gradients so float16 gradients neither underflow nor,
    undetected, overflow.

    Usage per iteration: ``scaler.scale(loss).backward()``, optionally ``scaler.unscale_(opt)``
    (then clip gradients), ``scaler.step(opt)`` (skipped when any gradient is inf/NaN),
    ``scaler.update()``. With :class:`~dtorch.nn.parallel.DistributedDataParallel` the gradients
    the scaler inspects are already all-reduced, so an inf/NaN on any rank is in every rank's
    gradients and every rank takes the same skip/step decision and the same scale update; no
    extra communication is needed.

    Args:
        device (str): ``"cuda"`` or ``"cpu"``. A ``"cuda"`` scaler without CUDA disables itself
            with a warning, as in PyTorch. Default: ``"cuda"``.
        init_scale (float): the initial scale factor. Default: ``2.**16``.
        growth_factor (float): multiplies the scale after ``growth_interval`` consecutive
            steps without inf/NaN. Default: 2.0.
        backoff_factor (float): multiplies the scale after a step with inf/NaN. Default: 0.5.
        growth_interval (int): clean steps between growths. Default: 2000.
        enabled (bool): False makes every method a pass-through (``step`` just steps).

    Example::

        >>> scaler = torch.amp.GradScaler("cpu")
        >>> for x, y in data:
        ...     opt.zero_grad()
        ...     with torch.autocast("cpu", dtype=torch.float16):
        ...         loss = F.cross_entropy(model(x), y)
        ...     scaler.scale(loss).backward()
        ...     scaler.unscale_(opt)
        ...     torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        ...     scaler.step(opt)
        ...     scaler.update()
    """

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self._device = device
        self._enabled = bool(enabled)
        if self._enabled and device == "cuda" and not _backend.cuda_available():
            warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  "
                          "Disabling.", stacklevel=2)
            self._enabled = False
        if not self._enabled:
            return
        # NOTE: PyTorch raises AssertionError for these two; so do we.
        if growth_factor <= 1.0:
            raise AssertionError("The growth factor must be > 1.0.")
        if backoff_factor >= 1.0:
            raise AssertionError("The backoff factor must be < 1.0.")
        self._init_scale = init_scale
        self._scale = None  # set by the first scale()
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._init_growth_tracker = 0
        self._growth_tracker = None
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    # ------------------------------------------------------------------------- scaling
    def scale(self, outputs):
        """``outputs`` (a tensor, or nested lists/tuples of tensors) times the scale factor.

        Returns outputs unchanged when the scaler is disabled.
        """
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._scale = _f32(self._init_scale)
            self._growth_tracker = self._init_growth_tracker
        Tensor = tensor_cls()

        def apply(val):
            if isinstance(val, Tensor):
                return val * self._scale
            if isinstance(val, (list, tuple)):
                return type(val)(apply(v) for v in val)
            if isinstance(val, abc.Iterable):
                return map(apply, val)
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")

        return apply(outputs)

    def _check_scale_growth_tracker(self, funcname):
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  This may indicate "
                                 "your script did not use scaler.scale(loss or outputs) earlier "
                                 "in the iteration.")

    def _unscale_grads_(self, optimizer, inv_scale):
        """Multiply every gradient by ``inv_scale`` in place; per device, a 0-d float32 array
        that is 1 when some gradient there has an inf/NaN (no host sync here)."""
        found = {}
        for group in optimizer.param_groups:
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                g = grad._data
                if g.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                xp = _backend.get_array_module(g)
                key = _backend.device_index(g)
                g *= g.dtype.type(inv_scale)
                grad._vbox[0] += 1
                bad = ~xp.isfinite(g).all()
                found[key] = bad if key not in found else found[key] | bad
        Tensor = tensor_cls()
        return {k: Tensor._wrap(_backend.get_array_module(v).asarray(v, dtype=np.float32))
                for k, v in found.items()}

    def unscale_(self, optimizer):
        """Divide ``optimizer``'s gradients by the scale, in place, and record whether any is
        inf/NaN. Call it at most once per ``step`` (before clipping gradients, for example);
        ``step`` calls it when you did not.

        Raises:
            RuntimeError: when called twice for the same optimizer before ``update()``, or
                after ``step()``.
        """
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the "
                               "last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # NOTE: the reciprocal in float64, rounded to float32, as PyTorch computes it.
        inv_scale = _f32(1.0 / self._scale)
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscale the gradients (unless ``unscale_`` was called) and run
        ``optimizer.step(*args, **kwargs)`` if none is inf/NaN.

        Returns:
            What ``optimizer.step`` returned, or None when the step was skipped.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if not state["found_inf_per_device"]:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not sum(v.item() for v in state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None):
        """Set the scale for the next iteration: ``new_scale`` if given, else back off after an
        inf/NaN in any optimizer's gradients this iteration, or grow after ``growth_interval``
        consecutive clean iterations. Resets every optimizer to READY.

        Args:
            new_scale (float or 1-element Tensor, optional): the scale to use from now on.
        """
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, tensor_cls()):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise AssertionError("new_scale should be a float or a 1-element "
                                         "torch.cuda.FloatTensor or torch.FloatTensor with "
                                         "requires_grad=False.")
                new_scale = new_scale.item()
            self._scale = _f32(new_scale)
        else:
            found_infs = [v.item() for state in self._per_optimizer_states.values()
                          for v in state["found_inf_per_device"].values()]
            if not found_infs:
                raise AssertionError("No inf checks were recorded prior to update.")
            if sum(found_infs):
                self._scale = _f32(self._scale * self._backoff_factor)
                self._growth_tracker = 0
            elif self._growth_tracker + 1 == self._growth_interval:
                grown = _f32(self._scale * self._growth_factor)
                if np.isfinite(grown):
                    self._scale = grown
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    # ------------------------------------------------------------------------- accessors
    def get_scale(self):
        """The current scale factor (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else self._scale

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = new_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = new_factor

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = new_interval

    def _get_growth_tracker(self):
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else self._growth_tracker

    def is_enabled(self):
        """True unless constructed with ``enabled=False`` (or a ``"cuda"`` scaler without CUDA)."""
        return self._enabled

    def state_dict(self):
        """``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval`` and
        ``_growth_tracker``, as PyTorch's; empty when disabled."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict`."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale = _f32(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker = state_dict["_growth_tracker"]
