"""Process groups and the four ways of forming a world (``init_process_group``).

1. Under an MPI launcher (``mpiexec``, ``srun --mpi=pmi2``): the world is MPI's ``COMM_WORLD``.
2. Through a rendezvous URL (``env://`` -- the default when ``MASTER_ADDR`` etc. are set --,
   ``tcp://``, ``file://``) or a given ``store``: the ranks meet in the store, and the MPI world is
   formed from it without ``mpiexec`` (a PMI-1 process manager, :mod:`._pmi`).
3. A single process with nothing set: a world of 1 where every collective is a correct no-op.
4. ``backend="threads"``: N ranks as threads of one process (:mod:`.threads`).

The default group lives in process-wide state, except in the thread world, where each rank thread
has its own (thread-local) default group.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta

from .._backend import is_cuda_array
from . import _monitor
from .backend import OpContext
from .errors import DistError
from .single import SingleBackend

DEFAULT_TIMEOUT = timedelta(minutes=30)

_LAUNCHER_VARS = ("PMI_RANK", "PMI_FD", "PMI_ID", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                  "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class Backend:
    """Backend names accepted by :func:`init_process_group` (``Backend.MPI == "mpi"``)."""

    MPI = "mpi"
    NCCL = "nccl"
    SINGLE = "single"
    THREADS = "threads"
    GLOO = "gloo"  # accepted so that PyTorch code runs unchanged: the CPU backend here is MPI
    _ALL = ("mpi", "nccl", "single", "threads", "gloo")


class GroupMember:
    """Sentinels: ``WORLD`` (the default group) and ``NON_GROUP_MEMBER``."""

    WORLD = object()
    NON_GROUP_MEMBER = object()


class group:  # noqa: N801 - torch.distributed's spelling
    """``group.WORLD`` is the default group."""

    WORLD = GroupMember.WORLD


class ProcessGroup:
    """A set of ranks that run collectives together.

    ``ranks`` are global ranks in group-rank order; ``rank()`` is this process's rank within the
    group. Holds the backend for host arrays and (with NCCL) one for device arrays, the group's
    sequence number, and the progress record used to name missing ranks on a timeout.
    """

    def __init__(self, world, name, ranks, cpu_backend, timeout, tracker=None):
        self.world = world
        self.name = name
        self.ranks = list(ranks)
        self.cpu = cpu_backend
        self._cuda = None
        self.timeout = timeout
        self.tracker = tracker
        self.seq = 0
        self.desc = f"group {name!r} (ranks {_ranks_text(self.ranks)})"

    def rank(self):
        return self.cpu.rank

    def size(self):
        return self.cpu.size

    def backend_name(self):
        return self.world.backend_name

    def __repr__(self):
        return f"ProcessGroup({self.name!r}, ranks={self.ranks}, backend={self.backend_name()!r})"

    def group_rank(self, global_rank, what="rank"):
        try:
            return self.ranks.index(global_rank)
        except ValueError:
            raise ValueError(f"{what} {global_rank} is not a member of {self.desc}") from None

    def backend_for(self, arr):
        """The backend that moves ``arr``: NCCL for device arrays when the world uses it."""
        if self.world.use_nccl and is_cuda_array(arr):
            if self.world.use_nccl == "auto":  # backend=None: NCCL if CuPy has it
                self.world.use_nccl = _nccl_importable()
                if not self.world.use_nccl:
                    return self.cpu
            if self._cuda is None:
                from .nccl import NCCLBackend

                self._cuda = NCCLBackend(self.world.store, self.name, self.rank(), self.size(),
                                         self.world.device_index(), self.timeout)
            return self._cuda
        return self.cpu

    def begin(self, op, arrays=(), reduce_op=None, root=None, shapes=True):
        """Start a collective: next sequence number, progress record, fingerprint check."""
        self.seq += 1
        seq = self.seq
        tracker = self.tracker
        if tracker is not None:
            tracker.enter(seq)
        ctx = OpContext(op, seq, self.desc, self.timeout, tracker=tracker)
        if self.world.debug:
            what, site = _monitor.fingerprint(op, seq, arrays, reduce_op, root, shapes)
            texts = self.cpu.exchange_fingerprints(f"{what} @ {site}", ctx)
            _monitor.check_fingerprints(texts, self.ranks, ctx)
        return ctx

    def p2p(self, op, peer):
        """Context of a point-to-point operation with group rank ``peer`` (None: any)."""
        who = None if peer is None else [self.ranks[peer]]
        return OpContext(op, None, self.desc, self.timeout, (lambda: who) if who else None)

    def close(self):
        for be in (self.cpu, self._cuda):
            if be is not None:
                be.close()
        if self.tracker is not None:
            self.tracker.close()


def _ranks_text(ranks):
    if len(ranks) > 8:
        return f"[{ranks[0]}, {ranks[1]}, ..., {ranks[-1]}] ({len(ranks)} ranks)"
    return str(ranks)


class _World:
    """Everything init_process_group made: default group, store, monitor, sub-groups."""

    def __init__(self, kind, backend_name, rank, size, timeout, store=None, monitor=None):
        self.kind = kind  # "mpi" | "single" | "threads"
        self.backend_name = backend_name
        self.rank = rank
        self.size = size
        self.timeout = timeout
        self.store = store
        self.monitor = monitor
        self.use_nccl = False
        self.debug = kind == "threads" or _monitor.debug_level() == "DETAIL"
        self.local_rank = 0
        self.local_size = 1
        self.groups = []
        self.default = None
        self.counter = 0

    def device_index(self):
        """This rank's GPU: LOCAL_RANK (as set by launchers), else the rank on this machine."""
        from .._backend import cupy_module

        local = int(os.environ.get("LOCAL_RANK", self.local_rank))
        return local % cupy_module().cuda.runtime.getDeviceCount()

    def abort(self, reason, code=1):
        """End the whole job: tell the others through the store, then MPI_Abort or exit."""
        import sys

        sys.stderr.write(f"dtorch.distributed: aborting the world: {reason}\n")
        sys.stderr.flush()
        if self.monitor is not None:
            self.monitor.publish_abort(reason)
        from .mpi import mpi_loaded

        MPI = mpi_loaded()
        if MPI is not None:
            MPI.COMM_WORLD.Abort(code)
        os._exit(code)


_state = {"world": None, "threads": False}
_local = threading.local()


def _world():
    if not _state["threads"]:  # no thread world was ever formed: process-wide state only
        return _state["world"]
    w = getattr(_local, "world", None)
    if w is None and not getattr(_local, "in_thread_world", False):
        w = _state["world"]
    return w


def _forget_thread_state():
    w = getattr(_local, "world", None)
    if w is not None:
        for g in w.groups:
            g.close()
    _local.world = None
    _local.in_thread_world = False


def default_group():
    """The default ProcessGroup; raises when init_process_group has not been called."""
    w = _world()
    if w is None:
        raise ValueError("Default process group has not been initialized, please make sure to "
                         "call init_process_group.")
    return w.default


def resolve(grp):
    """The ProcessGroup for ``group=`` (None or group.WORLD: the default), or None when this
    process is not a member."""
    if grp is None or grp is GroupMember.WORLD:
        return default_group()
    if grp is GroupMember.NON_GROUP_MEMBER:
        return None
    if not isinstance(grp, ProcessGroup):
        raise TypeError(f"group must be a ProcessGroup, group.WORLD or None, got {grp!r}")
    return grp


# --- public API ------------------------------------------------------------------------------
def is_available():
    """True: the distributed package is always usable (MPI is needed only for MPI worlds)."""
    return True


def is_initialized():
    """Whether the default process group has been initialised (in this thread's world)."""
    return _world() is not None


def is_mpi_available():
    """Whether mpi4py can be imported (without initialising MPI)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def is_nccl_available():
    """Whether CuPy with NCCL and at least one GPU are present."""
    from .._backend import cuda_available

    if not cuda_available():
        return False
    try:
        from cupy.cuda import nccl  # noqa: F401
    except ImportError:
        return False
    return True


def _nccl_importable():
    try:
        from cupy.cuda import nccl  # noqa: F401
    except ImportError:
        return False
    return True


def _seconds(timeout):
    if timeout is None:
        return DEFAULT_TIMEOUT.total_seconds()
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    return float(timeout)


def _launched_by_mpi():
    return any(v in os.environ for v in _LAUNCHER_VARS)


def _env_rendezvous():
    return "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ


def init_process_group(backend=None, init_method=None, timeout=DEFAULT_TIMEOUT, world_size=-1,
                       rank=-1, store=None, group_name="", pg_options=None, device_id=None):
    """Initialise the default process group; every rank must call it.

    How the world is formed: ``backend="threads"`` makes a thread world; otherwise, under an MPI
    launcher the world is ``COMM_WORLD`` (``RANK``/``WORLD_SIZE``, when set, must agree); with
    ``store``, ``init_method`` or the ``MASTER_ADDR``/``MASTER_PORT`` variables the ranks meet
    through that rendezvous and MPI is started from it; with nothing set the world is this one
    process.

    Args:
        backend (str, optional): ``"mpi"``, ``"nccl"``, ``"threads"``, ``"single"`` (``"gloo"``
            means the CPU backend, MPI). None: MPI for host arrays, plus NCCL for CuPy arrays
            when CuPy with NCCL and a GPU are present (or ``device_id`` names a CUDA device).
        init_method (str, optional): rendezvous URL, ``env://`` (default), ``tcp://host:port``,
            ``file:///path``; for the thread world, a name shared by its ranks.
        timeout (timedelta): bound of every blocking operation of the group (default 30 min).
        world_size (int): number of ranks (rendezvous and thread worlds).
        rank (int): this process's rank (rendezvous and thread worlds).
        store (Store, optional): a store all ranks share, instead of ``init_method``.
        device_id: a CUDA device (or index) for this rank; implies NCCL for CuPy arrays.

    Example::

        >>> dist.init_process_group()        # under mpiexec, env://, or alone
        >>> dist.get_rank(), dist.get_world_size()
    """
    if _world() is not None:
        raise ValueError("trying to initialize the default process group twice!")
    from . import threads

    if threads.launch_context() is not None and backend != Backend.THREADS:
        # NOTE: a thread started as a rank (spawn_threads, the launcher's --debug-world) can only
        # join its thread world, whatever backend or rendezvous the script names for real runs.
        backend, init_method = Backend.THREADS, None
    elif backend is None and os.environ.get("DTORCH_BACKEND", "").lower() in Backend._ALL:
        hint = os.environ["DTORCH_BACKEND"].lower()  # the launcher's --backend hint
        if hint != Backend.NCCL or is_nccl_available():
            backend = hint
    if backend is not None:
        backend = str(backend).lower()
        if backend not in Backend._ALL:
            raise ValueError(f"init_process_group: unknown backend {backend!r}; expected one of "
                             f"{list(Backend._ALL)}")
    seconds = _seconds(timeout)
    if backend == Backend.THREADS:
        return _init_threads(world_size, rank, init_method, seconds)
    if store is not None and (rank < 0 or world_size < 1):
        raise ValueError(f"init_process_group: with a store, rank and world_size are required "
                         f"(got rank={rank}, world_size={world_size})")
    if store is None and init_method is None and _launched_by_mpi():
        world = _init_mpi_launched(seconds, rank, world_size)
    elif store is not None or init_method is not None or _env_rendezvous():
        world = _init_rendezvous(init_method or "env://", store, rank, world_size, seconds,
                                 backend)
    else:
        world = _init_single(rank, world_size, seconds, backend)
    if backend == Backend.NCCL or device_id is not None:
        if not is_nccl_available():
            raise RuntimeError(f"init_process_group(backend={backend!r}, device_id={device_id!r})"
                               ": NCCL needs CuPy with NCCL and an NVIDIA GPU, which were not "
                               "found")
        world.use_nccl = world.kind == "mpi"
        if backend == Backend.NCCL:
            world.backend_name = Backend.NCCL
    elif backend is None and world.kind == "mpi":
        # NOTE: decided at the first CuPy array, so that CPU-only runs never import CuPy
        world.use_nccl = "auto"
    _state["world"] = world
    if world.size > 1:
        _monitor.install_failure_handlers(world)
    return None


def _new_world(kind, name, rank, size, seconds, cpu_backend, store=None):
    monitor = _monitor.Monitor(store, rank) if store is not None and size > 1 else None
    world = _World(kind, name, rank, size, seconds, store, monitor)
    tracker = _monitor.ProgressTracker(monitor, "WORLD", range(size), rank) if monitor else None
    world.default = ProcessGroup(world, "WORLD", range(size), cpu_backend, seconds, tracker)
    world.groups.append(world.default)
    return world


def _init_single(rank, world_size, seconds, backend):
    if world_size not in (-1, 1) or rank not in (-1, 0):
        raise ValueError(
            f"init_process_group: world_size={world_size}, rank={rank} but no way to reach the "
            "other ranks: run under mpiexec/srun, or give init_method (env://, tcp://, file://) "
            "or set MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE")
    ntasks = int(os.environ.get("SLURM_NTASKS", os.environ.get("SLURM_STEP_NUM_TASKS", "1")))
    if "SLURM_STEP_ID" in os.environ and ntasks > 1:
        raise RuntimeError(_slurm_trap(ntasks))
    if backend in (Backend.MPI, Backend.NCCL):  # asked for MPI: a singleton MPI world
        return _init_mpi_launched(seconds, rank, world_size)
    return _new_world("single", Backend.SINGLE, 0, 1, seconds, SingleBackend())


def _slurm_trap(ntasks):
    return (f"SLURM started {ntasks} tasks (SLURM_NTASKS={ntasks}) but MPI sees a world of 1: "
            "srun ran them without an MPI process manager (the default --mpi=none). Use "
            "`srun --mpi=pmi2` (or SLURM_MPI_TYPE=pmi2), or set MASTER_ADDR/MASTER_PORT/RANK/"
            "WORLD_SIZE for the env:// rendezvous")


def _init_mpi_launched(seconds, rank, world_size):
    from .mpi import MPIBackend, mpi_module

    MPI = mpi_module()
    comm = MPI.COMM_WORLD
    r, n = comm.Get_rank(), comm.Get_size()
    ntasks = int(os.environ.get("SLURM_NTASKS", os.environ.get("SLURM_STEP_NUM_TASKS", "1")))
    if n == 1 and "SLURM_STEP_ID" in os.environ and ntasks > 1:
        raise RuntimeError(_slurm_trap(ntasks))
    for name, given, mpi_value in (("RANK", rank, r), ("WORLD_SIZE", world_size, n)):
        env = os.environ.get(name)
        if env is not None and int(env) != mpi_value:
            raise RuntimeError(f"init_process_group: {name}={env} in the environment but MPI "
                               f"says {name.lower()} is {mpi_value}; unset {name} or launch so "
                               "that they agree")
        if given >= 0 and given != mpi_value:
            raise ValueError(f"init_process_group: {name.lower()}={given} given but MPI says "
                             f"{mpi_value}")
    store = _mpi_store(comm, seconds) if n > 1 else None
    world = _new_world("mpi", Backend.MPI, r, n, seconds, MPIBackend(comm.Dup()), store)
    _mpi_local(world, comm)
    return world


def _mpi_store(comm, seconds):
    """A TCPStore on rank 0 for progress records (the address travels over MPI)."""
    from .store import TCPStore

    hosts = comm.allgather(socket.gethostname())
    local = len(set(hosts)) == 1
    host = "127.0.0.1" if local else os.environ.get("MASTER_ADDR", _my_address())
    addr = None
    if comm.Get_rank() == 0:
        store = TCPStore(host, 0, comm.Get_size(), True, timedelta(seconds=seconds),
                         wait_for_workers=False)
        addr = (host, store.port)
    addr = comm.bcast(addr, root=0)
    if comm.Get_rank() != 0:
        store = TCPStore(addr[0], addr[1], comm.Get_size(), False, timedelta(seconds=seconds))
    return store


def _my_address():
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return socket.gethostname()


def _mpi_local(world, comm):
    from .mpi import mpi_module

    MPI = mpi_module()  # noqa: N806
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    world.local_rank, world.local_size = node.Get_rank(), node.Get_size()
    node.Free()


def _init_rendezvous(url, store, rank, world_size, seconds, backend):
    if store is None:
        from .rendezvous import rendezvous

        store, rank, world_size = next(
            rendezvous(url, rank, world_size, timedelta(seconds=seconds)))
    if world_size == 1:
        return _new_world("single", Backend.SINGLE, 0, 1, seconds, SingleBackend(), store)
    from .mpi import MPIBackend, mpi_loaded, mpi_module

    if mpi_loaded() is None:
        from ._pmi import form_world_via_store

        form_world_via_store(store, rank, world_size, timedelta(seconds=seconds))
    MPI = mpi_module()
    comm = MPI.COMM_WORLD
    if (comm.Get_rank(), comm.Get_size()) != (rank, world_size):
        raise RuntimeError(
            f"init_process_group: the rendezvous gave rank {rank} of {world_size}, but MPI's "
            f"COMM_WORLD is rank {comm.Get_rank()} of {comm.Get_size()} (was MPI initialised "
            "before init_process_group?)")
    world = _new_world("mpi", backend if backend in (Backend.MPI,) else Backend.MPI, rank,
                       world_size, seconds, MPIBackend(comm.Dup()), store)
    _mpi_local(world, comm)
    return world


def _init_threads(world_size, rank, init_method, seconds):
    from . import threads

    launch = threads.launch_context()
    if launch is not None:
        rank = launch[0] if rank < 0 else rank
        world_size = launch[1] if world_size < 0 else world_size
        init_method = init_method or launch[2]
    if rank < 0 or world_size < 1:
        raise ValueError("init_process_group(backend='threads') needs rank and world_size (or "
                         f"ranks started by spawn_threads); got rank={rank}, "
                         f"world_size={world_size}")
    _state["threads"] = True
    tw = threads.join_world(init_method or "threads://default", rank, world_size, seconds)
    world = _World("threads", Backend.THREADS, rank, world_size, seconds)
    world.local_rank, world.local_size = rank, world_size
    world.thread_world = tw
    world.default = ProcessGroup(world, "WORLD", range(world_size),
                                 threads.ThreadBackend(tw, range(world_size), "WORLD", rank),
                                 seconds)
    world.groups.append(world.default)
    _local.world = world
    _local.in_thread_world = True


def destroy_process_group(group=None):
    """Destroy ``group``, or (None) every group and the default one; MPI stays initialised."""
    w = _world()
    if w is None:
        raise ValueError("Default process group has not been initialized, please make sure to "
                         "call init_process_group.")
    if group is not None and group is not GroupMember.WORLD and group is not w.default:
        pg = resolve(group)
        if pg is not None:
            pg.close()
            if pg in w.groups:
                w.groups.remove(pg)
        return
    for g in w.groups:
        g.close()
    if w.monitor is not None:
        w.monitor.close()
    if w.kind == "threads":
        _local.world = None
        _local.in_thread_world = False
    else:
        _state["world"] = None
        _monitor.clear_failure_handlers()


def new_group(ranks=None, timeout=None, backend=None, pg_options=None,
              use_local_synchronization=False, group_desc=None):
    """A group of the given global ``ranks`` (all ranks if None); every rank must call it.

    Returns the new ProcessGroup on its members and ``GroupMember.NON_GROUP_MEMBER`` elsewhere.
    """
    w = _world()
    if w is None:
        default_group()
    ranks = list(range(w.size)) if ranks is None else sorted({int(r) for r in ranks})
    bad = [r for r in ranks if not 0 <= r < w.size]
    if bad or not ranks:
        raise ValueError(f"new_group: ranks {ranks} must be a non-empty subset of "
                         f"[0, {w.size}) (bad: {bad})")
    w.counter += 1
    name = group_desc or f"group{w.counter}"
    seconds = w.timeout if timeout is None else _seconds(timeout)
    be = w.default.cpu.split(ranks, name)
    if be is None:
        return GroupMember.NON_GROUP_MEMBER
    tracker = None
    if w.monitor is not None:
        tracker = _monitor.ProgressTracker(w.monitor, name, ranks, w.rank)
    pg = ProcessGroup(w, name, ranks, be, seconds, tracker)
    w.groups.append(pg)
    return pg


def get_rank(group=None):
    """This process's rank in ``group`` (default: the world); -1 when not a member."""
    pg = resolve(group)
    return -1 if pg is None else pg.rank()


def get_world_size(group=None):
    """Number of ranks in ``group`` (default: the world); -1 when not a member."""
    pg = resolve(group)
    return -1 if pg is None else pg.size()


def get_backend(group=None):
    """The backend name of ``group``: "mpi", "nccl", "threads" or "single"."""
    pg = resolve(group)
    if pg is None:
        raise ValueError("Invalid process group specified")
    return pg.backend_name()


def get_process_group_ranks(group):
    """The global ranks of ``group``, in group-rank order."""
    pg = resolve(group)
    if pg is None:
        raise ValueError("get_process_group_ranks: this process is not a member of the group")
    return list(pg.ranks)


def get_global_rank(group, group_rank):
    """The global rank of ``group_rank`` in ``group``."""
    return get_process_group_ranks(group)[group_rank]


def get_group_rank(group, global_rank):
    """The rank within ``group`` of global rank ``global_rank``."""
    return resolve(group).group_rank(global_rank)


def get_local_rank():
    """This process's rank among the ranks on its machine (LOCAL_RANK, or MPI's view)."""
    w = _world()
    if w is not None and w.kind != "single":
        return w.local_rank
    return _env_int(("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK",
                     "SLURM_LOCALID"), 0)


def get_local_world_size():
    """Number of ranks on this process's machine (LOCAL_WORLD_SIZE, or MPI's view)."""
    w = _world()
    if w is not None and w.kind != "single":
        return w.local_size
    return _env_int(("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"), 1)


def _env_int(names, default):
    for name in names:
        if name in os.environ:
            return int(os.environ[name])
    return default


def get_store():
    """The store the world was formed with (None for a single process or a thread world)."""
    w = _world()
    return None if w is None else w.store


__all__ = [
    "Backend", "GroupMember", "group", "ProcessGroup", "DistError", "init_process_group",
    "destroy_process_group", "is_available", "is_initialized", "is_mpi_available",
    "is_nccl_available", "new_group", "get_rank", "get_world_size", "get_backend",
    "get_process_group_ranks", "get_global_rank", "get_group_rank", "get_local_rank",
    "get_local_world_size",
]
