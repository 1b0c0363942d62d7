"""Key-value stores for rendezvous and out-of-band coordination (``torch.distributed`` surface).

A store maps ``str`` keys to ``bytes`` values. Every blocking call (``get``, ``wait``) is bounded
by a timeout and fails with :class:`DistStoreError` naming the missing keys and the timeout.

* :class:`HashStore` -- in memory, for threads of one process.
* :class:`FileStore` -- an append-only log on a (shared) file system, locked with ``fcntl``,
  usable by any number of processes that see the same file.
* :class:`TCPStore` -- a server in the master process, clients over TCP.
* :class:`PrefixStore` -- a namespace inside another store.

Security: nothing is ever unpickled. The TCP protocol and the file log are length-prefixed
binary records with bounded sizes (:data:`MAX_KEY_BYTES`, :data:`MAX_VALUE_BYTES`); malformed
frames or records are rejected. The TCP server binds only to the address it is given.

Example::

    >>> store = HashStore()
    >>> store.set("k", "v"); store.get("k")
    b'v'
    >>> store.add("n", 2)
    2
"""

from __future__ import annotations

import abc
import errno
import fcntl
import os
import socket
import struct
import threading
import time
from datetime import timedelta

from .errors import DistNetworkError, DistStoreError

__all__ = [
    "Store", "HashStore", "FileStore", "TCPStore", "PrefixStore",
    "MAX_KEY_BYTES", "MAX_VALUE_BYTES", "DEFAULT_TIMEOUT",
]

MAX_KEY_BYTES = 64 * 1024
MAX_VALUE_BYTES = 64 * 1024 * 1024
MAX_KEYS_PER_CALL = 65536
DEFAULT_TIMEOUT = timedelta(seconds=300)

# Keys starting with this byte are private bookkeeping (worker counts, reference counts):
# they are hidden from num_keys() so that it counts only what users set.
_INTERNAL = "\x00dtorch/"


def _to_bytes(value) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
    else:
        raise TypeError(f"store values must be str or bytes, got {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise ValueError(f"store value of {len(value)} bytes exceeds the limit of "
                         f"{MAX_VALUE_BYTES} bytes")
    return value


def _check_key(key) -> str:
    if not isinstance(key, str):
        raise TypeError(f"store keys must be str, got {type(key).__name__}: {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"store key of {len(key.encode())} bytes exceeds the limit of "
                         f"{MAX_KEY_BYTES} bytes")
    return key


def _check_keys(keys) -> list[str]:
    if isinstance(keys, str):
        raise TypeError(f"keys must be a list of str, got the str {keys!r}")
    keys = [_check_key(k) for k in keys]
    if len(keys) > MAX_KEYS_PER_CALL:
        raise ValueError(f"{len(keys)} keys in one call exceeds the limit of {MAX_KEYS_PER_CALL}")
    return keys


def _as_timedelta(timeout) -> timedelta:
    if isinstance(timeout, timedelta):
        return timeout
    if isinstance(timeout, (int, float)):
        return timedelta(seconds=timeout)
    raise TypeError(f"timeout must be a datetime.timedelta, got {type(timeout).__name__}")


def _timeout_error(where: str, keys, timeout: timedelta) -> DistStoreError:
    return DistStoreError(
        f"{where}: timed out after {timeout.total_seconds():g} s waiting for key(s) "
        f"{sorted(keys)!r} (store timeout {timeout})")


def _add_to_value(key: str, old: bytes | None, amount: int) -> tuple[bytes, int]:
    base = 0
    if old is not None:
        try:
            base = int(old)
        except ValueError:
            raise DistStoreError(f"add({key!r}, {amount}): the key holds {old[:64]!r}, which is "
                                 "not an integer counter") from None
    new = base + amount
    return str(new).encode(), new


class Store(abc.ABC):
    """Abstract key-value store shared by all ranks of a job.

    Subclasses implement the primitives; ``wait``/``check`` semantics and the timeout are common.

    Args:
        timeout (timedelta): default bound for ``get`` and ``wait``.
    """

    def __init__(self, timeout: timedelta = DEFAULT_TIMEOUT):
        self._timeout = _as_timedelta(timeout)

    @property
    def timeout(self) -> timedelta:
        """The default timeout of blocking operations."""
        return self._timeout

    def set_timeout(self, timeout: timedelta) -> None:
        """Change the default timeout of ``get`` and ``wait``."""
        self._timeout = _as_timedelta(timeout)

    @abc.abstractmethod
    def set(self, key: str, value) -> None:
        """Store ``value`` (str or bytes) under ``key``, replacing any previous value."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the value of ``key``, waiting up to :attr:`timeout` for it to be set."""

    @abc.abstractmethod
    def add(self, key: str, amount: int) -> int:
        """Atomically add ``amount`` to the integer counter ``key`` (0 if unset); return it."""

    @abc.abstractmethod
    def compare_set(self, key: str, expected_value, desired_value) -> bytes:
        """Atomically set ``key`` to ``desired_value`` if it currently holds ``expected_value``.

        A missing key matches an empty ``expected_value``. Returns the value after the call
        (``expected_value`` itself when the key is missing and ``expected_value`` is not empty).
        """

    @abc.abstractmethod
    def wait(self, keys, timeout: timedelta | None = None) -> None:
        """Block until every key in ``keys`` is set, or raise :class:`DistStoreError`."""

    @abc.abstractmethod
    def check(self, keys) -> bool:
        """Return whether every key in ``keys`` is set, without waiting."""

    @abc.abstractmethod
    def delete_key(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""

    @abc.abstractmethod
    def num_keys(self) -> int:
        """Return the number of keys set."""


def _compare_set(data: dict, key: str, expected: bytes, desired: bytes) -> bytes:
    cur = data.get(key)
    if cur is None:
        if expected == b"":
            data[key] = desired
            return desired
        return expected
    if cur == expected:
        data[key] = desired
        return desired
    return cur


class HashStore(Store):
    """Thread-safe in-memory store (one process); the server side of :class:`TCPStore`."""

    def __init__(self, timeout: timedelta = DEFAULT_TIMEOUT):
        super().__init__(timeout)
        self._data: dict[str, bytes] = {}
        self._cond = threading.Condition()

    def set(self, key, value):
        key, value = _check_key(key), _to_bytes(value)
        with self._cond:
            self._data[key] = value
            self._cond.notify_all()

    def get(self, key):
        key = _check_key(key)
        self._wait_locked_free([key], self._timeout, "get")
        with self._cond:
            return self._data[key]

    def add(self, key, amount):
        key = _check_key(key)
        amount = int(amount)
        with self._cond:
            self._data[key], new = _add_to_value(key, self._data.get(key), amount)
            self._cond.notify_all()
        return new

    def compare_set(self, key, expected_value, desired_value):
        key = _check_key(key)
        expected, desired = _to_bytes(expected_value), _to_bytes(desired_value)
        with self._cond:
            out = _compare_set(self._data, key, expected, desired)
            self._cond.notify_all()
        return out

    def wait(self, keys, timeout=None):
        keys = _check_keys(keys)
        timeout = self._timeout if timeout is None else _as_timedelta(timeout)
        self._wait_locked_free(keys, timeout, "wait")

    def _wait_locked_free(self, keys, timeout: timedelta, op: str) -> None:
        deadline = time.monotonic() + timeout.total_seconds()
        with self._cond:
            while True:
                missing = [k for k in keys if k not in self._data]
                if not missing:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _timeout_error(f"HashStore.{op}", missing, timeout)
                self._cond.wait(left)

    def check(self, keys):
        keys = _check_keys(keys)
        with self._cond:
            return all(k in self._data for k in keys)

    def delete_key(self, key):
        key = _check_key(key)
        with self._cond:
            return self._data.pop(key, None) is not None

    def num_keys(self):
        with self._cond:
            return sum(1 for k in self._data if not k.startswith(_INTERNAL))

    def _missing(self, keys) -> list[str]:
        with self._cond:
            return [k for k in keys if k not in self._data]


class PrefixStore(Store):
    """A view of ``store`` in which every key is prefixed with ``prefix + "/"``.

    Args:
        prefix (str): the namespace.
        store (Store): the underlying store (shared, not copied).
    """

    def __init__(self, prefix: str, store: Store):
        if not isinstance(store, Store):
            raise TypeError(f"PrefixStore needs a Store, got {type(store).__name__}")
        super().__init__(store.timeout)
        self._prefix = str(prefix)
        self._store = store

    @property
    def underlying_store(self) -> Store:
        """The wrapped store."""
        return self._store

    @property
    def timeout(self):
        return self._store.timeout

    def set_timeout(self, timeout):
        self._store.set_timeout(timeout)

    def _k(self, key):
        return f"{self._prefix}/{_check_key(key)}"

    def set(self, key, value):
        self._store.set(self._k(key), value)

    def get(self, key):
        return self._store.get(self._k(key))

    def add(self, key, amount):
        return self._store.add(self._k(key), amount)

    def compare_set(self, key, expected_value, desired_value):
        return self._store.compare_set(self._k(key), expected_value, desired_value)

    def wait(self, keys, timeout=None):
        self._store.wait([self._k(k) for k in _check_keys(keys)], timeout)

    def check(self, keys):
        return self._store.check([self._k(k) for k in _check_keys(keys)])

    def delete_key(self, key):
        return self._store.delete_key(self._k(key))

    def num_keys(self):
        return self._store.num_keys()


# ----------------------------------------------------------------------------- FileStore
# Log record: op (1 byte: b"S" set, b"D" delete), key length (u32), value length (u32),
# key bytes, value bytes. Appends happen under an exclusive lock, reads under a shared lock,
# so a reader never sees a partial record; a truncated or unknown record is corruption.
_REC = struct.Struct("!cII")
# POSIX record locks belong to the process, not the descriptor (and closing any descriptor of
# the file drops them all), so FileStores of one process serialise on this lock first.
_FILE_LOCK = threading.RLock()


class FileStore(Store):
    """A store kept in ``file_name``, shared by every process that opens the same file.

    The file is an append-only log guarded by ``fcntl`` locks, so it works on a local disk and
    on shared file systems with working POSIX locks (NFSv4, Lustre, GPFS). ``world_size``
    processes may use one file; each ``FileStore`` registers itself in the file and the last one
    to :meth:`close` removes it, so a stale file does not leak into the next run.

    Args:
        file_name (str): path of the log file (created if missing).
        world_size (int): the number of processes that will open it, or -1 for no limit.
        timeout (timedelta): default bound for ``get`` and ``wait``.
    """

    _USERS = _INTERNAL + "filestore_users"
    _POLL = (0.002, 0.05)  # first and longest sleep between polls of the file

    def __init__(self, file_name: str, world_size: int = -1,
                 timeout: timedelta = DEFAULT_TIMEOUT):
        super().__init__(timeout)
        self.file_name = os.fspath(file_name)
        self.world_size = int(world_size)
        self._lock = _FILE_LOCK
        self._data: dict[str, bytes] = {}
        self._offset = 0
        self._closed = False
        try:
            self._fd = os.open(self.file_name, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as e:
            raise DistStoreError(f"FileStore cannot open {self.file_name!r}: {e}") from e
        users = self.add(self._USERS, 1)
        if self.world_size > 0 and users > self.world_size:
            self.add(self._USERS, -1)
            os.close(self._fd)
            self._closed = True
            raise DistStoreError(
                f"FileStore {self.file_name!r}: {users} processes opened it but world_size is "
                f"{self.world_size}; a stale file from an earlier run? delete it")

    # -- log access (caller holds self._lock) --
    def _refresh(self) -> None:
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            raise DistStoreError(f"FileStore {self.file_name!r} shrank from {self._offset} to "
                                 f"{size} bytes: it was truncated or replaced while in use")
        if size == self._offset:
            return
        buf = os.pread(self._fd, size - self._offset, self._offset)
        pos = 0
        while pos < len(buf):
            if len(buf) - pos < _REC.size:
                raise self._corrupt(pos, "truncated record header")
            op, klen, vlen = _REC.unpack_from(buf, pos)
            if op not in (b"S", b"D") or klen > MAX_KEY_BYTES or vlen > MAX_VALUE_BYTES:
                raise self._corrupt(pos, f"bad record (op={op!r}, key {klen} B, value {vlen} B)")
            end = pos + _REC.size + klen + vlen
            if end > len(buf):
                raise self._corrupt(pos, "truncated record")
            try:
                key = buf[pos + _REC.size: pos + _REC.size + klen].decode()
            except UnicodeDecodeError:
                raise self._corrupt(pos, "key is not UTF-8") from None
            if op == b"S":
                self._data[key] = buf[pos + _REC.size + klen: end]
            else:
                self._data.pop(key, None)
            pos = end
        self._offset += pos

    def _corrupt(self, pos: int, what: str) -> DistStoreError:
        return DistStoreError(f"FileStore {self.file_name!r} is corrupt at byte "
                              f"{self._offset + pos}: {what}; it is not a dtorch store file")

    def _append(self, op: bytes, key: str, value: bytes = b"") -> None:
        k = key.encode()
        rec = _REC.pack(op, len(k), len(value)) + k + value
        n = os.write(self._fd, rec)
        if n != len(rec):
            raise DistStoreError(f"FileStore {self.file_name!r}: short write ({n}/{len(rec)})")
        self._refresh()

    def _locked(self, exclusive: bool, fn):
        with self._lock:
            if self._closed:
                raise DistStoreError(f"FileStore {self.file_name!r} is closed")
            fcntl.lockf(self._fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                self._refresh()
                return fn()
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    # -- Store API --
    def set(self, key, value):
        key, value = _check_key(key), _to_bytes(value)
        self._locked(True, lambda: self._append(b"S", key, value))

    def get(self, key):
        key = _check_key(key)
        self._poll([key], self._timeout, "get")
        return self._locked(False, lambda: self._data[key])

    def add(self, key, amount):
        key, amount = _check_key(key), int(amount)

        def op():
            value, new = _add_to_value(key, self._data.get(key), amount)
            self._append(b"S", key, value)
            return new
        return self._locked(True, op)

    def compare_set(self, key, expected_value, desired_value):
        key = _check_key(key)
        expected, desired = _to_bytes(expected_value), _to_bytes(desired_value)

        def op():
            before = self._data.get(key)
            view = dict(self._data)
            out = _compare_set(view, key, expected, desired)
            if view.get(key) != before:
                self._append(b"S", key, desired)
            return out
        return self._locked(True, op)

    def wait(self, keys, timeout=None):
        keys = _check_keys(keys)
        self._poll(keys, self._timeout if timeout is None else _as_timedelta(timeout), "wait")

    def _poll(self, keys, timeout: timedelta, op: str) -> None:
        deadline = time.monotonic() + timeout.total_seconds()
        sleep = self._POLL[0]
        while True:
            missing = self._locked(False, lambda: [k for k in keys if k not in self._data])
            if not missing:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timeout_error(f"FileStore({self.file_name!r}).{op}", missing, timeout)
            time.sleep(min(sleep, left))
            sleep = min(sleep * 2, self._POLL[1])

    def check(self, keys):
        keys = _check_keys(keys)
        return self._locked(False, lambda: all(k in self._data for k in keys))

    def delete_key(self, key):
        key = _check_key(key)

        def op():
            if key not in self._data:
                return False
            self._append(b"D", key)
            return True
        return self._locked(True, op)

    def num_keys(self):
        return self._locked(False, lambda: sum(1 for k in self._data
                                               if not k.startswith(_INTERNAL)))

    def close(self) -> None:
        """Unregister this process; the last user removes the file."""
        if self._closed:
            return
        try:
            left = self.add(self._USERS, -1)
            if left <= 0:
                try:
                    os.unlink(self.file_name)
                except FileNotFoundError:
                    pass
        finally:
            with self._lock:
                self._closed = True
                os.close(self._fd)

    def __del__(self):
        # NOTE: the collector may run this inside another FileStore's locked section on this
        # thread; closing then would drop that section's fcntl lock, so leave the fd be.
        if getattr(self, "_closed", True) or _FILE_LOCK._is_owned():
            return
        try:
            self.close()
        except Exception:
            pass


# ----------------------------------------------------------------------------- TCPStore
# Frame: u32 body length, then body = u8 opcode, u32 field count, fields (u32 length + bytes).
# Responses reuse the frame with the opcode field carrying a status.
_U32 = struct.Struct("!I")
_HDR = struct.Struct("!BI")
_I64 = struct.Struct("!q")
_MAX_FRAME = MAX_VALUE_BYTES * 2 + MAX_KEY_BYTES + 1024
_MAGIC = b"dtorch-store-1"

(_HELLO, _SET, _GET, _ADD, _CAS, _WAIT, _CHECK, _DELETE, _NUM_KEYS, _JOIN, _WORKERS) = range(1, 12)
_OK, _TIMEOUT, _ERROR = 0, 1, 2


class _ProtocolError(Exception):
    pass


def _encode(code: int, fields) -> bytes:
    parts = [_HDR.pack(code, len(fields))]
    for f in fields:
        parts.append(_U32.pack(len(f)))
        parts.append(f)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError(f"connection closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> tuple[int, list[bytes]]:
    (length,) = _U32.unpack(_recv_exact(sock, _U32.size))
    if length < _HDR.size or length > _MAX_FRAME:
        raise _ProtocolError(f"frame length {length} outside [{_HDR.size}, {_MAX_FRAME}]")
    body = _recv_exact(sock, length)
    code, count = _HDR.unpack_from(body)
    if count > MAX_KEYS_PER_CALL + 4:
        raise _ProtocolError(f"{count} fields in one frame")
    fields, pos = [], _HDR.size
    for _ in range(count):
        if pos + _U32.size > length:
            raise _ProtocolError("field header runs past the end of the frame")
        (n,) = _U32.unpack_from(body, pos)
        pos += _U32.size
        if pos + n > length:
            raise _ProtocolError(f"field of {n} bytes runs past the end of the frame")
        fields.append(body[pos:pos + n])
        pos += n
    if pos != length:
        raise _ProtocolError(f"{length - pos} trailing bytes after the last field")
    return code, fields


def _key_of(field: bytes) -> str:
    if len(field) > MAX_KEY_BYTES:
        raise _ProtocolError(f"key of {len(field)} bytes exceeds {MAX_KEY_BYTES}")
    try:
        return field.decode()
    except UnicodeDecodeError:
        raise _ProtocolError("key is not UTF-8") from None


def _int_of(field: bytes) -> int:
    if len(field) != _I64.size:
        raise _ProtocolError(f"integer field of {len(field)} bytes, expected {_I64.size}")
    return _I64.unpack(field)[0]


class _TCPServer:
    """The master's store server: one accept thread, one thread per client, a HashStore."""

    MAX_CLIENTS = 4096

    def __init__(self, host: str, port: int):
        self.store = HashStore()
        self.workers = 0
        self.users = 0
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            self._sock.listen(socket.SOMAXCONN)
        except OSError as e:
            self._sock.close()
            if e.errno == errno.EADDRINUSE:
                raise DistNetworkError(
                    f"TCPStore server cannot listen on {host}:{port}: address already in use "
                    f"(errno {e.errno}); another process holds the port -- pick another "
                    "MASTER_PORT or pass port=0 for a free one") from e
            raise DistNetworkError(f"TCPStore server cannot listen on {host}:{port}: {e}") from e
        self.port = self._sock.getsockname()[1]
        self._clients: set[socket.socket] = set()
        self._lock = threading.RLock()
        self._closed = False
        threading.Thread(target=self._accept_loop, name=f"TCPStore-{self.port}",
                         daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                if self._closed or len(self._clients) >= self.MAX_CLIENTS:
                    conn.close()
                    continue
                self._clients.add(conn)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        try:
            code, fields = _recv_frame(conn)
            if code != _HELLO or fields != [_MAGIC]:
                raise _ProtocolError("expected the dtorch store handshake")
            conn.sendall(_encode(_OK, [_MAGIC]))
            while True:
                try:
                    code, fields = _recv_frame(conn)
                except EOFError:
                    return
                conn.sendall(self._handle(code, fields))
        except _ProtocolError as e:
            try:
                conn.sendall(_encode(_ERROR, [f"malformed frame: {e}".encode()]))
                # NOTE: closing with unread input sends a RST that can destroy the reply
                # before the peer reads it; half-close and drain a little first.
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(1.0)
                drained = 0
                while drained < (1 << 20) and (chunk := conn.recv(65536)):
                    drained += len(chunk)
            except OSError:
                pass
        except (OSError, EOFError):
            pass
        finally:
            with self._lock:
                self._clients.discard(conn)
            conn.close()

    def _handle(self, code: int, f: list[bytes]) -> bytes:
        s = self.store
        nargs = {_SET: 2, _GET: 2, _ADD: 2, _CAS: 3, _DELETE: 1, _NUM_KEYS: 0,
                 _JOIN: 0, _WORKERS: 2}
        if code in nargs and len(f) != nargs[code]:
            raise _ProtocolError(f"opcode {code} takes {nargs[code]} fields, got {len(f)}")
        try:
            if code == _SET:
                if len(f[1]) > MAX_VALUE_BYTES:
                    raise _ProtocolError(f"value of {len(f[1])} bytes exceeds {MAX_VALUE_BYTES}")
                s.set(_key_of(f[0]), f[1])
                return _encode(_OK, [])
            if code in (_GET, _WAIT):
                if not f:
                    raise _ProtocolError("wait without a timeout field")
                keys = [_key_of(k) for k in f[:-1]]
                ms = _int_of(f[-1])
                try:
                    s._wait_locked_free(keys, timedelta(milliseconds=max(ms, 0)), "wait")
                except DistStoreError:
                    return _encode(_TIMEOUT, [k.encode() for k in s._missing(keys)])
                if code == _WAIT:
                    return _encode(_OK, [])
                with s._cond:
                    value = s._data.get(keys[0])
                if value is None:  # deleted between the wait and the read
                    return _encode(_TIMEOUT, [keys[0].encode()])
                return _encode(_OK, [value])
            if code == _ADD:
                return _encode(_OK, [_I64.pack(s.add(_key_of(f[0]), _int_of(f[1])))])
            if code == _CAS:
                return _encode(_OK, [s.compare_set(_key_of(f[0]), f[1], f[2])])
            if code == _CHECK:
                return _encode(_OK, [b"1" if s.check([_key_of(k) for k in f]) else b"0"])
            if code == _DELETE:
                return _encode(_OK, [b"1" if s.delete_key(_key_of(f[0])) else b"0"])
            if code == _NUM_KEYS:
                return _encode(_OK, [_I64.pack(s.num_keys())])
            if code == _JOIN:
                with self._lock:
                    self.workers += 1
                    n = self.workers
                s.set(_INTERNAL + "tcpstore_workers", str(n))
                return _encode(_OK, [_I64.pack(n)])
            if code == _WORKERS:
                want, ms = _int_of(f[0]), _int_of(f[1])
                deadline = time.monotonic() + ms / 1000
                with s._cond:
                    while self.workers < want and time.monotonic() < deadline:
                        s._cond.wait(deadline - time.monotonic())
                    n = self.workers
                return _encode(_OK if n >= want else _TIMEOUT, [_I64.pack(n)])
        except (DistStoreError, ValueError, TypeError) as e:
            return _encode(_ERROR, [str(e).encode()])
        raise _ProtocolError(f"unknown opcode {code}")

    def close(self):
        with self._lock:
            self._closed = True
            clients = list(self._clients)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_servers: dict[tuple[str, int], _TCPServer] = {}
# Reentrant: the garbage collector may run a dead TCPStore's __del__ (which takes this lock)
# inside a TCPStore constructor that holds it.
_servers_lock = threading.RLock()


class TCPStore(Store):
    """A store served over TCP by the master process; every rank (the master too) is a client.

    Clients retry refused connections until ``timeout`` (the master may start later than its
    workers); the final error names ``host:port`` and the time spent.

    Args:
        host_name (str): the master's address; the server binds to exactly this address.
        port (int): the port; 0 on the master picks a free one (read it back from :attr:`port`).
        world_size (int, optional): number of clients, master included.
        is_master (bool): run the server in this process.
        timeout (timedelta): bound for connecting, ``get`` and ``wait``.
        wait_for_workers (bool): the master waits until ``world_size`` clients have joined.
        multi_tenant (bool): reuse a server this process already runs on ``(host, port)``.

    Example::

        >>> master = TCPStore("127.0.0.1", 0, 1, is_master=True)
        >>> master.set("x", b"1"); TCPStore("127.0.0.1", master.port).get("x")
        b'1'
    """

    def __init__(self, host_name: str, port: int, world_size: int | None = None,
                 is_master: bool = False, timeout: timedelta = DEFAULT_TIMEOUT,
                 wait_for_workers: bool = True, multi_tenant: bool = False):
        super().__init__(timeout)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"TCPStore port must be an int in [0, 65535], got {port!r}")
        if world_size is not None and world_size < 1:
            raise ValueError(f"TCPStore world_size must be >= 1 or None, got {world_size}")
        if port == 0 and not is_master:
            raise ValueError("TCPStore port=0 is only valid on the master (is_master=True)")
        self.host = host_name
        self.world_size = world_size
        self._server = None
        self._owns_server = False
        self._lock = threading.Lock()
        self._idle: list[socket.socket] = []  # one connection per concurrent caller thread
        self._closed = False
        if is_master:
            with _servers_lock:
                if multi_tenant and (host_name, port) in _servers and port != 0:
                    self._server = _servers[(host_name, port)]
                else:
                    self._server = _TCPServer(host_name, port)
                    self._owns_server = True
                    if multi_tenant:
                        _servers[(host_name, self._server.port)] = self._server
                self._server.users += 1
            port = self._server.port
        self.port = port
        self._idle.append(self._connect())
        self._call(_JOIN, [])
        if is_master and wait_for_workers and world_size is not None:
            ms = int(self._timeout.total_seconds() * 1000)
            code, fields = self._call(_WORKERS, [_I64.pack(world_size), _I64.pack(ms)],
                                      wait_s=self._timeout.total_seconds(), raw=True)
            if code != _OK:
                raise DistStoreError(
                    f"TCPStore at {host_name}:{port}: timed out after {self._timeout} waiting "
                    f"for workers: {_int_of(fields[0])} of world_size {world_size} joined")

    @property
    def libuvBackend(self) -> bool:  # noqa: N802 -- PyTorch's name
        """Always False: the server is a plain threaded socket server."""
        return False

    def _connect(self) -> socket.socket:
        total = self._timeout.total_seconds()
        start = time.monotonic()
        delay, last = 0.01, None
        while True:
            try:
                sock = socket.create_connection((self.host, self.port),
                                                timeout=max(0.1, min(5.0, total)))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(max(1.0, total))
                sock.sendall(_encode(_HELLO, [_MAGIC]))
                code, fields = _recv_frame(sock)
                if code != _OK or fields != [_MAGIC]:
                    sock.close()
                    raise DistNetworkError(f"{self.host}:{self.port} is not a dtorch TCPStore "
                                           f"(handshake answer {code}, {fields[:1]!r})")
                return sock
            except socket.gaierror as e:
                raise DistNetworkError(f"TCPStore cannot resolve host {self.host!r}: {e}") from e
            except _ProtocolError as e:
                sock.close()
                raise DistNetworkError(f"{self.host}:{self.port} is not a dtorch TCPStore: "
                                       f"{e}") from e
            except (OSError, EOFError) as e:  # refused, reset, timed out: the master may be late
                last = e
            elapsed = time.monotonic() - start
            if elapsed >= total:
                raise DistNetworkError(
                    f"TCPStore client could not connect to {self.host}:{self.port} after "
                    f"{elapsed:.1f} s (timeout {self._timeout}): {last!r}; is the master "
                    "(rank 0) running and MASTER_ADDR/MASTER_PORT right?")
            time.sleep(min(delay, max(0.0, total - elapsed)))
            delay = min(delay * 2, 0.5)

    def _call(self, code: int, fields, wait_s: float = 0.0, raw: bool = False):
        with self._lock:
            if self._closed:
                raise DistStoreError(f"TCPStore {self.host}:{self.port} is closed")
            sock = self._idle.pop() if self._idle else None
        if sock is None:
            sock = self._connect()
        try:
            sock.settimeout(max(1.0, self._timeout.total_seconds()) + wait_s + 5.0)
            sock.sendall(_encode(code, fields))
            rcode, rfields = _recv_frame(sock)
        except (OSError, EOFError, _ProtocolError) as e:
            sock.close()
            raise DistNetworkError(f"TCPStore connection to {self.host}:{self.port} "
                                   f"failed: {e!r}") from e
        with self._lock:
            if self._closed:
                sock.close()
            else:
                self._idle.append(sock)
        if raw:
            return rcode, rfields
        if rcode == _ERROR:
            raise DistStoreError(f"TCPStore {self.host}:{self.port}: "
                                 f"{rfields[0].decode(errors='replace')}")
        return rcode, rfields

    def _blocking(self, code, keys, timeout: timedelta, op: str):
        ms = int(timeout.total_seconds() * 1000)
        fields = [k.encode() for k in keys] + [_I64.pack(ms)]
        rcode, rfields = self._call(code, fields, wait_s=timeout.total_seconds())
        if rcode == _TIMEOUT:
            raise _timeout_error(f"TCPStore({self.host}:{self.port}).{op}",
                                 [k.decode() for k in rfields], timeout)
        return rfields

    def set(self, key, value):
        self._call(_SET, [_check_key(key).encode(), _to_bytes(value)])

    def get(self, key):
        return self._blocking(_GET, [_check_key(key)], self._timeout, "get")[0]

    def add(self, key, amount):
        return _int_of(self._call(_ADD, [_check_key(key).encode(), _I64.pack(int(amount))])[1][0])

    def compare_set(self, key, expected_value, desired_value):
        fields = [_check_key(key).encode(), _to_bytes(expected_value), _to_bytes(desired_value)]
        return self._call(_CAS, fields)[1][0]

    def wait(self, keys, timeout=None):
        timeout = self._timeout if timeout is None else _as_timedelta(timeout)
        self._blocking(_WAIT, _check_keys(keys), timeout, "wait")

    def check(self, keys):
        return self._call(_CHECK, [k.encode() for k in _check_keys(keys)])[1][0] == b"1"

    def delete_key(self, key):
        return self._call(_DELETE, [_check_key(key).encode()])[1][0] == b"1"

    def num_keys(self):
        return _int_of(self._call(_NUM_KEYS, [])[1][0])

    def close(self) -> None:
        """Close the connection; the master also stops its server when no user is left."""
        with self._lock:
            self._closed = True
            for sock in self._idle:
                sock.close()
            self._idle.clear()
        if self._server is not None:
            with _servers_lock:
                self._server.users -= 1
                if self._server.users <= 0:
                    self._server.close()
                    for k, v in list(_servers.items()):
                        if v is self._server:
                            del _servers[k]
            self._server = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
