"""app.heap: with glibc's mmap threshold pinned, a freed large buffer leaves the process; without it (the control,
so the probe is known to see the difference) glibc keeps the second one in its heap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.heap import return_large_blocks

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import sys
import numpy as np

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "pinned":
    from app.heap import return_large_blocks
    assert return_large_blocks()
first = np.ones(1 << 19)  # 4 MiB: mmapped, and freeing it raises glibc's threshold unless pinned
del first
base = rss_mib()
second = np.ones(1 << 19)
second[::512] = 2.0
del second
print(rss_mib() - base)
"""


def kept_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=60, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_freed_large_buffers_leave_the_process():
    if not return_large_blocks():
        pytest.skip("not glibc")
    assert kept_mib("default") >= 3.0  # the control: glibc kept the second 4 MiB buffer
    assert kept_mib("pinned") < 1.0
