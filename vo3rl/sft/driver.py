"""Cold-start SFT (`vo3rl sft RECIPE`): the recipe's stages in order (Video-o3: stage 1 format
alignment, stage 2 with TDAM), each a cosine schedule with warmup over its own data.

Per step: a global batch of trajectories, one optimizer step on the learner ranks, metrics to W&B
and `metrics.jsonl`. Every `eval_every` steps the loss on the held-out split; every `save_every` steps
and at the end a checkpoint (`step_N/`: the HF model in `step_N/hf`, optimizer and where the driver
was in `step_N/state`; `final` links to the last one's `hf/`, the model a next stage starts from).
`resume` restarts from a `step_N`. With `gen_eval`, the evaluation RL and `vo3rl eval` report
(greedy episodes on the rollout workers, the recipe's reward, the same `eval/` metric names) runs on
the eval file before and after, given as `evaluate` by the orchestration.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vo3rl.config.schema import Recipe
from vo3rl.data.readers import read_samples
from vo3rl.data.skips import SkipLog
from vo3rl.log import get_logger, progress
from vo3rl.metrics import MetricsLog, open_wandb
from vo3rl.model.tokenizer import build_tokenizer
from vo3rl.sft.data import load_sft_trajectories
from vo3rl.train.checkpoint import HF_DIR, CheckpointError, hf_dir, latest_checkpoint, read_driver_state, write_checkpoint
from vo3rl.train.contract import PolicyLearner
from vo3rl.video.budgets import resolved_presets
from vo3rl.video.cache import DecodeCache

log = get_logger(__name__)

# (total optimizer steps of the first stage, tokenizer) -> the learner SFT trains
LearnerFactory = Callable[[int, object], PolicyLearner]
# (model folder, samples, episodes JSONL path) -> `eval/` metrics, as `vo3rl.evaluation.episodes` names them
Evaluator = Callable[[str, list, Path], dict]


def stage_steps(stage, n_train: int, batch_size: int) -> int:
    """Optimizer steps of a stage: `max_steps`, else `epochs` passes over `n_train` (at least 1)."""
    if stage.max_steps > 0:
        return stage.max_steps
    return max(1, math.ceil(stage.epochs * n_train / batch_size))


def batch_order(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Indices of each step's batch: reshuffled every pass, the same for the same seed (so a resumed
    run sees exactly the batches the interrupted one would have)."""
    rng = random.Random(seed)
    batches, order = [], []
    while len(batches) < steps:
        if len(order) < batch_size:
            fresh = list(range(n))
            rng.shuffle(fresh)
            order += fresh
        batches.append(order[:batch_size])
        order = order[batch_size:]
    return batches


def held_out_loss(learner, trajectories, loss_on: str, max_rows: int) -> float:
    """Mean NLL per trained token on (up to `max_rows` of) the held-out trajectories."""
    rows = trajectories[:max_rows]
    if not rows:
        return float("nan")
    logprobs, _ = learner.logprobs(rows, with_entropy=False, loss_on=loss_on)
    values = np.concatenate([lp[~np.isnan(lp)] for lp in logprobs])
    return float(-values.mean()) if len(values) else float("nan")


def run_sft(recipe: Recipe, make_learner: LearnerFactory, evaluate: Evaluator | None = None) -> dict:
    """Run every stage of `recipe.sft` on the learner `make_learner(total_steps, tokenizer)` builds (in
    process, or the Ray rank group: the orchestration decides); with `sft.gen_eval`, `evaluate` scores
    the model before and after. Returns the summary also written to `sft/summary.json`."""

    cfg = recipe.sft
    cfg.validate()
    recipe.learner.validate()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    presets = resolved_presets(recipe.video.presets)
    cache = DecodeCache(max_bytes=recipe.video.cache_mb << 20)
    summary: dict = {"stages": [], "skips": {}}
    data = []
    for stage in cfg.stages:
        split = load_sft_trajectories(stage.train, tokenizer, presets, cfg.max_length, stage.protocol,
                                      cfg.eval_fraction, recipe.data.root, cache, stage.name, stage.format)
        log.info("%s: %d train, %d held out; %s", stage.name, len(split.train), len(split.held_out), split.skips.summary())
        if not split.train:
            raise ValueError(f"SFT stage {stage.name}: no usable training example in {stage.train}")
        summary["skips"][stage.name] = split.skips.as_dict()
        data.append(split)
    steps = [stage_steps(s, len(d.train), cfg.batch_size) for s, d in zip(cfg.stages, data)]

    if cfg.gen_eval and evaluate is None:
        raise ValueError("sft.gen_eval is on but no evaluator was given to run_sft")
    if cfg.gen_eval:
        before = cfg.gen_eval_samples_before if cfg.gen_eval_samples_before >= 0 else cfg.gen_eval_samples
        summary["before"] = generation_eval(recipe, evaluate, recipe.model.path, before, out / "gen_eval_before.jsonl")
    learner = make_learner(steps[0], tokenizer)
    start_stage, start_step, global_step = 0, 0, 0
    resume = latest_checkpoint(out) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    extra = read_driver_state(resume) if resume is not None else {}
    metrics_log = MetricsLog(out / "metrics.jsonl", open_wandb(recipe, out, job_type="sft",
                                                               resume_id=extra.get("wandb_id")))
    if resume is not None:
        if not {"stage", "stage_step", "global_step"} <= set(extra):
            raise CheckpointError(f"checkpoint {resume} was not written by vo3rl sft (no driver state to resume)")
        learner.load_checkpoint(str(resume))
        start_stage, start_step, global_step = extra["stage"], extra["stage_step"], extra["global_step"]
        log.info("resumed from %s: stage %d step %d", resume, start_stage, start_step)
    if "before" in summary:
        metrics_log.log(_numbers(summary["before"]), global_step)
    started = time.perf_counter()
    last_path = None
    for index in range(start_stage, len(cfg.stages)):
        stage, split, n_steps = cfg.stages[index], data[index], steps[index]
        first = start_step if index == start_stage else 0
        if first == 0 or index != start_stage:
            learner.reset_schedule(n_steps, stage.lr, stage.warmup_ratio)
        ratio = recipe.learner.tdam_ratio if stage.tdam_ratio is None else stage.tdam_ratio
        order = batch_order(len(split.train), cfg.batch_size, n_steps, recipe.run.seed + index)
        for step in progress(range(first, n_steps), desc=f"sft {stage.name}", total=n_steps - first, unit="step"):
            batch = [split.train[i] for i in order[step]]
            metrics = learner.train_step(batch, "sft", cfg.loss_on, learner.use_tdam(ratio))
            global_step += 1
            metrics.update(stage=index, stage_step=step + 1, elapsed_s=time.perf_counter() - started)
            if global_step % cfg.log_every == 0 or step + 1 == n_steps:
                metrics_log.log({f"train/{k}": v for k, v in metrics.items()}, global_step)
                log.info("%s step %d/%d loss %.4f lr %.2e (%.1f s)", stage.name, step + 1, n_steps,
                         metrics["loss"], metrics["lr"], metrics["seconds"])
            if cfg.eval_every and global_step % cfg.eval_every == 0:
                loss = held_out_loss(learner, split.held_out, cfg.loss_on, cfg.eval_batches * cfg.batch_size)
                metrics_log.log({"eval/loss": loss}, global_step)
            done = step + 1 == n_steps and index == len(cfg.stages) - 1
            if done or (cfg.save_every and global_step % cfg.save_every == 0):
                last_path = write_checkpoint(learner, out / f"step_{global_step}", {
                    "stage": index + (step + 1 == n_steps), "stage_step": 0 if step + 1 == n_steps else step + 1,
                    "global_step": global_step, "wandb_id": metrics_log.wandb_id},
                    keep_last=recipe.learner.keep_last)
        loss = held_out_loss(learner, split.held_out, cfg.loss_on, cfg.eval_batches * cfg.batch_size)
        metrics_log.log({"eval/loss": loss}, global_step)
        summary["stages"].append({"name": stage.name, "steps": n_steps, "train": len(split.train),
                                  "held_out": len(split.held_out), "eval_loss": loss})
    summary["train_seconds"] = time.perf_counter() - started
    if last_path is not None:  # `sft/final` is always the HF model of the last complete checkpoint
        final = out / "final"
        if final.is_symlink() or final.exists():
            final.unlink()
        final.symlink_to(Path(Path(last_path).name) / HF_DIR)
    summary["checkpoint"] = str(last_path or resume)
    learner.shutdown()
    if cfg.gen_eval and last_path is not None:
        summary["after"] = generation_eval(recipe, evaluate, str(hf_dir(last_path)), cfg.gen_eval_samples,
                                           out / "gen_eval_after.jsonl")
        metrics_log.log(_numbers(summary["after"]), global_step)
    metrics_log.close()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def generation_eval(recipe, evaluate: Evaluator, model_dir: str, n_samples: int, episodes_path: Path) -> dict:
    """`evaluate` on the first `n_samples` readable rows of `sft.gen_eval_file` (read with
    `data.format`); bad rows are skipped and counted in `eval/skipped_rows`."""
    skips = SkipLog(stage=f"gen eval {recipe.sft.gen_eval_file}")
    rows = read_samples(recipe.sft.gen_eval_file, recipe.data.format, recipe.data.root or None, skips)
    samples = list(itertools.islice(rows, n_samples))
    metrics = evaluate(str(model_dir), samples, episodes_path)
    log.info("SFT evaluation of %s: format %.3f accuracy %.3f over %d samples", Path(model_dir).name,
             metrics.get("eval/format", 0.0), metrics.get("eval/accuracy", 0.0), metrics.get("eval/n", 0))
    return {**metrics, "eval/skipped_rows": skips.total}


def _numbers(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
