"""Which prompts a step uses, and how its rewarded trajectories form groups."""
from __future__ import annotations

from collections import defaultdict

import numpy as np


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


def form_groups(trajectories: list, results: list) -> tuple[list[list[tuple[float, tuple]]], int]:
    """Groups of (reward, (trajectory, result)) by sample id and group index. A group in which any
    reward term failed is dropped (returned count), so a broken reward never trains the policy."""
    groups: dict[tuple, list] = defaultdict(list)
    for trajectory, result in zip(trajectories, results):
        groups[(trajectory.sample_id, trajectory.group_index)].append((result.total, (trajectory, result)))
    kept, broken = [], 0
    for members in groups.values():
        if any(result.errors for _, (_, result) in members):
            broken += 1
        else:
            kept.append(members)
    return kept, broken
