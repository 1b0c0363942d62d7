"""The backend of a world of one process: every collective is the identity (a correct no-op).

``python train.py`` with nothing set runs here; no MPI is needed. Reductions over one rank return
the input (``AVG`` divides by 1), gathers copy, point-to-point has no peer and raises.
"""

from .backend import Backend, DoneHandle


class SingleBackend(Backend):
    """A communicator of size 1."""

    name = "single"

    def __init__(self):
        super().__init__(0, 1)

    def all_reduce(self, arr, op, ctx):
        return DoneHandle(ctx)

    def broadcast(self, arr, src, ctx):
        return DoneHandle(ctx)

    def reduce(self, arr, dst, op, ctx):
        return DoneHandle(ctx)

    def all_gather(self, out, inp, ctx):
        out[0] = inp
        return DoneHandle(ctx)

    def gather(self, out, inp, dst, ctx):
        out[0] = inp
        return DoneHandle(ctx)

    def scatter(self, out, inp, src, ctx):
        out[...] = inp[0]
        return DoneHandle(ctx)

    def reduce_scatter(self, out, inp, op, ctx):
        out[...] = inp[0]
        return DoneHandle(ctx)

    def all_to_all(self, out, inp, out_counts, in_counts, ctx):
        out.reshape(-1)[: out_counts[0]] = inp.reshape(-1)[: in_counts[0]]
        return DoneHandle(ctx)

    def send(self, arr, dst, tag, ctx):
        raise ValueError(f"send: dst={dst} is this process itself in a world of size 1")

    def recv(self, arr, src, tag, ctx):
        raise ValueError(f"recv: src={src}: no other rank exists in a world of size 1")

    def barrier(self, ctx):
        return DoneHandle(ctx)

    def exchange_fingerprints(self, text, ctx):
        return [text]

    def split(self, ranks, group_id):
        return SingleBackend() if ranks == [0] else None
