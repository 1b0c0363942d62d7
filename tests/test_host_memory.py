"""dtorch keeps freed host memory for the next step (dtorch/_host_memory.py): the same
allocation pattern page-faults every step under glibc's dynamic defaults and not after
``import dtorch``; glibc's own variables, when set, win."""

import os
import subprocess
import sys

import pytest

from dtorch import _host_memory

# A 4 MiB block mmapped and freed sets glibc's dynamic mmap threshold to 4 MiB (trim threshold
# 8 MiB); each step then takes four 3 MiB blocks from the heap and frees them: 12 MiB free at
# the top, which the defaults hand back to the kernel, so the next step faults them in again.
_PATTERN = """
import sys
if sys.argv[1] == "dtorch":
    import dtorch
import numpy as np, resource

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

np.ones(2**19)

def step():
    held = [np.ones(3 * 2**17) for _ in range(4)]
    return sum(float(h[0]) for h in held)

step()
f0 = faults()
for _ in range(10):
    step()
print((faults() - f0) // 10)
"""

pytestmark = pytest.mark.skipif(
    not (hasattr(os, "confstr") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith(
        "glibc")), reason="the policy applies to glibc's malloc only")


def _faults_per_step(mode, **env):
    full = {k: v for k, v in os.environ.items() if k not in _host_memory._USER_VARIABLES}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", _PATTERN, mode], capture_output=True,
                         text=True, env=full, timeout=120, check=True)
    return int(out.stdout.strip())


def test_freed_blocks_are_reused_without_page_faults():
    # 12 MiB is 3,072 pages: the defaults fault most of them in again every step
    assert _faults_per_step("numpy") > 1000
    assert _faults_per_step("dtorch") < 50


def test_glibc_variables_set_by_the_user_are_left_alone():
    assert _faults_per_step("dtorch", MALLOC_TRIM_THRESHOLD_="1") > 1000
