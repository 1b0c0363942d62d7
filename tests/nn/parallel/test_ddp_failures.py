"""A failing DDP job ends within seconds, non-zero, with the clear error in its output.

Each case runs a real 2-rank job, under ``mpiexec -n 2``, under ``python -m launch
--nproc-per-node 2``, and as two processes started by hand with the ``env://`` variables:

(a) rank 1 raises inside backward while rank 0 waits in the bucket all-reduce;
(b) the ranks build different models;
(c) a parameter takes no part in the loss and ``find_unused_parameters`` is off;
(d) rank 1 dies (``os._exit(3)``) inside backward while rank 0 waits in the all-reduce.

The group timeout is 10 minutes, so a job that ends at all within the 60 s guard was ended by
dtorch's failure handling, not by a collective timing out. Each process runs in its own session,
killed whole when the guard fires.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "launch"))
from _launch_util import clean_env, mpi_available  # noqa: E402

GUARD = 60  # seconds: the job must end well within this

FAIL_SCRIPT = """
    import os, sys, time
    from datetime import timedelta

    import dtorch
    import dtorch.distributed as dist
    from dtorch import nn
    from dtorch.autograd import Function
    from dtorch.nn.parallel import DistributedDataParallel as DDP

    case = sys.argv[1]
    dist.init_process_group(timeout=timedelta(minutes=10))
    rank = dist.get_rank()
    FAIL_STEP = 2


    class Probe(Function):
        # Identity whose backward misbehaves on rank 1 at FAIL_STEP, after the buckets of the
        # later layer have been launched and while rank 0 goes on to wait for the all-reduce.
        step = 0

        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, grad):
            if rank == 0 and Probe.step == FAIL_STEP:
                print("rank 0 passed the probe at step 2", flush=True)
            if rank == 1 and Probe.step == FAIL_STEP:
                time.sleep(1.0)  # rank 0 is inside the bucket all-reduce by now
                if case == "backward_raises":
                    raise RuntimeError(f"probe backward failed on rank {rank} at step {Probe.step}")
                if case == "rank_exits":
                    print(f"rank {rank} exits with os._exit(3)", flush=True)
                    os._exit(3)
            return grad


    class Net(nn.Module):
        def __init__(self, hidden=8, with_unused=False):
            super().__init__()
            self.fc1 = nn.Linear(5, hidden)
            self.fc2 = nn.Linear(hidden, 3)
            if with_unused:
                self.unused = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc2(Probe.apply(self.fc1(x).tanh()))


    dtorch.manual_seed(rank)
    net = Net(hidden=9 if case == "mismatch" and rank == 1 else 8,
              with_unused=case == "unused")
    model = DDP(net, bucket_cap_mb=0.0001)  # one bucket per parameter
    opt = dtorch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(4):
        Probe.step = step
        x, y = dtorch.randn(4, 5), dtorch.randn(4, 3)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        print(f"rank {rank} finished step {step}", flush=True)
    dist.destroy_process_group()
    print(f"rank {rank} done", flush=True)
"""

needs_mpi = pytest.mark.skipif(not mpi_available(), reason="needs mpi4py with an MPI library")
needs_mpiexec = pytest.mark.skipif(not mpi_available() or shutil.which("mpiexec") is None,
                                   reason="needs mpi4py and mpiexec")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(cmds, envs):
    """Start one process per command, each in its own session, and wait for all of them.

    Returns (the first non-zero exit code or 0, their stdout + stderr, seconds). Fails the test,
    with the output so far, when the job outlives the guard (every session is killed).
    """
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, env=clean_env(OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, **env),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
             for cmd, env in zip(cmds, envs)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(0.1, t0 + GUARD - time.monotonic()))[0])
    except subprocess.TimeoutExpired:
        for p in procs[len(outs):]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            outs.append(p.communicate(timeout=10)[0])
        pytest.fail(f"the job did not end within {GUARD} s (hang): {cmds}\n" + "".join(outs))
    code = next((p.returncode for p in procs if p.returncode != 0), 0)
    return code, "".join(outs), time.monotonic() - t0


@pytest.fixture(params=[pytest.param("mpiexec", marks=needs_mpiexec),
                        pytest.param("launch", marks=needs_mpi),
                        pytest.param("env", marks=needs_mpi)])
def job(request, tmp_path):
    """``job(case)`` runs the failing script on 2 ranks: under ``mpiexec``, under the launcher,
    or as two processes started by hand that meet through the ``env://`` rendezvous."""
    path = tmp_path / "ddp_fail.py"
    path.write_text(textwrap.dedent(FAIL_SCRIPT))

    def start(case):
        script = [sys.executable, str(path), case]
        if request.param == "mpiexec":
            cmds, envs = [["mpiexec", "-n", "2", *script]], [{}]
        elif request.param == "launch":
            cmds = [[sys.executable, "-m", "launch", "--nproc-per-node", "2", "--grace-period",
                     "2", *script[1:]]]
            envs = [{}]
        else:
            port = free_port()
            cmds = [script, script]
            envs = [dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=r, WORLD_SIZE=2)
                    for r in (0, 1)]
        rc, out, secs = run_job(cmds, envs)
        return rc, out, f"{request.param} {case}: exit {rc} after {secs:.1f} s\n{out}"

    start.how = request.param
    return start


@pytest.mark.timeout(GUARD + 30)
def test_rank_raising_inside_backward_ends_the_job(job):
    rc, out, msg = job("backward_raises")
    assert rc != 0, msg
    assert "RuntimeError: probe backward failed on rank 1 at step 2" in out, msg
    assert "rank 1 died of an uncaught RuntimeError" in out, msg
    # rank 0 got past the probe, so only DDP's bucket wait was left of its backward
    assert "rank 0 passed the probe at step 2" in out, msg
    assert "rank 0 finished step 2" not in out, msg
    if job.how == "launch":
        assert "root cause:\n  rank 1 (local rank 1" in out, msg


@pytest.mark.timeout(GUARD + 30)
def test_mismatched_models_fail_at_construction(job):
    rc, out, msg = job("mismatch")
    assert rc != 0, msg
    assert ("the model differs between ranks. Parameter #0: rank 0 has 'fc1.weight' of shape "
            "[8, 5] and dtype float32, rank(s) [1] have 'fc1.weight' of shape [9, 5]") in out, msg
    assert "finished step" not in out, msg


@pytest.mark.timeout(GUARD + 30)
def test_unused_parameter_without_find_unused_parameters_is_named(job):
    rc, out, msg = job("unused")
    assert rc != 0, msg
    assert ("these parameters received no gradient in this backward pass: unused.weight, "
            "unused.bias") in out, msg
    assert "find_unused_parameters=True" in out, msg
    assert "finished step" not in out, msg


@pytest.mark.timeout(GUARD + 30)
def test_rank_exiting_mid_training_ends_the_job(job):
    rc, out, msg = job("rank_exits")
    assert rc != 0, msg
    assert "rank 1 exits with os._exit(3)" in out, msg
    assert "rank 0 passed the probe at step 2" in out, msg
    assert "rank 0 finished step 2" not in out, msg
    if job.how == "launch":
        assert rc == 3, msg
        assert "root cause:\n  rank 1 (local rank 1" in out and "exit code 3" in out, msg


@pytest.mark.timeout(GUARD + 30)
def test_healthy_script_runs_to_the_end(job):
    """The same script without a fault finishes: the failures above are the faults' doing."""
    rc, out, msg = job("none")
    assert rc == 0, msg
    assert "rank 0 done" in out and "rank 1 done" in out, msg
