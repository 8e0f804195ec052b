"""`vo3rl run`: the stages of a recipe, in order. Each stage is a function of the recipe that leaves its
outputs under `run.output_dir` and skips itself when those outputs are already there and current."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from vo3rl.config.schema import Recipe
from vo3rl.log import get_logger
from vo3rl.registry import Registry

log = get_logger(__name__)

StageFn = Callable[[Recipe], dict]  # the recipe -> the stage's summary (JSON-able)
STAGES: Registry[StageFn] = Registry("stage")


def stage(name: str) -> Callable[[StageFn], StageFn]:
    """Decorator: register a stage function as `name` (a `run.stages` entry)."""
    return STAGES.register(name)


class StageUnavailable(RuntimeError):
    """A stage the recipe asks for that this version cannot run."""


class StageRefused(RuntimeError):
    """A stage that would destroy what it did not create (e.g. write a random model over a checkpoint)."""


# Each stage imports what it runs inside its own function, so `vo3rl run` with only the data stage
# never imports torch, Ray or vLLM.


@stage("data")
def synth_data_stage(recipe: Recipe) -> dict:
    from vo3rl.data.synth import generate

    out = Path(recipe.data.synth_dir)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("config") == asdict(recipe.data.synth):
        log.info("synthetic data already at %s", out)
        manifest = json.loads(manifest_path.read_text())
    else:
        manifest = generate(recipe.data.synth, str(out))
    counts = manifest["counts"]
    summary = {"dir": str(out), "videos": counts["videos"], "video_s": round(counts["video_seconds"], 1)}
    if recipe.data.synth.paper_formats:
        from vo3rl.sft.paper_files import write_paper_files
        from vo3rl.video.budgets import resolved_presets

        summary["paper_files"] = write_paper_files(str(out), resolved_presets(recipe.video.presets), recipe.prompts)
    return summary


@stage("tiny_model")
def build_model_stage(recipe: Recipe) -> dict:
    from vo3rl.model.tiny import TINY_MARKER, NotOurModel, build_tiny_model

    out = Path(recipe.model.path)
    marker = out / TINY_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == asdict(recipe.model.tiny):
        log.info("tiny model already at %s", out)
        return {"model": str(out), "built": False}
    try:
        build_tiny_model(out, recipe.model.tiny)
    except NotOurModel as exc:
        raise StageRefused(f"tiny_model stage, model.path: {exc}") from None
    return {"model": str(out), "built": True}


@stage("sft")
def sft_stage(recipe: Recipe) -> dict:
    from vo3rl.orchestration.sft_run import train as run_sft

    summary = run_sft(recipe)
    return {"checkpoint": summary["checkpoint"], "train_s": round(summary["train_seconds"], 1),
            **before_and_after(summary)}


def before_and_after(summary: dict) -> dict:
    """`before_<metric>` and `after_<metric>` of a stage's evaluations, rounded, for the summary table."""
    keep = {}
    for when in ("before", "after"):
        for key in ("accuracy", "format", "total", "tool_calls"):
            if f"eval/{key}" in summary.get(when, {}):
                keep[f"{when}_{key}"] = round(summary[when][f"eval/{key}"], 3)
    return keep


@stage("rl")
def rl_stage(recipe: Recipe) -> dict:
    from vo3rl.orchestration.rl_run import train

    summary = train(recipe)
    keep = {"steps": summary["steps"], "checkpoint": summary["checkpoint"], **before_and_after(summary)}
    rewards = summary["reward_by_step"]
    if rewards:
        keep["train_reward_first_last"] = f"{rewards[0]:.3f}->{rewards[-1]:.3f}"
    return keep


@stage("eval")
def eval_stage(recipe: Recipe) -> dict:
    """Evaluate the newest policy this run produced (RL, else SFT, else `model.path`)."""
    from vo3rl.orchestration.eval_run import run_eval
    from vo3rl.train.checkpoint import hf_dir, latest_checkpoint

    sft_final = Path(recipe.sft.output_dir) / "final"
    newest = latest_checkpoint(Path(recipe.run.output_dir) / "rl" / "checkpoints")
    model = hf_dir(newest) if newest else (sft_final if sft_final.exists() else Path(recipe.model.path))
    metrics = run_eval(recipe, str(model), recipe.rl.eval_samples)
    (Path(recipe.run.output_dir) / "eval.json").write_text(json.dumps({"model": str(model), **metrics}, indent=2) + "\n")
    return {"model": str(model), **{k: round(v, 3) for k, v in metrics.items()
                                    if k in ("eval/accuracy", "eval/format", "eval/total", "eval/n")}}


def run_pipeline(recipe: Recipe, memory=None) -> list[tuple[str, float, dict]]:
    """Run every stage of `recipe.run.stages`; returns (stage, seconds, summary) per stage. With a
    running `vo3rl.memory.PeakMemory`, each summary also holds the stage's peak memory (GiB)."""
    results = []
    for name in recipe.run.stages:
        if name not in STAGES:
            raise StageUnavailable(f"stage '{name}' is not implemented in this version")
        log.info("stage %s: start", name)
        if memory is not None:
            memory.take()  # the stage's peak starts now
        start = time.perf_counter()
        summary = STAGES.get(name)(recipe)
        seconds = time.perf_counter() - start
        if memory is not None:
            summary = {**summary, **memory.take()}
        log.info("stage %s: done in %.1f s", name, seconds)
        results.append((name, seconds, summary))
    write_run_summary(recipe, results)
    return results


def write_run_summary(recipe: Recipe, results: list[tuple[str, float, dict]]) -> Path:
    """`<run.output_dir>/summary.json`: the seed, each stage's seconds and summary, and, when the RL
    stage evaluated before and after, its `eval` block (`after_sft`, `after_rl`, the paired tests)."""
    out = Path(recipe.run.output_dir)
    summary: dict = {"run": recipe.run.name, "seed": recipe.run.seed,
                     "stages": [{"stage": name, "seconds": round(seconds, 1), **result} for name, seconds, result in results]}
    rl_summary = out / "rl" / "summary.json"
    if "rl" in recipe.run.stages and rl_summary.is_file():
        block = json.loads(rl_summary.read_text()).get("eval")
        if block:
            summary["eval"] = block
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path
