"""`vo3rl eval RECIPE [--model DIR]`: start the rollout and reward workers for a checkpoint and run the
evaluation (`vo3rl.evaluation.episodes.evaluate`) on the recipe's `data.eval`."""
from __future__ import annotations

from pathlib import Path

from vo3rl.config.schema import Recipe
from vo3rl.data.readers import read_samples
from vo3rl.data.skips import SkipLog
from vo3rl.evaluation.episodes import evaluate
from vo3rl.log import get_logger
from vo3rl.orchestration.ray_setup import start_ray
from vo3rl.workers.reward import RewardPool
from vo3rl.workers.rollout import RolloutGroup

log = get_logger(__name__)


def run_eval(recipe: Recipe, model_path: str | None = None, limit: int | None = None,
             episodes_path: str | Path | None = None) -> dict:
    """Evaluate `model_path` (default `model.path`) on `data.eval`; bad samples are skipped and counted.
    Every episode goes to `episodes_path` (default `<run.output_dir>/eval_episodes.jsonl`)."""
    skips = SkipLog("eval")
    samples = list(read_samples(recipe.data.eval, recipe.data.format, data_root=recipe.data.root or None, skips=skips))
    samples = samples[:limit] if limit else samples
    log.info("evaluating %s on %d samples of %s", model_path or recipe.model.path, len(samples), recipe.data.eval)
    start_ray(recipe.ray)
    rollout = RolloutGroup(model_path or recipe.model.path, recipe, recipe.rl.rollout_workers)
    rewards = RewardPool(recipe.reward, recipe.rl.reward_workers, recipe.rl.judge_concurrency, recipe.run.log_level)
    episodes_path = episodes_path or Path(recipe.run.output_dir) / "eval_episodes.jsonl"
    metrics = evaluate(rollout, rewards, samples, episodes_path)
    metrics["eval/skipped_rows"] = skips.total
    metrics["eval/skipped_videos"] = sum(rollout.skipped.values())
    return metrics
