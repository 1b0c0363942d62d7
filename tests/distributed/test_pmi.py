"""The PMI-1 server: the wire protocol, and real MPI worlds of independently started processes."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from dtorch.distributed._pmi import PMIServer, start_server

mpi4py = pytest.importorskip("mpi4py")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPI"))}
ENV.update(PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

WORKER = r"""
import os, sys, time
from dtorch.distributed._pmi import configure_mpi_env
addr, rank, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
configure_mpi_env(addr, rank, n, timeout=20)
from mpi4py import MPI
import numpy as np
c = MPI.COMM_WORLD
assert (c.Get_rank(), c.Get_size()) == (rank, n), (c.Get_rank(), c.Get_size())
x = np.arange(1000, dtype=np.float64) * (rank + 1)
y = np.empty_like(x)
c.Allreduce(x, y)
assert np.array_equal(y, np.arange(1000) * (n * (n + 1) / 2))
if rank == 1 and mode == "abort":
    time.sleep(0.2)
    c.Abort(7)
if rank == 1 and mode == "die":
    time.sleep(0.2)
    os._exit(3)
if mode != "ok":
    c.Recv(y, source=1, tag=99)  # the other ranks wait for a message that will never come
print("ok", rank, flush=True)
"""


def run_world(n, mode="ok", timeout=20.0, **server_kw):
    server = start_server(n, "127.0.0.1", timeout=timeout, linger=0.1, **server_kw)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, server.address, str(r), str(n),
                               mode], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(n)]
    out = []
    try:
        for p in procs:
            o, e = p.communicate(timeout=timeout + 30)
            out.append((p.returncode, o, e))
        status = server.wait(30)
    finally:
        for p in [*procs, server.process]:
            if p.poll() is None:
                p.kill()
                p.wait()
    return status, out


@pytest.mark.parametrize("n, mapping", [(2, "none"), (4, "auto")])
def test_independent_processes_form_one_world(n, mapping):
    status, out = run_world(n, process_mapping=mapping)
    assert [rc for rc, _, _ in out] == [0] * n, out
    assert sorted(o.strip() for _, o, _ in out) == [f"ok {r}" for r in range(n)]
    assert status == 0


def test_abort_ends_every_rank():
    t = time.monotonic()
    status, out = run_world(3, "abort")
    assert time.monotonic() - t < 20
    assert status == 7
    assert [rc for rc, _, _ in out] == [7, 7, 7], out
    for r in (0, 2):
        assert "rank 1 called MPI_Abort (exit code 7)" in out[r][2], out[r][2]
        assert "ok" not in out[r][1]


def test_a_rank_that_dies_ends_the_others():
    status, out = run_world(3, "die")
    assert status == 1
    assert out[1][0] == 3
    for r in (0, 2):
        assert out[r][0] != 0 and "ok" not in out[r][1]
        assert "rank 1" in out[r][2] and "exited" in out[r][2], out[r][2]


FORM = r"""
import sys
from datetime import timedelta
from dtorch.distributed.rendezvous import rendezvous
from dtorch.distributed._pmi import form_world_via_store
store, rank, n = next(rendezvous(sys.argv[1], int(sys.argv[2]), 2, timeout=timedelta(seconds=20)))
form_world_via_store(store, rank, n)
from mpi4py import MPI
c = MPI.COMM_WORLD
assert c.allreduce(rank + 1) == 3 and c.Get_size() == 2
c.Barrier()
store.add("done", 1)
if rank == 0:  # keep the rendezvous store up until rank 1 is done with it
    store.wait(["done"])
    while int(store.get("done")) < 2:
        pass
print("ok", rank)
"""


def test_form_world_via_store_after_rendezvous():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", FORM, f"tcp://127.0.0.1:{port}", str(r)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in (1, 0)]
    try:
        out = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [rc for _, _, rc in out] == [0, 0], out


def test_configure_after_mpi_init_is_refused():
    code = ("import mpi4py.MPI\nfrom dtorch.distributed._pmi import configure_mpi_env\n"
            "configure_mpi_env('127.0.0.1:1', 0, 1)")
    p = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "DistBackendError" in p.stderr and "after MPI was initialised" in p.stderr


# ------------------------------------------------------------------ wire protocol
class Client:
    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def recv(self):
        return self.f.readline().decode().strip()

    def ask(self, line):
        self.send(line)
        return self.recv()


def serve_in_thread(server):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("status", server.serve()))
    t.start()
    return t, box


def test_wire_protocol_full_session():
    server = PMIServer(2, timeout=10, log=open(os.devnull, "w"), linger=0.05)
    t, box = serve_in_thread(server)
    a, b = Client(server.address), Client(server.address)
    a.send("cmd=initack pmiid=0")
    assert [a.recv() for _ in range(4)] == ["cmd=initack rc=0", "cmd=set size=2",
                                            "cmd=set rank=0", "cmd=set debug=0"]
    assert a.ask("cmd=init pmi_version=1 pmi_subversion=1").startswith(
        "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0")
    assert a.ask("cmd=get_maxes") == "cmd=maxes kvsname_max=256 keylen_max=256 vallen_max=1024 rc=0"
    assert a.ask("cmd=get_appnum") == "cmd=appnum appnum=0 rc=0"
    assert a.ask("cmd=get_universe_size") == "cmd=universe_size size=2 rc=0"
    kvs = a.ask("cmd=get_my_kvsname").split("kvsname=")[1].split()[0]
    a.send(f"cmd=get kvsname={kvs} key=PMI_process_mapping")  # answered once rank 1 is in
    b.send("cmd=initack pmiid=1")
    assert [b.recv() for _ in range(4)][2] == "cmd=set rank=1"
    assert a.recv() == "cmd=get_result rc=0 msg=success value=(vector,(0,1,2))"
    assert a.ask(f"cmd=put kvsname={kvs} key=card0 value=tcp://x$1") == \
        "cmd=put_result rc=0 msg=success"
    assert b.ask(f"cmd=get kvsname={kvs} key=card0") == \
        "cmd=get_result rc=0 msg=success value=tcp://x$1"
    assert "rc=-1" in b.ask(f"cmd=get kvsname={kvs} key=nothing")
    assert "rc=-1" in b.ask("cmd=no_such_command")
    a.send("cmd=barrier_in")
    b.send("cmd=barrier_in")
    assert (a.recv(), b.recv()) == ("cmd=barrier_out rc=0", "cmd=barrier_out rc=0")
    assert a.ask("cmd=finalize") == "cmd=finalize_ack rc=0"
    assert b.ask("cmd=finalize") == "cmd=finalize_ack rc=0"
    a.close()
    b.close()
    t.join(10)
    assert box["status"] == 0 and server.failure is None


@pytest.mark.parametrize("lines, failure", [
    (["cmd=initack pmiid=0", "cmd=initack pmiid=0"], "two processes claim rank 0"),
    (["cmd=initack pmiid=5"], "claims rank 5, outside [0, world_size=2)"),
    (["cmd=initack pmiid=1", "cmd=abort exitcode=9 message=boom"],
     "rank 1 called MPI_Abort (exit code 9): boom"),
    (["cmd=initack pmiid=0", "x" * 70000], "rank 0 broke the PMI protocol: line longer"),
    (["cmd=initack pmiid=0", "CLOSE"], "rank 0 exited (its PMI connection closed) before "
                                       "MPI_Finalize"),
])
def test_wire_protocol_failures(lines, failure):
    server = PMIServer(2, timeout=10, log=open(os.devnull, "w"), linger=0.05)
    t, box = serve_in_thread(server)
    stranger = Client(server.address)
    stranger.send("GET / HTTP/1.0")  # a stranger's garbage is dropped, not fatal
    assert stranger.recv() == ""
    clients = []
    for line in lines:
        if line == "CLOSE":
            clients[-1].close()
            continue
        if line.startswith("cmd=initack"):
            clients.append(Client(server.address))
        clients[-1].send(line)
    t.join(15)
    assert failure in server.failure
    expected = 9 if "exit code 9" in failure else 1
    assert box["status"] == expected


def test_join_timeout_names_the_missing_ranks():
    server = PMIServer(3, timeout=0.3, log=open(os.devnull, "w"), linger=0.05)
    t, box = serve_in_thread(server)
    c = Client(server.address)
    c.send("cmd=initack pmiid=1")
    t.join(15)
    assert "timed out after 0.3 s: ranks [0, 2] of world_size 3 never reached MPI_Init" in \
        server.failure
    assert box["status"] == 1


def test_server_process_fails_when_its_parent_rank_dies_early():
    code = ("from dtorch.distributed._pmi import start_server\n"
            "print(start_server(2, timeout=30, parent_rank=0, linger=0.1).address, flush=True)")
    p = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                       timeout=60)
    host, port = p.stdout.strip().rsplit(":", 1)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the server lingers ~1 s answering newcomers, then exits
        try:
            c = Client(f"{host}:{port}")
        except ConnectionRefusedError:
            break
        c.send("cmd=dtorch_watch rank=1 pid=1")
        reply = c.recv()
        assert reply == "" or "parent process" in reply, reply
        c.close()
        time.sleep(0.1)
    else:
        pytest.fail("the orphaned PMI server did not exit")
    assert "exited before MPI_Finalize" in p.stderr
