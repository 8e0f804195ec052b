"""The learner-side policy loss: GRPO or GSPO (vo3rl.rl.losses) on the learner's scored tokens.

The RL side adds it to the learner's loss registry as "policy" by calling `register_rl_losses()` (each
learner actor does, and so must whoever builds an in-process `Learner` for RL); importing this module
registers nothing. The RL step passes a `PolicyLossInputs` to `train_step(..., loss="policy",
inputs=...)`: the LossConfig, the global counts of trained tokens and sequences, and per trajectory
its advantage, behaviour log-probs and (with KL) reference log-probs.

With `on_policy` (the batch feeds exactly one optimizer step, so the behaviour policy IS the policy
being differentiated) the old log-probs are this forward's own, detached: ratio 1, the same gradient as
a separate recomputation, without its extra forward pass. With `with_entropy` the loss also reports the
policy's entropy; with rollout log-probs on the trajectories, the mean |rollout − learner| gap (the RL
step's figures for both, from the last update of a step).

With `rl.loss.is_correction` token or sequence (asynchronous rollout: the tokens were sampled by
weights older than the proximal policy the ratio uses) each trajectory's rollout log-probs
(`Trajectory.logprobs`, nats: the behaviour policy's) give the truncated importance weights
(`vo3rl.rl.losses.truncated_is_weights`) against the old log-probs above (the proximal policy); the
loss reports their sum and the number of trained tokens at the cap, which `policy_metrics` turns into
`train/is_weight_mean` and `train/is_clip_frac`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from vo3rl.agent.trajectory import Trajectory, pack_array, unpack_array
from vo3rl.config.rl import LossConfig
from vo3rl.registry import Registry
from vo3rl.rl.losses import GlobalCounts, PolicyBatch, get_policy_loss, truncated_is_weights
from vo3rl.train.batch import n_trained_tokens
from vo3rl.train.losses import LOSSES, Loss

_PER_TOKEN = ("old_logprobs", "ref_logprobs")


@dataclass(frozen=True)
class PolicyLossInputs:
    """What the policy loss needs beyond the scored tokens (a `vo3rl.train.losses.LossInputs`).

    Per trajectory, in batch order: `advantages` (one float each), `old_logprobs` (the behaviour
    policy's per-token log-probs, nats, same layout as `Trajectory.logprobs`; None when `on_policy`)
    and `ref_logprobs` (the frozen reference's, likewise; only with a KL term, else None).
    Batch-wide: `loss` (the recipe's `rl.loss`), `counts` (trained tokens and sequences of the WHOLE
    step's batch, however it is split), `on_policy` and `with_entropy` (see the module docstring).
    Build it with `PolicyLossInputs.build`; `select` gives a subset's inputs.
    """

    loss: LossConfig
    advantages: list[float]
    old_logprobs: list[np.ndarray] | None
    ref_logprobs: list[np.ndarray] | None
    counts: GlobalCounts
    on_policy: bool
    with_entropy: bool

    def __post_init__(self):
        for name in _PER_TOKEN:
            values = getattr(self, name)
            if values is not None and len(values) != len(self.advantages):
                raise ValueError(f"{len(values)} {name} for {len(self.advantages)} advantages")

    @classmethod
    def build(cls, trajectories: list[Trajectory], loss_cfg: LossConfig, advantages, old_logprobs: list | None,
              ref_logprobs: list | None, on_policy: bool, with_entropy: bool) -> "PolicyLossInputs":
        """The inputs of the step's whole batch `trajectories`; `counts` are its trained (assistant)
        tokens and the number of trajectories with at least one of them."""
        if len(advantages) != len(trajectories):
            raise ValueError(f"{len(advantages)} advantages for {len(trajectories)} trajectories")
        counts = GlobalCounts(tokens=n_trained_tokens(trajectories, "assistant"),
                              sequences=sum(1 for t in trajectories if t.loss_mask().any()))
        return cls(loss=loss_cfg, advantages=[float(a) for a in advantages],
                   old_logprobs=None if old_logprobs is None else list(old_logprobs),
                   ref_logprobs=None if ref_logprobs is None else list(ref_logprobs),
                   counts=counts, on_policy=bool(on_policy), with_entropy=bool(with_entropy))

    def select(self, indices: list[int]) -> "PolicyLossInputs":
        """The inputs of the trajectories at `indices`, in that order; `loss`, `counts`, `on_policy`
        and `with_entropy` unchanged (the counts stay the whole batch's)."""

        def pick(values):
            return None if values is None else [values[i] for i in indices]

        return replace(self, advantages=pick(self.advantages), old_logprobs=pick(self.old_logprobs),
                       ref_logprobs=pick(self.ref_logprobs))

    # Sent to every learner rank: the per-token arrays travel compressed, as on a Trajectory.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in _PER_TOKEN:
            if state[name] is not None:
                state[name] = [pack_array(values, np.float32) for values in state[name]]
        return state

    def __setstate__(self, state: dict) -> None:
        for name in _PER_TOKEN:
            if state[name] is not None:
                state[name] = [unpack_array(packed, np.float32) for packed in state[name]]
        self.__dict__.update(state)  # frozen: set the fields directly, as unpickling a dataclass does


def _per_target(values: list | None, what: str, trajectories, rows: torch.Tensor, positions: torch.Tensor,
                like: torch.Tensor) -> torch.Tensor:
    """[B, L] tensor holding, at each scored (row, position), row r's per-token `values[r]` at the
    TARGET token, i.e. at token position + 1. `what` names the values in the error for a missing one."""
    out = torch.zeros_like(like)
    rows_np, positions_np = rows.cpu().numpy(), positions.cpu().numpy()
    for r, trajectory in enumerate(trajectories):
        row_values = values[r] if values is not None else None
        if row_values is None:
            raise ValueError(f"trajectory {trajectory.sample_id!r} has no {what}: the RL step must pass them")
        picked = positions_np[rows_np == r]
        out[r, torch.from_numpy(picked)] = torch.from_numpy(np.asarray(row_values)[picked + 1]).to(out)
    return out


def policy_loss(scores, batch, trajectories, inputs: PolicyLossInputs | None) -> tuple[torch.Tensor, dict[str, float]]:
    """This micro-batch's share of the global policy loss, times the global token count (the learner
    divides every loss by that count), and its summable metrics (see `policy_metrics`). `inputs` are
    this micro-batch's (`PolicyLossInputs.select` of its rows)."""
    if inputs is None:
        raise ValueError('the "policy" loss needs PolicyLossInputs: train_step(..., inputs=PolicyLossInputs.build(...))')
    if len(inputs.advantages) != len(trajectories):
        raise ValueError(f"{len(inputs.advantages)} advantages for a micro-batch of {len(trajectories)} trajectories")
    cfg, counts = inputs.loss, inputs.counts
    mask = batch.target_mask
    logp = torch.zeros(mask.shape, dtype=scores.logprobs.dtype, device=scores.logprobs.device)
    logp = logp.index_put((scores.rows, scores.positions), scores.logprobs)
    if inputs.on_policy:
        old = logp.detach()
    else:
        old = _per_target(inputs.old_logprobs, "old_logprobs", trajectories, scores.rows, scores.positions,
                          logp.detach())
    ref = None
    if cfg.kl_coef:
        ref = _per_target(inputs.ref_logprobs, "ref_logprobs", trajectories, scores.rows, scores.positions,
                          logp.detach())
    rollout = None  # the behaviour policy's log-probs at the targets: the IS weights' and the gap's
    if all(t.logprobs is not None for t in trajectories):
        rollout = _per_target([t.logprobs for t in trajectories], "rollout logprobs", trajectories, scores.rows,
                              scores.positions, logp.detach())
    is_weight = None
    if cfg.is_correction != "none":
        if rollout is None:
            missing = next(t.sample_id for t in trajectories if t.logprobs is None)
            raise ValueError(f"rl.loss.is_correction = {cfg.is_correction!r} needs the rollout's log-probs on every "
                             f"trajectory; {missing!r} has none (the rollout engine must return them)")
        is_weight = truncated_is_weights(old, rollout, mask, cfg.is_correction, cfg.is_cap, cfg.log_ratio_clamp)
    advantages = torch.tensor(inputs.advantages, dtype=logp.dtype, device=logp.device)
    share, metrics = get_policy_loss(cfg.name)(PolicyBatch(logp, old, advantages, mask, ref, is_weight), cfg, counts)
    tokens = metrics["trained_tokens"]
    summable = {"pg_loss": metrics["pg_loss"], "trained_tokens": tokens,
                "clipped_tokens": metrics["clip_frac"] * tokens, "ratio_sum": metrics["ratio_mean"] * tokens,
                "dual_clipped_tokens": metrics["dual_clip_frac"] * tokens}
    if "kl" in metrics:
        summable["kl"] = metrics["kl"]
    if "is_weight_mean" in metrics:
        summable.update(is_weight_sum=metrics["is_weight_mean"] * tokens,
                        is_clipped_tokens=metrics["is_clip_frac"] * tokens)
    if scores.entropy is not None:
        summable["entropy_sum"] = float(scores.entropy.sum())
    if rollout is not None:
        gap = (rollout - logp.detach()).abs()[mask.bool()]
        gap = gap[torch.isfinite(gap)]
        summable.update(rollout_gap_sum=float(gap.sum()), rollout_gap_tokens=float(gap.numel()))
    return share * counts.tokens, summable


def register_rl_losses(registry: Registry[Loss] = LOSSES) -> None:
    """Add the RL stage's learner loss, `policy_loss` as "policy", to the learner's loss registry
    (default: `vo3rl.train.losses.LOSSES`). Each learner actor calls it at start-up, and so must whoever
    builds an in-process `Learner` for RL. Safe to call again in the same process: a name already
    registered is left as it is."""
    if "policy" not in registry:
        registry.add("policy", policy_loss)


def policy_metrics(update: dict) -> dict[str, float]:
    """The global batch's policy-loss figures from a train step's summed `sum/…` metrics: the loss
    and KL terms (shares of the global mean, so their sum is the global value), the fractions of
    trained tokens whose ratio was clipped and whose loss the dual clip bounded (A < 0, ratio beyond
    `rl.loss.dual_clip`), the mean ratio (per trained token) and, when the loss saw them, the mean
    entropy, the mean |rollout − learner| log-prob gap and, with `rl.loss.is_correction`, the mean
    importance weight and the fraction of trained tokens whose weight hit `rl.loss.is_cap`."""
    tokens = max(update.get("sum/trained_tokens", 0.0), 1.0)
    out = {"train/pg_loss": update.get("sum/pg_loss", float("nan")),
           "train/clip_frac": update.get("sum/clipped_tokens", float("nan")) / tokens,
           "train/dual_clip_frac": update.get("sum/dual_clipped_tokens", float("nan")) / tokens,
           "train/ratio_mean": update.get("sum/ratio_sum", float("nan")) / tokens}
    if "sum/kl" in update:
        out["train/kl"] = update["sum/kl"]
    if "sum/is_weight_sum" in update and update.get("sum/trained_tokens"):  # a mean of no token is no figure
        out["train/is_weight_mean"] = update["sum/is_weight_sum"] / tokens
        out["train/is_clip_frac"] = update.get("sum/is_clipped_tokens", float("nan")) / tokens
    if "sum/entropy_sum" in update and update.get("sum/trained_tokens"):
        out["train/entropy"] = update["sum/entropy_sum"] / tokens
    if update.get("sum/rollout_gap_tokens"):
        out["train/rollout_learner_logprob_gap"] = update["sum/rollout_gap_sum"] / update["sum/rollout_gap_tokens"]
    return out
