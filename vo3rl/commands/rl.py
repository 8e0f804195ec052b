"""`vo3rl rl RECIPE [key=value …]`: GRPO / GSPO with vLLM rollout workers, reward workers and FSDP2 learners."""
from __future__ import annotations

import argparse
import json

from vo3rl.commands.common import add_recipe_arguments

HELP = "RL with GRPO/GSPO: vLLM rollout workers, reward workers, FSDP2 learners (resumes by default)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from vo3rl.commands.common import recipe_from_args
    from vo3rl.orchestration.rl_run import train

    recipe = recipe_from_args(args)
    print(json.dumps(train(recipe), indent=2, default=str))
    return 0
