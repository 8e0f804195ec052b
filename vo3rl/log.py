"""Logging and progress conventions shared by every command and worker.

- `get_logger(__name__)` everywhere; `setup_logging` once per process (the CLI and each Ray actor).
- `progress(...)` for any loop that may take more than a few seconds: a tqdm bar on a terminal, silent
  (but still logged at the end) when stderr is not a terminal, e.g. in CI or a Ray job.
- `ProgressLog` for long work whose bar nobody sees (inside a Ray worker, in a Ray job's log): a line
  at INFO every `every_s` seconds with the count done, the rate and the time left.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"


def setup_logging(level: str | int = "INFO") -> None:
    """Route vo3rl's loggers to stderr; quiet the chattier libraries unless level is DEBUG."""
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(level, int):
        level = logging.INFO
    root = logging.getLogger()
    if not any(getattr(h, "_vo3rl", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._vo3rl = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("vo3rl").setLevel(level)
    if level > logging.DEBUG:
        for noisy in ("transformers", "vllm", "ray", "urllib3", "filelock", "wandb"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar on interactive terminals (set VO3RL_PROGRESS=0 to hide it)."""
    from tqdm.auto import tqdm

    enabled = sys.stderr.isatty() and os.environ.get("VO3RL_PROGRESS", "1") != "0"
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=not enabled, dynamic_ncols=True)


PROGRESS_EVERY_S = 30.0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressLog:
    """Logs "<desc>: 40/125 <unit> (32%), 95 s, about 3 min left" at INFO when `update(done)` is
    called at least `every_s` seconds after the previous line, and once when `done` reaches `total`
    (if any line was logged before, or the work took `every_s` or longer: short work stays quiet)."""

    def __init__(self, desc: str, total: int, unit: str = "episodes", every_s: float | None = None,
                 logger: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic):
        self.desc, self.total, self.unit = desc, total, unit
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.logger = logger or logging.getLogger("vo3rl.progress")
        self.clock = clock
        self.start = self.last = clock()
        self.lines = 0  # progress lines logged so far
        self.ended = False

    def update(self, done: int) -> None:
        """`done` units are finished (a count, not an increment)."""
        if self.ended:
            return
        now = self.clock()
        finished = done >= self.total
        due = now - self.last >= self.every_s
        if finished:
            due = self.lines > 0 or now - self.start >= self.every_s
        if not due:
            return
        elapsed = now - self.start
        line = f"{self.desc}: {done}/{self.total} {self.unit} ({100 * done / max(self.total, 1):.0f}%), {_duration(elapsed)}"
        if not finished and done:
            line += f", about {_duration(elapsed / done * (self.total - done))} left"
        self.logger.info(line)
        self.last, self.lines, self.ended = now, self.lines + 1, finished
