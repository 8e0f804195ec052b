"""`vo3rl eval RECIPE [key=value …] [--model DIR] [--tts N [--vote RULE]]`: greedy evaluation on the
recipe's `data.eval`, or test-time scaling (open_o3) with --tts."""
from __future__ import annotations

import argparse
import json

from vo3rl.commands.common import add_recipe_arguments

HELP = "evaluate a checkpoint: greedy episodes (eval turn limit) on data.eval, scored by the reward terms"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--model", default=None,
                        help="HF model folder or vo3rl checkpoint step_N (its hf/) to evaluate (default: model.path)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--benchmark", default=None,
                        help="read data.eval as this benchmark and write its results (eval/NAME/results.json, .md)")
    parser.add_argument("--tts", type=int, default=None, metavar="N",
                        help="confidence-aware test-time scaling (open_o3 only): sample N answers at temperature 1 "
                             "per sample and predict the voted one")
    parser.add_argument("--vote", choices=("confidence", "majority"), default="confidence",
                        help="with --tts: weigh answers by the model's rating of their evidence crops "
                             "(confidence) or count them (majority)")


def run(args: argparse.Namespace) -> int:
    from vo3rl.commands.common import recipe_from_args
    from vo3rl.orchestration.checks import eval_inputs
    from vo3rl.orchestration.eval_run import run_eval

    model = {}
    tts = {"n": args.tts, "vote": args.vote} if args.tts is not None else None

    def refuse(recipe):
        model["folder"], problems = eval_inputs(recipe, args.model, args.benchmark, tts)
        return "; ".join(problems) or None

    recipe = recipe_from_args(args, refuse=refuse)
    print(json.dumps(run_eval(recipe, str(model["folder"]), args.limit, benchmark=args.benchmark, tts=tts), indent=2))
    return 0
