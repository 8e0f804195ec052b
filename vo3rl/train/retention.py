"""Which old checkpoints `learner.keep_last` lets go: pure selection, no file system."""
from __future__ import annotations

from typing import Collection, Mapping


def checkpoints_to_delete(complete: Mapping[str, int], newest: str, keep_last: int,
                          protected: Collection[str] = ()) -> list[str]:
    """Names to delete once checkpoint `newest` is complete, oldest first.

    `complete`: {name: step} of the complete checkpoints of the run (the marker exists), `newest`
    among them. Kept: the newest `keep_last` counted from `newest` down (`newest` itself included),
    every checkpoint with a step above `newest`'s (e.g. one the run resumed from, left by an earlier
    attempt that got further), and the `protected` names (what `final` points at). `keep_last` 0
    keeps everything."""
    if keep_last <= 0:
        return []
    if newest not in complete:
        raise ValueError(f"{newest!r} is not among the complete checkpoints")
    limit = complete[newest]
    older = sorted((name for name, step in complete.items() if step < limit), key=complete.get, reverse=True)
    doomed = [name for name in older[keep_last - 1:] if name not in protected]
    return sorted(doomed, key=complete.get)
