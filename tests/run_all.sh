#!/usr/bin/env bash
# The whole test suite: the serial tests (thread worlds, launcher and rendezvous tests with real
# subprocesses included), then the MPI tests under `mpiexec -n 2` and `mpiexec -n 4`.
# Extra arguments go to the serial pytest run. Every stage is bounded in time so a hang fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONFAULTHANDLER=1

status=0
timeout 1500 python3 -m pytest -q "$@" tests || status=$?

# The MPI backend picks its asynchronous progress mode from the cores per rank (poll on this
# kind of 2-core machine); the 2-rank run is repeated with the communication-thread mode forced.
for run in "2 auto" "4 auto" "2 thread"; do
  set -- $run
  echo "=== MPI tests on $1 ranks (progress: $2)"
  # Each rank prints its report; a failure on any rank aborts the job (tests/distributed/conftest.py).
  env $([ "$2" = thread ] && echo DTORCH_MPI_PROGRESS=thread) \
    timeout 600 mpiexec -n "$1" python3 -m pytest -q --only-mpi tests \
    -p no:cacheprovider -o addopts="" --timeout=120 || status=$?
done
if [ "$status" -ne 0 ]; then
  echo "test suite FAILED (exit $status)"
fi
exit "$status"
