"""Group-relative advantages (GRPO), methods.md section 5.

    A_i = (R_i - mean_g R) / (std_g R + eps)

with the unbiased std over the group g of i (eps = 1e-6). A group of one has mean 0 and std 1 by
convention. The result is one number per trajectory; `per_token` broadcasts it onto the trained tokens.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from vo3rl.registry import Registry

# (rewards [N], group ids [N], eps, ...) -> float64 advantages [N]
AdvantageFn = Callable[..., np.ndarray]
ADVANTAGE_ESTIMATORS: Registry[AdvantageFn] = Registry("advantage estimator")  # `rl.advantage` picks one
register_advantage = ADVANTAGE_ESTIMATORS.register


def get_advantage(name: str) -> AdvantageFn:
    """The estimator registered as `name`; raises UnknownName (a ValueError) listing the known ones."""
    return ADVANTAGE_ESTIMATORS.get(name)


def group_stats(rewards: np.ndarray, group_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-trajectory (mean, unbiased std) of its group's rewards; (0, 1) for groups of one."""
    rewards = np.asarray(rewards, dtype=np.float64)
    group_ids = np.asarray(group_ids)
    mean = np.zeros_like(rewards)
    std = np.ones_like(rewards)
    for g in np.unique(group_ids):
        members = group_ids == g
        if members.sum() > 1:
            mean[members] = rewards[members].mean()
            std[members] = rewards[members].std(ddof=1)
    return mean, std


@register_advantage("grpo")
def grpo_advantages(rewards, group_ids, eps: float = 1e-6, scale_by_std: bool = True) -> np.ndarray:
    """float64 [N]: each trajectory's reward relative to its group (see module docstring).
    `scale_by_std=False` keeps only the mean subtraction (Dr. GRPO style)."""
    mean, std = group_stats(rewards, group_ids)
    centred = np.asarray(rewards, dtype=np.float64) - mean
    return centred / (std + eps) if scale_by_std else centred


@register_advantage("grpo_no_std")
def grpo_no_std_advantages(rewards, group_ids, eps: float = 1e-6) -> np.ndarray:
    return grpo_advantages(rewards, group_ids, eps=eps, scale_by_std=False)
