"""Evaluation: greedy episodes with the evaluation turn limit (the last turn is told to answer) on the
rollout workers, scored by the reward workers. The RL driver calls it before, during and after
training; `vo3rl eval` calls it on any checkpoint."""
from __future__ import annotations

from vo3rl.rl.step_metrics import rollout_metrics


def evaluate(rollout, rewards, samples: list) -> dict:
    """`eval/<metric>` means over `samples` (one greedy trajectory each), and `eval/n` episodes run."""
    if not samples:
        return {}
    by_id = {s.id: s for s in samples}
    trajectories = rollout.generate(samples, 1, "eval")
    results = rewards.score(trajectories, [by_id[t.sample_id] for t in trajectories], progress=1.0)
    metrics = {f"eval/{name.split('/', 1)[-1]}": value for name, value in rollout_metrics(trajectories, results).items()}
    metrics["eval/n"] = len(trajectories)
    return metrics


def run_eval(recipe, model_path: str | None = None, limit: int | None = None) -> dict:
    """Evaluate `model_path` (default `model.path`) on `data.eval`; bad samples are skipped and counted."""
    from vo3rl.data.readers import read_samples
    from vo3rl.data.skips import SkipLog
    from vo3rl.ray_setup import start_ray
    from vo3rl.workers.reward import RewardPool
    from vo3rl.workers.rollout import RolloutGroup

    skips = SkipLog("eval")
    samples = list(read_samples(recipe.data.eval, recipe.data.format, data_root=recipe.data.root or None, skips=skips))
    samples = samples[:limit] if limit else samples
    start_ray(recipe.ray)
    rollout = RolloutGroup(model_path or recipe.model.path, recipe, recipe.rl.rollout_workers)
    rewards = RewardPool(recipe.reward, recipe.rl.reward_workers, recipe.rl.judge_concurrency, recipe.run.log_level)
    metrics = evaluate(rollout, rewards, samples)
    metrics["eval/skipped_rows"] = skips.total
    metrics["eval/skipped_videos"] = sum(rollout.skipped.values())
    return metrics
