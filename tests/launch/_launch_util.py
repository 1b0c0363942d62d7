"""Helpers for the launcher tests: run ``python -m launch`` as a real subprocess, bounded."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_DROP = ("PMI_", "PMIX_", "HYDRA_", "OMPI_", "MPI_LOCAL", "SLURM_", "OMP_NUM_THREADS",
         "OPENBLAS_NUM_THREADS", "MASTER_", "RANK", "WORLD_SIZE", "LOCAL_RANK")


def clean_env(**extra):
    """The test process's environment without launcher/MPI/SLURM variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_launch(args, env=None, timeout=60, cwd=None):
    """Run the launcher to completion; return the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", "launch", *map(str, args)],
                          env=env or clean_env(), cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout)


def mpi_available():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True
