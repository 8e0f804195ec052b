"""`vo3rl report RUN_DIR [--out DIR]`: plots of a run's metrics and a Markdown page embedding them."""
from __future__ import annotations

import argparse

HELP = "draw a run's metrics.jsonl files (reward, accuracy, format, tools, phases, evaluation before/after) into PNGs and report.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run's output folder (run.output_dir), e.g. runs/tiny-demo")
    parser.add_argument("--out", default=None, help="where to write the report (default: RUN_DIR/report)")


def run(args: argparse.Namespace) -> int:
    from vo3rl.config import RecipeError
    from vo3rl.report.page import write_report

    try:
        page = write_report(args.run_dir, args.out)
    except FileNotFoundError as exc:
        raise RecipeError(str(exc)) from None
    print(page)
    return 0
