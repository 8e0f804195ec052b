"""Recipe keys of the RL stage (`rl:` in a recipe). The advantage estimator and the policy loss are
named here and looked up in their registries (`vo3rl.rl.advantages`, `vo3rl.rl.losses`); that the
names exist is checked with the other registered names before a run starts
(`vo3rl.orchestration.checks`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from vo3rl.config.rules import Rule, raise_first_broken

AGGREGATIONS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")
KL_ESTIMATORS = ("k1", "k3", "low_var_kl")
OLD_LOGPROBS = ("learner", "rollout", "on_policy")
MODES = ("sync", "one_step_off", "async")
IS_CORRECTIONS = ("none", "token", "sequence")
WEIGHT_SYNCS = ("object_store", "process_group")


@dataclass
class LossConfig:
    """`name` picks the registered loss; clip bounds are ratios' distance from 1 (Video-o3: 0.2 / 0.3;
    Open-o3's GSPO: 0.2 / 0.2). `kl_coef` 0 disables KL; `kl_estimator` is k1 or k3 (low-variance).

    Safeguards (as in verl; they bound extremes only, the formulas stay methods.md section 5's):
    `log_ratio_clamp` (nats): logp - old_logp (GRPO per token, GSPO per sequence) and the k3
    estimate's inner log-ratio are clamped to [-c, c] before exp; `kl_clamp` (nats): the k3 per-token
    estimate is clamped to [-c, c]; `dual_clip` (a ratio, > 1; 0 or null: off): for tokens with A < 0
    the clipped objective is further bounded by -A * dual_clip.

    Off-policy correction for asynchronous rollout (verl's rollout correction, AReaL's decoupled PPO):
    the tokens were sampled by the rollout engine's weights (the behaviour policy, possibly versions
    old) while the PPO ratio is taken against the proximal policy (`rl.old_logprobs`: learner or
    on_policy). `is_correction` "token" multiplies each trained token's loss by the detached weight
    min(pi_prox / pi_behav, is_cap), "sequence" by min(prod over the sequence's trained tokens of
    pi_prox / pi_behav, is_cap), the same for all its tokens; "none" (default) leaves the loss as it is.
    `is_cap` is a ratio (> 0; typically 2 to 10): the truncation that bounds the weights' variance.
    """

    name: str = "grpo"
    clip_low: float = 0.2
    clip_high: float = 0.3
    aggregation: str = "token-mean"
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    log_ratio_clamp: float = 20.0
    kl_clamp: float = 10.0
    dual_clip: float | None = 3.0
    is_correction: str = "none"
    is_cap: float = 2.0

    def rules(self) -> list[Rule]:
        """This section's rules, keys relative to `rl.loss` (RLConfig.validate prefixes them)."""
        return [
            (self.aggregation in AGGREGATIONS, "aggregation", self.aggregation, f"one of {', '.join(AGGREGATIONS)}"),
            (self.kl_estimator in KL_ESTIMATORS, "kl_estimator", self.kl_estimator,
             f"one of {', '.join(KL_ESTIMATORS)}"),
            (self.clip_low >= 0, "clip_low", self.clip_low, ">= 0"),
            (self.clip_high >= 0, "clip_high", self.clip_high, ">= 0"),
            (self.kl_coef >= 0, "kl_coef", self.kl_coef, ">= 0 (0: no KL term)"),
            (self.log_ratio_clamp > 0, "log_ratio_clamp", self.log_ratio_clamp, "> 0 (nats)"),
            (self.kl_clamp > 0, "kl_clamp", self.kl_clamp, "> 0 (nats)"),
            (not self.dual_clip or self.dual_clip > 1, "dual_clip", self.dual_clip, "> 1 (or 0 / null: off)"),
            (self.is_correction in IS_CORRECTIONS, "is_correction", self.is_correction,
             f"one of {', '.join(IS_CORRECTIONS)}"),
            (self.is_cap > 0, "is_cap", self.is_cap, "> 0 (a ratio, typically 2 to 10)"),
        ]


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
    `mode` (`vo3rl.rl.overlap`): "sync" runs rollout, update and sync one after another (exact, the
    default); "one_step_off" collects step n+1's batch while the learner trains on step n's (every
    trajectory one weight version old); "async" generates continuously into a queue of `queue_size`
    rounds, trains on groups at most `max_staleness` versions old and syncs weights mid-decoding.
    `weight_sync`: how the learner's weights reach the rollout engines after an update.
    "object_store" (the default): the full state dict goes through Ray's object store (learner ->
    driver -> every worker). "process_group": learner rank 0 broadcasts it over a torch.distributed
    group of its own with every engine worker (gloo on CPU, NCCL when the learner and the engines all
    have GPUs), in buckets of at most `weight_sync_bucket_mb` MiB (`vo3rl.workers.weight_sync`,
    `docs/weight_sync.md`). The loaded weights are bit for bit the same either way.
    Placement: `rollout_workers` vLLM actors (their CPUs and GPUs: `rollout.worker_cpus`,
    `rollout.worker_gpus`), `reward_workers` CPU actors, and `learner.ranks` FSDP2 ranks with
    `learner_gpus` GPUs each.
    `max_auto_resumes`: how many times a run that lost a learner rank (its actor or its node) restarts
    its actors in-process and resumes from its newest complete checkpoint (step 0, same data order, when
    it has none yet) before failing; 0 fails at once. A lost rollout engine costs no resume: its rollout
    group restarts it and redoes its share (`vo3rl.workers.rollout`).
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
    max_auto_resumes: int = 2
    rollout_workers: int = 1
    reward_workers: int = 1
    judge_concurrency: int = 4
    learner_gpus: float = 0.0
    mode: str = "sync"
    max_staleness: int = 1
    queue_size: int = 2
    weight_sync: str = "object_store"
    weight_sync_bucket_mb: int = 256

    def validate(self) -> None:
        """Raise ValueError naming the first key whose value makes no sense, with the value and the rule."""
        checks = [
            (self.steps >= 0, "steps", self.steps, ">= 0"),
            (self.prompts_per_step >= 1, "prompts_per_step", self.prompts_per_step, ">= 1"),
            (self.group_size >= 1, "group_size", self.group_size, ">= 1"),
            (self.advantage_eps > 0, "advantage_eps", self.advantage_eps, "> 0"),
            *((ok, f"loss.{key}", value, rule) for ok, key, value, rule in self.loss.rules()),
            (self.updates_per_batch >= 1, "updates_per_batch", self.updates_per_batch, ">= 1"),
            (self.lr is None or self.lr > 0, "lr", self.lr, "> 0 (or unset: learner.lr)"),
            (self.warmup_ratio is None or 0 <= self.warmup_ratio <= 1, "warmup_ratio", self.warmup_ratio,
             "in [0, 1] (or unset: learner.warmup_ratio)"),
            (self.max_refill_rounds >= 0, "max_refill_rounds", self.max_refill_rounds, ">= 0"),
            (self.min_group_std >= 0, "min_group_std", self.min_group_std, ">= 0"),
            (self.old_logprobs in OLD_LOGPROBS, "old_logprobs", self.old_logprobs, f"one of {', '.join(OLD_LOGPROBS)}"),
            (self.old_logprobs != "on_policy" or self.updates_per_batch == 1, "old_logprobs", self.old_logprobs,
             "learner or rollout when updates_per_batch > 1 (on_policy needs updates_per_batch: 1; "
             "a second update is off-policy)"),
            (self.save_every >= 0, "save_every", self.save_every, ">= 0 (0: only at the end)"),
            (self.eval_every >= 0, "eval_every", self.eval_every, ">= 0 (0: before and after only)"),
            (self.eval_samples >= 0, "eval_samples", self.eval_samples, ">= 0"),
            (self.log_trajectories_every >= 0, "log_trajectories_every", self.log_trajectories_every, ">= 0"),
            (self.max_auto_resumes >= 0, "max_auto_resumes", self.max_auto_resumes, ">= 0 (0: fail at once)"),
            (self.rollout_workers >= 1, "rollout_workers", self.rollout_workers, ">= 1"),
            (self.reward_workers >= 1, "reward_workers", self.reward_workers, ">= 1"),
            (self.judge_concurrency >= 1, "judge_concurrency", self.judge_concurrency, ">= 1"),
            (self.learner_gpus >= 0, "learner_gpus", self.learner_gpus, ">= 0"),
            (self.mode in MODES, "mode", self.mode, f"one of {', '.join(MODES)}"),
            (self.max_staleness >= 0, "max_staleness", self.max_staleness, ">= 0 (weight versions)"),
            (self.queue_size >= 1, "queue_size", self.queue_size, ">= 1 (rollout rounds)"),
            (self.weight_sync in WEIGHT_SYNCS, "weight_sync", self.weight_sync, f"one of {', '.join(WEIGHT_SYNCS)}"),
            (self.weight_sync_bucket_mb >= 1, "weight_sync_bucket_mb", self.weight_sync_bucket_mb, ">= 1 (MiB)"),
            (self.loss.is_correction == "none" or self.old_logprobs != "rollout", "loss.is_correction",
             self.loss.is_correction, "none with old_logprobs: rollout (the ratio is already taken against the "
             "rollout's log-probs; correct against a learner or on_policy proximal policy)"),
        ]
        raise_first_broken("rl", checks)
