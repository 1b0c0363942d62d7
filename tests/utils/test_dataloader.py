"""DataLoader: batching, collation, argument errors, and real worker processes (identical
batches with 0 and 2 workers, seeding, exceptions, dead workers, timeouts, shutdown without
orphans or leaked shared memory). Every multi-process test is bounded in time."""

import collections
import gc
import mmap
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import dtorch
from dtorch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    SequentialSampler,
    TensorDataset,
    _worker,
    default_collate,
    get_worker_info,
)

pytestmark = pytest.mark.timeout(60)

Point = collections.namedtuple("Point", "x y")


def _dataset(n=50):
    x = dtorch.from_numpy(np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3))
    return TensorDataset(x, dtorch.arange(n))


def _leftover_segments():
    if not os.path.isdir("/dev/shm"):
        return []
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"dtorch_dl_{os.getpid()}_")]


def _gone(pid):
    """True once ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except (FileNotFoundError, ProcessLookupError):
        return True


class Boom(Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        if i == 7:
            raise ValueError(f"bad sample {i}")
        return i


class Dies(Dataset):
    def __init__(self, how):
        self.how = how

    def __len__(self):
        return 20

    def __getitem__(self, i):
        if i == 5 and get_worker_info() is not None:
            if self.how == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        return i


class Slow(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        time.sleep(1.5 if i == 2 else 0.0)
        return i


class WorkerIds(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return np.array([i, info.id, info.seed % 1000003, int(dtorch.randint(0, 10**6, (1,)))])


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))

    def __len__(self):
        return self.n


# ----------------------------------------------------------------------------- single process
def test_batches_len_and_drop_last():
    ds = _dataset(10)
    loader = DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert batches[0][0].shape == (4, 2, 3) and batches[-1][1].tolist() == [8, 9]
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert len(list(DataLoader(ds, batch_size=4, drop_last=True))) == 2


def test_batch_size_none_converts_without_batching():
    out = list(DataLoader([np.float64(1.5), np.arange(3)], batch_size=None))
    assert isinstance(out[0], dtorch.Tensor) and out[1].tolist() == [0, 1, 2]


def test_default_collate_types():
    b = default_collate([{"a": 1, "b": (1.5, "s"), "p": Point(np.int32(1), np.zeros(2))},
                         {"a": 2, "b": (2.5, "t"), "p": Point(np.int32(2), np.ones(2))}])
    assert b["a"].dtype == dtorch.int64 and b["a"].tolist() == [1, 2]
    assert isinstance(b["b"], list) and b["b"][0].dtype == dtorch.float64
    assert b["b"][1] == ["s", "t"]
    assert isinstance(b["p"], Point) and b["p"].x.dtype == dtorch.int32
    assert b["p"].y.shape == (2, 2)
    assert default_collate([True, False]).dtype == dtorch.bool
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        default_collate([dtorch.zeros(2), dtorch.zeros(3)])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([object(), object()])


def test_argument_conflicts_raise_pytorchs_errors():
    ds = _dataset(4)
    cases = [
        (dict(shuffle=True, sampler=SequentialSampler(ds)), "mutually exclusive with shuffle"),
        (dict(batch_sampler=[[0, 1]], batch_size=2), "batch_sampler option is mutually"),
        (dict(batch_size=None, drop_last=True), "batch_size=None option disables"),
        (dict(num_workers=-1), "num_workers option should be non-negative"),
        (dict(timeout=-1), "timeout option should be non-negative"),
        (dict(prefetch_factor=2), "prefetch_factor option could only be specified"),
        (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            DataLoader(ds, **kwargs)
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        DataLoader(Stream(4), shuffle=True)
    loader = DataLoader(ds)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after"):
        loader.batch_size = 3


def test_pin_memory_without_gpu_warns_and_still_loads():
    if dtorch.cuda.is_available():
        pytest.skip("a GPU is present: pinning is exercised for real")
    with pytest.warns(UserWarning, match="no accelerator is found"):
        out = list(DataLoader(_dataset(4), batch_size=2, pin_memory=True))
    assert len(out) == 2


def test_len_works_with_tqdm():
    tqdm = pytest.importorskip("tqdm")
    loader = DataLoader(_dataset(10), batch_size=3)
    bar = tqdm.tqdm(loader, disable=True)
    assert bar.total == 4 and len(list(bar)) == 4


# ----------------------------------------------------------------------------- workers
def _epoch(num_workers, seed, **kw):
    dtorch.manual_seed(seed)
    loader = DataLoader(_dataset(), batch_size=8, shuffle=True, num_workers=num_workers, **kw)
    return [(x.numpy().copy(), y.numpy().copy()) for x, y in loader]


def test_same_seed_same_batches_with_0_and_2_workers():
    a, b = _epoch(0, 123), _epoch(2, 123)
    assert len(a) == len(b) == 7
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert sorted(np.concatenate([y for _, y in a]).tolist()) == list(range(50))
    assert not np.array_equal(a[0][1], _epoch(0, 124)[0][1])


def test_generator_argument_drives_order_with_workers():
    def run(nw):
        g = dtorch.Generator().manual_seed(7)
        return [y.tolist() for _, y in DataLoader(_dataset(20), batch_size=5, shuffle=True,
                                                  num_workers=nw, generator=g)]
    assert run(0) == run(2)


def test_worker_seeding_and_worker_info():
    def run():
        dtorch.manual_seed(0)
        calls = []
        loader = DataLoader(WorkerIds(), batch_size=2, num_workers=2,
                            worker_init_fn=lambda wid: calls.append(wid))
        return np.concatenate([b.numpy() for b in loader])
    out = run()
    assert out[:, 0].tolist() == list(range(8))
    assert set(out[:, 1].tolist()) == {0, 1}       # batches alternate between the two workers
    assert out[0, 2] != out[2, 2]                  # seeds differ per worker (base_seed + id)
    np.testing.assert_array_equal(out, run())      # and the whole thing is reproducible
    assert get_worker_info() is None               # the main process is no worker


def test_batches_arrive_through_shared_memory_zero_copy():
    loader = DataLoader(_dataset(16), batch_size=8, num_workers=2)
    for x, _ in loader:
        root = x.numpy()
        while isinstance(root.base, np.ndarray):
            root = root.base
        base = root.base.obj if isinstance(root.base, memoryview) else root.base
        assert isinstance(base, mmap.mmap)
        x.numpy()[0, 0, 0] = -1.0                  # batches are writable
    assert _leftover_segments() == []


def test_pack_unpack_roundtrip_and_unlinks_the_segment():
    if not _worker.shm_available():
        pytest.skip("no POSIX shared memory")
    name = f"dtorch_dl_{os.getpid()}_test_0"
    batch = {"a": dtorch.arange(5.0), "b": [np.ones((2, 2), np.int16), "txt"],
             "p": Point(dtorch.zeros(3, dtype=dtorch.uint8), 4)}
    out = _worker.unpack(_worker.pack(batch, name))
    assert out["a"].tolist() == [0, 1, 2, 3, 4] and out["b"][1] == "txt"
    assert out["b"][0].dtype == np.int16 and isinstance(out["p"], Point)
    assert out["p"].x.dtype == dtorch.uint8 and out["p"].y == 4
    assert _leftover_segments() == []


def test_iterable_dataset_with_workers_splits_by_worker_info():
    loader = DataLoader(Stream(11), batch_size=3, num_workers=2)
    items = sorted(v for b in loader for v in b.tolist())
    assert items == list(range(11))
    assert len(loader) == 4
    assert [b.tolist() for b in DataLoader(Stream(5), batch_size=2)] == [[0, 1], [2, 3], [4]]


def test_worker_exception_is_reraised_with_its_traceback():
    loader = DataLoader(Boom(), batch_size=2, num_workers=2)
    t0 = time.monotonic()
    with pytest.raises(ValueError) as info:
        list(loader)
    msg = str(info.value)
    assert "Caught ValueError in DataLoader worker process" in msg
    assert "Original Traceback" in msg and "bad sample 7" in msg and "__getitem__" in msg
    assert time.monotonic() - t0 < 30
    del info  # its traceback keeps the iterator (and so its workers) alive, as in PyTorch
    gc.collect()
    assert _leftover_segments() == []


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_dead_worker_raises_instead_of_hanging(how):
    loader = DataLoader(Dies(how), batch_size=2, num_workers=2)
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited "
                                           r"unexpectedly") as info:
        list(loader)
    assert ("exit code 3" if how == "exit" else "SIGKILL") in str(info.value)
    gc.collect()
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("Process")
                and p.is_alive()]
    assert _leftover_segments() == []


def test_timeout_raises():
    loader = DataLoader(Slow(), batch_size=1, num_workers=1, timeout=0.5)
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.5 seconds"):
        list(loader)


def test_break_and_garbage_collection_leave_no_orphans_or_segments():
    loader = DataLoader(_dataset(200), batch_size=4, num_workers=2, prefetch_factor=4)
    it = iter(loader)
    next(it)
    time.sleep(0.3)                                  # let the workers fill the queue
    pids = [w.pid for w in it._workers]
    del it
    gc.collect()
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids)
    assert _leftover_segments() == []
    for _ in DataLoader(_dataset(200), batch_size=4, num_workers=2):
        break
    gc.collect()
    assert _leftover_segments() == []


def test_persistent_workers_survive_epochs():
    loader = DataLoader(_dataset(12), batch_size=4, num_workers=2, persistent_workers=True)
    first = [y.tolist() for _, y in loader]
    pids = [w.pid for w in loader._iterator._workers]
    it = iter(loader)
    next(it)                                         # abandon an epoch half-way
    second = [y.tolist() for _, y in loader]
    assert first == second == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert [w.pid for w in loader._iterator._workers] == pids
    workers = loader._iterator._workers
    del loader, it
    gc.collect()
    assert all(not w.is_alive() for w in workers)


def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    script = tmp_path / "victim.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        import dtorch
        from dtorch.utils.data import DataLoader, Dataset

        class Sleepy(Dataset):
            def __len__(self):
                return 100
            def __getitem__(self, i):
                time.sleep(0.05)
                return i

        it = iter(DataLoader(Sleepy(), batch_size=1, num_workers=2))
        next(it)
        print(os.getpid(), " ".join(str(w.pid) for w in it._workers), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=os.getcwd())
    victim, *pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2, proc.stderr
    deadline = time.monotonic() + 15
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in pids)
    if os.path.isdir("/dev/shm"):      # the orphans freed the batches nobody will read
        assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"dtorch_dl_{victim}_")]


def test_spawn_context_matches_fork():
    ds = _dataset(12)
    fork = [y.tolist() for _, y in DataLoader(ds, batch_size=4, num_workers=1)]
    spawn = [y.tolist() for _, y in DataLoader(ds, batch_size=4, num_workers=1,
                                               multiprocessing_context="spawn")]
    assert fork == spawn == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(ValueError, match="multiprocessing_context option should specify"):
        DataLoader(ds, multiprocessing_context="teleport")
