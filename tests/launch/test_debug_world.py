"""``python -m launch --debug-world N``: the script as N rank threads of one process."""

from _launch_util import run_launch

WORLD_SCRIPT = """
    import os, sys, threading
    import dtorch, dtorch.distributed as dist
    dist.init_process_group(backend=os.environ.get("DTORCH_BACKEND"))  # real runs: MPI
    r, n = dist.get_rank(), dist.get_world_size()
    assert dist.get_backend() == "threads"
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"]) == (str(r), str(n))
    assert os.environ["LOCAL_RANK"] == str(r) and dist.get_local_rank() == r
    t = dtorch.tensor([float(r + 1), 2.0 ** r], dtype=dtorch.float64)
    dist.all_reduce(t)
    assert t.tolist() == [n * (n + 1) / 2, 2.0 ** n - 1], t.tolist()
    objs = [None] * n
    dist.all_gather_object(objs, (r, threading.get_ident(), os.getpid()))
    assert [o[0] for o in objs] == list(range(n))
    assert len({o[1] for o in objs}) == n and len({o[2] for o in objs}) == 1  # threads, 1 pid
    print(f"rank {r} of {n} ok, args {sys.argv[1:]}")
    print(f"rank {r} to stderr", file=sys.stderr)
    fail = os.environ.get("FAIL_RANK")
    if fail is not None and int(fail) == r:
        if os.environ.get("FAIL_MODE") == "exit":
            sys.exit(4)
        def deep():
            raise KeyError(f"missing piece in rank {r}")
        deep()
    dist.barrier()
    dist.destroy_process_group()
"""


def test_debug_world_runs_the_script_as_rank_threads(script):
    path = script("world.py", WORLD_SCRIPT)
    res = run_launch(["--debug-world", 3, path, "--epochs", 1])
    assert res.returncode == 0, res.stdout + res.stderr
    for r in range(3):
        assert f"[rank{r}]: rank {r} of 3 ok, args ['--epochs', '1']" in res.stdout
        assert f"[rank{r}]: rank {r} to stderr" in res.stderr
    assert "as 3 rank threads of process" in res.stderr


def test_debug_world_failure_names_the_rank_and_its_traceback(script):
    from _launch_util import clean_env

    path = script("world.py", WORLD_SCRIPT)
    res = run_launch(["--debug-world", 3, path], env=clean_env(FAIL_RANK=1), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    summary = res.stderr[res.stderr.index("launch: the debug world failed"):]
    assert "rank 1: KeyError: 'missing piece in rank 1'" in summary
    assert "in deep" in summary and "world.py" in summary
    assert "debug_world.py" not in summary  # the script's frames, not the launcher's
    assert "other ranks that failed in consequence: [0, 2]" in summary


def test_debug_world_sys_exit_code(script):
    from _launch_util import clean_env

    path = script("world.py", WORLD_SCRIPT)
    res = run_launch(["--debug-world", 2, path], env=clean_env(FAIL_RANK=0, FAIL_MODE="exit"))
    assert res.returncode == 4, res.stdout + res.stderr
    assert "rank 0: sys.exit(4)" in res.stderr


def test_debug_world_module_target(tmp_path):
    from _launch_util import clean_env

    pkg = tmp_path / "dbgpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import dtorch.distributed as dist\n"
        "dist.init_process_group()\n"
        "print('pkg main', dist.get_rank(), dist.get_world_size(), __name__)\n")
    env = clean_env()
    res = run_launch(["--debug-world", 2, "-m", "dbgpkg"], env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[rank0]: pkg main 0 2 __main__" in res.stdout
    assert "[rank1]: pkg main 1 2 __main__" in res.stdout
