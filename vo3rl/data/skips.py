"""Counting what a stage skips: bad rows and bad videos are named, counted by reason, and logged,
and the stage goes on."""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from vo3rl.data.schema import SampleError
from vo3rl.video.types import VideoError

log = logging.getLogger(__name__)
_TAG = re.compile(r"^([a-z_]+):\s*(.*)$", re.S)


def reason_of(err: Exception) -> tuple[str, str]:
    """(reason tag, detail) of a SampleError ("tag: detail"), a VideoError, or anything else."""
    if isinstance(err, VideoError):
        return err.reason, str(err).split(": ", 1)[-1]
    text = err.reason if isinstance(err, SampleError) else f"{type(err).__name__}: {err}"
    match = _TAG.match(text)
    return (match.group(1), match.group(2)) if match else ("error", text)


@dataclass
class SkipLog:
    """Skips of one stage: counts by reason, the first `max_examples` (id, reason, detail), and a
    warning per skip (the first `max_warnings`, then one line saying the rest are only counted)."""

    stage: str = "data"
    max_examples: int = 5
    max_warnings: int = 20
    counts: Counter = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, sample_id: str, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((sample_id, reason, detail))
        if self.total <= self.max_warnings:
            log.warning("%s: skipped sample %r (%s): %s", self.stage, sample_id, reason, detail)
            if self.total == self.max_warnings:
                log.warning("%s: further skips are counted, not logged", self.stage)

    def add_error(self, err: Exception, sample_id: str | None = None, fallback_id: str = "?") -> None:
        """Record a SampleError / VideoError (or any exception) against a sample."""
        reason, detail = reason_of(err)
        if sample_id is None:
            sample_id = err.sample_id if isinstance(err, SampleError) and err.sample_id != "?" else fallback_id
        self.add(sample_id, reason, detail)

    def summary(self) -> str:
        if not self.counts:
            return f"{self.stage}: nothing skipped"
        parts = ", ".join(f"{reason}={n}" for reason, n in sorted(self.counts.items()))
        return f"{self.stage}: skipped {self.total} ({parts})"

    def as_dict(self) -> dict:
        return {"total": self.total, "by_reason": dict(sorted(self.counts.items())),
                "examples": [list(e) for e in self.examples]}
