"""Logging and progress conventions shared by every command and worker.

- `get_logger(__name__)` everywhere; `setup_logging` once per process (the CLI and each Ray actor).
- `progress(...)` for any loop that may take more than a few seconds: a tqdm bar on a terminal, silent
  (but still logged at the end) when stderr is not a terminal, e.g. in CI or a Ray job.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, Iterator, TypeVar

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
