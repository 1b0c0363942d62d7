"""Real multi-process jobs: resume at another world size, and SIGTERM mid-training.

Each job runs ``_ckpt_suite.py`` as a script under ``mpiexec`` or ``python -m launch``, bounded
by subprocess timeouts (and killed with its whole session if it hangs).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import _ckpt_suite as suite
import pytest

import dtorch
import dtorch.distributed as dist

ROOT = Path(__file__).resolve().parents[2]
SUITE = str(Path(__file__).with_name("_ckpt_suite.py"))
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "OMPI_", "SLURM_", "MASTER_"))
       and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
ENV.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1",
           PYTHONPATH=os.pathsep.join([str(ROOT), ENV.get("PYTHONPATH", "")]))

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("mpiexec") is None or not dist.is_mpi_available(),
                       reason="needs mpi4py and mpiexec"),
]


def _run(args, timeout=120):
    proc = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_resume_at_another_world_size(kind, tmp_path):
    """Saved by 4 MPI ranks after 3 steps; resumed by 2 ranks and by one plain process; both
    end where one process training on the whole batch for 6 steps ends."""
    ckpt = str(tmp_path / "train.pt")
    _run(["mpiexec", "-n", "4", sys.executable, SUITE, "train", kind, ckpt, str(suite.SAVE_AT),
          "--save"])
    _run(["mpiexec", "-n", "2", sys.executable, SUITE, "train", kind, ckpt,
          str(suite.TOTAL_STEPS), "--resume", "--result", str(tmp_path / "two.pt")])
    _run([sys.executable, SUITE, "train", kind, ckpt, str(suite.TOTAL_STEPS), "--resume",
          "--single", "--result", str(tmp_path / "one.pt")])
    want = suite.reference(kind)
    for name in ("two.pt", "one.pt"):
        suite.assert_params(dtorch.load(tmp_path / name), want, exact=False)


def _start(cmd, out):
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 90
    while not all((out / f"pid{r}").exists() for r in range(2)):
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            pytest.fail(f"the job did not start training:\n{proc.communicate()}")
        time.sleep(0.05)
    return proc, [int((out / f"pid{r}").read_text()) for r in range(2)]


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


STOPPED = re.compile(r"rank (\d) stopped after step (\d+) by signal (\d+) \(received here: "
                     r"(True|False)\)")


@pytest.mark.parametrize("target", ["one rank", "launcher"])
def test_sigterm_gives_a_final_checkpoint_and_exit_143(target, tmp_path):
    """SIGTERM to one rank of ``mpiexec -n 2`` (the ranks agree through should_stop), or to
    ``python -m launch`` (which forwards it): every rank stops after the same step, that step's
    checkpoint is on disk, and the job exits promptly with 128 + SIGTERM."""
    if target == "one rank":
        cmd = ["mpiexec", "-n", "2", sys.executable, SUITE, "preempt", str(tmp_path)]
    else:
        cmd = [sys.executable, "-m", "launch", "--nproc-per-node", "2", "--grace-period", "60",
               SUITE, "preempt", str(tmp_path)]
    proc, pids = _start(cmd, tmp_path)
    try:
        os.kill(pids[1] if target == "one rank" else proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        _kill(proc)
    assert proc.returncode == 128 + signal.SIGTERM, f"{out}\n{err}"
    stops = {int(r): (int(step), int(sig), here == "True")
             for r, step, sig, here in STOPPED.findall(out)}
    assert sorted(stops) == [0, 1], out
    steps = {step for step, _, _ in stops.values()}
    assert len(steps) == 1 and steps.pop() >= 5, stops
    assert all(sig == signal.SIGTERM for _, sig, _ in stops.values())
    if target == "one rank":  # rank 0 learned of it from rank 1
        assert not stops[0][2] and stops[1][2]
    final = dtorch.load(tmp_path / "final.pt")
    assert final["step"] == stops[0][0]
    assert set(final["model"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
