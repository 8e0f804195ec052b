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
def policy_loss(scores, batch, trajectories, extras: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """This micro-batch's share of the global policy loss, times the global token count (the learner
    divides every loss by that count), and its summable metrics (see `policy_metrics`)."""
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
    share, metrics = get_policy_loss(cfg.name)(PolicyBatch(logp, old, advantages, mask, ref), cfg, counts)
    tokens = metrics["trained_tokens"]
    summable = {"pg_loss": metrics["pg_loss"], "trained_tokens": tokens,
                "clipped_tokens": metrics["clip_frac"] * tokens, "ratio_sum": metrics["ratio_mean"] * tokens}
    if "kl" in metrics:
        summable["kl"] = metrics["kl"]
    return share * extras["global_tokens"], summable


def policy_metrics(update: dict) -> dict[str, float]:
    """The global batch's policy-loss figures from a train step's summed `sum/…` metrics: the loss
    and KL terms (shares of the global mean, so their sum is the global value), the fraction of
    trained tokens whose ratio was clipped, and the mean ratio (per trained token)."""
    tokens = max(update.get("sum/trained_tokens", 0.0), 1.0)
    out = {"train/pg_loss": update.get("sum/pg_loss", float("nan")),
           "train/clip_frac": update.get("sum/clipped_tokens", float("nan")) / tokens,
           "train/ratio_mean": update.get("sum/ratio_sum", float("nan")) / tokens}
    if "sum/kl" in update:
        out["train/kl"] = update["sum/kl"]
    return out
