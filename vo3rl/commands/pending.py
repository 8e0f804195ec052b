"""Commands whose machinery has not landed yet. They parse their arguments and say so plainly."""
from __future__ import annotations

import argparse
import sys

_WHAT = {
    "sft": "cold-start SFT (stage 1, stage 2 with TDAM) on the learner workers",
    "rl": "RL with GRPO/GSPO: vLLM rollout workers, reward workers, FSDP2 learners",
    "eval": "evaluation with the rollout workers (greedy, the eval turn limit)",
    "submit": "submit a recipe as a Ray job to a cluster",
}


def help_for(name: str) -> str:
    return f"{_WHAT[name]} (not available yet)"


def add_arguments_for(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value")


def run(args: argparse.Namespace) -> int:
    print(f"vo3rl {args.command}: {_WHAT[args.command]} is not implemented in this version yet", file=sys.stderr)
    return 2
