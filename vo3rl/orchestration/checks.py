"""The checks that need the registries and the lower packages, run on the resolved recipe with the
schema's own (`vo3rl.config.schema.check_semantics`) before any work starts: every name a recipe picks
from a registry exists, and the sampling presets it overrides are real ones."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from vo3rl.config.loader import RecipeError, load_recipe
from vo3rl.config.schema import Recipe
from vo3rl.data.readers import SAMPLE_FORMATS, SFT_FORMATS
from vo3rl.rl.advantages import ADVANTAGE_ESTIMATORS
from vo3rl.rl.losses import POLICY_LOSSES
from vo3rl.video.budgets import resolved_presets


def _known(name: str, registry, key: str) -> list[str]:
    if name in registry:
        return []
    return [f"{key}: {name!r} is not one of {', '.join(sorted(registry))}"]


def registered_name_problems(recipe: Recipe) -> list[str]:
    """One message per name the recipe uses that no registry holds (empty when all are known)."""
    problems = [*_known(recipe.rl.advantage, ADVANTAGE_ESTIMATORS, "rl.advantage"),
                *_known(recipe.rl.loss.name, POLICY_LOSSES, "rl.loss.name"),
                *_known(recipe.data.format, SAMPLE_FORMATS, "data.format")]
    for index, stage in enumerate(recipe.sft.stages):
        problems += _known(stage.format, SFT_FORMATS, f"sft.stages.{index}.format")
    try:
        resolved_presets(recipe.video.presets)
    except ValueError as exc:
        problems.append(f"video.presets: {exc}")
    return problems


TRAINING_STAGES = ("sft", "rl")


def pipeline_problem(recipe: Recipe, allow_no_training: bool = False) -> str | None:
    """Why `vo3rl run` / `vo3rl submit` must not start `recipe.run.stages`, or None. A recipe with no
    stages says nothing to run; one whose stages train nothing (data, tiny_model, eval) runs only when
    asked (`--no-training`): a user who names a paper recipe means to train."""
    stages = list(recipe.run.stages)
    if not stages:
        return "run.stages = []: the recipe lists no stage to run (e.g. run.stages=[sft])"
    if not allow_no_training and not set(stages) & set(TRAINING_STAGES):
        return (f"run.stages = {stages}: no stage trains ({' or '.join(TRAINING_STAGES)}); pass --no-training "
                f"to run them anyway")
    return None


def load_checked_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> Recipe:
    """`vo3rl.config.load_recipe` plus the registry checks above. Raises RecipeError (one line)."""
    recipe = load_recipe(path, overrides)
    problems = registered_name_problems(recipe)
    if problems:
        raise RecipeError("; ".join(problems))
    return recipe
