"""Worlds formed without mpiexec: independently started processes meet through env://, tcp://
or file:// and get a genuine MPI COMM_WORLD (the PMI server of ``_pmi``); each runs collectives.

Every job is bounded by a subprocess timeout.
"""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

import dtorch.distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(not dist.is_mpi_available(), reason="needs mpi4py")

WORKER = textwrap.dedent("""
    import os, sys
    import numpy as np
    import dtorch.distributed as dist
    mode = sys.argv[1]
    if mode == "env":
        dist.init_process_group(timeout=60)
    else:
        dist.init_process_group(init_method=sys.argv[2], rank=int(sys.argv[3]),
                                world_size=int(sys.argv[4]), timeout=60)
    r, n = dist.get_rank(), dist.get_world_size()
    from mpi4py import MPI
    assert (MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()) == (r, n)
    t = np.full(1 << 16, r + 1.0, np.float32)
    dist.all_reduce(t)
    assert (t == n * (n + 1) / 2).all(), t[:4]
    out = np.zeros(n, np.int64)
    dist.all_gather_into_tensor(out, np.array([r * 3], np.int64))
    assert out.tolist() == [3 * i for i in range(n)]
    g = dist.new_group([0, n - 1])
    if r in (0, n - 1):
        x = np.array([float(r)])
        dist.all_reduce(x, group=g)
        assert x[0] == n - 1
    if mode == "fail" and r == n - 1:
        raise RuntimeError("rank %d fails on purpose" % r)
    dist.all_reduce(t)
    dist.barrier()
    print("OK", r, n, dist.get_local_rank(), dist.get_local_world_size(), flush=True)
    dist.destroy_process_group()
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "MPI_LOCAL", "SLURM_", "DTORCH_DISTRIBUTED",
                                "HYDRA"))
           and k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def _run(tmp_path, n, mode, url=None, limit=90):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    procs = []
    for r in range(n):
        if mode == "env":
            env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r),
                       WORLD_SIZE=str(n), LOCAL_RANK=str(r))
            args = ["env"]
        else:
            env = _env()
            args = [mode, url.format(port=port, tmp=tmp_path), str(r), str(n)]
        procs.append(subprocess.Popen([sys.executable, str(script), *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=limit)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


@pytest.mark.parametrize("n", [2, 4])
def test_env_rendezvous_forms_an_mpi_world(tmp_path, n):
    results = _run(tmp_path, n, "env")
    for r, (code, out, err) in enumerate(results):
        assert code == 0, f"rank {r}: {err}"
        assert out.split()[:3] == ["OK", str(r), str(n)]
        assert out.split()[3:] == [str(r), str(n)]  # one machine: local rank == rank


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:{port}", "file://{tmp}/rdzv"])
def test_tcp_and_file_rendezvous(tmp_path, url):
    for r, (code, out, err) in enumerate(_run(tmp_path, 2, "url", url)):
        assert code == 0, f"rank {r}: {err}"
        assert out.startswith(f"OK {r} 2")


def test_failure_in_a_rendezvous_world_ends_every_rank(tmp_path):
    # mode "fail": the last rank raises after the subgroup step; the others would wait in
    # all_reduce for the group timeout (60 s) without the abort, beyond this test's bound.
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace('mode == "env"', 'mode in ("env", "fail_env")')
                      .replace('mode == "fail"', 'mode == "fail_env"'))
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, str(script), "fail_env"],
        env=_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r), WORLD_SIZE="3"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(3)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=40))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = [p.returncode for p in procs]
    assert all(c != 0 for c in codes), codes
    assert "RuntimeError: rank 2 fails on purpose" in outs[2][1]
    assert not any("OK" in o for o, _ in outs)
