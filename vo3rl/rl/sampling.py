"""Dynamic sampling: a group whose rewards are all equal has zero advantage everywhere and teaches
nothing, so it is dropped and the batch is refilled with fresh groups, a bounded number of rounds."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vo3rl.rl.advantages import group_stats


def informative(rewards, group_ids, min_std: float = 1e-4) -> np.ndarray:
    """bool [N]: True for trajectories whose group has more than one member and a reward std
    (unbiased) of at least `min_std`."""
    group_ids = np.asarray(group_ids)
    _, std = group_stats(rewards, group_ids)
    values, counts = np.unique(group_ids, return_counts=True)
    size = dict(zip(values.tolist(), counts.tolist()))
    return np.array([size[g] > 1 for g in group_ids.tolist()], dtype=bool) & (std >= min_std)


@dataclass
class DynamicBatch:
    """Collects groups of rewarded trajectories round by round until `wanted` informative groups are
    in or `max_rounds` rounds have been offered. A group is anything with `rewards` (a list of floats),
    e.g. `vo3rl.rl.groups.Group`."""

    wanted: int
    max_rounds: int
    min_std: float = 1e-4
    groups: list = field(default_factory=list)
    dropped: int = 0
    rounds: int = 0

    @property
    def done(self) -> bool:
        return len(self.groups) >= self.wanted or self.rounds >= self.max_rounds

    def offer(self, round_groups: list) -> None:
        """Add one round's groups: keep the informative ones (up to `wanted`), count the rest."""
        self.rounds += 1
        for group in round_groups:
            rewards = group.rewards
            if len(rewards) > 1 and np.std(rewards, ddof=1) >= self.min_std:
                if len(self.groups) < self.wanted:
                    self.groups.append(group)
            else:
                self.dropped += 1
