"""The run's peak-memory sampler sees child processes, not just the driver."""
from __future__ import annotations

import subprocess
import sys
import time

from vo3rl.memory import PeakMemory, tree_memory


def test_child_process_memory_is_counted():
    before_rss, _ = tree_memory()
    # A child that holds ~300 MiB of touched memory.
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"])
    try:
        with PeakMemory(interval_s=0.1) as memory:
            deadline = time.time() + 20
            while time.time() < deadline and memory.take()["peak_rss_gib"] < before_rss + 0.25:
                time.sleep(0.2)
            peak = memory.overall()
    finally:
        child.kill()
        child.wait()
    assert peak["peak_rss_gib"] >= before_rss + 0.25
    assert 0 < peak["peak_pss_gib"] <= peak["peak_rss_gib"] + 1e-6
    memory.take()  # closes the window whose samples may have seen the child before it was killed
    assert memory.take()["peak_rss_gib"] < peak["peak_rss_gib"]  # the child is gone: a new window forgets it
