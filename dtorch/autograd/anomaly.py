"""Anomaly detection: record where each graph node was created, and raise naming that forward
call when its backward produces NaN or inf."""

from .function import _anomaly


def is_anomaly_enabled():
    return _anomaly[0]


class set_detect_anomaly:
    """Turn anomaly detection on or off (immediately; restored on exit as a context manager)."""

    def __init__(self, mode, check_nan=True):
        self.prev = _anomaly[0]
        _anomaly[0] = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly[0] = self.prev
        return False


class detect_anomaly(set_detect_anomaly):
    """Context manager (or decorator) enabling anomaly detection: a NaN/inf produced in backward
    raises a RuntimeError that names the backward function and shows the traceback of the forward
    call that created it. Slow: use for debugging only."""

    def __init__(self, check_nan=True):
        self.prev = None

    def __enter__(self):
        self.prev = _anomaly[0]
        _anomaly[0] = True
        return self

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with detect_anomaly():
                return func(*args, **kwargs)

        return wrapper
