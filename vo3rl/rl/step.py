"""One RL step of GRPO / GSPO, over typed services (`StepServices`) that a test can replace with plain
fakes. Starting Ray, placing the workers, reading the data and resuming are the orchestration's job
(`vo3rl.orchestration.rl_run`); this module only decides what one step does:

  1. take `prompts_per_step` samples (a seeded order, so a resumed run sees the same data),
  2. the rollout service runs `group_size` trajectories per sample, multi-turn with the crop tool,
  3. the reward service scores them, keeping every component,
  4. groups whose rewards are all equal teach nothing: they are dropped and the batch is refilled,
     a bounded number of rounds (dynamic sampling); groups with a failed reward term are dropped too,
  5. group-relative advantages; an exceeded trajectory keeps its reward for its group's statistics,
     but its loss mask is empty,
  6. behaviour log-probs from the configured source (`rl.old_logprobs`) and, with KL, the frozen
     reference's; the learner steps with the configured loss (GRPO clip-higher or GSPO) and aggregation,
  7. new weights go to the rollout engines in place.

With colocated engines (`placement.layout: colocated`, `services.colocated`) the engines sleep between
4 and 5 and wake between 6 and 7: rollout -> reward -> sleep -> update -> wake -> weight sync, so the
update has the GPU memory the engines held (a step without an update does neither).

That is `rl.mode: sync`. The overlapped modes (`vo3rl.rl.overlap`: one_step_off, async) reuse the same
pieces: `collect_groups` / `collect_round` (steps 1-4), `train_on` (5-6) and `sync_weights` (7).

Left out: value functions (GRPO/GSPO need none), entropy bonuses.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vo3rl.agent.trajectory import Trajectory
from vo3rl.config.rl import RLConfig
from vo3rl.data.schema import Sample
from vo3rl.log import get_logger
from vo3rl.rewards import RewardResult
from vo3rl.rl.advantages import get_advantage
from vo3rl.rl.groups import Group, Scored, form_groups, prompts_for
from vo3rl.rl.policy_loss import PolicyLossInputs, policy_metrics
from vo3rl.rl.sampling import DynamicBatch
from vo3rl.rl.step_metrics import rollout_metrics, throughput
from vo3rl.train.contract import PolicyLearner

log = get_logger(__name__)


class Rollout(Protocol):
    """Generates trajectories with the current policy (the vLLM rollout workers)."""

    def generate(self, samples: list[Sample], n_per_sample: int, mode: str) -> list[Trajectory]: ...

    def update_weights(self, weights: dict, version: int | None = None) -> None: ...


class WeightSync(Protocol):
    """Carries the learner's weights to the rollout engines some other way than a state dict through
    `Rollout.update_weights` (`rl.weight_sync: process_group`: `vo3rl.workers.weight_sync`)."""

    def sync(self, version: int) -> None: ...

    def close(self) -> None: ...


class SleepingRollout(Protocol):
    """The rollout engines that share the learner's GPUs (`placement.layout: colocated`): `sleep` gives
    their device memory back before the update, `wake_up` takes it again before the weight sync. Each
    returns {"seconds", "freed_bytes" (summed over the engines; negative after wake_up), "available"
    (vLLM's sleep mode was on), "reason" (why not)}."""

    def sleep(self) -> dict: ...

    def wake_up(self) -> dict: ...


class Rewards(Protocol):
    """Scores finished trajectories (the reward workers). `progress`: fraction of training done, 0..1."""

    def score(self, trajectories: list[Trajectory], samples: list[Sample], progress: float) -> list[RewardResult]: ...


@dataclass
class StepServices:
    """What one step talks to. `reference` is the frozen reference policy (only with a KL term);
    `weight_sync` replaces the object-store weight sync when set; `colocated`: the engines to put to
    sleep for the update (the rollout group itself when colocated; None: separate GPUs, never)."""

    rollout: Rollout
    rewards: Rewards
    learner: PolicyLearner
    reference: PolicyLearner | None = None
    weight_sync: WeightSync | None = None
    colocated: SleepingRollout | None = None


@dataclass
class PromptSet:
    """The RL prompts and the seed of their order."""

    samples: list[Sample]
    seed: int = 0
    by_id: dict[str, Sample] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {s.id: s for s in self.samples}


@dataclass
class StepResult:
    """The step's metrics and every trajectory it scored (trained or not), for the run's tables."""

    metrics: dict
    scored: list[Scored]


def rl_step(step: int, cfg: RLConfig, prompts: PromptSet, services: StepServices) -> StepResult:
    """One RL step (the numbered list above). `step` counts from 0."""
    timings: dict[str, float] = {}
    collected = collect_groups(step, cfg, prompts, services, timings)
    sleeping = services.colocated if collected.batch.groups else None
    memory = engine_memory(sleeping, "sleep", timings) if sleeping is not None else {}
    result = train_on(step, cfg, collected, services, timings)
    if sleeping is not None:
        memory.update(engine_memory(sleeping, "wake_up", timings))
    if collected.batch.groups:
        sync_weights(services, step + 1, timings)
    result.metrics.update({f"time/{phase}_s": seconds for phase, seconds in timings.items()})
    result.metrics.update(memory)
    return result


def engine_memory(engines: SleepingRollout, call: str, timings: dict) -> dict[str, float]:
    """`engines.sleep()` or `engines.wake_up()`, timed as the phase `call`; the device memory it freed
    (sleep) or took back (wake_up) in GiB, and whether vLLM's sleep mode did it (0: it is missing, and
    no memory moved)."""
    with _timed(timings, call):
        figures = getattr(engines, call)()
    moved = figures["freed_bytes"] if call == "sleep" else -figures["freed_bytes"]
    name = "released_gib" if call == "sleep" else "reacquired_gib"
    return {f"colocated/{name}": moved / 2**30, "colocated/sleep_mode": float(figures["available"])}


@dataclass
class Collected:
    """Steps 1-4's result: the dynamic batch, every trajectory scored (trained or not), the groups
    dropped for a failed reward term, and the prompt ids in the order they were drawn."""

    batch: DynamicBatch
    scored: list[Scored] = field(default_factory=list)
    broken: int = 0
    prompt_ids: list[str] = field(default_factory=list)
    engine_stats: list[dict] = field(default_factory=list)  # per rollout call and worker (`RolloutBatch.stats`)


def new_batch(cfg: RLConfig) -> DynamicBatch:
    """An empty dynamic batch with the recipe's size, refill rounds and informative-group threshold."""
    return DynamicBatch(cfg.prompts_per_step, 1 + (cfg.max_refill_rounds if cfg.dynamic_sampling else 0),
                        cfg.min_group_std if cfg.dynamic_sampling else -1.0)


def collect_round(picked: list[Sample], cfg: RLConfig, prompts: PromptSet, services: StepServices, progress: float,
                  timings: dict) -> tuple[list[Group], list[Scored], int, list[dict]]:
    """One rollout-and-reward round over `picked`: its groups (those without a failed reward term),
    every scored trajectory, the number of groups dropped for a failed term, and the engines' stats."""
    with _timed(timings, "rollout"):
        trajectories = services.rollout.generate(picked, cfg.group_size, "train")
        stats = list(getattr(services.rollout, "last_stats", None) or [])
    with _timed(timings, "reward"):
        results = services.rewards.score(trajectories, [prompts.by_id[t.sample_id] for t in trajectories],
                                         progress=progress)
    groups, failed = form_groups(trajectories, results)
    return groups, [Scored(t, r) for t, r in zip(trajectories, results)], failed, stats


def collect_groups(step: int, cfg: RLConfig, prompts: PromptSet, services: StepServices, timings: dict) -> Collected:
    """Steps 1-4: rollout and reward rounds until the dynamic batch is full or out of rounds."""
    collected = Collected(new_batch(cfg))
    while not collected.batch.done:
        order = prompts_for(step, collected.batch.rounds, len(prompts.samples), cfg.prompts_per_step, prompts.seed)
        picked = [prompts.samples[i] for i in order]
        collected.prompt_ids += [sample.id for sample in picked]
        groups, scored, failed, stats = collect_round(picked, cfg, prompts, services, step / max(1, cfg.steps),
                                                      timings)
        collected.broken += failed
        collected.scored += scored
        collected.engine_stats += stats
        collected.batch.offer(groups)
    return collected


def train_on(step: int, cfg: RLConfig, collected: Collected, services: StepServices, timings: dict) -> StepResult:
    """Steps 5-6 on a collected batch (no weight sync): the step's rollout and batch metrics, and the
    update's when the batch kept a group."""
    batch, scored = collected.batch, collected.scored
    metrics = {**rollout_metrics([s.trajectory for s in scored], [s.result for s in scored]),
               **throughput([s.trajectory for s in scored], timings.get("rollout", 0.0)),
               "batch/groups_kept": len(batch.groups), "batch/groups_dropped": batch.dropped,
               "batch/groups_reward_error": collected.broken, "batch/refill_rounds": batch.rounds - 1,
               "batch/prompt_ids": collected.prompt_ids, **engine_metrics(collected.engine_stats)}
    if batch.groups:
        metrics.update(_update(cfg, batch.groups, services, timings))
    else:
        log.warning("step %d: no informative group after %d rounds; no update", step, batch.rounds)
    return StepResult(metrics, scored)


def engine_metrics(stats: list[dict]) -> dict[str, float]:
    """The rollout engines' prefix-cache hit rate (cached over prompt tokens) and the turns a weight
    update interrupted, over the step's rollout calls (none when the engines report no counters)."""
    prompt = sum(s.get("prompt_tokens", 0) for s in stats)
    if not prompt:
        return {}
    return {"rollout/prefix_cache_hit_rate": sum(s.get("cached_tokens", 0) for s in stats) / prompt,
            "rollout/interrupted_turns": float(sum(s.get("interrupted_turns", 0) for s in stats))}


def sync_weights(services: StepServices, version: int, timings: dict) -> None:
    """Step 7: the learner's weights to the rollout engines, in place, as weight `version`."""
    with _timed(timings, "sync"):
        if services.weight_sync is not None:
            services.weight_sync.sync(version)
        else:
            services.rollout.update_weights(services.learner.export_weights(), version=version)


def _update(cfg: RLConfig, groups: list[Group], services: StepServices, timings: dict) -> dict:
    """Steps 5-6: advantages, behaviour and reference log-probs, the learner update."""
    trained = [m.trajectory for group in groups for m in group.members]
    rewards = np.array([reward for group in groups for reward in group.rewards])
    group_ids = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    advantages = [float(a) for a in get_advantage(cfg.advantage)(rewards, group_ids, cfg.advantage_eps)]
    with _timed(timings, "logprobs"):
        old = behaviour_logprobs(cfg, services.learner, trained)
        ref = reference_logprobs(cfg, services.reference, trained)
    inputs = PolicyLossInputs.build(trained, cfg.loss, advantages, old, ref,
                                    on_policy=cfg.old_logprobs == "on_policy", with_entropy=True)
    with _timed(timings, "update"):
        for _ in range(cfg.updates_per_batch):
            update = services.learner.train_step(trained, loss="policy", loss_on="assistant", use_tdam=cfg.use_tdam,
                                                 inputs=inputs)
    metrics = {f"train/{k}": v for k, v in update.items() if isinstance(v, (int, float)) and not k.startswith("sum/")}
    metrics.update(policy_metrics(update))
    metrics["train/advantage_abs"] = float(np.mean(np.abs(advantages)))
    metrics["train/trained_tokens"] = float(sum(int(t.loss_mask().sum()) for t in trained))
    return metrics


def behaviour_logprobs(cfg: RLConfig, learner: PolicyLearner, trajectories: list[Trajectory]) -> list | None:
    """Per trajectory, the behaviour policy's per-token log-probs for the ratio, by `rl.old_logprobs`:
    "learner" recomputes them (only the trained tokens, under the update's attention mask, so the first
    ratio is exactly 1); "rollout" takes the engine's (the learner's for a trajectory without them);
    "on_policy" returns None: the update uses its own forward, detached."""
    mode = cfg.old_logprobs
    if mode == "on_policy":
        return None
    if mode == "rollout" and all(t.logprobs is not None for t in trajectories):
        return [t.logprobs for t in trajectories]
    recomputed, _ = learner.logprobs(trajectories, with_entropy=False, loss_on="assistant", use_tdam=cfg.use_tdam)
    if mode == "rollout":
        return [t.logprobs if t.logprobs is not None else lp for t, lp in zip(trajectories, recomputed)]
    return recomputed


def reference_logprobs(cfg: RLConfig, reference: PolicyLearner | None, trajectories: list[Trajectory]) -> list | None:
    """The frozen reference's per-token log-probs for the KL term (None without a reference)."""
    if reference is None:
        return None
    ref, _ = reference.logprobs(trajectories, with_entropy=False, loss_on="assistant", use_tdam=cfg.use_tdam)
    return ref


class _timed:
    """Adds the seconds spent inside the block to `timings[phase]`."""

    def __init__(self, timings: dict[str, float], phase: str):
        self.timings, self.phase = timings, phase

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.phase] = self.timings.get(self.phase, 0.0) + time.perf_counter() - self.start
