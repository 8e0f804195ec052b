"""Policy losses for GRPO (PPO clip, clip-higher) and GSPO, with KL estimators (methods.md section 5).

Every loss works on one micro-batch of padded [B, L] tensors and returns the micro-batch's share of the
GLOBAL aggregate: the caller passes the global number of trained tokens and sequences, so summing
micro-batch losses (gradient accumulation) and averaging over data-parallel ranks (all-reduce of
gradients, each rank scaled by its world size) gives the same value and gradients however the batch
is split.

Aggregation modes:
- token-mean:          sum over all trained tokens / global token count
- seq-mean-token-sum:  sum over sequences of (sum over its tokens) / global sequence count
- seq-mean-token-mean: sum over sequences of (mean over its tokens) / global sequence count

Safeguards (`rl.loss.log_ratio_clamp`, `kl_clamp`, `dual_clip`; verl's): they bound extremes only and
leave the paper's formulas unchanged wherever the log-ratio stays within +-log_ratio_clamp, the k3
estimate within +-kl_clamp and, for A < 0, the ratio below dual_clip. Beyond a clamp the clamped
quantity is constant, so it carries no gradient there, as a clipped ratio does.

Off-policy correction (`rl.loss.is_correction`, `is_cap`; verl's rollout correction, AReaL's decoupled
PPO): with asynchronous rollout the tokens were sampled by a behaviour policy (the rollout engine's
weights, possibly versions old) other than the proximal policy the PPO ratio is taken against
(`old_logp`). `truncated_is_weights` gives the truncated importance weight min(pi_prox / pi_behav, cap)
per token or per sequence; `_finish` multiplies the per-token clipped objective (not the KL term) by
it, detached, so it rescales each token's gradient without being differentiated itself. Without a
weight (`PolicyBatch.is_weight` None, the default) the arithmetic is exactly the uncorrected loss's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from vo3rl.config.rl import AGGREGATIONS, IS_CORRECTIONS, LossConfig
from vo3rl.registry import Registry


@dataclass
class GlobalCounts:
    """Trained tokens and sequences (with at least one trained token) in the whole step's batch."""

    tokens: int
    sequences: int


@dataclass
class PolicyBatch:
    """One micro-batch. logp: new log-probs [B, L] (with grad); old_logp: the ratio's old (proximal) log-probs;
    ref_logp: frozen reference log-probs (None without KL); advantages [B] (one per sequence);
    mask: float/bool [B, L], 1 on trained tokens; is_weight: the off-policy correction's importance
    weights [B, L] (a ratio, applied detached; None: no correction)."""

    logp: torch.Tensor
    old_logp: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    ref_logp: torch.Tensor | None = None
    is_weight: torch.Tensor | None = None


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str, counts: GlobalCounts) -> torch.Tensor:
    """This micro-batch's share of the global aggregate of per-token `values` [B, L]."""
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        return (values * mask).sum() / max(counts.tokens, 1)
    per_seq = (values * mask).sum(dim=-1)
    if mode == "seq-mean-token-mean":
        per_seq = per_seq / mask.sum(dim=-1).clamp(min=1)
    elif mode != "seq-mean-token-sum":
        raise ValueError(f"unknown aggregation {mode!r}; known: {', '.join(AGGREGATIONS)}")
    return per_seq.sum() / max(counts.sequences, 1)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str, log_ratio_clamp: float | None = None,
               kl_clamp: float | None = None) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate (nats) from samples of pi: k1 = log(pi/ref); k3 = r - log r - 1
    with r = ref/pi (unbiased, non-negative, low variance).

    k3 is bounded twice, as verl's low_var_kl is: its log r is clamped to [-log_ratio_clamp,
    log_ratio_clamp] before exp (so exp cannot overflow to inf and give an inf * 0 = nan gradient), and
    the estimate itself to [-kl_clamp, kl_clamp] (only the upper bound can act: k3 >= 0). None leaves
    either unbounded. k1 is linear in the log-probs, cannot overflow, and is never clamped."""
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator in ("k3", "low_var_kl"):
        if log_ratio_clamp is not None:
            log_ratio = log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
        kl = torch.exp(log_ratio) - log_ratio - 1.0
        return kl if kl_clamp is None else kl.clamp(-kl_clamp, kl_clamp)
    raise ValueError(f"unknown KL estimator {estimator!r}; known: k1, k3")


def truncated_is_weights(prox_logp: torch.Tensor, behav_logp: torch.Tensor, mask: torch.Tensor, level: str,
                         cap: float, log_ratio_clamp: float) -> torch.Tensor:
    """Detached importance weights [B, L] of the proximal policy over the behaviour policy (log-probs
    [B, L], nats), truncated at `cap` (a ratio): "token": min(exp(prox_t - behav_t), cap) per token;
    "sequence": min(exp(sum over the row's trained tokens of (prox_t - behav_t)), cap) on each of its
    tokens. The log is clamped to +-log_ratio_clamp before exp (no overflow). A trained token with a
    non-finite log-ratio (no behaviour log-prob: should not happen) counts as ratio 1: weight 1 per
    token, no factor in its sequence's product. Untrained positions get 1."""
    mask = mask.bool()
    log_ratio = prox_logp.detach() - behav_logp.detach()
    log_ratio = torch.where(mask & torch.isfinite(log_ratio), log_ratio, torch.zeros_like(log_ratio))
    if level == "sequence":
        log_ratio = log_ratio.sum(dim=-1, keepdim=True).expand_as(mask)
    elif level != "token":
        raise ValueError(f"unknown is_correction {level!r}; known: {', '.join(IS_CORRECTIONS)}")
    weight = torch.exp(log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)).clamp(max=cap)
    return torch.where(mask, weight, torch.ones_like(weight))


LossFn = Callable[[PolicyBatch, LossConfig, GlobalCounts], tuple[torch.Tensor, dict[str, float]]]
POLICY_LOSSES: Registry[LossFn] = Registry("policy loss")  # `rl.loss.name` picks one
register_policy_loss = POLICY_LOSSES.register


def get_policy_loss(name: str) -> LossFn:
    """The policy loss registered as `name`; raises UnknownName (a ValueError) listing the known ones."""
    return POLICY_LOSSES.get(name)


@dataclass
class ClippedObjective:
    """Per-token loss [B, L] and boolean masks of where the PPO clip and the dual clip were active."""

    per_token: torch.Tensor
    clipped: torch.Tensor
    dual_clipped: torch.Tensor


def _clipped_objective(ratio: torch.Tensor, adv: torch.Tensor, cfg: LossConfig) -> ClippedObjective:
    """Per-token max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high)); where A < 0 and dual clip is on, further
    bounded above by -A c (c = cfg.dual_clip), so a huge ratio on a bad token cannot dominate the batch
    (the bound is constant: no gradient there)."""
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    per_token = torch.maximum(unclipped, clipped)
    dual_clipped = torch.zeros_like(per_token, dtype=torch.bool)
    if cfg.dual_clip:
        bound = -adv * cfg.dual_clip
        dual_clipped = (adv < 0) & (per_token > bound)
        per_token = torch.where(dual_clipped, bound.expand_as(per_token), per_token)
    return ClippedObjective(per_token, clipped > unclipped, dual_clipped)


def _finish(batch: PolicyBatch, objective: ClippedObjective, ratio: torch.Tensor,
            cfg: LossConfig, counts: GlobalCounts) -> tuple[torch.Tensor, dict[str, float]]:
    mask = batch.mask.to(objective.per_token.dtype)
    per_token = objective.per_token
    if batch.is_weight is not None:  # only then: the uncorrected loss stays bit-for-bit what it was
        per_token = per_token * batch.is_weight.detach()
    loss = aggregate(per_token, mask, cfg.aggregation, counts)
    n = mask.sum().clamp(min=1)
    metrics = {
        "pg_loss": float(loss.detach()),
        "clip_frac": float((objective.clipped.to(mask.dtype) * mask).sum() / n),
        "dual_clip_frac": float((objective.dual_clipped.to(mask.dtype) * mask).sum() / n),
        "ratio_mean": float((ratio.detach() * mask).sum() / n),
        "trained_tokens": float(mask.sum()),
    }
    if batch.is_weight is not None:  # per trained token: the mean weight and the share that hit the cap
        weight = batch.is_weight.detach()
        metrics["is_weight_mean"] = float((weight.to(mask.dtype) * mask).sum() / n)
        metrics["is_clip_frac"] = float(((weight >= cfg.is_cap).to(mask.dtype) * mask).sum() / n)
    if cfg.kl_coef and batch.ref_logp is not None:
        kl = kl_penalty(batch.logp, batch.ref_logp, cfg.kl_estimator, cfg.log_ratio_clamp, cfg.kl_clamp)
        kl_term = aggregate(kl, mask, cfg.aggregation, counts)
        loss = loss + cfg.kl_coef * kl_term
        metrics["kl"] = float(kl_term.detach())
    return loss, metrics


@register_policy_loss("grpo")
def grpo_loss(batch: PolicyBatch, cfg: LossConfig, counts: GlobalCounts):
    """PPO-clip per token with the token ratio r = exp(logp - old_logp) and asymmetric bounds; the
    log-ratio is clamped to +-log_ratio_clamp before exp."""
    log_ratio = (batch.logp - batch.old_logp).clamp(-cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    return _finish(batch, _clipped_objective(ratio, batch.advantages[:, None], cfg), ratio, cfg, counts)


@register_policy_loss("gspo")
def gspo_loss(batch: PolicyBatch, cfg: LossConfig, counts: GlobalCounts):
    """Sequence-level ratio s_i = exp(mean_t (logp - old_logp)) over trained tokens, carried per token
    as sg[log s_i] + logp_t - sg[logp_t] so each token's gradient is that of log s_i's share.

    The per-token value equals log s_i, so clamping it to +-log_ratio_clamp bounds s_i and, beyond the
    bound, stops the gradient of all of the sequence's tokens (as GRPO's clamp does per token)."""
    mask = batch.mask.to(batch.logp.dtype)
    log_ratio = (batch.logp - batch.old_logp) * mask
    seq_log_ratio = log_ratio.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)
    token_log_ratio = seq_log_ratio.detach()[:, None] + batch.logp - batch.logp.detach()
    ratio = torch.exp(token_log_ratio.clamp(-cfg.log_ratio_clamp, cfg.log_ratio_clamp))
    return _finish(batch, _clipped_objective(ratio, batch.advantages[:, None], cfg), ratio, cfg, counts)
