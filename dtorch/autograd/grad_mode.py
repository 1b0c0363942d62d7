"""Thread-local gradient mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``inference_mode``, usable as context managers and as decorators."""

import functools
import inspect
import threading


class _GradState(threading.local):
    enabled = True
    inference = False


_state = _GradState()


def is_grad_enabled():
    """True when operations on tensors that require grad record the graph (per thread)."""
    return _state.enabled


def is_inference_mode_enabled():
    return _state.inference


class _Mode:
    """Base of the grad-mode context managers; an instance also decorates functions and
    generator functions, entering the mode around each call."""

    def __call__(self, func):
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def generator(*args, **kwargs):
                gen = func(*args, **kwargs)
                with self.clone():
                    response = gen.send(None)
                while True:
                    try:
                        with self.clone():
                            request = yield response
                        with self.clone():
                            response = gen.send(request)
                    except StopIteration as stop:
                        return stop.value

            return generator

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.clone():
                return func(*args, **kwargs)

        return wrapper

    def clone(self):
        return self.__class__()

    def __enter__(self):
        self._prev = (_state.enabled, _state.inference)
        self._set()

    def __exit__(self, *exc):
        _state.enabled, _state.inference = self._prev
        return False


class no_grad(_Mode):
    """Disable gradient recording: results of operations inside do not require grad."""

    def __new__(cls, func=None):
        # NOTE: allows the bare ``@no_grad`` form as well as ``@no_grad()``.
        self = super().__new__(cls)
        if callable(func):
            return self(func)
        return self

    def __init__(self, func=None):
        pass

    def _set(self):
        _state.enabled = False


class enable_grad(no_grad):
    """Enable gradient recording inside a ``no_grad`` region."""

    def _set(self):
        _state.enabled = True


class set_grad_enabled(_Mode):
    """Set gradient recording on or off: immediately when called, and back when used as a
    context manager and exited."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._prev = (_state.enabled, _state.inference)
        _state.enabled = self.mode

    def clone(self):
        return set_grad_enabled(self.mode)

    def __enter__(self):
        pass

    def _set(self):
        _state.enabled = self.mode


class inference_mode(_Mode):
    """Like ``no_grad``, for inference-only code (``inference_mode(False)`` is a no-op region)."""

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if callable(mode):
            self.mode = True
            return self(mode)
        return self

    def __init__(self, mode=True):
        self.mode = True if callable(mode) else bool(mode)

    def clone(self):
        return inference_mode(self.mode)

    def _set(self):
        if self.mode:
            _state.enabled = False
            _state.inference = True
