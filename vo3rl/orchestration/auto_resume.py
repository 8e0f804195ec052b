"""Resuming a run in-process after it lost a Ray actor, worker process or node (`rl.max_auto_resumes`).

A lost learner rank cannot be replaced mid-step: its shard of the weights and optimizer is gone with it.
So the whole attempt is torn down and started again from the newest complete checkpoint (the
checkpoint's driver state carries the step and the data order's seed, so the prompts are the ones an
undisturbed run would have taken). Only errors that say a process or a node was lost earn a resume; a bug
in our code (a ValueError raised inside a task, an actor whose constructor raised) fails at once, since
running it again would fail the same way.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from ray.exceptions import (NodeDiedError, ObjectLostError, RayActorError, RayTaskError,
                            ReferenceCountingAssertionError, WorkerCrashedError)

from vo3rl.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# Ray's errors for "the process or node that held this is gone": an actor that died or is unreachable,
# a task's worker that crashed, a node declared dead, an object whose only copy lived on a lost node.
LOST_ERRORS = (RayActorError, NodeDiedError, WorkerCrashedError, ObjectLostError)


def lost_worker(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) says a Ray actor, worker process or node was lost,
    as opposed to a bug: worth a resume from the checkpoint. Pure: reads only the exception chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RayTaskError):  # raised inside a remote call: judge what it raised
            exc = exc.cause
            continue
        if isinstance(exc, ReferenceCountingAssertionError):  # Ray's own bookkeeping broke, no node was lost
            return False
        if isinstance(exc, RayActorError):
            return not exc.actor_init_failed  # a constructor that raised would raise again
        if isinstance(exc, LOST_ERRORS):
            return True
        exc = exc.__cause__  # `raise X from lost`; not __context__: an error raised while handling one is ours
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def with_auto_resume(attempt: Callable[[], T], max_resumes: int, restart_step: Callable[[], int],
                     what: str = "RL run") -> tuple[T, list[int]]:
    """Run `attempt()`; when it raises a lost-worker error (`lost_worker`) and fewer than `max_resumes`
    resumes were made, log the step the next attempt restarts from (`restart_step()`, read after the
    failed attempt released its actors) and run it again. Returns the result and the steps each resume
    restarted from; any other error, or one past the bound, is raised as it is."""
    resumed_from: list[int] = []
    while True:
        try:
            return attempt(), resumed_from
        except Exception as exc:
            if not lost_worker(exc):
                raise
            if len(resumed_from) >= max_resumes:
                log.error("%s lost a worker (%s: %s) and has no auto-resume left (rl.max_auto_resumes = %d)",
                          what, type(exc).__name__, _first_line(exc), max_resumes)
                raise
            step = restart_step()
            resumed_from.append(step)
            log.warning("%s lost a worker (%s: %s); auto-resume %d/%d from step %d", what, type(exc).__name__,
                        _first_line(exc), len(resumed_from), max_resumes, step)
