"""Which prompts a step uses, and how its rewarded trajectories form groups."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from vo3rl.agent.trajectory import Trajectory
from vo3rl.rewards import RewardResult


def prompts_for(step: int, attempt: int, n_samples: int, per_step: int, seed: int) -> list[int]:
    """Sample indices for `step` (refill round `attempt` takes the next slice). Epochs are seeded
    permutations, so the order depends only on (seed, step, attempt): a resumed run sees the same data."""
    if n_samples <= 0:
        return []
    first = (step * (1 + attempt) + attempt) * per_step  # refill rounds read past the step's own slice
    out = []
    for position in range(first, first + per_step):
        epoch, offset = divmod(position, n_samples)
        order = np.random.default_rng([seed, epoch]).permutation(n_samples)
        out.append(int(order[offset]))
    return out


@dataclass
class Scored:
    """One rolled-out trajectory and its reward."""

    trajectory: Trajectory
    result: RewardResult

    @property
    def reward(self) -> float:
        return self.result.total


@dataclass
class Group:
    """The trajectories of one prompt (same sample, same group index): the unit of the group-relative
    advantage and of dynamic sampling."""

    members: list[Scored] = field(default_factory=list)

    @property
    def rewards(self) -> list[float]:
        return [m.reward for m in self.members]

    def __len__(self) -> int:
        return len(self.members)


def form_groups(trajectories: list[Trajectory], results: list[RewardResult]) -> tuple[list[Group], int]:
    """Groups by sample id and group index, in order of first appearance. A group in which any reward
    term failed is dropped (returned count), so a broken reward never trains the policy."""
    groups: dict[tuple, Group] = defaultdict(Group)
    for trajectory, result in zip(trajectories, results):
        groups[(trajectory.sample_id, trajectory.group_index)].members.append(Scored(trajectory, result))
    kept, broken = [], 0
    for group in groups.values():
        if any(m.result.errors for m in group.members):
            broken += 1
        else:
            kept.append(group)
    return kept, broken
