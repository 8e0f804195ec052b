"""Learner throughput on the tiny model: TDAM on vs off at the same lengths, and 1 vs 2 FSDP2 ranks.

    .venv/bin/python benchmarks/bench_learner.py [--repeats 5] [--batch 8] [--skip-fsdp]

Data: the synthetic clue set at the tiny demo's settings (recipes/tiny_cpu/base.yaml), Video-o3 SFT
chats with more than one video (TDAM only masks those). Tokens/s counts real (unpadded) tokens of a
full train step (re-sampling the videos, forward, backward, optimizer). Target: TDAM costs <= 25%.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TDAM_TARGET = 0.25


def _data(tmp: str, n_videos: int):
    from vo3rl.config import load_recipe
    from vo3rl.data.synth import generate
    from vo3rl.model.tiny import build_tiny_model
    from vo3rl.model.tokenizer import build_tokenizer
    from vo3rl.sft.data import load_sft_trajectories
    from vo3rl.video.budgets import resolved_presets

    recipe = load_recipe("recipes/tiny_cpu/base.yaml", [f"run.output_dir={tmp}"])
    generate(replace(recipe.data.synth, n_train_videos=n_videos, n_eval_videos=0, questions_per_video=2), f"{tmp}/data")
    model = build_tiny_model(f"{tmp}/model", recipe.model.tiny)
    tokenizer = build_tokenizer()
    split = load_sft_trajectories(f"{tmp}/data/sft_train.jsonl", tokenizer, resolved_presets(recipe.video.presets), 4096,
                                  "video_o3", 0.0, f"{tmp}/data")
    return model, tokenizer, [t for t in split.train if len(t.videos) > 1]


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first-call allocations, decode cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_tdam(model, tokenizer, trajs, repeats: int) -> dict:
    from vo3rl.config.learner import LearnerConfig
    from vo3rl.train.learner import Learner

    learner = Learner(model, LearnerConfig(lr=1e-4, micro_batch_tokens=1 << 20), total_steps=1000, tokenizer=tokenizer)
    tokens = sum(len(t) for t in trajs)
    out = {"rows": len(trajs), "tokens": tokens, "longest": max(len(t) for t in trajs)}
    for name, fn in (
        ("train", lambda tdam: learner.train_step(trajs, use_tdam=tdam)),
        ("logprobs", lambda tdam: learner.logprobs(trajs, use_tdam=tdam)),
    ):
        # Interleave on/off so drift in machine load hits both alike.
        off, on = [], []
        for _ in range(repeats):
            off += _timed(lambda: fn(False), 1)
            on += _timed(lambda: fn(True), 1)
        out[name] = {"off_tok_s": tokens / statistics.median(off), "on_tok_s": tokens / statistics.median(on)}
        out[name]["cost"] = 1 - out[name]["on_tok_s"] / out[name]["off_tok_s"]
    return out


def bench_fsdp(model, trajs, repeats: int) -> dict:
    import ray

    from vo3rl.config.learner import LearnerConfig
    from vo3rl.workers.learner import LearnerGroup

    ray.init(num_cpus=2, _temp_dir="/tmp/vo3rl-bench", include_dashboard=False, log_to_driver=False)
    tokens = sum(len(t) for t in trajs)
    out = {}
    try:
        for ranks in (1, 2):
            group = LearnerGroup(str(model), LearnerConfig(ranks=ranks, lr=1e-4, micro_batch_tokens=1 << 20),
                                 total_steps=1000, cpus_per_rank=2 // ranks)
            try:
                times = _timed(lambda: group.train_step(trajs), repeats)
            finally:
                group.shutdown()
            out[ranks] = tokens / statistics.median(times)
    finally:
        ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="trajectories per step")
    parser.add_argument("--skip-fsdp", action="store_true")
    args = parser.parse_args()
    import torch

    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench_learner_") as tmp:
        model, tokenizer, trajs = _data(tmp, n_videos=max(4, args.batch))
        batch = trajs[: args.batch]
        result = bench_tdam(model, tokenizer, batch, args.repeats)
        print(f"TDAM, {result['rows']} multi-video trajectories, {result['tokens']} tokens "
              f"(longest {result['longest']}), padded into one micro-batch:")
        for name in ("train", "logprobs"):
            r = result[name]
            print(f"  {name:9s} off {r['off_tok_s']:8.0f} tok/s   on {r['on_tok_s']:8.0f} tok/s   cost {r['cost']:+.1%}")
        verdict = "met" if result["train"]["cost"] <= TDAM_TARGET else "MISSED"
        print(f"  target: TDAM costs <= {TDAM_TARGET:.0%} of train throughput -> {verdict}")
        if not args.skip_fsdp:
            fsdp = bench_fsdp(model, batch, args.repeats)
            print(f"FSDP2 on CPU (gloo), same global batch: 1 rank x 2 threads {fsdp[1]:.0f} tok/s, "
                  f"2 ranks x 1 thread {fsdp[2]:.0f} tok/s ({fsdp[2] / fsdp[1]:.2f}x)")


if __name__ == "__main__":
    main()
