"""Random number generation: ``Generator`` objects and the global random state.

A :class:`Generator` wraps NumPy's PCG64 bit generator. The CPU default generator makes every
random tensor; tensors on a GPU are drawn from a separate CUDA default generator (on the host,
then copied), so ``dtorch.cuda.manual_seed`` controls them as in PyTorch. The same seed always
gives the same stream. Each rank thread of a thread world (``spawn_threads``, the launcher's
debug world) has default generators of its own, as each process of a real world has.
The streams are not PyTorch's (its Mersenne-Twister transforms are not reproduced):
identical code gives identical results run to run, not bit-identical to PyTorch.
"""

import threading
import time

import numpy as np

_STATE_BYTES = 40  # PCG64 state (16) + increment (16) + has_uint32 (4) + uinteger (4)


class Generator:
    """A random number generator (``dtorch.Generator(device='cpu')``)."""

    def __init__(self, device="cpu"):
        from ._device import as_device

        self.device = as_device(device)
        self.manual_seed(67280421310721)  # PyTorch's default seed

    def manual_seed(self, seed):
        """Reset the stream to the one defined by ``seed``; returns the generator."""
        seed = int(seed)
        if not -(2**63) <= seed < 2**64:
            raise RuntimeError(f"Overflow when unpacking long: seed {seed} is out of range")
        self._seed = seed % 2**64
        self._np = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self):
        """Seed from a non-deterministic source; returns the seed."""
        s = int.from_bytes(np.random.SeedSequence().entropy.to_bytes(16, "little")[:8],
                           "little") ^ time.time_ns()
        self.manual_seed(s % 2**63)
        return self._seed

    def initial_seed(self):
        return self._seed

    def get_state(self):
        """The full state as a uint8 tensor (restore it with ``set_state``)."""
        from ._tensor import Tensor

        st = self._np.bit_generator.state
        raw = b"".join([
            st["state"]["state"].to_bytes(16, "little"),
            st["state"]["inc"].to_bytes(16, "little"),
            int(st["has_uint32"]).to_bytes(4, "little"),
            int(st["uinteger"]).to_bytes(4, "little"),
            self._seed.to_bytes(8, "little"),
        ])
        return Tensor._wrap(np.frombuffer(raw, dtype=np.uint8).copy())

    def set_state(self, new_state):
        data = bytes(np.asarray(new_state._data if hasattr(new_state, "_data") else new_state,
                                dtype=np.uint8))
        if len(data) != _STATE_BYTES + 8:
            raise RuntimeError(f"Expected a random state of {_STATE_BYTES + 8} bytes, got "
                               f"{len(data)}")
        bg = np.random.PCG64()
        bg.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(data[0:16], "little"),
                      "inc": int.from_bytes(data[16:32], "little")},
            "has_uint32": int.from_bytes(data[32:36], "little"),
            "uinteger": int.from_bytes(data[36:40], "little"),
        }
        self._np = np.random.Generator(bg)
        self._seed = int.from_bytes(data[40:48], "little")
        return self

    def __repr__(self):
        return f"<dtorch._C.Generator object at {hex(id(self))}>"


default_generator = Generator()
_cuda_generator = [None]


class _ThreadGenerators(threading.local):
    """A thread world rank's own default generators (None elsewhere: the process's)."""

    cpu = None
    cuda = None


_thread = _ThreadGenerators()


def use_thread_generators():
    """Give the calling thread default generators of its own, seeded as in a new process, so
    that a rank of a thread world draws the same numbers as the same rank in its own process."""
    _thread.cpu = Generator()
    _thread.cuda = [None]


def _cpu_default():
    return _thread.cpu or default_generator


def cuda_generator():
    """The default generator for tensors created on a GPU."""
    slot = _thread.cuda or _cuda_generator
    if slot[0] is None:
        slot[0] = Generator("cuda")
    return slot[0]


def cuda_generator_created():
    """The CUDA default generator if anything has used it yet, else None."""
    return (_thread.cuda or _cuda_generator)[0]


def generator_for(device, generator=None):
    """The NumPy generator to draw from: the given one, else the device's default."""
    if generator is not None:
        return generator._np
    if device is not None and getattr(device, "type", device) != "cpu" and \
            str(device).startswith("cuda"):
        return cuda_generator()._np
    return _cpu_default()._np


def manual_seed(seed):
    """Seed every device's default generator; returns the CPU default generator."""
    cuda_generator().manual_seed(seed)
    return _cpu_default().manual_seed(seed)


def seed():
    s = _cpu_default().seed()
    cuda_generator().manual_seed(s)
    return s


def initial_seed():
    return _cpu_default().initial_seed()


def get_rng_state():
    """The CPU default generator's state (a uint8 tensor)."""
    return _cpu_default().get_state()


def set_rng_state(new_state):
    _cpu_default().set_state(new_state)


def fork_rng(devices=None, enabled=True):
    """Context manager restoring the default generators' state on exit."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        if not enabled:
            yield
            return
        cpu, gpu = get_rng_state(), cuda_generator().get_state()
        try:
            yield
        finally:
            set_rng_state(cpu)
            cuda_generator().set_state(gpu)

    return ctx()
