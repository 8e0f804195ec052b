"""`vo3rl` — the command line. Each subcommand lives in `vo3rl/commands/<name>.py` and exposes
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int`. Command modules keep their heavy
imports (torch, ray, vllm) inside `run`, so building the parser stays instant.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys

# name -> module under vo3rl.commands
COMMANDS = {
    "run": "run",
    "sft": "sft",
    "rl": "rl",
    "eval": "eval",
    "data": "data",
    "submit": "submit",
    "config": "config",
    "report": "report",
    "tiny-model": "tiny_model",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit status 2), not a usage dump."""

    def error(self, message: str):  # type: ignore[override]
        if "invalid choice" in message and "argument command" in message:
            wrong = message.split("'")[1] if "'" in message else ""
            close = difflib.get_close_matches(wrong, COMMANDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            message = f"unknown command '{wrong}'{hint}; commands: {', '.join(COMMANDS)}"
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _load(name: str):
    return importlib.import_module(f"vo3rl.commands.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vo3rl",
        description="RL for video-language agents that seek and cite evidence (Video-o3, Open-o3 Video).",
        epilog="Recipes are YAML files (see recipes/); any key can be overridden as key.path=value.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = _load(name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


# A recipe override on the command line: `key.path=value`.
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with `key=value` recipe overrides accepted anywhere after the recipe, before or
    after flags (`vo3rl eval RECIPE --model DIR run.seed=3`), as Hydra and verl users expect. Their
    order is kept: a later override of the same key wins."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all(_OVERRIDE.match(token) for token in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    from vo3rl.config import RecipeError  # omegaconf loads only when a command runs

    args = parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except RecipeError as exc:
        print(f"vo3rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vo3rl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
