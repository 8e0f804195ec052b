"""`vo3rl rl RECIPE`: GRPO / GSPO on Ray.

One step:
  1. take `prompts_per_step` samples (a seeded order, so a resumed run sees the same data),
  2. the rollout workers (vLLM) run `group_size` trajectories per sample, multi-turn with the crop tool,
  3. the reward workers score them, keeping every component,
  4. groups whose rewards are all equal teach nothing: they are dropped and the batch is refilled,
     a bounded number of rounds (dynamic sampling); groups with a failed reward term are dropped too,
  5. group-relative advantages; an exceeded trajectory keeps its reward for its group's statistics,
     but its loss mask is empty,
  6. the learner recomputes the behaviour log-probs (and the reference's, with KL), then steps with
     the configured loss (GRPO clip-higher or GSPO) and aggregation,
  7. new weights go to the rollout engines in place; metrics to W&B and metrics.jsonl; an atomic
     checkpoint every `save_every` steps.

Left out: value functions (GRPO/GSPO need none), entropy bonuses, asynchronous (off-policy) rollout.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vo3rl.log import get_logger, progress
from vo3rl.rl.advantages import get_advantage
from vo3rl.rl.groups import form_groups, prompts_for
from vo3rl.rl.policy_loss import policy_metrics
from vo3rl.rl.run_state import RunState, save_step
from vo3rl.rl.sampling import DynamicBatch
from vo3rl.rl.step_metrics import rollout_metrics, throughput

log = get_logger(__name__)


def rl_step(step: int, state: RunState) -> dict:
    """One RL step (the numbered list above). Returns the step's metrics."""
    cfg, timings = state.cfg, {}
    batch = DynamicBatch(cfg.prompts_per_step, 1 + (cfg.max_refill_rounds if cfg.dynamic_sampling else 0),
                         cfg.min_group_std if cfg.dynamic_sampling else -1.0)
    seen, seen_results, broken, prompt_ids = [], [], 0, []
    while not batch.done:
        picked = [state.samples[i] for i in prompts_for(step, batch.rounds, len(state.samples), cfg.prompts_per_step,
                                                        state.seed)]
        prompt_ids += [sample.id for sample in picked]
        start = time.perf_counter()
        trajectories = state.rollout.generate(picked, cfg.group_size, "train")
        timings["rollout"] = timings.get("rollout", 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        results = state.rewards.score(trajectories, [state.by_id[t.sample_id] for t in trajectories],
                                      progress=step / max(1, cfg.steps))
        timings["reward"] = timings.get("reward", 0.0) + time.perf_counter() - start
        groups, failed = form_groups(trajectories, results)
        broken += failed
        seen += trajectories
        seen_results += results
        batch.offer(groups)

    metrics = {**rollout_metrics(seen, seen_results), **throughput(seen, timings["rollout"]),
               "batch/groups_kept": len(batch.groups), "batch/groups_dropped": batch.dropped,
               "batch/groups_reward_error": broken, "batch/refill_rounds": batch.rounds - 1,
               "batch/prompt_ids": prompt_ids}
    trained = [t for group in batch.groups for _, (t, _) in group]
    if trained:
        rewards = np.array([r.total for group in batch.groups for _, (_, r) in group])
        group_ids = np.repeat(np.arange(len(batch.groups)), [len(g) for g in batch.groups])
        for trajectory, advantage in zip(trained, get_advantage(cfg.advantage)(rewards, group_ids, cfg.advantage_eps)):
            trajectory.advantage = float(advantage)
        start = time.perf_counter()
        state.set_behaviour_logprobs(trained)
        timings["logprobs"] = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(cfg.updates_per_batch):
            update = state.learner.train_step(trained, loss="policy", loss_on="assistant", use_tdam=cfg.use_tdam,
                                              extras=state.loss_extras(trained))
        timings["update"] = time.perf_counter() - start
        metrics.update({f"train/{k}": v for k, v in update.items() if isinstance(v, (int, float)) and not k.startswith("sum/")})
        metrics.update(policy_metrics(update))
        metrics["train/advantage_abs"] = float(np.mean(np.abs([t.advantage for t in trained])))
        start = time.perf_counter()
        state.rollout.update_weights(state.learner.export_weights())
        timings["sync"] = time.perf_counter() - start
    else:
        log.warning("step %d: no informative group after %d rounds; no update", step, batch.rounds)
    metrics.update({f"time/{phase}_s": seconds for phase, seconds in timings.items()})
    state.maybe_log_trajectories(step, seen, seen_results)
    return metrics


def train(recipe) -> dict:
    """The RL stage of `recipe`; resumes from the newest complete checkpoint when `rl.resume`."""
    state = RunState.open(recipe)
    cfg = state.cfg
    summary = {"reward_by_step": [], "accuracy_by_step": []}
    try:
        if state.step == 0 and state.eval_samples:
            summary["before"] = state.evaluate()
            state.metrics.log(summary["before"], step=0)
        for step in progress(range(state.step, cfg.steps), desc="rl", total=cfg.steps - state.step, unit="step"):
            start = time.perf_counter()
            metrics = rl_step(step, state)
            metrics["time/step_s"] = time.perf_counter() - start
            state.metrics.log(metrics, step=step + 1)
            summary["reward_by_step"].append(round(metrics.get("reward/total", float("nan")), 4))
            summary["accuracy_by_step"].append(round(metrics.get("reward/accuracy", float("nan")), 4))
            log.info("step %d/%d reward %.3f acc %.3f kept %d groups (%.0f s)", step + 1, cfg.steps,
                     metrics.get("reward/total", float("nan")), metrics.get("reward/accuracy", float("nan")),
                     metrics.get("batch/groups_kept", 0), metrics["time/step_s"])
            state.step = step + 1
            if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < cfg.steps:
                state.metrics.log(state.evaluate(), step=state.step)
            if cfg.save_every and state.step % cfg.save_every == 0 and state.step < cfg.steps:
                save_step(state)
        final = save_step(state) if cfg.steps else None
        if state.eval_samples:
            summary["after"] = state.evaluate()
            state.metrics.log(summary["after"], step=state.step)
        summary.update({"steps": state.step, "checkpoint": str(final) if final else None,
                        "skipped_samples": dict(state.rollout.skipped), "failed_trajectories": dict(state.rollout.failed)})
        (state.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        return summary
    finally:
        state.close()
