"""The learner-side policy loss: GRPO or GSPO (vo3rl.rl.losses) on the learner's scored tokens.

Registered in the learner's loss registry as "policy"; `extras` carries the LossConfig (as a dict),
the global counts of trained tokens and sequences, and nothing per token: each trajectory brings its
own `advantage`, `old_logprobs` and (with KL) `ref_logprobs`.
"""
from __future__ import annotations

import numpy as np
import torch

from vo3rl.rl.losses import GlobalCounts, LossConfig, PolicyBatch, get_policy_loss
from vo3rl.train.losses import register_loss


def _per_target(trajectories, field: str, rows: torch.Tensor, positions: torch.Tensor, like: torch.Tensor):
    """[B, L] tensor holding, at each scored (row, position), the trajectory's `field` log-prob of the
    TARGET token, i.e. of token position + 1."""
    out = torch.zeros_like(like)
    rows_np, positions_np = rows.cpu().numpy(), positions.cpu().numpy()
    for r, trajectory in enumerate(trajectories):
        values = getattr(trajectory, field)
        if values is None:
            raise ValueError(f"trajectory {trajectory.sample_id!r} has no {field}: the RL step must set it")
        picked = positions_np[rows_np == r]
        out[r, torch.from_numpy(picked)] = torch.from_numpy(np.asarray(values)[picked + 1]).to(out)
    return out


@register_loss("policy")
def policy_loss(scores, batch, trajectories, extras: dict) -> torch.Tensor:
    """This micro-batch's share of the global policy loss, times the global token count (the learner
    divides every loss by that count)."""
    cfg = LossConfig(**extras["loss"])
    counts = GlobalCounts(**extras["counts"])
    mask = batch.target_mask
    logp = torch.zeros(mask.shape, dtype=scores.logprobs.dtype, device=scores.logprobs.device)
    logp = logp.index_put((scores.rows, scores.positions), scores.logprobs)
    old = _per_target(trajectories, "old_logprobs", scores.rows, scores.positions, logp.detach())
    ref = None
    if cfg.kl_coef:
        ref = _per_target(trajectories, "ref_logprobs", scores.rows, scores.positions, logp.detach())
    advantages = torch.tensor([t.advantage for t in trajectories], dtype=logp.dtype, device=logp.device)
    share, _ = get_policy_loss(cfg.name)(PolicyBatch(logp, old, advantages, mask, ref), cfg, counts)
    return share * extras["global_tokens"]
