"""Failure behaviour: dead ranks end the job, timeouts name the missing ranks, mismatches raise.

MPI cases run real ``mpiexec -n 2`` jobs as subprocesses, each bounded by a subprocess timeout far
below the group's default (30 min): a job that hangs fails the test instead of the suite.
Thread-world cases run in-process.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import dtorch.distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_mpiexec = pytest.mark.skipif(
    shutil.which("mpiexec") is None or not dist.is_mpi_available(),
    reason="needs mpi4py and mpiexec")

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import dtorch.distributed as dist
    mode = sys.argv[1]
    dist.init_process_group(timeout=float(sys.argv[2]))
    r = dist.get_rank()
    t = np.ones(4)
    dist.all_reduce(t)
    if mode == "raise" and r == 1:
        raise ValueError("boom on rank 1")
    if mode == "exit" and r == 1:
        sys.exit(3)
    if mode == "late" and r == 1:
        time.sleep(60)
    if mode == "mismatch":
        try:
            if r == 0:
                dist.all_reduce(np.ones(4, np.float32))
            else:
                dist.broadcast(np.ones(5, np.float64), src=0)
        except dist.DistError as e:
            print(f"RANK {r} CAUGHT:\\n{e}", flush=True)
            dist.destroy_process_group()
            sys.exit(0)
    dist.all_reduce(t)
    print("REACHED END", r, flush=True)
""")


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "MPI_LOCAL", "SLURM_", "DTORCH_DISTRIBUTED"))
           and k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def _mpiexec(tmp_path, mode, timeout_s=1800, n=2, env=None, limit=60):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    cmd = ["mpiexec", "-n", str(n), sys.executable, str(script), mode, str(timeout_s)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env or _env())


@needs_mpiexec
def test_uncaught_exception_aborts_the_job(tmp_path):
    # Without the abort, rank 0 would wait in all_reduce for the group timeout (30 min).
    res = _mpiexec(tmp_path, "raise")
    assert res.returncode != 0
    assert "ValueError: boom on rank 1" in res.stderr
    assert "Traceback" in res.stderr
    assert "REACHED END" not in res.stdout


@needs_mpiexec
def test_nonzero_sys_exit_aborts_the_job(tmp_path):
    res = _mpiexec(tmp_path, "exit")
    assert res.returncode != 0
    assert "rank 1 called sys.exit(3)" in res.stderr


@needs_mpiexec
def test_timeout_names_the_missing_rank(tmp_path):
    res = _mpiexec(tmp_path, "late", timeout_s=2)
    assert res.returncode != 0
    assert "DistBackendError" in res.stderr
    assert "all_reduce (sequence number 2) on group 'WORLD' (ranks [0, 1]) timed out" in res.stderr
    assert "ranks that did not arrive: 1 (last entered sequence number 1)" in res.stderr


@needs_mpiexec
def test_fingerprint_mismatch_raises_on_every_rank(tmp_path):
    res = _mpiexec(tmp_path, "mismatch", env=_env(DTORCH_DISTRIBUTED_DEBUG="DETAIL"))
    assert res.returncode == 0, res.stderr
    for r in (0, 1):
        assert f"RANK {r} CAUGHT" in res.stdout
    assert res.stdout.count("op=all_reduce seq=2 in0=float32[4] reduce_op=SUM") == 2
    assert res.stdout.count("op=broadcast seq=2 in0=float64[5] root=0") == 2
    assert "job.py:" in res.stdout  # the call site column


@needs_mpiexec
def test_conflicting_rank_env_is_an_error(tmp_path):
    res = _mpiexec(tmp_path, "ok", env=_env(RANK="5"))
    assert res.returncode != 0
    assert "RANK=5 in the environment but MPI says rank is" in res.stderr


def test_import_does_not_load_mpi():
    code = ("import sys, dtorch, dtorch.distributed as d; "
            "assert 'mpi4py' not in sys.modules, sorted(m for m in sys.modules if 'mpi' in m); "
            "d.init_process_group(); assert d.get_world_size() == 1; "
            "assert 'mpi4py' not in sys.modules; print('OK')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "OK"


def test_slurm_without_mpi_is_an_error(monkeypatch):
    for var in ("PMI_RANK", "PMI_FD", "PMI_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    with pytest.raises(RuntimeError, match=r"SLURM_NTASKS=4.*--mpi=pmi2"):
        dist.init_process_group()
    assert not dist.is_initialized()


def test_single_process_rejects_a_bigger_world(monkeypatch):
    for var in ("PMI_RANK", "PMI_FD", "MASTER_ADDR", "MASTER_PORT", "SLURM_STEP_ID"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="world_size=4, rank=1 but no way to reach"):
        dist.init_process_group(world_size=4, rank=1)
    with pytest.raises(ValueError, match="unknown backend 'gl00'"):
        dist.init_process_group(backend="gl00")


# --- thread world ------------------------------------------------------------------------------
def test_thread_rank_failure_fails_the_others_fast():
    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=600)
        if rank == 1:
            raise KeyError("rank 1 exploded")
        dist.all_reduce(np.ones(3))  # would wait 600 s without the failure propagation

    start = time.monotonic()
    with pytest.raises(KeyError, match="rank 1 exploded") as info:
        dist.spawn_threads(rank_main, nprocs=3, timeout=60)
    assert time.monotonic() - start < 60
    assert "(raised in rank 1 of the thread world)" in info.value.__notes__


def test_thread_timeout_names_missing_rank():
    errors = {}

    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=0.5)
        if rank != 2:
            try:
                dist.all_reduce(np.ones(2))
            except dist.DistBackendError as exc:
                errors[rank] = str(exc)
        dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=3, timeout=60)
    assert set(errors) == {0, 1}
    for msg in errors.values():
        assert "all_reduce (sequence number 1) on group 'WORLD' (ranks [0, 1, 2])" in msg
        assert "timed out after 0.5 s; ranks that did not arrive: [2]" in msg


def test_thread_fingerprint_mismatch_table():
    errors = {}

    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=30)
        try:
            if rank == 1:
                dist.all_reduce(np.ones((2, 3), np.float32), op=dist.ReduceOp.MAX)
            else:
                dist.all_reduce(np.ones((2, 3), np.float32))
        except dist.DistError as exc:
            errors[rank] = str(exc)
        dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=3, timeout=60)
    assert set(errors) == {0, 1, 2}
    for msg in errors.values():
        lines = msg.splitlines()
        assert "the ranks called different collectives" in lines[0]
        assert "rank  call site" in lines[1]
        assert lines[3].startswith("<>") and "reduce_op=MAX" in lines[3]
        assert "reduce_op=SUM" in lines[2] and "reduce_op=SUM" in lines[4]
        assert "test_failures.py:" in lines[3]


def test_monitored_barrier_names_missing_ranks():
    errors = {}

    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=30)
        if rank in (0, 1):
            try:
                dist.monitored_barrier(timeout=0.5, wait_all_ranks=True)
            except dist.DistError as exc:
                errors[rank] = str(exc)
        dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=4, timeout=60)
    assert "ranks 2, 3 failed to pass monitored_barrier" in errors[0]
    assert "waiting for rank 0 to release" in errors[1]


def test_thread_world_init_errors():
    def dup(rank):
        dist.init_process_group(backend="threads", rank=0, world_size=2,
                                init_method="threads://dup", timeout=5)

    with pytest.raises(ValueError, match="rank 0 of thread world 'threads://dup' claimed twice"):
        dist.spawn_threads(dup, nprocs=2, timeout=30)

    def bad(rank):
        dist.init_process_group(backend="threads", rank=rank + 5, timeout=5)

    with pytest.raises(ValueError, match=r"rank 5 is outside \[0, 2\)"):
        dist.spawn_threads(bad, nprocs=2, timeout=30)


def test_thread_world_views_and_versions():
    import dtorch

    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=30)
        base = dtorch.zeros(3, 4)
        col = base[:, 1]
        col.add_(rank + 1.0)
        before = base._version
        dist.all_reduce(col)
        assert base._version > before
        np.testing.assert_array_equal(base.numpy()[:, 1], [3.0, 3.0, 3.0])
        np.testing.assert_array_equal(base.numpy()[:, [0, 2, 3]], 0.0)
        dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=2, timeout=30)


def test_work_wait_timeout_and_late_completion():
    results = {}

    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=30)
        if rank == 0:
            buf = np.zeros(2)
            work = dist.irecv(buf, src=1, tag=3)
            with pytest.raises(dist.DistBackendError, match=r"Work.wait\(timeout=0.2\) expired "
                                                            r"before irecv from rank 1 \(tag 3\)"):
                work.wait(timeout=0.2)
            assert not work.is_completed()
            dist.barrier()  # now rank 1 sends
            assert work.wait(timeout=10) and work.source_rank() == 1
            results["got"] = buf.tolist()
        else:
            dist.barrier()
            dist.send(np.array([4.0, 5.0]), dst=0, tag=3)
        dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=2, timeout=60)
    assert results["got"] == [4.0, 5.0]


@needs_mpiexec
def test_mpi_backend_alone_is_a_singleton_mpi_world():
    code = ("import numpy as np, dtorch.distributed as d; d.init_process_group(backend='mpi'); "
            "a = np.arange(3.0); d.all_reduce(a, op=d.ReduceOp.MAX); "
            "print(d.get_backend(), d.get_world_size(), a.tolist()); d.destroy_process_group()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["mpi", "1", "[0.0,", "1.0,", "2.0]"]
