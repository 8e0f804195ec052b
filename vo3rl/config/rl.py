"""Recipe keys of the RL stage (`rl:` in a recipe). The advantage estimator and the policy loss are
named here and looked up in their registries (`vo3rl.rl.advantages`, `vo3rl.rl.losses`); that the
names exist is checked with the other registered names before a run starts
(`vo3rl.orchestration.checks`)."""
from __future__ import annotations

from dataclasses import dataclass, field

AGGREGATIONS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")
KL_ESTIMATORS = ("k1", "k3", "low_var_kl")
OLD_LOGPROBS = ("learner", "rollout", "on_policy")


@dataclass
class LossConfig:
    """`name` picks the registered loss; clip bounds are ratios' distance from 1 (Video-o3: 0.2 / 0.3;
    Open-o3's GSPO: 0.2 / 0.2). `kl_coef` 0 disables KL; `kl_estimator` is k1 or k3 (low-variance)."""

    name: str = "grpo"
    clip_low: float = 0.2
    clip_high: float = 0.3
    aggregation: str = "token-mean"
    kl_coef: float = 0.0
    kl_estimator: str = "k3"


@dataclass
class RLConfig:
    """One step: `prompts_per_step` samples x `group_size` rollouts -> rewards -> group advantages ->
    dynamic sampling -> `updates_per_batch` learner updates -> weight sync.

    `lr`, `warmup_ratio`: the learner's schedule for RL (None: the `learner:` section's, which SFT
    shares). `init_from`: the checkpoint the policy starts from (e.g. the SFT output); empty = `model.path`.
    `old_logprobs`: behaviour log-probs for the ratio, recomputed by the "learner" before the update
    (ratio exactly 1 on the first update), taken from the "rollout" engine, or "on_policy": the update's
    own forward, detached (only with `updates_per_batch: 1`; the same gradient as "learner" without
    its extra forward pass).
    Placement: `rollout_workers` vLLM actors (their CPUs and GPUs: `rollout.worker_cpus`,
    `rollout.worker_gpus`), `reward_workers` CPU actors, and `learner.ranks` FSDP2 ranks with
    `learner_gpus` GPUs each.
    """

    steps: int = 400
    prompts_per_step: int = 32
    group_size: int = 16
    advantage: str = "grpo"
    advantage_eps: float = 1e-6
    loss: LossConfig = field(default_factory=LossConfig)
    updates_per_batch: int = 1
    lr: float | None = None
    warmup_ratio: float | None = None
    dynamic_sampling: bool = True
    max_refill_rounds: int = 2
    min_group_std: float = 1e-4
    old_logprobs: str = "learner"
    use_tdam: bool = False
    init_from: str = ""
    save_every: int = 50
    eval_every: int = 0
    eval_samples: int = 64
    log_trajectories_every: int = 10
    resume: bool = True
    rollout_workers: int = 1
    reward_workers: int = 1
    judge_concurrency: int = 4
    learner_gpus: float = 0.0

    def validate(self) -> None:
        checks = [
            (self.steps >= 0 and self.prompts_per_step >= 1 and self.group_size >= 1, "steps, prompts_per_step, group_size"),
            (self.loss.aggregation in AGGREGATIONS, f"loss.aggregation must be one of {AGGREGATIONS}"),
            (self.loss.kl_estimator in KL_ESTIMATORS, f"loss.kl_estimator must be one of {KL_ESTIMATORS}"),
            (self.loss.clip_low >= 0 and self.loss.clip_high >= 0, "clip bounds must be >= 0"),
            (self.old_logprobs in OLD_LOGPROBS, f"old_logprobs must be one of {OLD_LOGPROBS}"),
            (self.old_logprobs != "on_policy" or self.updates_per_batch == 1,
             "old_logprobs: on_policy needs updates_per_batch: 1 (a second update is off-policy)"),
            (self.updates_per_batch >= 1 and self.max_refill_rounds >= 0, "updates_per_batch >= 1, max_refill_rounds >= 0"),
            (self.rollout_workers >= 1 and self.reward_workers >= 1, "at least one rollout and one reward worker"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
