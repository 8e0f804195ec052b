"""What the held-out episodes of an RL run show about seeking: before RL (the SFT model) and after.

    python benchmarks/seek_episodes.py runs/tiny-seek            # first vs last evaluation of rl/eval/
    python benchmarks/seek_episodes.py runs/tiny-seek --after step_000024.jsonl

Prints, for each evaluation: episodes by (needs the tool?, what the crops did, answered right?), the
answer letters given against the answer letters asked (a default letter shows up here), where the
first crop started; then the paired comparison (exact one-sided McNemar) of accuracy and clue hits,
and how the answers of the samples that changed were reached. Reads only the evaluation JSONL files.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from vo3rl.evaluation.compare import paired_gain


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def crops(record: dict) -> list[tuple[float, float]]:
    return [(v["start_s"], v["end_s"]) for v in record["views"] if v["start_s"] is not None]


def kind(record: dict) -> str:
    """needs-tool/no-tool, then hit / missed (cropped elsewhere) / no crop, then right / wrong."""
    seek = record.get("seek") or {}
    need = "tool" if seek.get("needs_tool") else "no-tool"
    did = "hit" if seek.get("clue_hit") else ("missed" if crops(record) else "no crop")
    right = "right" if record["components"].get("accuracy", 0.0) > 0.5 else "wrong"
    return f"{need:7s} {did:8s} {right}"


def describe(name: str, records: list[dict]) -> None:
    print(f"\n## {name}: {len(records)} episodes")
    for key, count in sorted(Counter(kind(r) for r in records).items()):
        print(f"  {key:28s} {count}")
    print("  answers given:", dict(sorted(Counter(str(r["prediction"]) for r in records).items())))
    print("  answers asked:", dict(sorted(Counter(str(r["answer"]) for r in records).items())))
    starts = Counter(f"{c[0][0]:g}" for r in records if (c := crops(r)))
    print("  first crop starts (s):", dict(sorted(starts.items(), key=lambda kv: float(kv[0]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run's output_dir (holding rl/eval/step_*.jsonl)")
    parser.add_argument("--before", default=None, help="file name in rl/eval/ (default: the first)")
    parser.add_argument("--after", default=None, help="file name in rl/eval/ (default: the last)")
    args = parser.parse_args()
    folder = args.run / "rl" / "eval"
    files = sorted(folder.glob("step_*.jsonl"))
    if len(files) < 2 and not (args.before and args.after):
        raise SystemExit(f"{folder}: need two evaluations, found {[f.name for f in files]}")
    before_path = folder / args.before if args.before else files[0]
    after_path = folder / args.after if args.after else files[-1]
    before, after = read(before_path), read(after_path)
    describe(f"before ({before_path.name})", before)
    describe(f"after ({after_path.name})", after)
    print("\n## paired (same samples)")
    for outcome in ("accuracy", "clue_hit_rate"):
        gain = paired_gain(before, after, outcome)
        print(f"  {outcome:14s} n={gain['n']} {gain['before']:.3f} -> {gain['after']:.3f}; only before "
              f"{gain['only_before']}, only after {gain['only_after']}; one-sided McNemar p = {gain['p_value']:.4g}")
    by_sample = {r["sample"]: r for r in after}
    changed = Counter((kind(r), kind(by_sample[r["sample"]])) for r in before
                      if r["sample"] in by_sample and kind(r) != kind(by_sample[r["sample"]]))
    print("\n## samples whose episode changed kind (before -> after)")
    for (was, now), count in changed.most_common():
        print(f"  {was}  ->  {now}: {count}")


if __name__ == "__main__":
    main()
