"""`vo3rl sft RECIPE [key=value …]`: cold-start SFT (stage 1, stage 2 with TDAM) on the learner workers."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vo3rl.commands.common import add_recipe_arguments

BRIEF = ("format", "accuracy", "total", "turns", "tool_calls", "n", "seconds")  # of each evaluation, printed
HELP = "cold-start SFT: the recipe's stages (stage 2 with TDAM) on the learner workers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)


def _prepare(recipe) -> None:
    """The tiny demo's inputs: synthesize the data and build the tiny model when they are missing."""
    from vo3rl.orchestration.pipeline import STAGES

    if any(not Path(stage.train).is_file() for stage in recipe.sft.stages):
        STAGES["data"](recipe)
    if not (Path(recipe.model.path) / "config.json").is_file():
        STAGES["tiny_model"](recipe)


def run(args: argparse.Namespace) -> int:
    import time

    from vo3rl.commands.common import recipe_from_args
    from vo3rl.orchestration.sft_run import train as run_sft
    from vo3rl.train.checkpoint import CheckpointError

    recipe = recipe_from_args(args)
    start = time.perf_counter()
    if recipe.sft.prepare:
        _prepare(recipe)
    try:
        summary = run_sft(recipe)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"vo3rl sft: error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    brief = {"wall_s": round(wall, 1), "train_s": round(summary["train_seconds"], 1),
             "checkpoint": summary["checkpoint"], "stages": summary["stages"]}
    for when in ("before", "after"):
        if when in summary:
            brief[when] = {k: v for k, v in summary[when].items() if k.split("/")[-1] in BRIEF}
    print(json.dumps(brief, indent=2, default=str))
    return 0
