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

log = get_logger(__name__)

StageFn = Callable[[Recipe], dict]
STAGES: dict[str, StageFn] = {}


def stage(name: str):
    def register(fn: StageFn) -> StageFn:
        STAGES[name] = fn
        return fn

    return register


class StageUnavailable(RuntimeError):
    """A stage the recipe asks for that this version cannot run."""


@stage("tiny_model")
def build_model_stage(recipe: Recipe) -> dict:
    from vo3rl.model.tiny import build_tiny_model

    out = Path(recipe.model.path)
    marker = out / "vo3rl_tiny.json"
    if marker.is_file() and json.loads(marker.read_text()) == asdict(recipe.model.tiny):
        log.info("tiny model already at %s", out)
        return {"model": str(out), "built": False}
    build_tiny_model(out, recipe.model.tiny)
    return {"model": str(out), "built": True}


def run_pipeline(recipe: Recipe) -> list[tuple[str, float, dict]]:
    """Run every stage of `recipe.run.stages`; returns (stage, seconds, summary) per stage."""
    results = []
    for name in recipe.run.stages:
        if name not in STAGES:
            raise StageUnavailable(f"stage '{name}' is not implemented in this version")
        log.info("stage %s: start", name)
        start = time.perf_counter()
        summary = STAGES[name](recipe)
        seconds = time.perf_counter() - start
        log.info("stage %s: done in %.1f s", name, seconds)
        results.append((name, seconds, summary))
    return results
