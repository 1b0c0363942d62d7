"""DDP matches one process on the N-fold batch in every world the launcher forms.

``ddp_worker.py`` runs ``_ddp_suite``'s equivalence checks (SGD with momentum, Adam, many small
buckets, ``no_sync`` accumulation, unused parameters) after a bare ``init_process_group()``. Here
it runs as real subprocesses: under ``python -m launch`` on one node (2 and 4 workers, a genuine
MPI world through the launcher's PMI server), as two launchers meeting at a ``tcp://`` and a
``file://`` rendezvous endpoint, as processes started by hand with the ``env://`` variables, and
as the thread world of ``--debug-world``. Every run is bounded by a subprocess timeout.
"""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "launch"))
from _launch_util import clean_env, mpi_available, run_launch  # noqa: E402

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
CHECKS = ("sgd", "adam", "small_buckets", "no_sync", "unused")
TIMEOUT = 120

needs_mpi = pytest.mark.skipif(not mpi_available(), reason="needs mpi4py with an MPI library")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_all_ok(out, world, backend, prefixed=True):
    """Every rank printed an OK line for every check, in a world of ``world`` ranks."""
    for rank in range(world):
        for check in CHECKS:
            line = f"ddp_worker: OK {check} rank {rank} of {world} backend {backend}"
            if prefixed:
                line = f"[rank{rank}]: {line}"
            assert line in out, f"missing {line!r} in:\n{out}"


@needs_mpi
@pytest.mark.timeout(TIMEOUT + 10)
@pytest.mark.parametrize("nproc", [2, 4])
def test_standalone_launcher_mpi_world(nproc):
    res = run_launch(["--standalone", "--nproc-per-node", nproc, "--grace-period", 2, WORKER,
                      "--world-size", nproc], timeout=TIMEOUT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_all_ok(res.stdout, nproc, "mpi")


@needs_mpi
@pytest.mark.timeout(TIMEOUT + 10)
@pytest.mark.parametrize("kind", ["tcp", "file"])
def test_two_launchers_meet_at_rendezvous_endpoint(tmp_path, kind):
    endpoint = (f"tcp://127.0.0.1:{free_port()}" if kind == "tcp"
                else f"file://{tmp_path}/rdzv")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "launch", "--nnodes", "2", "--node-rank", str(node),
         "--rdzv-endpoint", endpoint, "--rdzv-timeout", "60", "--grace-period", "2", WORKER,
         "--world-size", "2"],
        env=clean_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node in (0, 1)]
    results = communicate_all(procs)
    for node, (rc, out, err) in enumerate(results):
        assert rc == 0, (node, out, err)
    # node 0 runs rank 0, node 1 runs rank 1: together one world of 2
    assert_all_ok(results[0][1] + results[1][1], 2, "mpi")


@needs_mpi
@pytest.mark.timeout(TIMEOUT + 10)
def test_processes_started_by_hand_with_env_rendezvous():
    port = free_port()
    procs = [subprocess.Popen(
        [sys.executable, WORKER, "--world-size", "2"],
        env=clean_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=rank, WORLD_SIZE=2,
                      OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)]
    results = communicate_all(procs)
    for rank, (rc, out, err) in enumerate(results):
        assert rc == 0, (rank, out, err)
    assert_all_ok(results[0][1] + results[1][1], 2, "mpi", prefixed=False)


@pytest.mark.timeout(TIMEOUT + 10)
def test_debug_world_threads():
    res = run_launch(["--debug-world", 2, WORKER, "--world-size", 2], timeout=TIMEOUT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_all_ok(res.stdout, 2, "threads")


@pytest.mark.timeout(TIMEOUT + 10)
def test_worker_fails_when_the_world_is_not_the_expected_one():
    """The worker's world-size guard: a world of 1 would make every check pass trivially."""
    res = subprocess.run([sys.executable, WORKER, "--world-size", "2", "--checks", "sgd"],
                         env=clean_env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert res.returncode != 0
    assert "expected a world of 2 ranks, got rank 0 of 1 backend single" in res.stderr
    assert "ddp_worker: OK" not in res.stdout


def communicate_all(procs):
    """(returncode, stdout, stderr) of each process, bounded; kills what is left on a timeout."""
    try:
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
        return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
