"""dtorch.futures: Future, then/add_done_callback chaining, collect_all/wait_all, thread safety,
and ``Work.get_future`` in a world of one process."""

import threading
import time

import pytest

import dtorch
import dtorch.distributed as dist
from dtorch.distributed.backend import CommThread, Handle, OpContext, Work
from dtorch.futures import Future, collect_all, wait_all


def test_set_result_then_wait_and_value():
    fut = Future()
    assert not fut.done()
    fut.set_result(3)
    assert fut.done() and fut.wait() == 3 and fut.value() == 3


def test_value_before_completion_raises():
    with pytest.raises(RuntimeError, match="not completed"):
        Future().value()


@pytest.mark.parametrize("second", ["result", "exception"])
def test_completing_twice_raises(second):
    fut = Future()
    fut.set_result(1)
    with pytest.raises(RuntimeError, match="can only be marked completed once"):
        if second == "result":
            fut.set_result(2)
        else:
            fut.set_exception(ValueError("x"))
    assert fut.value() == 1


def test_set_exception_needs_an_exception():
    with pytest.raises(AssertionError, match="not an Exception"):
        Future().set_exception("oops")


def test_exception_raised_by_wait_and_value():
    fut = Future()
    fut.set_exception(ValueError("bad"))
    assert fut.done()
    with pytest.raises(ValueError, match="bad"):
        fut.wait()
    with pytest.raises(ValueError, match="bad"):
        fut.value()


def test_then_before_and_after_completion():
    fut = Future()
    plus_one = fut.then(lambda f: f.value() + 1)
    assert not plus_one.done()
    fut.set_result(41)
    assert plus_one.wait() == 42
    assert fut.then(lambda f: f.value() * 2).wait() == 82  # already complete: runs at once
    assert plus_one.then(lambda f: f.value() - 2).then(lambda f: str(f.value())).wait() == "40"


def test_then_callback_error_becomes_runtime_error():
    fut = Future()
    fut.set_result(1)

    def boom(f):
        raise KeyError("k")

    child = fut.then(boom)
    with pytest.raises(RuntimeError, match="error when running the callback: KeyError") as info:
        child.wait()
    assert isinstance(info.value.__cause__, KeyError)


def test_then_on_failed_future():
    fut = Future()
    fut.set_exception(ValueError("bad"))
    assert fut.then(lambda f: 5).wait() == 5  # the callback ignores the failure
    with pytest.raises(RuntimeError, match="ValueError: bad"):
        fut.then(lambda f: f.value()).wait()


def test_add_done_callback_runs_once_and_swallows_errors():
    fut = Future()
    seen = []
    fut.add_done_callback(lambda f: seen.append(f.value()))
    fut.add_done_callback(lambda f: 1 / 0)  # logged, ignored
    fut.add_done_callback(lambda f: seen.append(f.value() * 10))
    assert seen == []
    fut.set_result(2)
    assert seen == [2, 20]
    fut.add_done_callback(lambda f: seen.append("late"))
    assert seen == [2, 20, "late"]


def test_wait_blocks_until_another_thread_sets_the_result():
    fut = Future()
    chained = fut.then(lambda f: f.value() + 1)
    started = threading.Event()

    def producer():
        started.wait(10)
        fut.set_result(1)

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    started.set()
    assert chained.wait() == 2
    t.join(10)


def test_concurrent_completion_exactly_one_wins():
    fut = Future()
    calls = []
    fut.add_done_callback(lambda f: calls.append(f.value()))
    outcomes = []
    barrier = threading.Barrier(8)

    def racer(i):
        barrier.wait(10)
        try:
            fut.set_result(i)
            outcomes.append("won")
        except RuntimeError:
            outcomes.append("lost")

    threads = [threading.Thread(target=racer, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert calls == [fut.value()]


def test_collect_all_and_wait_all():
    a, b = Future(), Future()
    both = collect_all([a, b])
    a.set_result(1)
    assert not both.done()
    b.set_result(2)
    assert both.done() and both.wait() == [a, b]
    assert wait_all([a, b]) == [1, 2]
    assert collect_all([]).wait() == []


def test_collect_all_fails_with_first_error():
    a, b = Future(), Future()
    both = collect_all([a, b])
    b.set_exception(ValueError("v"))
    assert both.done()
    with pytest.raises(ValueError, match="v"):
        both.wait()
    a.set_result(1)
    with pytest.raises(ValueError, match="v"):
        wait_all([a, b])


def test_collect_all_rejects_non_futures():
    with pytest.raises(TypeError, match=r"futures\[1\] is a int"):
        collect_all([Future(), 1])


def test_generic_alias_for_annotations():
    assert Future[dtorch.Tensor] == Future[dtorch.Tensor]
    assert dtorch.futures.Future is Future


def test_work_get_future_single_process_world():
    dist.init_process_group(backend="single")
    try:
        t = dtorch.tensor([1.0, 2.0])
        work = dist.all_reduce(t, async_op=True)
        fut = work.get_future()
        assert fut is work.get_future()
        out = fut.then(lambda f: f.value()[0] * 2).wait()
        assert fut.value()[0] is t
        assert out.tolist() == [2.0, 4.0]
    finally:
        dist.destroy_process_group()


class _Stuck(Handle):
    """An operation that never completes: test() is False, wait() honours the deadline,
    wait_blocking() (the communication thread's) blocks until released."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.release = threading.Event()

    def test(self):
        return False

    def wait(self):
        while time.monotonic() < self.ctx.deadline:
            time.sleep(0.01)
        raise self.ctx.timeout_error(["1"])

    def wait_blocking(self):
        self.release.wait(30)


class _Failing(Handle):
    def test(self):
        return True

    def wait(self):
        raise ValueError("transport broke")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("on_comm_thread", [False, True])
def test_work_future_fails_with_the_group_timeout(on_comm_thread):
    ctx = OpContext("all_reduce", 7, "group 'WORLD' (ranks [0, 1])", timeout=0.3)
    handle = _Stuck(ctx)
    thread = CommThread("test-comm") if on_comm_thread else None
    try:
        fut = Work(handle, outputs=[dtorch.ones(1)], thread=thread).get_future()
        chained = fut.then(lambda f: f.value())
        assert not fut.done()
        with pytest.raises(dist.DistBackendError, match=r"all_reduce \(sequence number 7\).*"
                                                        r"timed out after 0\.3 s"):
            fut.wait()
        assert fut.done()
        with pytest.raises(RuntimeError, match="DistBackendError"):
            chained.wait()
    finally:
        handle.release.set()
        if thread is not None:
            thread.close()


def test_work_future_carries_the_operation_error():
    ctx = OpContext("broadcast", 1, "group 'WORLD' (ranks [0])", timeout=10)
    fut = Work(_Failing(ctx)).get_future()
    with pytest.raises(ValueError, match="transport broke"):
        fut.wait()
