"""`vo3rl eval RECIPE [key=value …] [--model DIR]`: greedy evaluation on the recipe's `data.eval`."""
from __future__ import annotations

import argparse
import json

from vo3rl.commands.common import add_recipe_arguments

HELP = "evaluate a checkpoint: greedy episodes (eval turn limit) on data.eval, scored by the reward terms"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--model", default=None, help="HF directory to evaluate (default: model.path)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")


def run(args: argparse.Namespace) -> int:
    from vo3rl.commands.common import recipe_from_args
    from vo3rl.orchestration.eval_run import run_eval

    recipe = recipe_from_args(args)
    print(json.dumps(run_eval(recipe, args.model, args.limit), indent=2))
    return 0
