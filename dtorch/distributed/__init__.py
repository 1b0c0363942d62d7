"""Distributed communication with ``torch.distributed``'s API: process groups and collectives.

A world is formed by :func:`init_process_group` in one of four ways: under an MPI launcher
(``mpiexec``, ``srun --mpi=pmi2``), through a rendezvous (``env://``, ``tcp://``, ``file://``),
as a single process (every collective a correct no-op), or as N threads of one process
(``backend="threads"``, for debugging). Backends: ``mpi`` (mpi4py buffer calls), ``nccl``
(``cupy.cuda.nccl``, one GPU per rank), ``single`` and ``threads``.

Hangs are treated as bugs: every blocking operation is bounded by the group's ``timeout`` and
fails naming the operation, its sequence number, the group and the ranks that did not arrive;
an uncaught exception in one rank aborts the whole job; ``DTORCH_DISTRIBUTED_DEBUG=DETAIL``
compares the ranks' calls before each collective.

Importing this package neither imports ``mpi4py.MPI`` nor initialises MPI; that happens in
:func:`init_process_group`, after the rendezvous has set up the process manager.

Example::

    import dtorch
    import dtorch.distributed as dist

    dist.init_process_group()                   # mpiexec -n 4 python train.py
    t = dtorch.ones(3) * dist.get_rank()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)    # every rank: 0 + 1 + 2 + 3
    dist.destroy_process_group()
"""

from . import replicated_checkpoint
from .algorithms.grad_bucket import GradBucket
from .backend import ReduceOp, Work
from .collectives import (
    P2POp,
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    all_to_all,
    all_to_all_single,
    barrier,
    batch_isend_irecv,
    broadcast,
    broadcast_object_list,
    gather,
    gather_object,
    irecv,
    isend,
    monitored_barrier,
    recv,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
    scatter,
    scatter_object_list,
    send,
)
from .errors import DistBackendError, DistError, DistNetworkError, DistStoreError
from .process_group import (
    Backend,
    GroupMember,
    ProcessGroup,
    destroy_process_group,
    get_backend,
    get_global_rank,
    get_group_rank,
    get_local_rank,
    get_local_world_size,
    get_process_group_ranks,
    get_rank,
    get_store,
    get_world_size,
    group,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
    is_nccl_available,
    new_group,
)
from .store import FileStore, HashStore, PrefixStore, Store, TCPStore
from .threads import spawn_threads

__all__ = [
    "Backend", "DistBackendError", "DistError", "DistNetworkError", "DistStoreError",
    "FileStore", "GradBucket", "GroupMember", "HashStore", "P2POp", "PrefixStore", "ProcessGroup",
    "ReduceOp",
    "Store", "TCPStore", "Work", "all_gather", "all_gather_into_tensor", "all_gather_object",
    "all_reduce", "all_to_all", "all_to_all_single", "barrier", "batch_isend_irecv", "broadcast",
    "broadcast_object_list", "destroy_process_group", "gather", "gather_object",
    "get_backend", "get_global_rank", "get_group_rank", "get_local_rank", "get_local_world_size",
    "get_process_group_ranks", "get_rank", "get_store", "get_world_size", "group",
    "init_process_group", "irecv", "is_available", "is_initialized", "is_mpi_available",
    "is_nccl_available", "isend", "monitored_barrier", "new_group", "recv", "reduce",
    "reduce_scatter", "reduce_scatter_tensor", "scatter", "scatter_object_list", "send",
    "spawn_threads",
]
