"""Peak memory of a whole run: this process and every process it started.

A local `ray.init` starts Ray's head processes as children of the driver, the raylet forks the
workers, and a rollout worker spawns vLLM's engine process, so the driver's descendants are the whole
run. RSS counts a page shared by several processes once per process (an overcount); PSS splits each
shared page between its users, so the PSS total is the machine's real share. Both are reported.
"""
from __future__ import annotations

import threading

import psutil

GIB = float(1 << 30)


def tree_memory(root: psutil.Process | None = None) -> tuple[float, float]:
    """(RSS, PSS) summed over `root` (default: this process) and its descendants, in GiB. A process
    that exits or cannot be read while we look is left out."""
    root = root or psutil.Process()
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / GIB, pss / GIB


class PeakMemory:
    """Samples `tree_memory` every `interval_s` seconds in a daemon thread; `take()` returns the peaks
    since the previous `take()` (so a pipeline gets one figure per stage) and `overall()` since start."""

    def __init__(self, interval_s: float = 1.0):
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._since_take = (0.0, 0.0)
        self._overall = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5 * self.interval_s)

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval_s):
                return

    def sample(self) -> None:
        rss, pss = tree_memory()
        with self._lock:
            self._since_take = (max(self._since_take[0], rss), max(self._since_take[1], pss))
            self._overall = (max(self._overall[0], rss), max(self._overall[1], pss))

    def take(self) -> dict[str, float]:
        self.sample()
        with self._lock:
            (rss, pss), self._since_take = self._since_take, (0.0, 0.0)
        return {"peak_rss_gib": round(rss, 2), "peak_pss_gib": round(pss, 2)}

    def overall(self) -> dict[str, float]:
        with self._lock:
            rss, pss = self._overall
        return {"peak_rss_gib": round(rss, 2), "peak_pss_gib": round(pss, 2)}
