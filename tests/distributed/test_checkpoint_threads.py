"""``dtorch.distributed.replicated_checkpoint`` in the thread world (2 and 4 ranks) and in one
process.

Thread-world ranks share this process's signal handlers: the preemption handler is tested here
in a single process, in rank threads through the main thread's relay, and under MPI in
``test_checkpoint_mpi.py`` / ``test_checkpoint_jobs.py``.
"""

import json
import multiprocessing
import signal
import threading

import _ckpt_suite as suite
import numpy as np
import pytest

import dtorch
import dtorch.distributed as dist
from dtorch.distributed import replicated_checkpoint as rcp

pytestmark = pytest.mark.timeout(120)


def _run(check, nprocs, *args):
    def rank_main(rank):
        dist.init_process_group(backend="threads", timeout=60)
        try:
            check(*args)
        finally:
            dist.destroy_process_group()

    dist.spawn_threads(rank_main, nprocs=nprocs, timeout=100)


CHECKS = [suite.check_save_writes_once_and_every_rank_waits,
          suite.check_save_failures_raise_on_every_rank,
          suite.check_load_broadcasts_to_ranks_without_the_file,
          suite.check_load_failures_raise_on_every_rank,
          suite.check_map_location_per_rank, suite.check_subgroup]


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__[6:])
def test_collective_save_load(check, nprocs, tmp_path, monkeypatch):
    monkeypatch.setattr(rcp, "_CHUNK", 1000)  # several broadcasts per checkpoint
    _run(check, nprocs, tmp_path)


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_resume_is_bit_identical(nprocs, kind, tmp_path):
    _run(suite.check_resume_is_bit_identical, nprocs, tmp_path, kind)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_resume_at_another_world_size(kind, tmp_path):
    """Saved by 4 ranks; resumed by 2 ranks, by a world of 1 and by a plain process."""
    _run(suite.check_save_training_state, 4, tmp_path, kind)
    _run(suite.check_resume_training_state, 2, tmp_path, kind)
    _run(suite.check_resume_training_state, 1, tmp_path, kind)
    assert not dist.is_initialized()
    suite.check_resume_training_state(tmp_path, kind)


def test_world_size_change_is_not_a_no_op(tmp_path):
    """The resume check can fail: a checkpoint of another run does not pass it."""
    _run(suite.check_save_training_state, 2, tmp_path, "sgd")
    state = dtorch.load(tmp_path / "train.pt")
    state["model"]["fc1.weight"][0, 0] += 1e-6
    dtorch.save(state, tmp_path / "train.pt")
    with pytest.raises(AssertionError):
        suite.check_resume_training_state(tmp_path, "sgd")


# ----------------------------------------------------------------------------- no process group
def test_without_a_process_group_save_and_load_are_plain(tmp_path):
    assert not dist.is_initialized()
    rcp.save(suite.payload(3), tmp_path / "c.pt")
    suite.assert_payload(dtorch.load(tmp_path / "c.pt"), 3)
    suite.assert_payload(rcp.load(tmp_path / "c.pt", map_location="cpu"), 3)
    with pytest.raises(FileNotFoundError):
        rcp.load(tmp_path / "missing.pt")


def test_single_process_world(tmp_path):
    dist.init_process_group(backend="single")
    try:
        suite.check_save_writes_once_and_every_rank_waits(tmp_path)
        rcp.save({"a": dtorch.ones(2)}, tmp_path / "one.pt")
        np.testing.assert_array_equal(rcp.load(tmp_path / "one.pt")["a"].numpy(), [1, 1])
        with pytest.raises(FileNotFoundError):
            rcp.load(tmp_path / "missing.pt")
    finally:
        dist.destroy_process_group()


def _round_trip(exc):
    return rcp._decode_error(json.loads(json.dumps(rcp._encode_error(exc), default=str)))


def test_errors_keep_type_and_text():
    for exc in [FileNotFoundError(2, "No such file or directory", "/x/c.pt"),
                OSError(28, "No space left on device"), TypeError("bad object"),
                RuntimeError("corrupt"), ValueError("nan", float("nan"))]:
        rebuilt = _round_trip(exc)
        assert (type(rebuilt), str(rebuilt)) == (type(exc), str(exc))

    class Custom(Exception):
        pass

    # types that are not builtins, or cannot be rebuilt from text, become RuntimeErrors
    rebuilt = _round_trip(Custom("mine"))
    assert (type(rebuilt), str(rebuilt)) == (RuntimeError, "Custom: mine")
    exc = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")
    assert (type(_round_trip(exc)), str(_round_trip(exc))) == (RuntimeError,
                                                               f"UnicodeDecodeError: {exc}")


# ----------------------------------------------------------------------------- preemption
def test_preemption_handler_in_one_process():
    before = signal.getsignal(signal.SIGTERM)
    with rcp.PreemptionHandler() as preemption:
        assert signal.getsignal(signal.SIGTERM) != before
        assert not preemption.triggered and not preemption.should_stop()
        signal.raise_signal(signal.SIGTERM)  # would end this process without the handler
        signal.raise_signal(signal.SIGTERM)  # a second one changes nothing
        assert preemption.triggered and preemption.should_stop()
        assert preemption.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_preemption_handler_several_signals_and_nesting():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    with rcp.PreemptionHandler(signals=(signal.SIGTERM, signal.SIGUSR1)) as outer:
        with pytest.raises(KeyError):
            with rcp.PreemptionHandler(signals=[signal.SIGUSR1]) as inner:
                signal.raise_signal(signal.SIGUSR1)
                raise KeyError("the block fails")
        assert inner.signum == signal.SIGUSR1 and not outer.triggered
        signal.raise_signal(signal.SIGUSR1)  # the outer handler is back
        assert outer.signum == signal.SIGUSR1
    assert {s: signal.getsignal(s) for s in before} == before


def test_preemption_handler_in_a_world_of_one():
    dist.init_process_group(backend="single")
    try:
        with rcp.PreemptionHandler() as preemption:
            assert not preemption.should_stop()
            signal.raise_signal(signal.SIGTERM)
            assert preemption.should_stop() and preemption.signum == signal.SIGTERM
    finally:
        dist.destroy_process_group()


def test_preemption_handler_arguments():
    for bad, match in [((), "at least one"), ((signal.SIGKILL,), "SIGKILL cannot be caught"),
                       ((12345,), "12345 is not a signal")]:
        with pytest.raises(ValueError, match=match):
            rcp.PreemptionHandler(signals=bad)
    handler = rcp.PreemptionHandler()
    with handler, pytest.raises(RuntimeError, match="already active"):
        handler.__enter__()
    errors = []

    def in_thread():
        try:
            with rcp.PreemptionHandler():
                pass
        except ValueError as e:
            errors.append(str(e))

    t = threading.Thread(target=in_thread, name="worker-x")
    t.start()
    t.join(10)
    assert len(errors) == 1 and "main thread" in errors[0] and "worker-x" in errors[0]


def test_preemption_handler_in_rank_threads_through_the_relay():
    """Rank threads cannot install signal handlers; the main thread relays SIGTERM to their
    handlers, and every rank stops at the same step (rank 1 sends it at step 3)."""
    import os
    import time

    def rank_main(rank):
        dist.init_process_group(backend="threads")
        with rcp.PreemptionHandler() as preemption:
            for step in range(1000):
                if rank == 1 and step == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.2)  # the main thread runs the relay meanwhile
                if preemption.should_stop():
                    return step, preemption.signum
        return None

    before = signal.getsignal(signal.SIGTERM)
    with rcp.relay_signals_to_threads():
        results = dist.spawn_threads(rank_main, nprocs=2, timeout=60)
    assert signal.getsignal(signal.SIGTERM) is before
    assert results[0] == results[1] and results[0][1] == signal.SIGTERM
    assert 3 <= results[0][0] <= 5


def test_relay_with_no_handler_takes_the_previous_action():
    got = []
    before = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        with rcp.relay_signals_to_threads(signals=(signal.SIGUSR1,)):
            signal.raise_signal(signal.SIGUSR1)
            with pytest.raises(RuntimeError, match="already active"):
                with rcp.relay_signals_to_threads():
                    pass
        assert got == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_relay_must_cover_the_handler_signals():
    errors = []

    def in_thread():
        try:
            with rcp.PreemptionHandler(signals=(signal.SIGUSR2,)):
                pass
        except ValueError as e:
            errors.append(str(e))

    with rcp.relay_signals_to_threads(signals=(signal.SIGTERM,)):
        t = threading.Thread(target=in_thread, name="rank-y")
        t.start()
        t.join(10)
    assert len(errors) == 1 and "SIGUSR2" in errors[0] and "relay_signals_to_threads" in errors[0]


def _sleep_forever(ready):
    import time

    ready.set()
    time.sleep(60)


def test_forked_child_still_dies_of_sigterm():
    """A DataLoader worker forked inside the block must not swallow the launcher's SIGTERM."""
    ctx = multiprocessing.get_context("fork")
    with rcp.PreemptionHandler() as preemption:
        ready = ctx.Event()
        child = ctx.Process(target=_sleep_forever, args=(ready,))
        child.start()
        assert ready.wait(30)
        child.terminate()  # SIGTERM
        child.join(30)
        assert child.exitcode == -signal.SIGTERM
        assert not preemption.triggered
