"""`vo3rl data`: make the synthetic clue dataset, convert row files, check a dataset's rows and videos.

    vo3rl data synth OUT [key=value ...]        e.g. n_train_videos=32 duration_s=20 seed=1
    vo3rl data convert SRC DST --from seeker --to verl
    vo3rl data check FILE --format seeker --data-root DIR [--videos]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

HELP = "make the synthetic clue dataset, convert row files (Seeker <-> verl parquet), check datasets"
log = logging.getLogger(__name__)

INPUT_FORMATS = ("seeker", "stgr", "verl", "mcq", "vstar", "samples")
OUTPUT_FORMATS = ("seeker", "verl", "samples")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="action")
    sub.required = True

    synth = sub.add_parser(
        "synth",
        help="write the synthetic long-video clue dataset (videos, RL/SFT/eval JSONL, manifest)",
        description="Write the synthetic clue-seeking dataset to OUT. Knobs are SynthConfig fields "
        "(vo3rl/config/synth.py) given as key=value, e.g. n_train_videos=32 duration_s=20 "
        "event_size=0.5 data_types=[single_clue_tool,multi_clue_tool].",
    )
    synth.add_argument("out", help="output folder (created; files in it are overwritten)")
    synth.add_argument("knobs", nargs="*", metavar="key=value", help="SynthConfig overrides")

    convert = sub.add_parser(
        "convert",
        help="convert a row file between layouts (e.g. Seeker JSONL -> verl parquet)",
        description="Read SRC in one layout, write DST in another (.parquet suffix: parquet, else JSONL). "
        "Video paths are copied as written; bad rows are skipped and counted.",
    )
    convert.add_argument("src")
    convert.add_argument("dst")
    convert.add_argument("--from", dest="src_format", choices=INPUT_FORMATS, default="seeker")
    convert.add_argument("--to", dest="dst_format", choices=OUTPUT_FORMATS, default="verl")

    check = sub.add_parser(
        "check",
        help="read a dataset file and report bad rows and missing videos (with --videos, unreadable ones too)",
        description="Read FILE, count the rows that parse and the ones skipped by reason, and check that "
        "every row's video exists; with --videos also open every video and compare its duration with the row's.",
    )
    check.add_argument("file")
    check.add_argument("--format", choices=INPUT_FORMATS + ("seeker_sft", "stgr_sft", "chat"), default="seeker")
    check.add_argument("--data-root", default=None, help="folder that relative video paths start from")
    check.add_argument("--videos", action="store_true", help="also probe every video (slow for big sets)")


def _synth(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from vo3rl.config.synth import SynthConfig
    from vo3rl.data.synth import generate

    try:
        merged = OmegaConf.merge(OmegaConf.structured(SynthConfig), OmegaConf.from_dotlist(args.knobs))
        cfg = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError) as exc:
        print(f"vo3rl data synth: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        manifest = generate(cfg, args.out)
    except ValueError as exc:
        print(f"vo3rl data synth: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": args.out, **manifest["counts"]}, indent=2))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from vo3rl.data.convert import convert_file

    try:
        report = convert_file(args.src, args.src_format, args.dst, args.dst_format)
    except (FileNotFoundError, ValueError) as exc:
        print(f"vo3rl data convert: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report.written} rows to {args.dst}; {report.skips.summary()}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from vo3rl.data.readers import SFT_FORMATS, read_samples, read_sft
    from vo3rl.data.skips import SkipLog
    from vo3rl.data.validate import check_sample_video
    from vo3rl.log import progress
    from vo3rl.video.cache import DecodeCache

    skips = SkipLog(stage=f"check {args.file}")
    try:
        if args.format in SFT_FORMATS:
            samples = [ex.sample for ex in read_sft(args.file, args.format, args.data_root, skips)]
        else:
            samples = list(read_samples(args.file, args.format, args.data_root, skips))
    except (FileNotFoundError, ValueError) as exc:
        print(f"vo3rl data check: error: {exc}", file=sys.stderr)
        return 2
    video_skips = SkipLog(stage="videos", max_warnings=5)
    cache = DecodeCache(max_bytes=0, max_sources=1)  # probing only: keep nothing decoded
    for sample in progress(samples, desc="probe videos" if args.videos else "find videos", unit="video"):
        if not os.path.isfile(sample.video.path):  # always: a row whose video is not there is not ok
            video_skips.add(sample.id, "missing", sample.video.path)
            continue
        if args.videos:
            try:
                check_sample_video(sample, cache)
            except Exception as err:  # noqa: BLE001 - a bad video is reported, never fatal
                video_skips.add_error(err, sample.id)
    report = {"rows_ok": len(samples), "rows": skips.as_dict(),
              "videos_ok": len(samples) - video_skips.total, "videos": video_skips.as_dict(),
              "videos_decoded": bool(args.videos)}
    if skips.total and not samples:
        report["hint"] = (f"every row failed as --format {args.format}; is the file another format? "
                          f"(known: {', '.join(INPUT_FORMATS + tuple(SFT_FORMATS))})")
        print(f"vo3rl data check: {report['hint']}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0 if skips.total == 0 and video_skips.total == 0 else 1


def run(args: argparse.Namespace) -> int:
    from vo3rl.log import setup_logging

    setup_logging("INFO")
    actions = {"synth": _synth, "convert": _convert, "check": _check}
    return actions[args.data_command](args)
