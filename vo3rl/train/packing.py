"""Which trajectories share a micro-batch: padded rows (`micro_batches`) or packed rows.

Packing (`learner.packing`) puts several trajectories back to back in one row of at most
`learner.micro_batch_tokens` tokens, so a step pays for real tokens instead of padding; each keeps its
own MRoPE positions and attends only within itself (`vo3rl.train.masks`). It applies when a step needs
no TDAM mask; a TDAM step keeps padded rows.
"""
from __future__ import annotations

from typing import Sequence

from vo3rl.train.batch import micro_batches


def pack_groups(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped so that each group's total length is <= `token_budget` (a longer trajectory is
    a group of its own): first-fit over the lengths in decreasing order, deterministic. Within a group
    the indices keep that order (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for g, free in enumerate(room):
            if lengths[i] <= free:
                groups[g].append(i)
                room[g] -= lengths[i]
                break
        else:
            groups.append([i])
            room.append(token_budget - lengths[i])
    return groups


def plan_micro_batches(lengths: Sequence[int], token_budget: int, pack: bool) -> list[list[int]]:
    """The micro-batches of one call: packed groups with `pack`, else padded ones."""
    return pack_groups(lengths, token_budget) if pack else micro_batches(lengths, token_budget)
