"""`vo3rl tiny-model OUT`: build a randomly initialised tiny Qwen2.5-VL with the real tokenizer."""
from __future__ import annotations

import argparse
import dataclasses

HELP = "build a tiny random Qwen2.5-VL (real Qwen2.5 tokenizer, processor) as an HF directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vo3rl.model.tiny import TinyModelConfig

    parser.add_argument("out", help="output directory (created)")
    for f in dataclasses.fields(TinyModelConfig):
        if f.type in ("int", "bool"):
            kind = int if f.type == "int" else lambda s: s.lower() in ("1", "true", "yes")
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None, help=f"default {f.default}")
    parser.add_argument("--mrope-section", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="temporal,height,width rotary sections summing to head_dim/2 (default 4,6,6)")


def run(args: argparse.Namespace) -> int:
    import sys

    from vo3rl.log import setup_logging
    from vo3rl.model.tiny import NotOurModel, TinyModelConfig, build_tiny_model

    setup_logging("INFO")
    given = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(TinyModelConfig)}}
    cfg = TinyModelConfig(**{k: v for k, v in given.items() if v is not None})
    try:
        cfg.validate()
    except ValueError as exc:
        print(f"vo3rl tiny-model: error: {exc}", file=sys.stderr)
        return 2
    try:
        out = build_tiny_model(args.out, cfg)
    except NotOurModel as exc:
        print(f"vo3rl tiny-model: error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0
