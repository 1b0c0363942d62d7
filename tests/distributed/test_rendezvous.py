"""Rendezvous: env://, tcp://, file:// with real subprocesses, and every error message."""

import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from dtorch.distributed.errors import DistError, DistNetworkError, DistStoreError
from dtorch.distributed.rendezvous import register_rendezvous_handler, rendezvous
from dtorch.distributed.store import FileStore, TCPStore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKER = """
import os, sys
from dtorch.distributed.rendezvous import rendezvous
url, rank, ws = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    store, rank, ws = next(rendezvous(url, rank, ws, timeout=float(sys.argv[4])))
except Exception as e:
    print("ERR", type(e).__name__, e, flush=True)
    sys.exit(3)
store.add("sum", rank + 1)
store.add("done", 1)
store.wait(["done"])
while int(store.get("done")) < ws:
    pass
store.set("seen/%d" % rank, str(ws))
store.wait(["seen/%d" % r for r in range(ws)])
total = int(store.get("sum"))
store.add("left", 1)
if rank == 0:  # the master keeps the store up until everyone has read it
    import time
    while int(store.get("left")) < ws:
        time.sleep(0.01)
print("OK", rank, ws, total, flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(url, ranks, world_size=-1, timeout=20.0, env=None):
    """Run one worker per entry of ``ranks`` (an int, or a dict of environment variables)."""
    base = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = []
    for r in ranks:
        e = dict(base, **(env or {}))
        arg = r
        if isinstance(r, dict):
            e.update(r)
            arg = -1
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(arg), str(world_size), str(timeout)],
            env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    out = []
    try:
        for p in procs:
            out.append((p.communicate(timeout=timeout + 30)[0], p.returncode))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def assert_world(out, world_size):
    expected_sum = world_size * (world_size + 1) // 2
    got = sorted(o.split()[1:] for o, rc in out)
    assert [rc for _, rc in out] == [0] * len(out), out
    assert got == sorted([str(r), str(world_size), str(expected_sum)]
                         for r in range(world_size)), out


def test_env_rendezvous_three_processes():
    port = free_port()
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "3"}
    # started in reverse so that clients have to retry until rank 0's server is up
    out = launch("env://", [{"RANK": str(r)} for r in (2, 1, 0)], env=env)
    assert_world(out, 3)


def test_env_query_overrides_environment():
    port = free_port()
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "7",
           "WORLD_SIZE": "9"}
    base = dict(os.environ, PYTHONPATH=ROOT, **env)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, f"env://?rank={r}&world_size=2",
                               "-1", "-1", "20"], env=base, stdout=subprocess.PIPE, text=True)
             for r in range(2)]
    out = [(p.communicate(timeout=60)[0], p.returncode) for p in procs]
    assert_world(out, 2)


def test_tcp_rendezvous_query_params():
    port = free_port()
    out = launch(f"tcp://127.0.0.1:{port}?world_size=2", [1, 0])
    assert_world(out, 2)


def test_file_rendezvous_four_processes(tmp_path):
    path = tmp_path / "rdzv"
    out = launch(f"file://{path}", [3, 1, 0, 2], world_size=4)
    assert_world(out, 4)
    assert not path.exists()  # the last process removed the file


def test_two_processes_claiming_one_rank():
    port = free_port()
    out = launch(f"tcp://127.0.0.1:{port}", [0, 1, 1], world_size=3, timeout=10)
    assert all(rc == 3 for _, rc in out), out
    msg = "tcp:// rendezvous: rank 1 was claimed by 2 processes (world_size=3)"
    assert sum(msg in o for o, _ in out) == 3, out  # the claimant and the others
    assert sum("rendezvous failed on another rank" in o for o, _ in out) == 2, out


# ------------------------------------------------------------------ in-process errors
def _threads(fn, args_list):
    res = [None] * len(args_list)

    def run(i, a):
        try:
            res[i] = fn(*a)
        except Exception as e:  # noqa: BLE001 -- the test inspects it
            res[i] = e

    ts = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return res


def test_join_timeout_names_missing_ranks(tmp_path):
    url = f"file://{tmp_path}/f"
    res = _threads(lambda r: next(rendezvous(url, r, 4, timeout=timedelta(seconds=0.5))),
                   [(0,), (2,)])
    for e in res:
        assert isinstance(e, DistStoreError), res
        assert "ranks [1, 3] of world_size 4 never arrived" in str(e)
        assert "file:// rendezvous timed out after 0.5 s" in str(e)


def test_world_size_disagreement(tmp_path):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    res = _threads(lambda r, w: next(rendezvous(url, r, w, timeout=5)), [(0, 2), (1, 3)])
    assert all(isinstance(e, DistError) for e in res), res
    # whichever rank comes second reports the disagreement; the other learns it from the store
    msgs = ("rank 1 has world_size=3 but another rank has world_size=2",
            "rank 0 has world_size=2 but another rank has world_size=3")
    assert all(any(m in str(e) for m in msgs) for e in res), res


def test_threads_form_a_world_in_process(tmp_path):
    url = f"file://{tmp_path}/f"
    res = _threads(lambda r: next(rendezvous(url, r, 3, timeout=10)), [(2,), (0,), (1,)])
    assert sorted((r, w) for _, r, w in res) == [(0, 3), (1, 3), (2, 3)]
    assert all(isinstance(s, FileStore) for s, _, _ in res)
    for s, _, _ in res:
        s.close()


@pytest.mark.parametrize("missing", ["MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"])
def test_env_missing_variable_is_named(monkeypatch, missing):
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1", "RANK": "0",
                 "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(missing)
    with pytest.raises(ValueError, match=f"env:// rendezvous: environment variable {missing} "
                                         "expected, but not set"):
        next(rendezvous("env://"))


@pytest.mark.parametrize("url, rank, ws, match", [
    ("env://", 4, 4, r"env:// rendezvous: RANK=4 is outside \[0, WORLD_SIZE=4\)"),
    ("env://?rank=-2&world_size=2", -1, -1, r"RANK=-2 is outside \[0, WORLD_SIZE=2\)"),
    ("env://?rank=x", -1, 2, r"env:// rendezvous: \?rank='x' is not an integer"),
    ("tcp://127.0.0.1:1", 5, 2, r"tcp:// rendezvous: rank=5 is outside \[0, world_size=2\)"),
    ("tcp://127.0.0.1:1", 0, 0, r"tcp:// rendezvous: world_size=0 must be >= 1"),
    ("tcp://127.0.0.1:1", -1, 2, r"tcp:// rendezvous needs rank"),
    ("tcp://127.0.0.1", 0, 1, r"tcp:// rendezvous needs tcp://host:port"),
    ("file:///tmp/x", 3, 3, r"file:// rendezvous: rank=3 is outside \[0, world_size=3\)"),
    ("file:///tmp/x?rank=0", -1, -1, r"file:// rendezvous needs world_size"),
    ("file://tmp/x", 0, 1, r"file:///path.*'tmp' would be read as a host name"),
    ("foo://bar", 0, 1, r"No rendezvous handler for foo://.*env://, file://, tcp://"),
])
def test_argument_errors_name_values_and_scheme(monkeypatch, url, rank, ws, match):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ValueError, match=match):
        next(rendezvous(url, rank, ws, timeout=1))


def test_connection_refused_is_retried_until_timeout(monkeypatch):
    port = free_port()
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "1",
                 "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(DistNetworkError, match=rf"connect to 127.0.0.1:{port} after 0.\d s"):
        next(rendezvous("env://", timeout=timedelta(seconds=0.5)))


def test_master_port_in_use(monkeypatch):
    holder = TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=timedelta(seconds=1))
    with pytest.raises(DistNetworkError, match=rf"127.0.0.1:{holder.port}: address already"):
        next(rendezvous(f"tcp://127.0.0.1:{holder.port}", 0, 2, timeout=1))
    holder.close()


def test_register_handler_registry():
    with pytest.raises(RuntimeError, match="env:// already registered"):
        register_rendezvous_handler("env", lambda url, **kw: iter(()))

    def handler(url, rank, world_size, timeout, **kw):
        yield "store", rank, world_size

    register_rendezvous_handler("dtorchtest", handler)
    assert next(rendezvous("dtorchtest://x", 1, 2)) == ("store", 1, 2)
