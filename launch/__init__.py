"""dtorch's launcher: ``python -m launch`` / ``dtorchrun`` (the manual: ``launch.__main__``).

Starts N worker processes per node, acts as their MPI process manager so that they form one
MPI world, forwards signals, prefixes and logs their output, stops the whole group on the first
failure with a root-cause summary, restarts it on request, reads its layout from SLURM, and can
run a script as N rank threads of one process (``--debug-world``).
"""

from .hostlist import expand_hostlist

__all__ = ["expand_hostlist", "main"]


def main(argv=None) -> int:
    """Run the launcher with ``argv`` (default ``sys.argv[1:]``); return its exit code."""
    from .__main__ import main as _main

    return _main(argv)
