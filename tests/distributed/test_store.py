"""Stores: every method of every store, timeouts, multi-process counters, hostile input."""

import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest

from dtorch.distributed.errors import DistError, DistNetworkError, DistStoreError
from dtorch.distributed.store import (
    MAX_VALUE_BYTES,
    FileStore,
    HashStore,
    PrefixStore,
    Store,
    TCPStore,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHORT = timedelta(seconds=0.3)


def start_procs(code: str, nprocs: int, **fmt):
    """Start ``nprocs`` Python processes running ``code`` with ``RANK`` set; return them."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    src = textwrap.dedent(code).format(**fmt)
    return [subprocess.Popen([sys.executable, "-c", src], env=dict(env, RANK=str(r)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(nprocs)]


def finish(procs, timeout: float = 60):
    """Wait for ``procs`` (killing any left after ``timeout``); return (rc, out, err) each."""
    out = []
    try:
        for p in procs:
            o, e = p.communicate(timeout=timeout)
            out.append((p.returncode, o, e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


@pytest.fixture(params=["hash", "file", "tcp_master", "tcp_client", "prefix"])
def store(request, tmp_path):
    made = []
    if request.param == "hash":
        s = HashStore(timeout=SHORT)
    elif request.param == "file":
        s = FileStore(str(tmp_path / "store"), timeout=SHORT)
    elif request.param == "tcp_master":
        s = TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=SHORT)
    elif request.param == "tcp_client":
        m = TCPStore("127.0.0.1", 0, 2, is_master=True, timeout=timedelta(seconds=5),
                     wait_for_workers=False)
        made.append(m)
        s = TCPStore("127.0.0.1", m.port, 2, timeout=SHORT)
    else:
        s = PrefixStore("pre", HashStore(timeout=SHORT))
    yield s
    for x in [s, *made]:
        if hasattr(x, "close"):
            x.close()


def test_set_get_str_and_bytes(store):
    store.set("a", "text")
    store.set("b", b"\x00\xffbin")
    assert store.get("a") == b"text"
    assert store.get("b") == b"\x00\xffbin"
    store.set("a", b"")
    assert store.get("a") == b""


def test_get_times_out_naming_key_and_timeout(store):
    t = time.monotonic()
    with pytest.raises(DistStoreError, match=r"timed out after 0.3 s .*\['(pre/)?missing'\]"):
        store.get("missing")
    assert time.monotonic() - t >= 0.29
    assert issubclass(DistStoreError, DistError) and issubclass(DistError, RuntimeError)


def test_get_waits_for_a_later_set(store):
    store.set_timeout(timedelta(seconds=10))
    threading.Timer(0.1, store.set, ("late", "v")).start()
    assert store.get("late") == b"v"


def test_add_is_a_counter(store):
    assert store.add("n", 1) == 1
    assert store.add("n", 5) == 6
    assert store.add("n", -10) == -4
    assert store.get("n") == b"-4"
    assert store.add("fresh", 0) == 0
    store.set("word", "abc")
    with pytest.raises(DistStoreError, match=r"'(pre/)?word'.*not an integer"):
        store.add("word", 1)


def test_compare_set(store):
    assert store.compare_set("k", "", "first") == b"first"  # missing + empty expected: set
    assert store.compare_set("k", "wrong", "x") == b"first"  # mismatch: current value
    assert store.compare_set("k", "first", "second") == b"second"
    assert store.get("k") == b"second"
    assert store.compare_set("absent", "exp", "x") == b"exp"  # missing + non-empty expected
    assert not store.check(["absent"])


def test_wait_and_check(store):
    store.set("x", "1")
    assert store.check(["x"])
    assert not store.check(["x", "y"])
    store.wait(["x"])
    with pytest.raises(DistStoreError, match=r"\['(pre/)?y', '(pre/)?z'\].*timeout 0:00:00.1"):
        store.wait(["x", "y", "z"], timedelta(seconds=0.1))
    threading.Timer(0.1, store.set, ("y", "2")).start()
    store.wait(["x", "y"], timedelta(seconds=10))


def test_delete_and_num_keys(store):
    base = store.num_keys()
    store.set("d1", "1")
    store.add("d2", 1)
    assert store.num_keys() == base + 2
    assert store.delete_key("d1") is True
    assert store.delete_key("d1") is False
    assert store.num_keys() == base + 1
    assert not store.check(["d1"])


def test_timeout_property(store):
    assert store.timeout == SHORT
    store.set_timeout(timedelta(seconds=0.1))
    assert store.timeout == timedelta(seconds=0.1)
    with pytest.raises(DistStoreError, match="0.1 s"):
        store.get("nothing")


def test_argument_validation(store):
    with pytest.raises(TypeError, match="keys must be str"):
        store.set(3, "v")
    with pytest.raises(TypeError, match="values must be str or bytes"):
        store.set("k", 3.5)
    with pytest.raises(TypeError, match="list of str"):
        store.check("abc")
    with pytest.raises(ValueError, match=f"exceeds the limit of {MAX_VALUE_BYTES}"):
        store.set("big", b"\0" * (MAX_VALUE_BYTES + 1))


def test_prefix_store_isolates_namespaces():
    base = HashStore(timeout=SHORT)
    a, b = PrefixStore("a", base), PrefixStore("b", base)
    a.set("k", "1")
    b.set("k", "2")
    assert (a.get("k"), b.get("k"), base.get("a/k")) == (b"1", b"2", b"1")
    assert a.underlying_store is base and isinstance(a, Store)
    with pytest.raises(DistStoreError, match=r"\['a/zz'\]"):
        a.get("zz")


# ---------------------------------------------------------------- multi-process counters
COUNTER = """
import os
from datetime import timedelta
from dtorch.distributed.store import FileStore, TCPStore
rank = int(os.environ["RANK"])
kind = {kind!r}
t = timedelta(seconds=30)
if kind == "file":
    s = FileStore({path!r}, {n}, timeout=t)
else:
    s = TCPStore("127.0.0.1", {port}, {n}, timeout=t)
got = [s.add("counter", 1) for _ in range({reps})]
s.set("got/%d" % rank, ",".join(map(str, got)))
s.add("done", 1)
s.wait(["release"])
if kind == "file":
    s.close()
print("ok")
"""


@pytest.mark.parametrize("kind", ["file", "tcp"])
def test_multiprocess_counter_is_atomic(kind, tmp_path):
    n, reps = 3, 40
    path = str(tmp_path / "fs")
    master = None
    if kind == "tcp":
        master = TCPStore("127.0.0.1", 0, n + 1, is_master=True, timeout=timedelta(seconds=30),
                          wait_for_workers=False)
        parent = master
    else:
        parent = FileStore(path, n + 1, timeout=timedelta(seconds=30))
    procs = start_procs(COUNTER, n, kind=kind, path=path, n=n + 1, reps=reps,
                        port=master.port if master else 0)
    try:
        parent.wait([f"got/{r}" for r in range(n)], timedelta(seconds=30))
        values = sorted(int(v) for r in range(n) for v in parent.get(f"got/{r}").split(b","))
        assert values == list(range(1, n * reps + 1))  # every add saw a distinct total
        assert parent.get("counter") == str(n * reps).encode()
        parent.set("release", "1")
        results = finish(procs)
        assert [rc for rc, _, _ in results] == [0] * n, results
    finally:
        finish(procs, 0.1) if any(p.poll() is None for p in procs) else None
        parent.close()
    if kind == "file":
        assert not os.path.exists(path)  # the last user removed it


def test_filestore_world_size_and_corruption(tmp_path):
    path = str(tmp_path / "fs")
    a = FileStore(path, 1, timeout=SHORT)
    with pytest.raises(DistStoreError, match=r"2 processes opened it but world_size is 1"):
        FileStore(path, 1)
    a.close()
    with open(path, "wb") as f:
        f.write(b"S" + struct.pack("!II", 3, 1 << 31) + b"key")
    with pytest.raises(DistStoreError, match="corrupt at byte 0"):
        FileStore(path, timeout=SHORT)
    with open(path, "wb") as f:
        f.write(b"garbage that is no store")
    with pytest.raises(DistStoreError, match="corrupt"):
        FileStore(path, timeout=SHORT)


# ---------------------------------------------------------------- TCP specifics
def test_tcp_connect_retries_then_names_host_port_and_time():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t = time.monotonic()
    with pytest.raises(DistNetworkError, match=rf"127.0.0.1:{port} after 0.\d s"):
        TCPStore("127.0.0.1", port, timeout=timedelta(seconds=0.4))
    assert time.monotonic() - t >= 0.39


def test_tcp_client_may_start_before_master():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = {}

    def late_master():
        time.sleep(0.3)
        box["m"] = TCPStore("127.0.0.1", port, 2, is_master=True, timeout=timedelta(seconds=10))

    th = threading.Thread(target=late_master)
    th.start()
    c = TCPStore("127.0.0.1", port, 2, timeout=timedelta(seconds=10))
    th.join()
    c.set("x", "y")
    assert box["m"].get("x") == b"y"
    c.close()
    box["m"].close()


def test_tcp_port_in_use_has_its_own_message():
    m = TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=SHORT)
    with pytest.raises(DistNetworkError, match=rf"127.0.0.1:{m.port}: address already in use"):
        TCPStore("127.0.0.1", m.port, 1, is_master=True, timeout=SHORT)
    shared = TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=SHORT, multi_tenant=True)
    other = TCPStore("127.0.0.1", shared.port, 1, is_master=True, timeout=SHORT,
                     multi_tenant=True)
    other.set("k", "v")
    assert shared.get("k") == b"v" and shared.port != m.port
    for s in (m, shared, other):
        s.close()


def test_tcp_wait_for_workers_times_out_with_count():
    with pytest.raises(DistStoreError, match=r"1 of world_size 3 joined"):
        TCPStore("127.0.0.1", 0, 3, is_master=True, timeout=SHORT)


def test_tcp_argument_errors():
    with pytest.raises(ValueError, match="port=0 is only valid on the master"):
        TCPStore("127.0.0.1", 0)
    with pytest.raises(ValueError, match=r"port must be an int in \[0, 65535\], got 70000"):
        TCPStore("127.0.0.1", 70000)


def _raw(port, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                return b"".join(chunks)
            chunks.append(c)


def _frame(code, fields):
    body = struct.pack("!BI", code, len(fields))
    for f in fields:
        body += struct.pack("!I", len(f)) + f
    return struct.pack("!I", len(body)) + body


@pytest.mark.parametrize("payload, reason", [
    (struct.pack("!I", 1 << 30) + b"x", b"frame length 1073741824 outside"),
    (_frame(1, [b"not the magic"]), b"handshake"),
    (_frame(1, [b"dtorch-store-1"]) + _frame(99, []), b"unknown opcode 99"),
    (_frame(1, [b"dtorch-store-1"]) + struct.pack("!IBII", 9, 2, 1, 500), b"runs past the end"),
    (_frame(1, [b"dtorch-store-1"]) + _frame(2, [b"\xff\xfe", b"v"]), b"not UTF-8"),
    (_frame(1, [b"dtorch-store-1"]) + _frame(4, [b"k", b"abc"]), b"integer field of 3 bytes"),
])
def test_tcp_server_rejects_malformed_frames(payload, reason):
    m = TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=SHORT)
    reply = _raw(m.port, payload)
    assert b"malformed frame" in reply and reason in reply, reply
    m.set("still", "serving")  # the server survives and keeps serving others
    assert m.get("still") == b"serving"
    m.close()


def test_tcp_client_rejects_a_foreign_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def answer():
        c, _ = srv.accept()
        c.recv(100)
        c.sendall(struct.pack("!I", 1 << 31))
        c.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(DistNetworkError, match="is not a dtorch TCPStore"):
        TCPStore("127.0.0.1", srv.getsockname()[1], timeout=timedelta(seconds=5))
    srv.close()


def test_tcp_server_binds_only_the_given_address():
    m = TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=SHORT)
    assert m._server._sock.getsockname()[0] == "127.0.0.1"
    m.close()
