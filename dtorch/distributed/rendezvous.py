"""Rendezvous: turn an ``init_method`` URL into ``(store, rank, world_size)``.

Schemes (a registry, as in ``torch.distributed.rendezvous``):

* ``env://`` -- ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE`` from the environment
  (``?rank=`` / ``?world_size=`` in the URL, or the arguments, take precedence).
* ``tcp://host:port`` -- rank and world size from the arguments or the query string.
* ``file:///path`` -- a :class:`FileStore` on a file system every rank sees.

For ``env://`` and ``tcp://`` rank 0 hosts the :class:`TCPStore` on the given address. Every
built-in handler then claims the rank with an atomic ``add`` (two processes with one rank fail
with their own message), checks that all ranks agree on ``world_size``, and waits at a join
barrier until all ``world_size`` ranks have arrived; on timeout the error names the ranks that
never arrived.

Example::

    >>> store, rank, world_size = next(rendezvous("env://", timeout=timedelta(seconds=60)))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

from .errors import DistError, DistStoreError
from .store import FileStore, Store, TCPStore, _as_timedelta

__all__ = ["register_rendezvous_handler", "rendezvous", "DEFAULT_RENDEZVOUS_TIMEOUT"]

DEFAULT_RENDEZVOUS_TIMEOUT = timedelta(minutes=30)
_PREFIX = "dtorch/rdzv/"

_handlers: dict[str, Callable[..., Iterator[tuple[Store, int, int]]]] = {}


def register_rendezvous_handler(scheme: str, handler) -> None:
    """Register ``handler(url, rank=, world_size=, timeout=)`` for ``scheme://`` URLs.

    The handler returns an iterator of ``(store, rank, world_size)`` tuples.

    Raises:
        RuntimeError: if ``scheme`` already has a handler.
    """
    if scheme in _handlers:
        raise RuntimeError(f"Rendezvous handler for {scheme}:// already registered")
    _handlers[scheme] = handler


def rendezvous(url: str, rank: int = -1, world_size: int = -1,
               timeout: timedelta = DEFAULT_RENDEZVOUS_TIMEOUT, **kwargs):
    """Run the rendezvous for ``url``; return an iterator yielding ``(store, rank, world_size)``.

    Args:
        url (str): ``env://``, ``tcp://host:port`` or ``file:///path`` (or a registered scheme).
        rank (int): this process's rank, -1 to take it from the URL or environment.
        world_size (int): the number of processes, -1 to take it from the URL or environment.
        timeout (timedelta): bound for connecting and for the join barrier.
    """
    if not isinstance(url, str):
        raise TypeError(f"rendezvous url must be a str, got {type(url).__name__}")
    scheme = urlparse(url).scheme
    if scheme not in _handlers:
        raise ValueError(f"No rendezvous handler for {scheme}:// (url {url!r}); registered "
                         f"schemes: {', '.join(s + '://' for s in sorted(_handlers))}")
    return _handlers[scheme](url, rank=rank, world_size=world_size,
                             timeout=_as_timedelta(timeout), **kwargs)


# ----------------------------------------------------------------------------- helpers
def _query(url: str) -> dict[str, str]:
    q = parse_qs(urlparse(url).query, keep_blank_values=True)
    return {k: v[-1] for k, v in q.items()}


def _as_int(scheme: str, name: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{scheme}:// rendezvous: {name}={value!r} is not an integer") from None


def _pick(scheme: str, name: str, arg: int, query: dict, env_var: str | None) -> int:
    """Argument, then ``?name=`` in the URL, then the environment variable; else an error."""
    if arg is not None and arg != -1:
        return _as_int(scheme, name, arg)
    if name in query:
        return _as_int(scheme, f"?{name}", query[name])
    if env_var is not None:
        if env_var not in os.environ:
            raise ValueError(f"Error initializing dtorch.distributed using {scheme}:// "
                             f"rendezvous: environment variable {env_var} expected, but not set")
        return _as_int(scheme, env_var, os.environ[env_var])
    raise ValueError(f"{scheme}:// rendezvous needs {name}: pass {name}= or add "
                     f"?{name}= to the URL")


def _check_rank(scheme: str, rank: int, world_size: int, names=("rank", "world_size")) -> None:
    if world_size < 1:
        raise ValueError(f"{scheme}:// rendezvous: {names[1]}={world_size} must be >= 1")
    if not 0 <= rank < world_size:
        raise ValueError(f"{scheme}:// rendezvous: {names[0]}={rank} is outside "
                         f"[0, {names[1]}={world_size})")


def _join(store: Store, rank: int, world_size: int, timeout: timedelta, scheme: str,
          hint: str = "", hosts_store: bool = False) -> None:
    """Claim ``rank``, check ``world_size`` agreement, then wait until all ranks arrived.

    On failure the process hosting the store lingers (a few seconds at most) until every
    process that joined has read the error, so they report it rather than a lost connection.
    """
    store.add(f"{_PREFIX}joined", 1)
    try:
        _claim_and_wait(store, rank, world_size, timeout, scheme, hint)
    except DistError:
        try:
            store.add(f"{_PREFIX}failed", 1)
            deadline = time.monotonic() + min(5.0, timeout.total_seconds())
            while hosts_store and time.monotonic() < deadline and (
                    int(store.get(f"{_PREFIX}failed")) < int(store.get(f"{_PREFIX}joined"))):
                time.sleep(0.02)
        except DistError:
            pass
        raise


def _claim_and_wait(store, rank, world_size, timeout, scheme, hint) -> None:
    claims = store.add(f"{_PREFIX}rank/{rank}", 1)
    if claims != 1:
        msg = (f"{scheme}:// rendezvous: rank {rank} was claimed by {claims} processes "
               f"(world_size={world_size}); every process needs a distinct rank in "
               f"[0, {world_size}){hint}")
        store.set(f"{_PREFIX}error", msg)
        raise DistError(msg)
    agreed = store.compare_set(f"{_PREFIX}world_size", "", str(world_size)).decode()
    if agreed != str(world_size):
        msg = (f"{scheme}:// rendezvous: rank {rank} has world_size={world_size} but another "
               f"rank has world_size={agreed}")
        store.set(f"{_PREFIX}error", msg)
        raise DistError(msg)
    if store.add(f"{_PREFIX}arrived", 1) == world_size:
        store.set(f"{_PREFIX}complete", "1")
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        left = deadline - time.monotonic()
        try:
            # Short slices so that an error reported by another rank ends this wait too.
            store.wait([f"{_PREFIX}complete"], timedelta(seconds=max(0.0, min(left, 0.1))))
            return
        except DistStoreError:
            pass
        if store.check([f"{_PREFIX}error"]):
            raise DistError(f"rank {rank}: rendezvous failed on another rank: "
                            f"{store.get(f'{_PREFIX}error').decode()}")
        if time.monotonic() >= deadline:
            missing = [r for r in range(world_size)
                       if not store.check([f"{_PREFIX}rank/{r}"])]
            raise DistStoreError(
                f"{scheme}:// rendezvous timed out after {timeout.total_seconds():g} s on rank "
                f"{rank}: ranks {missing} of world_size {world_size} never arrived")


def _tcp_store(scheme, host, port, rank, world_size, timeout) -> TCPStore:
    return TCPStore(host, port, world_size, is_master=(rank == 0), timeout=timeout,
                    wait_for_workers=False)


# ----------------------------------------------------------------------------- handlers
def _env_rendezvous_handler(url: str, rank: int = -1, world_size: int = -1,
                            timeout: timedelta = DEFAULT_RENDEZVOUS_TIMEOUT, **kwargs):
    q = _query(url)
    rank = _pick("env", "rank", rank, q, "RANK")
    world_size = _pick("env", "world_size", world_size, q, "WORLD_SIZE")
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ValueError(f"Error initializing dtorch.distributed using env:// rendezvous: "
                             f"environment variable {var} expected, but not set")
    addr = os.environ["MASTER_ADDR"]
    port = _as_int("env", "MASTER_PORT", os.environ["MASTER_PORT"])
    if not 0 < port < 65536:
        raise ValueError(f"env:// rendezvous: MASTER_PORT={port} is outside [1, 65535]")
    _check_rank("env", rank, world_size, ("RANK", "WORLD_SIZE"))
    store = _tcp_store("env", addr, port, rank, world_size, timeout)
    _join(store, rank, world_size, timeout, "env", hosts_store=rank == 0)
    yield store, rank, world_size
    raise RuntimeError("Unable to perform re-rendezvous using env:// method")


def _tcp_rendezvous_handler(url: str, rank: int = -1, world_size: int = -1,
                            timeout: timedelta = DEFAULT_RENDEZVOUS_TIMEOUT, **kwargs):
    parsed = urlparse(url)
    if not parsed.hostname or parsed.port is None:
        raise ValueError(f"tcp:// rendezvous needs tcp://host:port, got {url!r}")
    q = _query(url)
    rank = _pick("tcp", "rank", rank, q, None)
    world_size = _pick("tcp", "world_size", world_size, q, None)
    _check_rank("tcp", rank, world_size)
    store = _tcp_store("tcp", parsed.hostname, parsed.port, rank, world_size, timeout)
    _join(store, rank, world_size, timeout, "tcp", hosts_store=rank == 0)
    yield store, rank, world_size
    raise RuntimeError("Unable to perform re-rendezvous using tcp:// method")


def _file_rendezvous_handler(url: str, rank: int = -1, world_size: int = -1,
                             timeout: timedelta = DEFAULT_RENDEZVOUS_TIMEOUT, **kwargs):
    parsed = urlparse(url)
    path = parsed.path
    if parsed.netloc:
        raise ValueError(f"file:// rendezvous needs an absolute path (file:///path), got "
                         f"{url!r}: {parsed.netloc!r} would be read as a host name")
    if not path:
        raise ValueError(f"file:// rendezvous needs a path, got {url!r}")
    q = _query(url)
    rank = _pick("file", "rank", rank, q, None)
    world_size = _pick("file", "world_size", world_size, q, None)
    _check_rank("file", rank, world_size)
    store = FileStore(path, world_size, timeout=timeout)
    _join(store, rank, world_size, timeout, "file",
          hint=f", or {path} is a stale file from an earlier run: delete it")
    yield store, rank, world_size
    raise RuntimeError("Unable to perform re-rendezvous using file:// method")


register_rendezvous_handler("env", _env_rendezvous_handler)
register_rendezvous_handler("tcp", _tcp_rendezvous_handler)
register_rendezvous_handler("file", _file_rendezvous_handler)
