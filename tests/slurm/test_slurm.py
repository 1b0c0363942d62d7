"""The batch scripts in slurm/, submitted to a real single-node SLURM cluster.

The cluster is installed (apt), configured and started by the ``cluster`` fixture (root
needed); without root or apt the tests are skipped, saying why. ``DTORCH_SKIP_SLURM=1`` opts
out. The jobs are submitted one after the other with ``sbatch --wait`` (each wrapped in a timeout
and given a time limit), then each test checks its job's exit code and output.
"""

import os
import subprocess
import sys

import pytest
from _cluster import Cluster, Unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_check_job.py")
SKIP_VAR = "DTORCH_SKIP_SLURM"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

# name: (batch script, extra sbatch options, environment, script arguments)
JOBS = {
    "mpi_train": ("mpi_srun.sbatch", [], {}, ["--epochs", "1"]),
    "launch_train": ("launcher_per_node.sbatch", [], {}, ["--epochs", "1"]),
    "nccl_cpu": ("nccl_gpu.sbatch",
                 ["--ntasks-per-node=2", "--cpus-per-task=1", "--gpus-per-node=0"],
                 {"DEVICE": "cpu", "DTORCH_SCRIPT": CHECK}, []),
    "mpi_fail": ("mpi_srun.sbatch", [], {"DTORCH_SCRIPT": CHECK}, ["--fail-rank", "1"]),
    "launch_fail": ("launcher_per_node.sbatch", [], {"DTORCH_SCRIPT": CHECK},
                    ["--fail-rank", "1"]),
}


@pytest.fixture(scope="module")
def cluster():
    if os.environ.get(SKIP_VAR) == "1":
        pytest.skip(f"{SKIP_VAR}=1: SLURM tests opted out")
    c = Cluster(cpus=4)
    try:
        c.start()
    except Unavailable as e:
        c.stop()
        pytest.skip(f"SLURM cannot be installed here: {e}")
    except BaseException:
        c.stop()
        raise
    yield c
    c.stop()


def _submit(name, tmp, results):
    script, opts, extra, args = JOBS[name]
    out_dir = os.path.join(tmp, name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "PMI_", "HYDRA_", "OMP_", "OPENBLAS_"))}
    env.update(PYTHON=sys.executable, PYTHONPATH=ROOT, DTORCH_OUT=out_dir, **extra)
    log = os.path.join(tmp, f"{name}.out")
    cmd = ["timeout", "150", "sbatch", "--wait", "--parsable", "--time=3",
           f"--job-name={name}", f"--output={log}", *opts,
           os.path.join(ROOT, "slurm", script), *args]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    text = open(log).read() if os.path.exists(log) else ""
    results[name] = (res.returncode, text, res.stderr, out_dir)


@pytest.fixture(scope="module")
def jobs(cluster, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("slurm-jobs"))
    results = {}
    # NOTE: one job at a time. MPI jobs that start at the same moment on one node (mpich wheel
    # over UCX, srun --mpi=pmi2) were seen to receive each other's messages in MPI_Init.
    for name in JOBS:
        _submit(name, tmp, results)
    results["_logs"] = cluster.log_tail()
    return results


def _job(jobs, name):
    assert name in jobs, jobs.get("_logs")
    return jobs[name]


def test_srun_mpi_ranks_train_digits(jobs):
    rc, out, err, out_dir = _job(jobs, "mpi_train")
    assert rc == 0, (out, err)
    assert "2 MPI ranks" in out
    assert "training DigitsNet on 1437 digits, 2 rank(s)" in out
    assert "final test accuracy" in out
    assert os.path.exists(os.path.join(out_dir, "checkpoint.pt"))


def test_launcher_per_node_trains_digits(jobs):
    rc, out, err, out_dir = _job(jobs, "launch_train")
    assert rc == 0, (out, err)
    assert "launch: from SLURM job" in out and "nnodes=1, node_rank=0" in out
    assert "[rank0]: training DigitsNet on 1437 digits, 2 rank(s)" in out
    assert "[rank0]: final test accuracy" in out
    assert "all 2 workers on node 0 finished successfully" in out
    with open(os.path.join(out_dir, "logs", "rank0.stdout")) as f:
        assert "final test accuracy" in f.read()


def test_one_task_per_gpu_script_dry_run_on_cpu(jobs):
    rc, out, err, _ = _job(jobs, "nccl_cpu")
    assert rc == 0, (out, err)
    for r in (0, 1):
        assert (f"check ok rank {r} of 2 backend mpi local rank {r} DTORCH_BACKEND=nccl"
                in out), out


def test_srun_job_with_a_failing_rank_fails(jobs):
    rc, out, err, _ = _job(jobs, "mpi_fail")
    assert rc != 0, (out, err)
    assert "RuntimeError: rank 1 fails on purpose" in out
    assert "check ok" not in out


def test_launcher_job_with_a_failing_rank_names_it(jobs):
    rc, out, err, _ = _job(jobs, "launch_fail")
    assert rc == 1, (out, err)
    summary = out[out.index("launch: the job failed"):]
    assert "rank 1 (local rank 1, node 0" in summary
    assert "RuntimeError: rank 1 fails on purpose" in summary
    assert "check ok" not in out
