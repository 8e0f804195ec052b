"""The learner-side policy loss: GRPO or GSPO (vo3rl.rl.losses) on the learner's scored tokens.

Registered in the learner's loss registry as "policy"; `extras` carries the LossConfig (as a dict),
the global counts of trained tokens and sequences, and nothing per token: each trajectory brings its
own `advantage`, `old_logprobs` and (with KL) `ref_logprobs`.

With `extras["on_policy"]` (the batch feeds exactly one optimizer step, so the behaviour policy IS the
policy being differentiated) the old log-probs are this forward's own, detached: ratio 1, the same
gradient as a separate recomputation, without its extra forward pass. With `extras["with_entropy"]`
the loss also reports the policy's entropy; with rollout log-probs on the trajectories, the mean
|rollout − learner| gap (the RL step's figures for both, from the last update of a step).
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
    if extras.get("on_policy"):
        old = logp.detach()
    else:
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
    if scores.entropy is not None:
        summable["entropy_sum"] = float(scores.entropy.sum())
    if all(t.logprobs is not None for t in trajectories):
        rollout = _per_target(trajectories, "logprobs", scores.rows, scores.positions, logp.detach())
        gap = (rollout - logp.detach()).abs()[mask.bool()]
        gap = gap[torch.isfinite(gap)]
        summable.update(rollout_gap_sum=float(gap.sum()), rollout_gap_tokens=float(gap.numel()))
    return share * extras["global_tokens"], summable


def policy_metrics(update: dict) -> dict[str, float]:
    """The global batch's policy-loss figures from a train step's summed `sum/…` metrics: the loss
    and KL terms (shares of the global mean, so their sum is the global value), the fraction of
    trained tokens whose ratio was clipped, the mean ratio (per trained token) and, when the loss
    saw them, the mean entropy and the mean |rollout − learner| log-prob gap."""
    tokens = max(update.get("sum/trained_tokens", 0.0), 1.0)
    out = {"train/pg_loss": update.get("sum/pg_loss", float("nan")),
           "train/clip_frac": update.get("sum/clipped_tokens", float("nan")) / tokens,
           "train/ratio_mean": update.get("sum/ratio_sum", float("nan")) / tokens}
    if "sum/kl" in update:
        out["train/kl"] = update["sum/kl"]
    if "sum/entropy_sum" in update and update.get("sum/trained_tokens"):
        out["train/entropy"] = update["sum/entropy_sum"] / tokens
    if update.get("sum/rollout_gap_tokens"):
        out["train/rollout_learner_logprob_gap"] = update["sum/rollout_gap_sum"] / update["sum/rollout_gap_tokens"]
    return out
