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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from vo3rl.config.rl import AGGREGATIONS, LossConfig
from vo3rl.registry import Registry


@dataclass
class GlobalCounts:
    """Trained tokens and sequences (with at least one trained token) in the whole step's batch."""

    tokens: int
    sequences: int


@dataclass
class PolicyBatch:
    """One micro-batch. logp: new log-probs [B, L] (with grad); old_logp: rollout/behaviour log-probs;
    ref_logp: frozen reference log-probs (None without KL); advantages [B] (one per sequence);
    mask: float/bool [B, L], 1 on trained tokens."""

    logp: torch.Tensor
    old_logp: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    ref_logp: torch.Tensor | None = None


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


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate from samples of pi: k1 = log(pi/ref); k3 = r - log r - 1 with
    r = ref/pi (unbiased, non-negative, low variance)."""
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator in ("k3", "low_var_kl"):
        return torch.exp(log_ratio) - log_ratio - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}; known: k1, k3")


LossFn = Callable[[PolicyBatch, LossConfig, GlobalCounts], tuple[torch.Tensor, dict[str, float]]]
POLICY_LOSSES: Registry[LossFn] = Registry("policy loss")  # `rl.loss.name` picks one
register_policy_loss = POLICY_LOSSES.register


def get_policy_loss(name: str) -> LossFn:
    """The policy loss registered as `name`; raises UnknownName (a ValueError) listing the known ones."""
    return POLICY_LOSSES.get(name)


def _clipped_objective(ratio: torch.Tensor, adv: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high)) and where clipping was active."""
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    return torch.maximum(unclipped, clipped), (clipped > unclipped)


def _finish(batch: PolicyBatch, per_token: torch.Tensor, clipped: torch.Tensor, ratio: torch.Tensor,
            cfg: LossConfig, counts: GlobalCounts) -> tuple[torch.Tensor, dict[str, float]]:
    mask = batch.mask.to(per_token.dtype)
    loss = aggregate(per_token, mask, cfg.aggregation, counts)
    n = mask.sum().clamp(min=1)
    metrics = {
        "pg_loss": float(loss.detach()),
        "clip_frac": float((clipped.to(mask.dtype) * mask).sum() / n),
        "ratio_mean": float((ratio.detach() * mask).sum() / n),
        "trained_tokens": float(mask.sum()),
    }
    if cfg.kl_coef and batch.ref_logp is not None:
        kl = kl_penalty(batch.logp, batch.ref_logp, cfg.kl_estimator)
        kl_term = aggregate(kl, mask, cfg.aggregation, counts)
        loss = loss + cfg.kl_coef * kl_term
        metrics["kl"] = float(kl_term.detach())
    return loss, metrics


@register_policy_loss("grpo")
def grpo_loss(batch: PolicyBatch, cfg: LossConfig, counts: GlobalCounts):
    """PPO-clip per token with the token ratio r = exp(logp - old_logp) and asymmetric bounds."""
    ratio = torch.exp(batch.logp - batch.old_logp)
    per_token, clipped = _clipped_objective(ratio, batch.advantages[:, None], cfg)
    return _finish(batch, per_token, clipped, ratio, cfg, counts)


@register_policy_loss("gspo")
def gspo_loss(batch: PolicyBatch, cfg: LossConfig, counts: GlobalCounts):
    """Sequence-level ratio s_i = exp(mean_t (logp - old_logp)) over trained tokens, carried per token
    as sg[log s_i] + logp_t - sg[logp_t] so each token's gradient is that of log s_i's share."""
    mask = batch.mask.to(batch.logp.dtype)
    log_ratio = (batch.logp - batch.old_logp) * mask
    seq_log_ratio = log_ratio.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)
    token_log_ratio = seq_log_ratio.detach()[:, None] + batch.logp - batch.logp.detach()
    ratio = torch.exp(token_log_ratio)
    per_token, clipped = _clipped_objective(ratio, batch.advantages[:, None], cfg)
    return _finish(batch, per_token, clipped, ratio, cfg, counts)
