"""`vo3rl eval RECIPE [--model DIR] [--benchmark NAME]`: start the rollout and reward workers for a
checkpoint and run the evaluation (`vo3rl.evaluation.episodes`) on the recipe's `data.eval`; with a
benchmark, read the file with its reader and write its results files."""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from vo3rl.config.schema import Recipe
from vo3rl.data.readers import read_samples
from vo3rl.data.skips import SkipLog
from vo3rl.evaluation.benchmark_run import benchmark_folder, evaluation_identity, pending, run_benchmark
from vo3rl.evaluation.benchmarks import BENCHMARKS
from vo3rl.evaluation.episodes import evaluate_records
from vo3rl.evaluation.results import write_results
from vo3rl.evaluation.tts import evaluator
from vo3rl.log import get_logger
from vo3rl.metrics import MetricsLog, open_wandb
from vo3rl.orchestration.ray_setup import start_ray
from vo3rl.video.budgets import resolved_presets
from vo3rl.workers.reward import RewardPool
from vo3rl.workers.rollout import RolloutGroup

log = get_logger(__name__)
EVAL_CHUNK_PER_WORKER = 16  # samples per rollout worker between two appends to episodes.jsonl


def eval_settings(recipe: Recipe, data_format: str, tts: dict | None = None) -> dict:
    """What shapes an evaluation's number besides the model: printed into its results."""
    rollout = recipe.rollout
    settings = {"data.eval": recipe.data.eval, "data.format": data_format, "protocol": recipe.reward.protocol,
                "rollout.eval_max_turns": rollout.eval_max_turns, "rollout.max_new_tokens": rollout.max_new_tokens,
                "rollout.max_videos": rollout.max_videos, "rollout.max_context": rollout.max_context,
                "video.presets": {name: asdict(spec) for name, spec in resolved_presets(recipe.video.presets).items()}}
    if tts:
        settings.update({"tts/n": tts["n"], "tts/vote": tts["vote"], "rollout.temperature": rollout.temperature,
                         "rollout.top_p": rollout.top_p, "rollout.top_k": rollout.top_k, "rollout.seed": rollout.seed})
    return settings


def tts_recipe(recipe: Recipe) -> Recipe:
    """The recipe a test-time-scaling evaluation runs: answers sampled at temperature 1, as the
    method samples them, whatever the recipe trains with (the workers exist for this evaluation only)."""
    if recipe.rollout.temperature != 1.0:
        log.info("--tts: sampling at temperature 1 instead of rollout.temperature %g", recipe.rollout.temperature)
    return replace(recipe, rollout=replace(recipe.rollout, temperature=1.0))


def run_eval(recipe: Recipe, model_path: str | None = None, limit: int | None = None,
             episodes_path: str | Path | None = None, benchmark: str | None = None, tts: dict | None = None) -> dict:
    """Evaluate `model_path` (default `model.path`) on `data.eval`; bad samples are skipped and counted.
    Every episode goes to `episodes_path` (default `<run.output_dir>/eval_episodes.jsonl`); with a
    benchmark, to `<run.output_dir>/eval/<benchmark>/episodes.jsonl` as chunks finish (a rerun resumes),
    beside that benchmark's results files. `tts` ({"n", "vote"}): predict by test-time scaling
    (`vo3rl.evaluation.tts`) instead of one greedy episode."""
    recipe = tts_recipe(recipe) if tts else recipe
    bench = BENCHMARKS.get(benchmark) if benchmark else None
    data_format = bench.data_format if bench else recipe.data.format
    model = model_path or recipe.model.path
    skips = SkipLog("eval")
    samples = list(read_samples(recipe.data.eval, data_format, data_root=recipe.data.root or None, skips=skips))
    samples = samples[:limit] if limit else samples
    log.info("evaluating %s on %d samples of %s", model, len(samples), recipe.data.eval)
    if bench and not pending(benchmark_folder(recipe.run.output_dir, bench.name), samples):
        log.info("%s: every sample was finished by an earlier run; summarising it", bench.name)
        return _run_benchmark(recipe, bench, model, None, None, samples, skips.total, data_format, tts)
    if not bench:
        metrics = evaluate_model(recipe, model, samples, episodes_path or Path(recipe.run.output_dir) / "eval_episodes.jsonl",
                                 evaluator(tts))
        return {**metrics, "eval/skipped_rows": skips.total}
    rollout, rewards = evaluation_services(recipe, model)
    try:
        return _run_benchmark(recipe, bench, model, rollout, rewards, samples, skips.total, data_format, tts)
    finally:
        rollout.shutdown()
        rewards.shutdown()


def evaluation_services(recipe: Recipe, model: str) -> tuple[RolloutGroup, RewardPool]:
    """The recipe's rollout workers (`rl.rollout_workers`) serving `model`, and its reward workers."""
    start_ray(recipe.ray)
    rollout = RolloutGroup(model, recipe, recipe.rl.rollout_workers)
    return rollout, RewardPool(recipe.reward, recipe.rl.reward_workers, recipe.rl.judge_concurrency, recipe.run.log_level)


def evaluate_model(recipe: Recipe, model: str, samples: list, episodes_path: str | Path | None = None,
                   evaluate=evaluate_records) -> dict:
    """The evaluation every stage reports (`vo3rl eval`, SFT before and after): the metrics of
    `evaluate` (default `evaluate_records`: one greedy episode per sample) for `samples` on `model`,
    through workers started for it and stopped after, with `eval/skipped_videos` (samples whose
    video could not be read)."""
    rollout, rewards = evaluation_services(recipe, model)
    try:
        metrics, _ = evaluate(rollout, rewards, samples, episodes_path=episodes_path)
        return {**metrics, "eval/skipped_videos": sum(rollout.skipped.values())}
    finally:
        rollout.shutdown()
        rewards.shutdown()


EPISODE_COLUMNS = ("sample", "question", "prediction", "answer", "turns", "tool_calls", "vision_tokens", "total")


def _run_benchmark(recipe: Recipe, bench, model: str, rollout, rewards, samples: list, bad_rows: int,
                   data_format: str, tts: dict | None = None) -> dict:
    """The benchmark's summary, kept in `<run.output_dir>/eval/<name>/` (episodes.jsonl as it goes,
    then results.json, results.md, metrics.jsonl) and in W&B (summary and an episode table) when enabled."""
    folder = benchmark_folder(recipe.run.output_dir, bench.name)
    evaluate = evaluator(tts) if tts else None  # None: the benchmark's own episodes (V-STAR's chains)
    summary, records = run_benchmark(rollout, rewards, samples, bench, folder,
                                     evaluation_identity(model, recipe.data.eval, tts),
                                     chunk_samples=EVAL_CHUNK_PER_WORKER * max(1, recipe.rl.rollout_workers),
                                     evaluate=evaluate)
    summary["skipped_rows"] = bad_rows
    if tts:
        summary.update({"tts/n": tts["n"], "tts/vote": tts["vote"]})
    path = write_results(folder, bench.name, model, summary, eval_settings(recipe, data_format, tts))
    log.info("%s results in %s", bench.name, path)
    metrics = MetricsLog(folder / "metrics.jsonl", open_wandb(recipe, folder, f"eval-{bench.name}"))
    try:
        metrics.log({f"{bench.name}/{key}": value for key, value in summary.items()}, step=0)
        rows = [{column: (len(r[column]) if column == "turns" else r.get(column)) for column in EPISODE_COLUMNS}
                for r in records]
        metrics.table(f"{bench.name}/episodes", rows, step=0)
    finally:
        metrics.close()
    return {bench.name: summary, "results": str(path)}
