"""`vo3rl config RECIPE [key=value …]`: print the resolved recipe (defaults, extends, overrides, interpolations)."""
from __future__ import annotations

import argparse

HELP = "print the fully resolved recipe (after extends, overrides and ${…} interpolation)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="overrides to apply")


def run(args: argparse.Namespace) -> int:
    from vo3rl.config import to_yaml
    from vo3rl.orchestration.checks import load_checked_recipe

    print(to_yaml(load_checked_recipe(args.recipe, args.overrides)), end="")
    return 0
