"""``python -m launch`` with real worker processes on 127.0.0.1: environment, output, failures,
restarts, signals, logs, modules, and (with mpi4py) one genuine MPI world through the launcher."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from _launch_util import ROOT, clean_env, mpi_available, run_launch

from launch.config import cores_available

ENV_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
            "MASTER_PORT", "DTORCH_RDZV_ENDPOINT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "PMI_PORT", "PMI_ID", "PMI_FD", "HYDRA_FAKE", "DTORCH_RESTART_COUNT",
            "DTORCH_BACKEND")

ENV_SCRIPT = f"""
    import json, os, sys
    keys = {ENV_KEYS!r}
    print("ENV " + json.dumps({{k: os.environ.get(k) for k in keys}}))
    print(f"to stderr from {{os.environ['RANK']}}", file=sys.stderr)
"""


def envs_of(stdout):
    out = {}
    for line in stdout.splitlines():
        prefix, _, rest = line.partition(": ENV ")
        if rest:
            env = json.loads(rest)
            assert prefix == f"[rank{env['RANK']}]"
            out[int(env["RANK"])] = env
    return out


def test_worker_environment_and_prefixed_output(script):
    path = script("env.py", ENV_SCRIPT)
    res = run_launch(["--nproc-per-node", 3, "--backend", "mpi", path],
                     env=clean_env(PMI_FD="7", HYDRA_FAKE="1"))
    assert res.returncode == 0, res.stderr
    envs = envs_of(res.stdout)
    assert sorted(envs) == [0, 1, 2]
    port = envs[0]["MASTER_PORT"]
    threads = str(max(1, cores_available() // 3))
    for r, env in envs.items():
        assert env["LOCAL_RANK"] == str(r) and env["WORLD_SIZE"] == "3"
        assert env["LOCAL_WORLD_SIZE"] == "3" and env["GROUP_RANK"] == "0"
        assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == port
        assert env["PMI_PORT"] == f"127.0.0.1:{port}" and env["PMI_ID"] == str(r)
        assert env["DTORCH_RDZV_ENDPOINT"] == f"tcp://127.0.0.1:{port}"
        assert env["OMP_NUM_THREADS"] == threads == env["OPENBLAS_NUM_THREADS"]
        assert env["PMI_FD"] is None and env["HYDRA_FAKE"] is None  # inherited MPI vars gone
        assert env["DTORCH_RESTART_COUNT"] == "0" and env["DTORCH_BACKEND"] == "mpi"
        assert f"[rank{r}]: to stderr from {r}" in res.stderr
    assert f"setting OMP_NUM_THREADS={threads} and OPENBLAS_NUM_THREADS={threads}" in res.stderr


def test_user_thread_settings_are_kept(script):
    path = script("env.py", ENV_SCRIPT)
    res = run_launch(["--nproc-per-node", 2, path], env=clean_env(OMP_NUM_THREADS=3))
    assert res.returncode == 0, res.stderr
    envs = envs_of(res.stdout)
    assert {e["OMP_NUM_THREADS"] for e in envs.values()} == {"3"}
    assert "keeping OMP_NUM_THREADS=3 as set by you" in res.stderr


def test_master_port_and_module_target(tmp_path):
    (tmp_path / "mymod.py").write_text(
        "import os\nprint('MOD', os.environ['RANK'], os.environ['MASTER_PORT'], __name__)\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = clean_env()
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    res = run_launch(["--standalone", "--nproc-per-node", 2, "--master-port", port, "-m",
                      "mymod"], env=env)
    assert res.returncode == 0, res.stderr
    for r in (0, 1):
        assert f"[rank{r}]: MOD {r} {port} __main__" in res.stdout


FAIL_SCRIPT = """
    import os, time
    if os.environ["RANK"] == "1":
        time.sleep(0.3)
        def inner():
            raise ValueError("boom from rank one")
        inner()
    time.sleep(120)
"""


def test_failing_worker_ends_the_job_with_its_traceback(script):
    path = script("fail.py", FAIL_SCRIPT)
    t0 = time.monotonic()
    res = run_launch(["--nproc-per-node", 3, "--grace-period", 2, path], timeout=60)
    elapsed = time.monotonic() - t0
    assert res.returncode == 1, res.stderr
    assert elapsed < 20, elapsed  # the others sleep for 120 s: they were stopped
    summary = res.stderr[res.stderr.index("launch: the job failed"):]
    assert "rank 1 (local rank 1, node 0" in summary and "exit code 1" in summary
    assert "last traceback on its stderr:" in summary
    assert "in inner" in summary and "ValueError: boom from rank one" in summary
    assert "stopped by the launcher: ranks [0, 2]" in summary


def test_worker_killed_by_a_signal(script):
    path = script("kill.py", """
        import os, signal, time
        if os.environ["RANK"] == "0":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(120)
    """)
    res = run_launch(["--nproc-per-node", 2, "--grace-period", 1, path])
    assert res.returncode == 128 + 9, res.stderr
    assert "rank 0 (local rank 0, node 0" in res.stderr
    assert "signal SIGKILL (9)" in res.stderr


RESTART_SCRIPT = """
    import os, sys
    rank, attempt = os.environ["RANK"], int(os.environ["DTORCH_RESTART_COUNT"])
    ckpt = os.path.join(sys.argv[1], f"ckpt{rank}")
    if os.path.exists(ckpt):
        print(f"resumed from epoch {open(ckpt).read()} on attempt {attempt}")
    else:
        open(ckpt, "w").write("1")
    with open(os.path.join(sys.argv[1], "attempts"), "a") as f:
        f.write(f"{rank}:{attempt}\\n")
    if rank == "1" and attempt < int(sys.argv[2]):
        sys.exit(3)
    print("done", rank)
"""


def test_restart_after_a_failure_resumes(script, tmp_path):
    path = script("restart.py", RESTART_SCRIPT)
    res = run_launch(["--nproc-per-node", 2, "--max-restarts", 2, path, tmp_path, 1])
    assert res.returncode == 0, res.stderr
    assert "restarting the worker group: attempt 2 of 3" in res.stderr
    assert "exit code 3" in res.stderr  # the first attempt's summary
    for r in (0, 1):
        assert f"[rank{r}]: resumed from epoch 1 on attempt 1" in res.stdout
        assert f"[rank{r}]: done {r}" in res.stdout
    attempts = sorted((tmp_path / "attempts").read_text().split())
    assert attempts == ["0:0", "0:1", "1:0", "1:1"]


def test_restarts_are_bounded(script, tmp_path):
    path = script("restart.py", RESTART_SCRIPT)
    res = run_launch(["--nproc-per-node", 2, "--max-restarts", 1, path, tmp_path, 99])
    assert res.returncode == 3, res.stderr
    assert "giving up after 2 attempts (--max-restarts 1)" in res.stderr
    attempts = (tmp_path / "attempts").read_text().split()
    assert sorted(a for a in attempts if a.startswith("1:")) == ["1:0", "1:1"]


def test_log_dir_keeps_raw_per_rank_output(script, tmp_path):
    path = script("log.py", """
        import os, sys
        r = os.environ["RANK"]
        print(f"hello from {r}")
        print(f"warning from {r}", file=sys.stderr)
        sys.exit(int(r) * 5)
    """)
    logs = tmp_path / "logs"
    res = run_launch(["--nproc-per-node", 2, "--log-dir", logs, path])
    assert res.returncode == 5
    for r in (0, 1):
        assert (logs / f"rank{r}.stdout").read_text() == f"hello from {r}\n"
        assert (logs / f"rank{r}.stderr").read_text() == f"warning from {r}\n"
    assert f"per-rank logs: {logs}" in res.stderr


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


SLEEPER = """
    import os, signal, subprocess, sys, time
    out = sys.argv[1]
    r = os.environ["RANK"]
    # a grandchild that ignores SIGINT/SIGTERM: only the final SIGKILL sweep ends it
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                              "signal.signal(signal.SIGINT, signal.SIG_IGN); "
                              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
    def on_signal(signum, frame):
        open(os.path.join(out, f"got{r}"), "w").write(signal.Signals(signum).name)
        sys.exit(0)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    open(os.path.join(out, f"pids{r}.tmp"), "w").write(f"{os.getpid()} {child.pid}")
    os.rename(os.path.join(out, f"pids{r}.tmp"), os.path.join(out, f"pids{r}"))
    time.sleep(120)
"""


def _start_sleepers(script, tmp_path, n=2):
    path = script("sleeper.py", SLEEPER)
    proc = subprocess.Popen([sys.executable, "-m", "launch", "--nproc-per-node", str(n),
                             "--grace-period", "2", path, str(tmp_path)], env=clean_env(),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"pids{r}").exists() for r in range(n)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pids = [int(p) for r in range(n) for p in (tmp_path / f"pids{r}").read_text().split()]
    return proc, pids


def _wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_is_forwarded_and_leaves_no_orphans(script, tmp_path, sig):
    proc, pids = _start_sleepers(script, tmp_path)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + sig, err
        assert f"received {sig.name}: forwarding it to the workers" in err
        for r in range(2):
            assert (tmp_path / f"got{r}").read_text() == sig.name
        assert _wait_gone(pids, 5) == []  # workers and their ignoring grandchildren
    finally:
        for p in [proc.pid, *pids]:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_workers_die_with_a_killed_launcher(script, tmp_path):
    proc, pids = _start_sleepers(script, tmp_path)
    workers = pids[0::2]
    try:
        proc.kill()
        proc.communicate(timeout=10)
        assert _wait_gone(workers, 5) == []
    finally:
        for p in [proc.pid, *pids]:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_bad_arguments_are_reported():
    res = run_launch(["--nnodes", 2, "--node-rank", 2, "x.py"])
    assert res.returncode == 2 and "--node-rank 2 is outside [0, nnodes=2)" in res.stderr
    res = run_launch(["--standalone", "--nnodes", 2, "x.py"])
    assert res.returncode == 2 and "--standalone is a one-node job" in res.stderr


# ----------------------------------------------------------------------------- MPI worlds
MPI_SCRIPT = """
    import os, sys, time
    import dtorch, dtorch.distributed as dist
    dist.init_process_group(timeout=__import__("datetime").timedelta(seconds=60))
    r, n = dist.get_rank(), dist.get_world_size()
    assert (r, n) == (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
    if len(sys.argv) > 1 and r == int(sys.argv[1]):
        time.sleep(0.3)
        raise RuntimeError(f"rank {r} gives up inside the MPI world")
    t = dtorch.arange(6, dtype=dtorch.float64) * (r + 1)
    dist.all_reduce(t)
    expect = [i * n * (n + 1) / 2 for i in range(6)]
    assert t.tolist() == expect, (t.tolist(), expect)
    from mpi4py import MPI
    print(f"allreduce ok rank {r} of {n} backend {dist.get_backend()} "
          f"COMM_WORLD {MPI.COMM_WORLD.Get_size()}")
    dist.destroy_process_group()
"""

needs_mpi = pytest.mark.skipif(not mpi_available(), reason="needs mpi4py with an MPI library")


@needs_mpi
def test_mpi_world_through_the_launcher(script):
    path = script("mpi_ok.py", MPI_SCRIPT)
    res = run_launch(["--nproc-per-node", 2, path], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    for r in (0, 1):
        assert f"[rank{r}]: allreduce ok rank {r} of 2 backend mpi COMM_WORLD 2" in res.stdout


@needs_mpi
def test_mpi_rank_failure_ends_the_world(script):
    path = script("mpi_fail.py", MPI_SCRIPT)
    t0 = time.monotonic()
    res = run_launch(["--nproc-per-node", 2, "--grace-period", 2, path, 1], timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert time.monotonic() - t0 < 40
    summary = res.stderr[res.stderr.index("launch: the job failed"):]
    assert "rank 1 (local rank 1, node 0" in summary
    assert "RuntimeError: rank 1 gives up inside the MPI world" in summary
    assert "allreduce ok" not in res.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(rdzv, path, *args):
    procs = [subprocess.Popen(
        [sys.executable, "-m", "launch", "--nnodes", "2", "--node-rank", str(n), *rdzv,
         "--grace-period", "2", "--rdzv-timeout", "60", path, *map(str, args)],
        env=clean_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in (0, 1)]
    try:
        return [(p.wait(timeout=120), *p.communicate(timeout=10)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@needs_mpi
@pytest.mark.parametrize("kind", ["tcp", "file"])
def test_two_launchers_form_one_mpi_world(script, tmp_path, kind):
    path = script("mpi_ok.py", MPI_SCRIPT)
    rdzv = (["--master-addr", "127.0.0.1", "--master-port", str(_free_port())] if kind == "tcp"
            else ["--rdzv-endpoint", f"file://{tmp_path}/rdzv"])
    results = _two_nodes(rdzv, path)
    for node, (rc, out, err) in enumerate(results):
        assert rc == 0, (node, out, err)
        assert f"[rank{node}]: allreduce ok rank {node} of 2 backend mpi COMM_WORLD 2" in out


@needs_mpi
def test_failure_on_one_node_stops_the_other(script):
    path = script("mpi_fail.py", MPI_SCRIPT)
    rdzv = ["--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    (rc0, _, err0), (rc1, _, err1) = _two_nodes(rdzv, path, 1)
    assert rc1 == 1 and "RuntimeError: rank 1 gives up inside the MPI world" in err1
    assert rc0 != 0 and "launch: the job failed" in err0
    assert "rank 1 gives up" in err0  # node 0 names the root cause on node 1
