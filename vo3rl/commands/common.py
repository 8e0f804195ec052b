"""Arguments and set-up shared by the commands that take a recipe."""
from __future__ import annotations

import argparse
from pathlib import Path

from vo3rl.config import to_yaml
from vo3rl.log import get_logger, setup_logging

log = get_logger(__name__)


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML, e.g. recipes/tiny_cpu/demo.yaml")
    parser.add_argument(
        "overrides", nargs="*", metavar="key.path=value", help="override any recipe key, e.g. run.seed=1"
    )


def add_no_training_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-training", action="store_true",
                        help="run the recipe's stages even though none of them trains (no sft or rl stage)")


def recipe_from_args(args: argparse.Namespace, refuse=None):
    """Load and validate the recipe (raises RecipeError), set up logging, and save the resolved recipe
    next to the run's outputs so a run can always be reproduced from its folder. `refuse(recipe)` may
    return a reason not to start; it is raised as RecipeError before anything is written."""
    from vo3rl.config.loader import RecipeError
    from vo3rl.orchestration.checks import load_checked_recipe  # imports torch: not at parser-build time

    recipe = load_checked_recipe(args.recipe, args.overrides)
    setup_logging(recipe.run.log_level)
    reason = refuse(recipe) if refuse is not None else None
    if reason:
        raise RecipeError(reason)
    out = Path(recipe.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(to_yaml(recipe))
    log.info("recipe %s resolved into %s/recipe.yaml", args.recipe, out)
    return recipe
