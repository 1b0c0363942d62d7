"""Every example runs, with short settings, and prints what the tutorials say it prints. The main
job (``examples/train_digits.py``) runs as one process and under ``mpiexec -n 2`` -- the README's
main command with fewer epochs --, and, preempted by SIGTERM mid-epoch, resumes to the same
result as an uninterrupted run."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dtorch

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")


def run(args, timeout=120, cwd=ROOT):
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def example(name, *args, timeout=120):
    return run([sys.executable, str(ROOT / "examples" / name), *args], timeout=timeout)


def test_tensor_basics():
    out = example("tensor_basics.py")
    assert "X_range: tensor([1., 2., 3., 4., 5.])" in out
    assert "dtype=dtorch.float64" in out
    assert "one[0, 0] after writing through the NumPy view: 7.0" in out


def test_autograd_basics_prints_the_tutorial_values():
    out = example("autograd_basics.py")
    assert "Z: tensor(9., grad_fn=<MeanBackward0>)" in out
    assert "X.grad: tensor([[1802.2400, 1802.2400],\n        [1884.1599, 1884.1599]])" in out
    assert "z: tensor([19.], grad_fn=<AddBackward0>)\nx.grad: tensor([8.])" in out


def test_two_layer_net_numpy_and_dtorch_agree():
    out = example("two_layer_net.py", "--epochs", "300")
    diff = float(out.rsplit("=", 1)[1])
    assert diff < 1e-5


def test_linear_regression_learns_weight_two():
    out = example("linear_regression.py", "--epochs", "500")
    weight = float(out.split("weight ")[1].split(",")[0])
    assert abs(weight - 2.0) < 0.1


def _check_digits_output(out, tmp_path, epochs):
    acc = float(out.split("final test accuracy ")[1].split()[0])
    assert acc >= 0.95, out
    assert f"epoch {epochs:2d}/{epochs}" in out
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "digits.png").exists()


def test_train_digits_single_process(tmp_path):
    out = example("train_digits.py", "--epochs", "3", "--no-progress", "--out", str(tmp_path),
                  timeout=300)
    _check_digits_output(out, tmp_path, 3)
    resumed = example("train_digits.py", "--epochs", "4", "--no-progress", "--resume",
                      "--out", str(tmp_path), timeout=300)
    assert "resumed from" in resumed and "epoch  4/4" in resumed


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="mpiexec is not installed")
def test_train_digits_main_job_under_mpiexec(tmp_path):
    out = run(["timeout", "280", "mpiexec", "-n", "2", sys.executable,
               str(ROOT / "examples" / "train_digits.py"), "--epochs", "6", "--no-progress",
               "--out", str(tmp_path)], timeout=300)
    assert "2 rank(s)" in out
    _check_digits_output(out, tmp_path, 6)


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="mpiexec is not installed")
@pytest.mark.timeout(600)
def test_train_digits_preempted_by_sigterm_resumes_identically(tmp_path):
    """SIGTERM to the job (``timeout`` and ``mpiexec`` forward it to the ranks) early in epoch 2:
    a final checkpoint at the step reached, exit 143; ``--resume`` then ends exactly where an
    uninterrupted run ends."""
    cmd = ["timeout", "280", "mpiexec", "-n", "2", sys.executable,
           str(ROOT / "examples" / "train_digits.py"), "--epochs", "3", "--no-progress"]
    straight = run(cmd + ["--out", str(tmp_path / "straight")], timeout=300)
    out_dir = tmp_path / "preempted"
    proc = subprocess.Popen(cmd + ["--out", str(out_dir)], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 280
        while not (out_dir / "checkpoint.pt").exists():  # epoch 1 is done
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, f"{out}\n{err}"
    m = re.search(r"preempted by signal 15 in epoch (\d+) after step (\d+): checkpoint saved",
                  out)
    assert m is not None, out
    epoch, step = int(m.group(1)), int(m.group(2))
    ckpt = dtorch.load(out_dir / "checkpoint.pt")
    assert (ckpt["epoch"] + 1, ckpt["step"], ckpt["world_size"]) == (epoch, step, 2)
    assert epoch >= 2 and len(ckpt["history"]) == epoch - 1
    resumed = run(cmd + ["--out", str(out_dir), "--resume"], timeout=300)
    assert f"resumed from {out_dir / 'checkpoint.pt'} at epoch {epoch} step {step}" in resumed
    last = [line for line in straight.splitlines() if line.startswith("epoch  3/3")]
    assert len(last) == 1 and last[0] in resumed.splitlines(), (straight, resumed)
