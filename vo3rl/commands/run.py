"""`vo3rl run RECIPE [key=value …]`: the whole pipeline of a recipe (data → model → sft → rl → eval)."""
from __future__ import annotations

import argparse
import sys

from vo3rl.commands.common import add_no_training_argument, add_recipe_arguments

HELP = "run the recipe's pipeline stages in order (run.stages) and print a summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)
    add_no_training_argument(parser)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vo3rl.commands.common import recipe_from_args
    from vo3rl.memory import PeakMemory
    from vo3rl.orchestration.checks import missing_inputs, pipeline_problem, placement_problems
    from vo3rl.orchestration.pipeline import StageRefused, StageUnavailable, run_pipeline

    recipe = recipe_from_args(args, lambda r: pipeline_problem(r, args.no_training)
                              or "; ".join(missing_inputs(r) + placement_problems(r)))
    try:
        with PeakMemory() as memory:
            results = run_pipeline(recipe, memory)
    except (StageUnavailable, StageRefused) as exc:
        print(f"vo3rl run: error: {exc}", file=sys.stderr)
        return 2
    table = Table(title=f"vo3rl run · {recipe.run.name} · {recipe.run.output_dir}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for name, seconds, summary in results:
        table.add_row(name, f"{seconds:.1f}", ", ".join(f"{k}={v}" for k, v in summary.items()))
    peak = memory.overall()
    table.caption = (f"total {sum(seconds for _, seconds, _ in results):.1f} s; peak memory of the run's processes "
                     f"{peak['peak_pss_gib']} GiB PSS ({peak['peak_rss_gib']} GiB RSS summed)")
    Console(stderr=False).print(table)
    return 0
