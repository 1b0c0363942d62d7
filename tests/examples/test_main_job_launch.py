"""The main job (``examples/train_digits.py``) runs unchanged under the launcher: as 2 MPI worker
processes (``--nproc-per-node 2``) and as 4 rank threads (``--debug-world 4``), each a real,
time-bounded ``python -m launch`` subprocess, one epoch."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))
from _launch_util import clean_env, mpi_available, run_launch  # noqa: E402

pytestmark = pytest.mark.timeout(150)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _launch_main_job(launcher_args, out):
    res = run_launch([*launcher_args, "examples/train_digits.py", "--epochs", 1, "--no-progress",
                      "--out", out], env=clean_env(OMP_NUM_THREADS=1, MPLBACKEND="Agg"),
                     timeout=120)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def _check_outputs(stdout, out, world):
    assert f"[rank0]: training DigitsNet on 1437 digits, {world} rank(s)" in stdout, stdout
    assert "[rank0]: epoch  1/1" in stdout
    acc = float(stdout.split("[rank0]: final test accuracy ")[1].split()[0])
    # one epoch from random weights: better than the 10 % of guessing, and a fraction
    assert 0.1 < acc <= 1.0, stdout
    assert (out / "checkpoint.pt").stat().st_size > 0
    assert (out / "digits.png").read_bytes()[:8] == PNG_MAGIC
    # only rank 0 reports: no other rank's lines
    assert "[rank1]: final test accuracy" not in stdout


@pytest.mark.skipif(not mpi_available(), reason="needs mpi4py with an MPI library")
def test_main_job_on_two_worker_processes(tmp_path):
    res = _launch_main_job(["--nproc-per-node", 2], tmp_path)
    assert "all 2 workers on node 0 finished successfully" in res.stderr
    _check_outputs(res.stdout, tmp_path, 2)


def test_main_job_in_a_debug_world_of_four_threads(tmp_path):
    res = _launch_main_job(["--debug-world", 4], tmp_path)
    assert "as 4 rank threads" in res.stderr
    _check_outputs(res.stdout, tmp_path, 4)
